"""Literal transcriptions of the official code (akshitac8/tfvaegan): the tests' oracle, the bench's baseline.

Nothing here is used by a run, and nothing here uses the package's model or losses: the networks
(networks/TFVAEGAN_model.py), the losses and the training iteration (train_images.py,
train_actions.py) and the per-epoch evaluation (train_images.py, with its literal classifier
settings, and classifiers/classifier_images.py) are written as the official code writes them, line
for line where it runs, so that a test comparing the package with them compares two independent
computations. Where the official line cannot run on a modern PyTorch or crashes as published, the
change is the smallest that runs and is marked `# as-run:` (docs/actions.md lists the action code's
crashes and their intent):
- `backward(one)` with `one = FloatTensor([1])` needs a 0-d tensor since PyTorch 0.4;
- `Variable(..., volatile=True)` is `torch.no_grad()`;
- the action code's `sample()` copies as intended, its `netDec(x).getLayersOutDet()` is
  `netDec(x); netDec.getLayersOutDet()`, and its AttDec gets the sigmoid `bce_att` needs;
- host tensors are moved to the networks' device, as `opt.cuda` does.
"""
from __future__ import annotations

import copy
from dataclasses import dataclass
from types import SimpleNamespace
from typing import Callable

import torch
import torch.autograd as autograd
import torch.nn as nn
import torch.nn.functional as F


# --------------------------------------------------------------------------- networks/TFVAEGAN_model.py
def weights_init(m):
    classname = m.__class__.__name__
    if classname.find('Linear') != -1:
        m.weight.data.normal_(0.0, 0.02)
        m.bias.data.fill_(0)


class Encoder(nn.Module):
    def __init__(self, opt):
        super(Encoder, self).__init__()
        layer_sizes = list(opt.encoder_layer_sizes)  # as-run: a copy (the official code edits opt's list)
        latent_size = opt.latent_size
        layer_sizes[0] += latent_size
        self.fc1 = nn.Linear(layer_sizes[0], layer_sizes[-1])
        self.fc3 = nn.Linear(layer_sizes[-1], latent_size * 2)
        self.lrelu = nn.LeakyReLU(0.2, True)
        self.linear_means = nn.Linear(latent_size * 2, latent_size)
        self.linear_log_var = nn.Linear(latent_size * 2, latent_size)
        self.apply(weights_init)

    def forward(self, x, c=None):
        if c is not None:
            x = torch.cat((x, c), dim=-1)
        x = self.lrelu(self.fc1(x))
        x = self.lrelu(self.fc3(x))
        means = self.linear_means(x)
        log_vars = self.linear_log_var(x)
        return means, log_vars


class Generator(nn.Module):
    def __init__(self, opt):
        super(Generator, self).__init__()
        layer_sizes = opt.decoder_layer_sizes
        latent_size = opt.latent_size
        input_size = latent_size * 2
        self.fc1 = nn.Linear(input_size, layer_sizes[0])
        self.fc3 = nn.Linear(layer_sizes[0], layer_sizes[1])
        self.lrelu = nn.LeakyReLU(0.2, True)
        self.sigmoid = nn.Sigmoid()
        self.apply(weights_init)

    def _forward(self, z, c=None):
        z = torch.cat((z, c), dim=-1)
        x1 = self.lrelu(self.fc1(z))
        x = self.sigmoid(self.fc3(x1))
        self.out = x1
        return x

    def forward(self, z, a1=None, c=None, feedback_layers=None):
        if feedback_layers is None:
            return self._forward(z, c)
        else:
            z = torch.cat((z, c), dim=-1)
            x1 = self.lrelu(self.fc1(z))
            feedback_out = x1 + a1 * feedback_layers
            x = self.sigmoid(self.fc3(feedback_out))
            return x


class Discriminator_D1(nn.Module):
    def __init__(self, opt):
        super(Discriminator_D1, self).__init__()
        self.fc1 = nn.Linear(opt.resSize + opt.attSize, opt.ndh)
        self.fc2 = nn.Linear(opt.ndh, 1)
        self.lrelu = nn.LeakyReLU(0.2, True)
        self.apply(weights_init)

    def forward(self, x, att):
        h = torch.cat((x, att), 1)
        self.hidden = self.lrelu(self.fc1(h))
        h = self.fc2(self.hidden)
        return h


