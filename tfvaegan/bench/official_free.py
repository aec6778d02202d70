"""A literal transcription of FREE's reference code (shiming-chen/FREE, HEAD 35769e5: train_free.py at
15747b0, model.py at 295b44b, center_loss.py, classifier.py and config.py at c9ec9fd): the oracle of
tfvaegan/method/free.py in tests/test_method_oracles.py.

Nothing here is used by a run, and nothing here imports the package: the networks (model.py: Encoder,
Generator, Discriminator, FR with its discriminator and classifier heads), the two center losses
(center_loss.py), train_free.py's five Adam optimisers, one iteration of its training loop (the body of
`for i in range(0, data.ntrain, opt.batch_size)`), its generate_syn_feature, and classifier.py's
compute_fear_out (the features [x, FR hidden, FR output] its classifier reads) are written as the
reference writes them, in its order. What changes is the smallest that runs here, marked `# as-run:`:
- `.cuda()` / `Variable(...)` are left out (CPU); `torch.tensor(0.0).cuda()` and
  `torch.FloatTensor(...).cuda()` are CPU tensors;
- `distmat.addmm_(1, -2, x, centers.t())` (the signature PyTorch removed) is
  `distmat.addmm_(x, centers.t(), beta=1, alpha=-2)`;
- the model.py Encoder copies `opt.encoder_layer_sizes` (the reference edits opt's list in place).

`official_free_step(..., as_run=False)` skips exactly two computations of every critic iteration whose
results the reference discards: `netFR(fake.detach())` (its six outputs are never read) and
`calc_gradient_penalty_FR(...)` (its value is overwritten by the critic's penalty before any use; it
calls autograd.grad, which leaves every .grad untouched). Neither changes a parameter; they only
consume random numbers (FR's reparameterisation draw on the fakes, then the FR penalty's alpha and the
reparameterisation draw on its interpolates). `as_run=True` keeps them, in their place.

Kept as run, though one might not expect them:
- `center_criterion`'s gradient is never zeroed in train_free.py (only netD, netFR, netE and netG are),
  so every `optimizer_center.step()` uses the sum of all center-loss gradients since the start;
- the generator step calls FR with `train_G=True`, which only switches FR's unused discriminator head
  to read mu; FR's reconstruction is still sigmoid(mu + eps*std) with a fresh eps;
- `optimizerFR.step()` runs in every generator step, freeze_dec or not. Here `zero_grad()` is
  PyTorch 2's (gradients set to None), so under freeze_dec the frozen FR has no gradient and Adam
  skips it. Under PyTorch 1.x (FREE's README: Python 3.8.8, 2021), zero_grad() zeroed the gradients in
  place, and that step moved FR by Adam's momentum from the critic iterations' FR updates. With the
  plain SGD of the tests both are the same no-op.
- the margin center loss's "other" class is labels + randint(num_classes) wrapped around, which is the
  own class when the draw is 0;
- which center loss runs is decided by the dataset's name (train_free.py): TripCenterLoss_margin for
  CUB, FLO and SUN, TripCenterLoss_min_margin for AWA1, AWA2 and APY.
"""
from __future__ import annotations

import copy
from dataclasses import dataclass
from types import SimpleNamespace
from typing import Callable

import torch
import torch.autograd as autograd
import torch.nn as nn


# --------------------------------------------------------------------------- model.py
def weights_init(m):
    classname = m.__class__.__name__
    if classname.find('Linear') != -1:
        m.weight.data.normal_(0.0, 0.02)
        m.bias.data.fill_(0)
    elif classname.find('BatchNorm') != -1:
        m.weight.data.normal_(1.0, 0.02)
        m.bias.data.fill_(0)


class Encoder(nn.Module):
    def __init__(self, opt):
        super(Encoder, self).__init__()
        layer_sizes = list(opt.encoder_layer_sizes)  # as-run: a copy
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

    def forward(self, z, c=None):
        z = torch.cat((z, c), dim=-1)
        x1 = self.lrelu(self.fc1(z))
        x = self.sigmoid(self.fc3(x1))
        self.out = x1
        return x


class Discriminator(nn.Module):
    def __init__(self, opt):
        super(Discriminator, self).__init__()
        self.fc1 = nn.Linear(opt.resSize + opt.attSize, opt.ndh)
        self.fc2 = nn.Linear(opt.ndh, 1)
        self.lrelu = nn.LeakyReLU(0.2, True)
        self.apply(weights_init)

    def forward(self, x, att):
        h = torch.cat((x, att), 1)
        self.hidden = self.lrelu(self.fc1(h))
        h = self.fc2(self.hidden)
        return h


