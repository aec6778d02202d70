"""A literal transcription of f-CLSWGAN's original PyTorch code (Xian, Lorenz, Schiele, Akata, CVPR 2018):
the oracle of tfvaegan/method/fclswgan.py in tests/test_method_oracles.py.

Which copy. The authors released the code as an archive on the MPI-INF website, not on GitHub. The
most faithful public copy is the-klingspor/ZSTTT commit cc4aa55 ("[ADD] clswgan files", 2023-03-03): it
adds the whole release at once and unedited: Xian's LICENSE ("Copyright (c) 2018 Yongqin Xian"), his
README.txt ("Install PyTorch(0.3.0)"), clswgan.py, classifier.py, classifier2.py, model.py, util.py and
script/ with the archive's stray NFS files (script/.nfs0000…), which only an unpacked copy of the
original archive would hold. Its later commits change clswgan.py for that project; this file follows
cc4aa55. Its clswgan.py has the PyTorch 0.3 idioms (`one = torch.FloatTensor([1])`, `D_cost.data[0]`,
`Variable(..., volatile=True)`) and agrees with EthanZhu90/ZSL_ABP's clswgan.py (ABP's authors kept
f-CLSWGAN as their baseline) except for the default dataroot and one print. The other candidates are
rewrites (luca-rossi/grabzsl; LiangjunFeng/Generative-Any-Shot-Learning's f-CLSWGAN/fclswgan.py), a
TensorFlow port (akku1506/Feature-Generating-Networks-for-ZSL), patched copies (myaghmaei/f-CLSWGAN,
aaronyun/cycle_clsgan) or lack classifier.py and model.py (EthanZhu90/ZSL_ABP).

Transcribed: model.py's MLP_G (fc1 on [noise, att], LeakyReLU(0.2), fc2, **ReLU** output) and
MLP_CRITIC (the `--netG_name MLP_G --netD_name MLP_CRITIC` of every script; clswgan.py builds those two
whatever the names say), classifier.py's CLASSIFIER (the pre-trained seen-class softmax: LINEAR_LOGSOFTMAX
with util.weights_init, Adam, trained in its constructor with its own next_batch), util.py's next_batch
and map_label, and clswgan.py's optimisers, gradient penalty, one iteration of its training loop and
generate_syn_feature. The run settings, as clswgan.py passes them: the pre-trained classifier is
`CLASSIFIER(data.train_feature, map_label(data.train_label, data.seenclasses), n_seen, resSize, cuda,
0.001, 0.5, 50, 100, opt.pretrain_classifier)`: lr 0.001, beta1 0.5, 50 epochs, batch 100 (literals, not
the run's classifier_lr); it is frozen (requires_grad False) for the GAN's training. The critic's loss
has no gammaD weight and the penalty weight lambda1 is fixed (no adaptive rule).

As-run changes, the smallest that run on PyTorch 2 on a CPU:
- `one = torch.FloatTensor([1])` for backward() is a 0-d tensor;
- `Variable(x, volatile=True)` is `torch.no_grad()`, `Variable(x)` is x, `.cuda()` is left out;
- CLASSIFIER's pre-trained branch loads `pretrain_classifier`, a name its constructor does not have
  (its argument is `pretrain_classifer`): a NameError, never reached by the scripts (no
  --pretrain_classifier), so it is left out.
"""
from __future__ import annotations

import copy
from dataclasses import dataclass
from types import SimpleNamespace
from typing import Callable

import torch
import torch.autograd as autograd
import torch.nn as nn


# --------------------------------------------------------------------------- util.py
def weights_init(m):
    classname = m.__class__.__name__
    if classname.find('Linear') != -1:
        m.weight.data.normal_(0.0, 0.02)
        m.bias.data.fill_(0)
    elif classname.find('BatchNorm') != -1:
        m.weight.data.normal_(1.0, 0.02)
        m.bias.data.fill_(0)


def map_label(label, classes):
    mapped_label = torch.LongTensor(label.size())
    for i in range(classes.size(0)):
        mapped_label[label == classes[i]] = i
    return mapped_label


def next_batch(data, batch_size):
    """DATA_LOADER.next_batch: a random subset of the training set."""
    ntrain = data.train_feature.size(0)
    idx = torch.randperm(ntrain)[0:batch_size]
    batch_feature = data.train_feature[idx]
    batch_label = data.train_label[idx]
    batch_att = data.attribute[batch_label]
    return batch_feature, batch_label, batch_att


# --------------------------------------------------------------------------- model.py
class MLP_CRITIC(nn.Module):
    def __init__(self, opt):
        super(MLP_CRITIC, self).__init__()
        self.fc1 = nn.Linear(opt.resSize + opt.attSize, opt.ndh)
        # self.fc2 = nn.Linear(opt.ndh, opt.ndh)
        self.fc2 = nn.Linear(opt.ndh, 1)
        self.lrelu = nn.LeakyReLU(0.2, True)
        self.apply(weights_init)

    def forward(self, x, att):
        h = torch.cat((x, att), 1)
        h = self.lrelu(self.fc1(h))
        h = self.fc2(h)
        return h