class Feedback(nn.Module):
    def __init__(self, opt):
        super(Feedback, self).__init__()
        self.fc1 = nn.Linear(opt.ngh, opt.ngh)
        self.fc2 = nn.Linear(opt.ngh, opt.ngh)
        self.lrelu = nn.LeakyReLU(0.2, True)
        self.apply(weights_init)

    def forward(self, x):
        self.x1 = self.lrelu(self.fc1(x))
        h = self.lrelu(self.fc2(self.x1))
        return h


class AttDec(nn.Module):
    def __init__(self, opt, attSize):
        super(AttDec, self).__init__()
        self.embedSz = 0
        self.fc1 = nn.Linear(opt.resSize + self.embedSz, opt.ngh)
        self.fc3 = nn.Linear(opt.ngh, attSize)
        self.lrelu = nn.LeakyReLU(0.2, True)
        self.hidden = None
        self.sigmoid = None
        self.apply(weights_init)

    def forward(self, feat, att=None):
        h = feat
        if self.embedSz > 0:
            assert att is not None, 'Conditional Decoder requires attribute input'
            h = torch.cat((feat, att), 1)
        self.hidden = self.lrelu(self.fc1(h))
        h = self.fc3(self.hidden)
        if self.sigmoid is not None:
            h = self.sigmoid(h)
        else:
            h = h / h.pow(2).sum(1).sqrt().unsqueeze(1).expand(h.size(0), h.size(1))
        self.out = h
        return h

    def getLayersOutDet(self):
        return self.hidden.detach()


@dataclass
class OfficialNets:
    """The five official networks of one run, and the `opt` they were built from."""

    netE: Encoder
    netG: Generator
    netD: Discriminator_D1
    netF: Feedback
    netDec: AttDec
    opt: SimpleNamespace

    def modules(self) -> dict[str, nn.Module]:
        return {"encoder": self.netE, "generator": self.netG, "critic": self.netD, "feedback": self.netF,
                "decoder": self.netDec}


def official_nets(cfg, weights: dict[str, dict] | None = None, device="cpu") -> OfficialNets:
    """The official networks for a resolved config (its widths as `opt`), with `weights` (state dicts
    under encoder/generator/critic/feedback/decoder, the official parameter names) copied in."""
    opt = SimpleNamespace(resSize=cfg.resSize, attSize=cfg.attSize, latent_size=cfg.latent_size, nz=cfg.nz,
                          ngh=cfg.ngh, ndh=cfg.ndh, encoder_layer_sizes=[cfg.resSize, cfg.encoder_hidden],
                          decoder_layer_sizes=[cfg.generator_hidden, cfg.resSize])
    nets = OfficialNets(Encoder(opt), Generator(opt), Discriminator_D1(opt), Feedback(opt), AttDec(opt, opt.attSize),
                        opt)
    if cfg.bce_att:
        nets.netDec.sigmoid = nn.Sigmoid()  # as-run: the hook bce_att needs, never set officially (docs/actions.md)
    for name, module in nets.modules().items():
        if weights is not None:
            module.load_state_dict(copy.deepcopy(weights[name]))
        module.to(device)
    return nets


# --------------------------------------------------------------------------- train_images.py / train_actions.py
def loss_fn(recon_x, x, mean, log_var):
    BCE = torch.nn.functional.binary_cross_entropy(recon_x + 1e-12, x.detach(), reduction="sum")
    BCE = BCE.sum() / x.size(0)
    KLD = -0.5 * torch.sum(1 + log_var - mean.pow(2) - log_var.exp()) / x.size(0)
    return (BCE + KLD)


def WeightedL1(pred, gt, bce=False, gt_bce=None):
    if bce:  # train_actions.py
        BCE = torch.nn.functional.binary_cross_entropy(pred + 1e-12, gt_bce.detach(), reduction="sum")
        return BCE.sum() / pred.size(0)
    wt = (pred - gt).pow(2)
    wt /= wt.sum(1).sqrt().unsqueeze(1).expand(wt.size(0), wt.size(1))
    loss = wt * (pred - gt).abs()
    return loss.sum() / loss.size(0)