class FR(nn.Module):
    def __init__(self, opt, attSize):
        super(FR, self).__init__()
        self.embedSz = 0
        self.hidden = None
        self.lantent = None
        self.latensize = opt.latensize
        self.attSize = opt.attSize
        self.fc1 = nn.Linear(opt.resSize, opt.ngh)
        self.fc3 = nn.Linear(opt.ngh, attSize * 2)
        self.discriminator = nn.Linear(opt.attSize, 1)
        self.classifier = nn.Linear(opt.attSize, opt.nclass_seen)
        self.lrelu = nn.LeakyReLU(0.2, True)
        self.sigmoid = nn.Sigmoid()
        self.logic = nn.LogSoftmax(dim=1)
        self.apply(weights_init)

    def forward(self, feat, train_G=False):
        h = feat
        self.hidden = self.lrelu(self.fc1(h))
        self.lantent = self.fc3(self.hidden)
        mus, stds = self.lantent[:, :self.attSize], self.lantent[:, self.attSize:]
        stds = self.sigmoid(stds)
        encoder_out = reparameter(mus, stds)
        h = encoder_out
        if not train_G:
            dis_out = self.discriminator(encoder_out)
        else:
            dis_out = self.discriminator(mus)
        pred = self.logic(self.classifier(mus))
        if self.sigmoid is not None:
            h = self.sigmoid(h)
        else:
            h = h / h.pow(2).sum(1).sqrt().unsqueeze(1).expand(h.size(0), h.size(1))
        return mus, stds, dis_out, pred, encoder_out, h

    def getLayersOutDet(self):
        return self.hidden.detach()


def reparameter(mu, sigma):
    return (torch.randn_like(mu) * sigma) + mu


# --------------------------------------------------------------------------- center_loss.py
def Other_label(labels, num_classes):
    index = torch.randint(num_classes, (labels.shape[0],)).to(labels.device)
    other_labels = labels + index
    other_labels[other_labels >= num_classes] = other_labels[other_labels >= num_classes] - num_classes
    return other_labels


class TripCenterLoss_margin(nn.Module):
    def __init__(self, num_classes=10, feat_dim=312, use_gpu=True):
        super(TripCenterLoss_margin, self).__init__()
        self.num_classes = num_classes
        self.feat_dim = feat_dim
        self.use_gpu = use_gpu
        self.centers = nn.Parameter(torch.randn(self.num_classes, self.feat_dim))

    def forward(self, x, labels, margin, incenter_weight):
        other_labels = Other_label(labels, self.num_classes)
        batch_size = x.size(0)
        distmat = torch.pow(x, 2).sum(dim=1, keepdim=True).expand(batch_size, self.num_classes) + \
            torch.pow(self.centers, 2).sum(dim=1, keepdim=True).expand(self.num_classes, batch_size).t()
        distmat.addmm_(x, self.centers.t(), beta=1, alpha=-2)  # as-run: addmm_(1, -2, x, centers.t())
        classes = torch.arange(self.num_classes).long()
        labels = labels.unsqueeze(1).expand(batch_size, self.num_classes)
        mask = labels.eq(classes.expand(batch_size, self.num_classes))
        dist = distmat[mask]
        other_labels = other_labels.unsqueeze(1).expand(batch_size, self.num_classes)
        mask_other = other_labels.eq(classes.expand(batch_size, self.num_classes))
        dist_other = distmat[mask_other]
        loss = torch.max(margin + incenter_weight * dist - (1 - incenter_weight) * dist_other,
                         torch.tensor(0.0)).sum() / batch_size  # as-run: torch.tensor(0.0).cuda()
        return loss