class MLP_G(nn.Module):
    def __init__(self, opt):
        super(MLP_G, self).__init__()
        self.fc1 = nn.Linear(opt.attSize + opt.nz, opt.ngh)
        self.fc2 = nn.Linear(opt.ngh, opt.resSize)
        self.lrelu = nn.LeakyReLU(0.2, True)
        # self.prelu = nn.PReLU()
        self.relu = nn.ReLU(True)
        self.apply(weights_init)

    def forward(self, noise, att):
        h = torch.cat((noise, att), 1)
        h = self.lrelu(self.fc1(h))
        h = self.relu(self.fc2(h))
        return h


# --------------------------------------------------------------------------- classifier.py
class LINEAR_LOGSOFTMAX(nn.Module):
    def __init__(self, input_dim, nclass):
        super(LINEAR_LOGSOFTMAX, self).__init__()
        self.fc = nn.Linear(input_dim, nclass)
        self.logic = nn.LogSoftmax(dim=1)

    def forward(self, x):
        o = self.logic(self.fc(x))
        return o


class CLASSIFIER:
    """classifier.py's CLASSIFIER: a softmax classifier trained in its constructor (train_Y is integer)."""

    def __init__(self, _train_X, _train_Y, _nclass, _input_dim, _cuda, _lr=0.001, _beta1=0.5, _nepoch=20,
                 _batch_size=100, pretrain_classifer=''):
        self.train_X = _train_X
        self.train_Y = _train_Y
        self.batch_size = _batch_size
        self.nepoch = _nepoch
        self.nclass = _nclass
        self.input_dim = _input_dim
        self.cuda = _cuda
        self.model = LINEAR_LOGSOFTMAX(self.input_dim, self.nclass)
        self.model.apply(weights_init)
        self.criterion = nn.NLLLoss()
        self.input = torch.FloatTensor(_batch_size, self.input_dim)
        self.label = torch.LongTensor(_batch_size)
        self.lr = _lr
        self.beta1 = _beta1
        # setup optimizer
        self.optimizer = torch.optim.Adam(self.model.parameters(), lr=_lr, betas=(_beta1, 0.999))
        self.index_in_epoch = 0
        self.epochs_completed = 0
        self.ntrain = self.train_X.size()[0]
        assert pretrain_classifer == ''  # as-run: the other branch is a NameError (module docstring)
        self.fit()

    def fit(self):
        for epoch in range(self.nepoch):
            for i in range(0, self.ntrain, self.batch_size):
                self.model.zero_grad()
                batch_input, batch_label = self.next_batch(self.batch_size)
                self.input.copy_(batch_input)
                self.label.copy_(batch_label)
                inputv = self.input  # as-run: Variable(self.input)
                labelv = self.label
                output = self.model(inputv)
                loss = self.criterion(output, labelv)
                loss.backward()
                self.optimizer.step()

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
            # from index start to index end-1
            return self.train_X[start:end], self.train_Y[start:end]


# clswgan.py's literal settings of the pre-trained classifier: (lr, beta1, nepoch, batch_size)
PRETRAIN_SETTINGS = (0.001, 0.5, 50, 100)


def pretrain_classifier(data, opt) -> CLASSIFIER:
    """clswgan.py: train a classifier on seen classes, obtain theta of Equation (4); then freeze it."""
    pretrain_cls = CLASSIFIER(data.train_feature, map_label(data.train_label, data.seenclasses),
                              data.seenclasses.size(0), opt.resSize, False, *PRETRAIN_SETTINGS, '')
    # freeze the classifier during the optimization
    for p in pretrain_cls.model.parameters():  # set requires_grad to False
        p.requires_grad = False
    return pretrain_cls


# --------------------------------------------------------------------------- clswgan.py
@dataclass
class OfficialFCLSWGANNets:
    """clswgan.py's generator and critic, and the `opt` they were built from."""

    netG: MLP_G
    netD: MLP_CRITIC
    opt: SimpleNamespace

    def modules(self) -> dict[str, nn.Module]:
        return {"generator": self.netG, "critic": self.netD}


def official_fclswgan_nets(cfg, weights: dict[str, dict] | None = None) -> OfficialFCLSWGANNets:
    """MLP_G and MLP_CRITIC for a resolved config (resSize, attSize, nz, ngh, ndh as `opt`), with `weights`
    (state dicts under generator / critic, the reference's parameter names) copied in."""
    opt = SimpleNamespace(resSize=cfg.resSize, attSize=cfg.attSize, nz=cfg.nz, ngh=cfg.ngh, ndh=cfg.ndh)
    nets = OfficialFCLSWGANNets(MLP_G(opt), MLP_CRITIC(opt), opt)
    if weights is not None:
        for name, module in nets.modules().items():
            module.load_state_dict(copy.deepcopy(weights[name]))
    return nets