def calc_gradient_penalty(netD, real_data, fake_data, input_att, opt):
    alpha = torch.rand(opt.batch_size, 1)
    alpha = alpha.expand(real_data.size()).to(real_data.device)
    interpolates = alpha * real_data + ((1 - alpha) * fake_data)
    interpolates = interpolates.detach().requires_grad_(True)
    disc_interpolates = netD(interpolates, input_att)
    ones = torch.ones(disc_interpolates.size(), device=real_data.device)
    gradients = autograd.grad(outputs=disc_interpolates, inputs=interpolates, grad_outputs=ones,
                              create_graph=True, retain_graph=True, only_inputs=True)[0]
    gradient_penalty = ((gradients.norm(2, dim=1) - 1) ** 2).mean() * opt.lambda1
    return gradient_penalty


def official_optimizers(nets: OfficialNets, cfg, make: Callable | None = None) -> dict:
    """train_images.py's optimisers (or `make(module)` for each, e.g. SGD in a test of the gradients)."""
    if make is not None:
        return {key: make(module) for key, module in (("optimizer", nets.netE), ("optimizerD", nets.netD),
                ("optimizerG", nets.netG), ("optimizerF", nets.netF), ("optimizerDec", nets.netDec))}
    return {
        "optimizer": torch.optim.Adam(nets.netE.parameters(), lr=cfg.lr),
        "optimizerD": torch.optim.Adam(nets.netD.parameters(), lr=cfg.lr, betas=(cfg.beta1, 0.999)),
        "optimizerG": torch.optim.Adam(nets.netG.parameters(), lr=cfg.lr, betas=(cfg.beta1, 0.999)),
        "optimizerF": torch.optim.Adam(nets.netF.parameters(), lr=cfg.feed_lr, betas=(cfg.beta1, 0.999)),
        "optimizerDec": torch.optim.Adam(nets.netDec.parameters(), lr=cfg.dec_lr, betas=(cfg.beta1, 0.999)),
    }


def next_seen_batch(data, batch_size, bce=False):
    """datasets/image_util.py (action_util.py with `bce`): a random subset of the training set,
    drawn on the host."""
    idx = torch.randperm(data.train_feature.size(0))[0:batch_size]
    batch_feature = data.train_feature.cpu()[idx]
    batch_label = data.train_label.cpu()[idx]
    batch_att = data.attribute.cpu()[batch_label]
    if bce:
        return batch_feature, batch_att, data.bce_attribute.cpu()[batch_label]
    return batch_feature, batch_att, None


class _Loop:
    """The official loop's module-level buffers (input_res, input_att, noise, one, mone) and helpers
    (sample, the decoder's loss, the action code's feedback_module), for one iteration."""

    def __init__(self, nets: OfficialNets, cfg, data, lambda1: float, actions: bool):
        self.nets, self.cfg, self.data, self.actions = nets, cfg, data, actions
        self.opt = SimpleNamespace(**vars(nets.opt), batch_size=cfg.batch_size, lambda1=lambda1)
        device = next(nets.netG.parameters()).device
        self.device, self.bce = device, actions and cfg.bce_att
        self.input_res = torch.empty(cfg.batch_size, self.opt.resSize, device=device)
        self.input_att = torch.empty(cfg.batch_size, self.opt.attSize, device=device)
        self.input_bce_att = torch.empty(cfg.batch_size, self.opt.attSize, device=device)
        self.noise = torch.empty(cfg.batch_size, self.opt.nz, device=device)
        self.one = torch.tensor(1.0, device=device)  # as-run: 0-d
        self.mone = self.one * -1

    def sample(self):
        batch_feature, batch_att, batch_bce_att = next_seen_batch(self.data, self.opt.batch_size, self.bce)
        self.input_res.copy_(batch_feature)
        self.input_att.copy_(batch_att)
        if self.bce:
            self.input_bce_att.copy_(batch_bce_att)  # as-run: train_actions.py's copies, as intended

    def R(self, pred):  # WeightedL1 against the batch's class embeddings (the action code's BCE targets)
        return WeightedL1(pred, self.input_att, bce=self.bce, gt_bce=self.input_bce_att if self.bce else None)

    def feedback_module(self, gen_out, att):  # train_actions.py
        netG, netDec, netF = self.nets.netG, self.nets.netDec, self.nets.netF
        syn_fake = netG(gen_out, c=att)
        netDec(syn_fake)  # as-run: `netDec(syn_fake).getLayersOutDet()` calls it on a tensor
        recons_hidden_feat = netDec.getLayersOutDet()
        feedback_out = netF(recons_hidden_feat)
        return netG(gen_out, a1=self.cfg.a1, c=att, feedback_layers=feedback_out)

    def generated(self, z, loop, source=None):
        """netG(z, c) and, in the feedback pass, again with the feedback of netDec(source or that)."""
        netG, netDec, netF, cfg = self.nets.netG, self.nets.netDec, self.nets.netF, self.cfg
        if loop == 1 and self.actions:
            return self.feedback_module(z, self.input_att)
        fake = netG(z, c=self.input_att)
        if loop == 1:
            netDec(fake if source is None else source)
            dec_hidden_feat = netDec.getLayersOutDet()
            feedback_out = netF(dec_hidden_feat)
            fake = netG(z, a1=cfg.a1, c=self.input_att, feedback_layers=feedback_out)
        return fake