class TripCenterLoss_min_margin(nn.Module):
    def __init__(self, num_classes=10, feat_dim=2, use_gpu=True):
        super(TripCenterLoss_min_margin, self).__init__()
        self.num_classes = num_classes
        self.feat_dim = feat_dim
        self.use_gpu = use_gpu
        self.centers = nn.Parameter(torch.randn(self.num_classes, self.feat_dim))

    def forward(self, x, labels, margin, incenter_weight):
        batch_size = x.size(0)
        distmat = torch.pow(x, 2).sum(dim=1, keepdim=True).expand(batch_size, self.num_classes) + \
            torch.pow(self.centers, 2).sum(dim=1, keepdim=True).expand(self.num_classes, batch_size).t()
        distmat.addmm_(x, self.centers.t(), beta=1, alpha=-2)  # as-run: addmm_(1, -2, x, centers.t())
        classes = torch.arange(self.num_classes).long()
        labels = labels.unsqueeze(1).expand(batch_size, self.num_classes)
        mask = labels.eq(classes.expand(batch_size, self.num_classes))
        dist = distmat[mask]
        other = torch.FloatTensor(batch_size, self.num_classes - 1)  # as-run: .cuda()
        for i in range(batch_size):
            other[i] = (distmat[i, mask[i, :] == 0])
        dist_min, _ = other.min(dim=1)
        loss = torch.max(margin + incenter_weight * dist - (1 - incenter_weight) * dist_min,
                         torch.tensor(0.0)).sum() / batch_size  # as-run: torch.tensor(0.0).cuda()
        return loss


def center_criterion_for(dataset: str, nclass_seen: int, attSize: int) -> nn.Module:
    """train_free.py's choice of center loss, by the dataset's name."""
    if dataset in ['CUB', 'FLO']:
        return TripCenterLoss_margin(num_classes=nclass_seen, feat_dim=attSize, use_gpu=False)
    elif dataset in ['AWA1', 'AWA2', 'APY']:
        return TripCenterLoss_min_margin(num_classes=nclass_seen, feat_dim=attSize, use_gpu=False)
    elif dataset in ['SUN']:
        return TripCenterLoss_margin(num_classes=nclass_seen, feat_dim=attSize, use_gpu=False)
    else:
        raise ValueError('Dataset %s is not supported' % (dataset))


# --------------------------------------------------------------------------- the networks of one run
@dataclass
class OfficialFREENets:
    """train_free.py's networks and center criterion, and the `opt` they were built from."""

    netE: Encoder
    netG: Generator
    netD: Discriminator
    netFR: FR
    center_criterion: nn.Module
    opt: SimpleNamespace

    def modules(self) -> dict[str, nn.Module]:
        return {"encoder": self.netE, "generator": self.netG, "critic": self.netD, "refinement": self.netFR,
                "center": self.center_criterion}


def official_free_nets(cfg, nclass_seen: int, dataset: str, weights: dict[str, dict] | None = None) -> OfficialFREENets:
    """The reference networks for a resolved config (its widths as `opt`: config.py's encoder and decoder
    layer sizes [resSize, encoder_hidden] and [generator_hidden, resSize], FR ngh wide), the center loss
    train_free.py picks for `dataset`, and `weights` (state dicts under encoder / generator / critic /
    refinement / center, the reference's parameter names) copied in. A `refinement` state without FR's
    discriminator and classifier heads leaves those at their initialisation: no loss reads them."""
    opt = SimpleNamespace(resSize=cfg.resSize, attSize=cfg.attSize, latent_size=cfg.latent_size, nz=cfg.nz,
                          ngh=cfg.ngh, ndh=cfg.ndh, nclass_seen=nclass_seen, latensize=2048,
                          encoder_layer_sizes=[cfg.resSize, cfg.encoder_hidden],
                          decoder_layer_sizes=[cfg.generator_hidden, cfg.resSize])
    nets = OfficialFREENets(Encoder(opt), Generator(opt), Discriminator(opt), FR(opt, opt.attSize),
                            center_criterion_for(dataset, nclass_seen, opt.attSize), opt)
    if weights is not None:
        for name, module in nets.modules().items():
            state = copy.deepcopy(weights[name])
            if name == "refinement":
                missing, unexpected = module.load_state_dict(state, strict=False)
                assert not unexpected and all(k.split(".")[0] in ("discriminator", "classifier") for k in missing), \
                    (missing, unexpected)
            else:
                module.load_state_dict(state)
    return nets