def official_fclswgan_optimizers(nets: OfficialFCLSWGANNets, cfg, make: Callable | None = None) -> dict:
    """clswgan.py's optimisers (or `make(module)` for each, e.g. plain SGD in a test of the gradients)."""
    if make is not None:
        return {"optimizerD": make(nets.netD), "optimizerG": make(nets.netG)}
    return {"optimizerD": torch.optim.Adam(nets.netD.parameters(), lr=cfg.lr, betas=(cfg.beta1, 0.999)),
            "optimizerG": torch.optim.Adam(nets.netG.parameters(), lr=cfg.lr, betas=(cfg.beta1, 0.999))}


def calc_gradient_penalty(netD, real_data, fake_data, input_att, opt):
    # print real_data.size()
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


def official_fclswgan_step(nets: OfficialFCLSWGANNets, opts: dict, cfg, data, pretrain_cls: CLASSIFIER) -> None:
    """One iteration of clswgan.py's loop (`for i in range(0, data.ntrain, opt.batch_size)`): critic_iter
    critic steps (WGAN-GP at the fixed lambda1, Equation (2)), then the generator step: −D(G(z, a)) +
    cls_weight·NLL(pretrained(G(z, a)), the last critic batch's seen-class labels) (Equation (4)).
    `cfg` gives batch_size, critic_iter, lambda1 and cls_weight; `data` train_feature, train_label,
    attribute and seenclasses."""
    netG, netD, opt = nets.netG, nets.netD, nets.opt
    opt = SimpleNamespace(**vars(opt), batch_size=cfg.batch_size, critic_iter=cfg.critic_iter,
                          lambda1=cfg.lambda1, cls_weight=cfg.cls_weight)
    optimizerD, optimizerG = opts["optimizerD"], opts["optimizerG"]
    cls_criterion = nn.NLLLoss()  # classification loss, Equation (4) of the paper
    input_res = torch.FloatTensor(opt.batch_size, opt.resSize)
    input_att = torch.FloatTensor(opt.batch_size, opt.attSize)
    noise = torch.FloatTensor(opt.batch_size, opt.nz)
    one = torch.tensor(1.0)  # as-run: torch.FloatTensor([1])
    mone = one * -1
    input_label = torch.LongTensor(opt.batch_size)

    def sample():
        batch_feature, batch_label, batch_att = next_batch(data, opt.batch_size)
        input_res.copy_(batch_feature)
        input_att.copy_(batch_att)
        input_label.copy_(map_label(batch_label, data.seenclasses))

    # (1) Update D network: optimize WGAN-GP objective, Equation (2)
    for p in netD.parameters():  # reset requires_grad
        p.requires_grad = True  # they are set to False below in netG update
    for iter_d in range(opt.critic_iter):
        sample()
        netD.zero_grad()
        # train with realG
        # sample a mini-batch
        sparse_real = opt.resSize - input_res[1].gt(0).sum()
        input_resv = input_res
        input_attv = input_att
        criticD_real = netD(input_resv, input_attv)
        criticD_real = criticD_real.mean()
        criticD_real.backward(mone)
        # train with fakeG
        noise.normal_(0, 1)
        noisev = noise
        fake = netG(noisev, input_attv)
        fake_norm = fake.data[0].norm()
        sparse_fake = fake.data[0].eq(0).sum()
        criticD_fake = netD(fake.detach(), input_attv)
        criticD_fake = criticD_fake.mean()
        criticD_fake.backward(one)
        # gradient penalty
        gradient_penalty = calc_gradient_penalty(netD, input_res, fake.data, input_att, opt)
        gradient_penalty.backward()
        Wasserstein_D = criticD_real - criticD_fake
        D_cost = criticD_fake - criticD_real + gradient_penalty
        optimizerD.step()
    # (2) Update G network: optimize WGAN-GP objective, Equation (2)
    for p in netD.parameters():  # reset requires_grad
        p.requires_grad = False  # avoid computation
    netG.zero_grad()
    input_attv = input_att
    noise.normal_(0, 1)
    noisev = noise
    fake = netG(noisev, input_attv)
    criticG_fake = netD(fake, input_attv)
    criticG_fake = criticG_fake.mean()
    G_cost = -criticG_fake
    # classification loss
    c_errG = cls_criterion(pretrain_cls.model(fake), input_label)
    errG = G_cost + opt.cls_weight * c_errG
    errG.backward()
    optimizerG.step()
    del sparse_real, fake_norm, sparse_fake, Wasserstein_D, D_cost  # computed and only printed by the reference


def generate_syn_feature(netG, classes, attribute, num, opt):
    """clswgan.py: per class, num features G(z, a) from N(0, I) noise."""
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
        with torch.no_grad():  # as-run: Variable(..., volatile=True)
            output = netG(syn_noise, syn_att)
        syn_feature.narrow(0, i * num, num).copy_(output.data.cpu())
        syn_label.narrow(0, i * num, num).fill_(int(iclass))
    return syn_feature, syn_label