def official_generator_step(nets: OfficialNets, opts: dict, cfg, data, loop: int, lambda1: float,
                            actions: bool = False) -> float:
    """One iteration of the official training loop (`for i in range(0, data.ntrain, opt.batch_size)`):
    critic_iter critic iterations, then the generator step. train_images.py, or train_actions.py
    with `actions`. Returns opt.lambda1 after the adaptive rule."""
    state = _Loop(nets, cfg, data, lambda1, actions)
    _critic_iterations(state, opts, loop)
    _generator_step(state, opts, loop)
    return state.opt.lambda1


def _critic_iterations(state: _Loop, opts: dict, loop: int) -> None:
    cfg, opt, netE, netD, netDec = state.cfg, state.opt, state.nets.netE, state.nets.netD, state.nets.netDec
    for p in netD.parameters():
        p.requires_grad = True
    for p in netDec.parameters():
        p.requires_grad = True
    gp_sum = 0
    for iter_d in range(cfg.critic_iter):
        state.sample()
        netD.zero_grad()
        input_resv, input_attv = state.input_res, state.input_att
        netDec.zero_grad()
        recons = netDec(input_resv)
        R_cost = cfg.recons_weight * state.R(recons)
        R_cost.backward()
        opts["optimizerDec"].step()
        criticD_real = netD(input_resv, input_attv)
        criticD_real = cfg.gammaD * criticD_real.mean()
        criticD_real.backward(state.mone)
        if cfg.encoded_noise:
            means, log_var = netE(input_resv, input_attv)
            std = torch.exp(0.5 * log_var)
            eps = torch.randn([opt.batch_size, opt.latent_size]).cpu()
            eps = eps.to(state.device)
            z = eps * std + means
        else:
            state.noise.normal_(0, 1)
            z = state.noise
        fake = state.generated(z, loop)
        criticD_fake = netD(fake.detach(), input_attv)
        criticD_fake = cfg.gammaD * criticD_fake.mean()
        criticD_fake.backward(state.one)
        gradient_penalty = cfg.gammaD * calc_gradient_penalty(netD, state.input_res, fake.data, state.input_att, opt)
        gp_sum += gradient_penalty.data
        gradient_penalty.backward()
        opts["optimizerD"].step()
    gp_sum /= (cfg.gammaD * opt.lambda1 * cfg.critic_iter)
    if (gp_sum > 1.05).sum() > 0:
        opt.lambda1 *= 1.1
    elif (gp_sum < 1.001).sum() > 0:
        opt.lambda1 /= 1.1