def official_free_optimizers(nets: OfficialFREENets, cfg, make: Callable | None = None) -> dict:
    """train_free.py's five Adam (or `make(module)` for each, e.g. plain SGD in a test of the gradients)."""
    pairs = (("optimizer", nets.netE), ("optimizerD", nets.netD), ("optimizerG", nets.netG),
             ("optimizerFR", nets.netFR), ("optimizer_center", nets.center_criterion))
    if make is not None:
        return {key: make(module) for key, module in pairs}
    return {
        "optimizer": torch.optim.Adam(nets.netE.parameters(), lr=cfg.lr),
        "optimizerD": torch.optim.Adam(nets.netD.parameters(), lr=cfg.lr, betas=(cfg.beta1, 0.999)),
        "optimizerG": torch.optim.Adam(nets.netG.parameters(), lr=cfg.lr, betas=(cfg.beta1, 0.999)),
        "optimizerFR": torch.optim.Adam(nets.netFR.parameters(), lr=cfg.dec_lr, betas=(cfg.beta1, 0.999)),
        "optimizer_center": torch.optim.Adam(nets.center_criterion.parameters(), lr=cfg.lr, betas=(cfg.beta1, 0.999)),
    }


# --------------------------------------------------------------------------- train_free.py
def loss_fn(recon_x, x, mean, log_var):
    BCE = torch.nn.functional.binary_cross_entropy(recon_x + 1e-12, x.detach(), reduction='sum')
    BCE = BCE.sum() / x.size(0)
    KLD = -0.5 * torch.sum(1 + log_var - mean.pow(2) - log_var.exp()) / x.size(0)
    return (BCE + KLD)


def WeightedL1(pred, gt):
    wt = (pred - gt).pow(2)
    wt /= wt.sum(1).sqrt().unsqueeze(1).expand(wt.size(0), wt.size(1))
    loss = wt * (pred - gt).abs()
    return loss.sum() / loss.size(0)


def map_label(label, classes):
    """util.py's map_label: global class ids -> positions in `classes`."""
    mapped_label = torch.LongTensor(label.size())
    for i in range(classes.size(0)):
        mapped_label[label == classes[i]] = i
    return mapped_label


def next_seen_batch(data, seen_batch):
    """util.py's DATA_LOADER.next_seen_batch: a random subset of the training set."""
    ntrain = data.train_feature.size(0)
    idx = torch.randperm(ntrain)[0:seen_batch]
    batch_feature = data.train_feature[idx]
    batch_label = data.train_label[idx]
    batch_att = data.attribute[batch_label]
    return batch_feature, batch_label, batch_att


def calc_gradient_penalty(netD, real_data, fake_data, input_att, opt):
    alpha = torch.rand(opt.batch_size, 1)
    alpha = alpha.expand(real_data.size())
    interpolates = alpha * real_data + ((1 - alpha) * fake_data)
    interpolates = interpolates.detach().requires_grad_(True)  # as-run: Variable(interpolates, requires_grad=True)
    disc_interpolates = netD(interpolates, input_att)
    ones = torch.ones(disc_interpolates.size())
    gradients = autograd.grad(outputs=disc_interpolates, inputs=interpolates, grad_outputs=ones,
                              create_graph=True, retain_graph=True, only_inputs=True)[0]
    gradient_penalty = ((gradients.norm(2, dim=1) - 1) ** 2).mean() * opt.lambda1
    return gradient_penalty


def calc_gradient_penalty_FR(netFR, real_data, fake_data, opt):
    alpha = torch.rand(opt.batch_size, 1)
    alpha = alpha.expand(real_data.size())
    interpolates = alpha * real_data + ((1 - alpha) * fake_data)
    interpolates = interpolates.detach().requires_grad_(True)  # as-run: Variable(interpolates, requires_grad=True)
    _, _, disc_interpolates, _, _, _ = netFR(interpolates)
    ones = torch.ones(disc_interpolates.size())
    gradients = autograd.grad(outputs=disc_interpolates, inputs=interpolates, grad_outputs=ones,
                              create_graph=True, retain_graph=True, only_inputs=True)[0]
    gradient_penalty = ((gradients.norm(2, dim=1) - 1) ** 2).mean() * opt.lambda1
    return gradient_penalty