def _generator_step(state: _Loop, opts: dict, loop: int) -> None:
    cfg, opt, nets = state.cfg, state.opt, state.nets
    netE, netG, netD, netF, netDec = nets.netE, nets.netG, nets.netD, nets.netF, nets.netDec
    for p in netD.parameters():
        p.requires_grad = False
    if cfg.recons_weight > 0 and cfg.freeze_dec:
        for p in netDec.parameters():
            p.requires_grad = False
    netE.zero_grad()
    netG.zero_grad()
    netF.zero_grad()
    input_resv, input_attv = state.input_res, state.input_att
    means, log_var = netE(input_resv, input_attv)
    std = torch.exp(0.5 * log_var)
    eps = torch.randn([opt.batch_size, opt.latent_size]).cpu()
    eps = eps.to(state.device)
    z = eps * std + means
    recon_x = state.generated(z, loop)
    vae_loss_seen = loss_fn(recon_x, input_resv, means, log_var)
    errG = vae_loss_seen
    if cfg.encoded_noise:
        criticG_fake = netD(recon_x, input_attv).mean()
        fake = recon_x
    else:
        state.noise.normal_(0, 1)
        # the image code takes this sample's feedback from netDec(recon_x); the action code from its own
        fake = state.generated(state.noise, loop, source=recon_x)
        criticG_fake = netD(fake, input_attv).mean()
    G_cost = -criticG_fake
    errG += cfg.gammaG * G_cost
    netDec.zero_grad()
    recons_fake = netDec(fake)
    R_cost = state.R(recons_fake)
    errG += cfg.recons_weight * R_cost
    errG.backward()
    opts["optimizer"].step()
    opts["optimizerG"].step()
    if loop == 1:
        opts["optimizerF"].step()
    if cfg.recons_weight > 0 and not cfg.freeze_dec:
        opts["optimizerDec"].step()


def generate_syn_feature(nets: OfficialNets, classes, attribute, num, a2):
    """train_images.py: per class, num features from N(0, I) noise, the feedback always applied."""
    netG, netF, netDec = nets.netG, nets.netF, nets.netDec
    device = next(netG.parameters()).device
    nclass = classes.size(0)
    syn_feature = torch.FloatTensor(nclass * num, nets.opt.resSize)
    syn_label = torch.LongTensor(nclass * num)
    syn_att = torch.empty(num, nets.opt.attSize, device=device)
    syn_noise = torch.empty(num, nets.opt.nz, device=device)
    with torch.no_grad():  # as-run: Variable(..., volatile=True)
        for i in range(nclass):
            iclass = classes[i]
            iclass_att = attribute[iclass]
            syn_att.copy_(iclass_att.repeat(num, 1))
            syn_noise.normal_(0, 1)
            fake = netG(syn_noise, c=syn_att)
            if netF is not None:
                netDec(fake)
                dec_hidden_feat = netDec.getLayersOutDet()
                feedback_out = netF(dec_hidden_feat)
                fake = netG(syn_noise, a1=a2, c=syn_att, feedback_layers=feedback_out)
            syn_feature.narrow(0, i * num, num).copy_(fake.data.cpu())
            syn_label.narrow(0, i * num, num).fill_(int(iclass))
    return syn_feature, syn_label


# --------------------------------------------------------------------------- train_images.py, evaluation
def official_evaluation(nets: OfficialNets, cfg, data) -> dict:
    """One evaluation as the official loop runs it after every epoch (train_images.py, its lines 262-291
    at akshitac8/tfvaegan a0de81c): its H and ZSL accuracy, and the per-epoch H and accuracy curves
    the two classifiers chose them from."""
    opt = cfg  # the run's options: only syn_num, a2, nclass_all, classifier_lr, attSize and ngh are read
    for module in (nets.netG, nets.netDec, nets.netF):
        module.eval()
    syn_feature, syn_label = generate_syn_feature(nets, data.unseenclasses, data.attribute, opt.syn_num, opt.a2)
    # Generalized zero-shot learning (opt.gzsl)
    train_X = torch.cat((data.train_feature.cpu(), syn_feature), 0)
    train_Y = torch.cat((data.train_label.cpu(), syn_label), 0)
    nclass = opt.nclass_all
    # train_images.py lines 273-274: lr, beta1, nepoch and batch size are (opt.classifier_lr, 0.5, 25, opt.syn_num)
    gzsl_cls = CLASSIFIER(train_X, train_Y, data, nclass, opt.classifier_lr, 0.5,
                          25, opt.syn_num, generalized=True, netDec=nets.netDec, dec_size=opt.attSize,
                          dec_hidden_size=opt.ngh)  # as-run: the literal 4096 is ngh, the decoder's width
    # Zero-shot learning; lines 281-283: the same literals
    zsl_cls = CLASSIFIER(syn_feature, map_label(syn_label, data.unseenclasses.cpu()),
                         data, data.unseenclasses.size(0), opt.classifier_lr, 0.5, 25, opt.syn_num,
                         generalized=False, netDec=nets.netDec, dec_size=opt.attSize, dec_hidden_size=opt.ngh)
    for module in (nets.netG, nets.netDec, nets.netF):
        module.train()
    return {"gzsl_h": gzsl_cls.H, "zsl_acc": zsl_cls.acc, "gzsl_curve": gzsl_cls.curve, "zsl_curve": zsl_cls.curve}


def map_label(label, classes):
    """datasets/image_util.py's map_label: global class ids -> positions in `classes`."""
    mapped_label = torch.LongTensor(label.size())
    for i in range(classes.size(0)):
        mapped_label[label == classes[i]] = i
    return mapped_label


# --------------------------------------------------------------------------- classifiers/classifier_images.py
class CLASSIFIER:
    """The official softmax classifier, trained and scored in its constructor. `curve` (not official)
    keeps the accuracy (ZSL) or H (GZSL) of every epoch that `fit`/`fit_zsl` take the best of. The
    official `_cuda` argument is left out: the classifier runs on the data's device (as-run)."""

    def __init__(self, _train_X, _train_Y, data_loader, _nclass, _lr=0.001, _beta1=0.5, _nepoch=20,
                 _batch_size=100, generalized=True, netDec=None, dec_size=4096, dec_hidden_size=4096):
        self.device = data_loader.attribute.device  # as-run: opt.cuda
        self.train_X = _train_X.clone()
        self.train_Y = _train_Y.clone()
        self.test_seen_feature = data_loader.test_seen_feature.cpu().clone()
        self.test_seen_label = data_loader.test_seen_label.cpu()
        self.test_unseen_feature = data_loader.test_unseen_feature.cpu().clone()
        self.test_unseen_label = data_loader.test_unseen_label.cpu()
        self.seenclasses = data_loader.seenclasses.cpu()
        self.unseenclasses = data_loader.unseenclasses.cpu()
        self.batch_size = _batch_size
        self.nepoch = _nepoch
        self.nclass = _nclass
        self.input_dim = _train_X.size(1)
        self.model = nn.Linear(self.input_dim, self.nclass)  # LINEAR_LOGSOFTMAX_CLASSIFIER: fc, then LogSoftmax
        self.netDec = netDec
        if self.netDec:
            self.netDec.eval()
            self.input_dim = self.input_dim + dec_size
            self.input_dim += dec_hidden_size
            self.model = nn.Linear(self.input_dim, self.nclass)
            self.train_X = self.compute_dec_out(self.train_X, self.input_dim)
            self.test_unseen_feature = self.compute_dec_out(self.test_unseen_feature, self.input_dim)
            self.test_seen_feature = self.compute_dec_out(self.test_seen_feature, self.input_dim)
        self.model.apply(weights_init)
        self.optimizer = torch.optim.Adam(self.model.parameters(), lr=_lr, betas=(_beta1, 0.999))
        self.model.to(self.device)
        self.index_in_epoch = 0
        self.epochs_completed = 0
        self.ntrain = self.train_X.size()[0]
        self.curve = []
        if generalized:
            self.acc_seen, self.acc_unseen, self.H, self.epoch = self.fit()
        else:
            self.acc, self.best_model = self.fit_zsl()

    def output(self, x):
        return F.log_softmax(self.model(x.to(self.device)), dim=1)

    def step(self):
        self.model.zero_grad()
        batch_input, batch_label = self.next_batch(self.batch_size)
        loss = F.nll_loss(self.output(batch_input), batch_label.to(self.device))
        loss.backward()
        self.optimizer.step()
        return loss

    def fit_zsl(self):
        best_acc = 0
        mean_loss = 0
        best_model = copy.deepcopy(self.model.state_dict())
        for epoch in range(self.nepoch):
            for i in range(0, self.ntrain, self.batch_size):
                mean_loss += self.step().item()  # as-run: loss.data[0]
            acc = self.val(self.test_unseen_feature, self.test_unseen_label, self.unseenclasses)
            self.curve.append(acc)
            if acc > best_acc:
                best_acc = acc
                best_model = copy.deepcopy(self.model.state_dict())
        return best_acc, best_model

    def fit(self):
        best_H = 0
        best_seen = 0
        best_unseen = 0
        for epoch in range(self.nepoch):
            for i in range(0, self.ntrain, self.batch_size):
                self.step()
            acc_seen = self.val_gzsl(self.test_seen_feature, self.test_seen_label, self.seenclasses)
            acc_unseen = self.val_gzsl(self.test_unseen_feature, self.test_unseen_label, self.unseenclasses)
            H = 2 * acc_seen * acc_unseen / (acc_seen + acc_unseen) if acc_seen + acc_unseen > 0 else 0.0  # as-run: 0/0
            self.curve.append(H)
            if H > best_H:
                best_seen = acc_seen
                best_unseen = acc_unseen
                best_H = H
        return best_seen, best_unseen, best_H, epoch

    def next_batch(self, batch_size):
        start = self.index_in_epoch
        # shuffle the data at the first epoch
        if self.epochs_completed == 0 and start == 0:
            perm = torch.randperm(self.ntrain)
            self.train_X = self.train_X[perm]
            self.train_Y = self.train_Y[perm]
        # the last batch
        if start + batch_size > self.ntrain:
            self.epochs_completed += 1
            rest_num_examples = self.ntrain - start
            if rest_num_examples > 0:
                X_rest_part = self.train_X[start:self.ntrain]
                Y_rest_part = self.train_Y[start:self.ntrain]
            # shuffle the data
            perm = torch.randperm(self.ntrain)
            self.train_X = self.train_X[perm]
            self.train_Y = self.train_Y[perm]
            # start next epoch
            start = 0
            self.index_in_epoch = batch_size - rest_num_examples
            end = self.index_in_epoch
            X_new_part = self.train_X[start:end]
            Y_new_part = self.train_Y[start:end]
            if rest_num_examples > 0:
                return torch.cat((X_rest_part, X_new_part), 0), torch.cat((Y_rest_part, Y_new_part), 0)
            else:
                return X_new_part, Y_new_part
        else:
            self.index_in_epoch += batch_size
            end = self.index_in_epoch
            return self.train_X[start:end], self.train_Y[start:end]

    def predict(self, test_X):
        start = 0
        ntest = test_X.size()[0]
        predicted_label = torch.LongTensor(ntest)
        with torch.no_grad():  # as-run: Variable(..., volatile=True)
            for i in range(0, ntest, self.batch_size):
                end = min(ntest, start + self.batch_size)
                output = self.output(test_X[start:end])
                _, predicted_label[start:end] = torch.max(output.data.cpu(), 1)
                start = end
        return predicted_label

    def val_gzsl(self, test_X, test_label, target_classes):
        return self.compute_per_class_acc_gzsl(test_label, self.predict(test_X), target_classes)

    def compute_per_class_acc_gzsl(self, test_label, predicted_label, target_classes):
        acc_per_class = 0
        for i in target_classes:
            idx = (test_label == i)
            # as-run: a float division (PyTorch 0.3's LongTensor sums divided as floats)
            acc_per_class += float(torch.sum(test_label[idx] == predicted_label[idx])) / float(torch.sum(idx))
        acc_per_class /= target_classes.size(0)
        return acc_per_class

    def val(self, test_X, test_label, target_classes):
        predicted_label = self.predict(test_X)
        return self.compute_per_class_acc(map_label(test_label, target_classes), predicted_label,
                                          target_classes.size(0))

    def compute_per_class_acc(self, test_label, predicted_label, nclass):
        acc_per_class = torch.zeros(nclass, dtype=torch.float64)
        for i in range(nclass):
            idx = (test_label == i)
            acc_per_class[i] = float(torch.sum(test_label[idx] == predicted_label[idx])) / float(torch.sum(idx))
        return float(acc_per_class.mean())

    def compute_dec_out(self, test_X, new_size):
        start = 0
        ntest = test_X.size()[0]
        new_test_X = torch.zeros(ntest, new_size)
        with torch.no_grad():  # as-run: Variable(..., volatile=True)
            for i in range(0, ntest, self.batch_size):
                end = min(ntest, start + self.batch_size)
                inputX = test_X[start:end].to(self.device)
                feat1 = self.netDec(inputX)
                feat2 = self.netDec.getLayersOutDet()
                new_test_X[start:end] = torch.cat([inputX, feat1, feat2], dim=1).data.cpu()
                start = end
        return new_test_X