class _Loop:
    """train_free.py's module-level state for one iteration: `opt` (the run's options), the buffers
    input_res, input_att, noise, input_label, one, mone, and sample()."""

    def __init__(self, nets: OfficialFREENets, cfg, data, lambda1: float):
        self.nets, self.data = nets, data
        self.opt = opt = SimpleNamespace(
            **vars(nets.opt), batch_size=cfg.batch_size, lambda1=lambda1, critic_iter=cfg.critic_iter,
            encoded_noise=cfg.encoded_noise, recons_weight=cfg.recons_weight, center_weight=cfg.center_weight,
            center_margin=cfg.center_margin, incenter_weight=cfg.incenter_weight, gammaD=cfg.gammaD,
            gammaG=cfg.gammaG, freeze_dec=cfg.freeze_dec)
        self.input_res = torch.FloatTensor(opt.batch_size, opt.resSize)
        self.input_att = torch.FloatTensor(opt.batch_size, opt.attSize)  # attSize class-embedding size
        self.noise = torch.FloatTensor(opt.batch_size, opt.nz)
        self.input_label = torch.LongTensor(opt.batch_size)
        self.one = torch.tensor(1, dtype=torch.float)
        self.mone = self.one * -1

    def sample(self):
        batch_feature, batch_label, batch_att = next_seen_batch(self.data, self.opt.batch_size)
        self.input_res.copy_(batch_feature)
        self.input_att.copy_(batch_att)
        self.input_label.copy_(map_label(batch_label, self.data.seenclasses))


def official_free_step(nets: OfficialFREENets, opts: dict, cfg, data, lambda1: float, as_run: bool) -> float:
    """One iteration of train_free.py's loop (`for i in range(0, data.ntrain, opt.batch_size)`): critic_iter
    critic iterations, each FR's and the centers' update then the critic's, the adaptive rule for lambda1,
    then the generator step. `cfg` gives the run's options (critic_iter, batch_size, encoded_noise,
    recons_weight, center_weight, center_margin, incenter_weight, gammaD, gammaG, freeze_dec); `data`
    train_feature, train_label, attribute and seenclasses. With `as_run` False, FR on the critic's fakes
    and FR's gradient penalty, whose results are discarded, are skipped (module docstring). Returns
    opt.lambda1 after the adaptive rule."""
    state = _Loop(nets, cfg, data, lambda1)
    _critic_iterations(state, opts, as_run)
    _generator_step(state, opts)
    return state.opt.lambda1


def _critic_iterations(state: _Loop, opts: dict, as_run: bool) -> None:
    """#########Discriminator training ##############, then the adaptive rule."""
    opt, netE, netG, netD, netFR = state.opt, state.nets.netE, state.nets.netG, state.nets.netD, state.nets.netFR
    center_criterion, input_res, input_att = state.nets.center_criterion, state.input_res, state.input_att
    for p in netD.parameters():  # unfreeze discrimator
        p.requires_grad = True
    for p in netFR.parameters():  # unfreeze deocder
        p.requires_grad = True
    # Train D1 and Decoder (and Decoder Discriminator)
    gp_sum = 0  # lAMBDA VARIABLE
    for iter_d in range(opt.critic_iter):
        state.sample()
        netD.zero_grad()
        input_resv = input_res  # as-run: Variable(input_res)
        input_attv = input_att
        if opt.encoded_noise:
            means, log_var = netE(input_resv, input_attv)
            std = torch.exp(0.5 * log_var)
            eps = torch.randn([opt.batch_size, opt.latent_size]).cpu()
            z = eps * std + means
        else:
            state.noise.normal_(0, 1)
            z = state.noise
        # ################ update FR
        netFR.zero_grad()
        muR, varR, criticD_real_FR, latent_pred, _, recons_real = netFR(input_resv)
        criticD_real_FR = criticD_real_FR.mean()
        R_cost = opt.recons_weight * WeightedL1(recons_real, input_attv)
        fake = netG(z, c=input_attv)
        if as_run:  # both results are discarded: they only draw random numbers
            muF, varF, criticD_fake_FR, _, _, recons_fake = netFR(fake.detach())
            criticD_fake_FR = criticD_fake_FR.mean()
            gradient_penalty = calc_gradient_penalty_FR(netFR, input_resv, fake.data, opt)
        center_loss_real = center_criterion(muR, state.input_label, margin=opt.center_margin,
                                            incenter_weight=opt.incenter_weight)
        D_cost_FR = center_loss_real * opt.center_weight + R_cost
        D_cost_FR.backward()
        opts["optimizerFR"].step()
        opts["optimizer_center"].step()
        # ###########################
        criticD_real = netD(input_resv, input_attv)
        criticD_real = opt.gammaD * criticD_real.mean()
        criticD_real.backward(state.mone)
        criticD_fake = netD(fake.detach(), input_attv)
        criticD_fake = opt.gammaD * criticD_fake.mean()
        criticD_fake.backward(state.one)
        # gradient penalty
        gradient_penalty = opt.gammaD * calc_gradient_penalty(netD, input_res, fake.data, input_att, opt)
        gp_sum += gradient_penalty.data
        gradient_penalty.backward()
        opts["optimizerD"].step()
    gp_sum /= (opt.gammaD * opt.lambda1 * opt.critic_iter)
    if (gp_sum > 1.05).sum() > 0:
        opt.lambda1 *= 1.1
    elif (gp_sum < 1.001).sum() > 0:
        opt.lambda1 /= 1.1


def _generator_step(state: _Loop, opts: dict) -> None:
    """#############Generator training ##############: Train Generator and Decoder."""
    opt, netE, netG, netD, netFR = state.opt, state.nets.netE, state.nets.netG, state.nets.netD, state.nets.netFR
    for p in netD.parameters():  # freeze discrimator
        p.requires_grad = False
    if opt.recons_weight > 0 and opt.freeze_dec:
        for p in netFR.parameters():  # freeze decoder
            p.requires_grad = False
    netE.zero_grad()
    netG.zero_grad()
    input_resv = state.input_res  # as-run: Variable(input_res)
    input_attv = state.input_att
    means, log_var = netE(input_resv, input_attv)
    std = torch.exp(0.5 * log_var)
    eps = torch.randn([opt.batch_size, opt.latent_size]).cpu()
    z = eps * std + means
    recon_x = netG(z, c=input_attv)
    vae_loss_seen = loss_fn(recon_x, input_resv, means, log_var)
    errG = vae_loss_seen
    if opt.encoded_noise:
        criticG_fake = netD(recon_x, input_attv).mean()
        fake = recon_x
    else:
        state.noise.normal_(0, 1)
        noisev = state.noise
        fake = netG(noisev, c=input_attv)
        criticG_fake = netD(fake, input_attv).mean()
    G_cost = -criticG_fake
    errG += opt.gammaG * G_cost
    # ##################################### original
    netFR.zero_grad()
    _, _, criticG_fake_FR, latent_pred_fake, _, recons_fake = netFR(fake, train_G=True)
    R_cost = WeightedL1(recons_fake, input_attv)
    errG += opt.recons_weight * R_cost
    errG.backward()
    # write a condition here
    opts["optimizer"].step()
    opts["optimizerG"].step()
    opts["optimizerFR"].step()


def generate_syn_feature(generator, classes, attribute, num, opt):
    """train_free.py: per class, num features G(z, a) from N(0, I) noise (FR plays no part)."""
    nclass = classes.size(0)
    syn_feature = torch.FloatTensor(nclass * num, opt.resSize)
    syn_label = torch.LongTensor(nclass * num)
    syn_att = torch.FloatTensor(num, opt.attSize)
    syn_noise = torch.FloatTensor(num, opt.nz)
    for i in range(nclass):
        iclass = classes[i]
        iclass_att = attribute[iclass]
        syn_att.copy_(iclass_att.repeat(num, 1))
        syn_noise.normal_(0, 1)
        with torch.no_grad():
            syn_noisev = syn_noise
            syn_attv = syn_att
        fake = generator(syn_noisev, c=syn_attv)  # as run: outside no_grad
        output = fake
        syn_feature.narrow(0, i * num, num).copy_(output.data.cpu())
        syn_label.narrow(0, i * num, num).fill_(int(iclass))
    return syn_feature, syn_label


# --------------------------------------------------------------------------- classifier.py
def compute_fear_out(netFR, test_X, new_size, batch_size):
    """classifier.py's CLASSIFIER.compute_fear_out (netFR in eval mode, as its constructor sets it):
    [x, FR's hidden state, FR's output sigmoid(mu + eps*std)] per batch of `batch_size` rows (the
    classifier's, syn_num as train_free.py passes it), eps drawn afresh per batch. `new_size` is the
    classifier's input_dim, resSize + dec_hidden_size + dec_size with train_free.py's
    dec_hidden_size=opt.latensize*2 (4096, FR's width ngh in every run script) and dec_size=attSize."""
    netFR.eval()
    start = 0
    ntest = test_X.size()[0]
    new_test_X = torch.zeros(ntest, new_size)
    for i in range(0, ntest, batch_size):
        end = min(ntest, start + batch_size)
        with torch.no_grad():
            inputX = test_X[start:end]
        _, _, _, _, _, feat2 = netFR(inputX)  # as run: outside no_grad
        feat1 = netFR.getLayersOutDet()
        new_test_X[start:end] = torch.cat([inputX, feat1, feat2], dim=1).data.cpu()
        start = end
    return new_test_X
