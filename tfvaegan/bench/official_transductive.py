"""A literal transcription of the authors' transductive iteration: the oracle of method/transductive.py.

Source: the pre-release code in the public fork xvdp/tfvaegan, zero-shot-images/
train_tfvaegan_transductive.py (the body of `for i in range(0, data.ntrain, opt.batch_size)`: the D
critic loop with its decoder update, the D2 critic loop, the adaptive rule, the generator step),
model.py's Discriminator_D2 and util.py's next_unseen_batch. Like bench/official.py, whose
transcribed networks (Encoder, Generator, Discriminator_D1, Feedback, AttDec), loss_fn, WeightedL1
and next_seen_batch it reuses (the fork's are the same code), it uses nothing of the package's
model, losses or config: a test comparing the package with it compares two independent computations.

Two readings the fork leaves open:
- its config.py is not public. `lambda2`, the weight of D2's gradient penalty, is taken equal to
  `lambda1` (10 in every script); the adaptive rule scales both alike, so they stay equal. Where a
  config leaves gammaD2 / gammaG_D2 unset they are taken equal to gammaD / gammaG, the values every
  `--transductive` command passes.
- the optimisers' dict keeps bench/official.py's keys (the script calls the encoder's `optimizerE`),
  plus `optimizerD2`.

The authors' behaviour is kept where the package deliberately differs (tests/test_transductive_oracle.py
states both): the generator step always steps the decoder (the script never reads `freeze_dec`),
and with `encoded_noise` off the seen fake from N(0, I) noise takes its own feedback
(`feedback_module`), not the reconstruction's.

`# as-run:` marks the smallest changes that run on a modern PyTorch, as in bench/official.py:
`backward(one)` needs a 0-d tensor, `Variable(x)` is `x`, and host tensors go to the networks' device,
as `opt.cuda` does.
"""
from __future__ import annotations

from types import SimpleNamespace
from typing import Callable

import torch
import torch.autograd as autograd
import torch.nn as nn

from tfvaegan.bench.official import OfficialNets, WeightedL1, loss_fn, next_seen_batch, official_optimizers, \
    weights_init


# --------------------------------------------------------------------------- model.py
class Discriminator_D2(nn.Module):
    """The unconditional critic for transductive training: features alone."""

    def __init__(self, opt):
        super(Discriminator_D2, self).__init__()
        self.fc1 = nn.Linear(opt.resSize, opt.ndh)
        self.fc2 = nn.Linear(opt.ndh, 1)
        self.lrelu = nn.LeakyReLU(0.2, True)
        self.apply(weights_init)

    def forward(self, x):
        self.h1 = self.lrelu(self.fc1(x))
        h = self.fc2(self.h1)
        return h


# --------------------------------------------------------------------------- util.py
def next_unseen_batch(data, unseen_batch):
    """DATA_LOADER.next_unseen_batch: a random subset of the test_unseen rows, drawn on the host, and
    the class embeddings of their TRUE labels."""
    idx = torch.randperm(data.test_unseen_feature.size(0))[0:unseen_batch]
    batch_feature = data.test_unseen_feature.cpu()[idx]
    batch_label = data.test_unseen_label.cpu()[idx]
    batch_att = data.attribute.cpu()[batch_label]
    return batch_feature, batch_att


# --------------------------------------------------------------------------- train_tfvaegan_transductive.py
def calc_gradient_penalty(netD, real_data, fake_data, opt, input_att=None):
    """The script's penalty: weight lambda2 for D2 (no class embedding), lambda1 for D."""
    alpha = torch.rand(opt.batch_size, 1)
    alpha = alpha.expand(real_data.size()).to(real_data.device)  # as-run: `if opt.cuda: alpha.cuda()`
    interpolates = alpha * real_data + ((1 - alpha) * fake_data)
    interpolates = interpolates.detach().requires_grad_(True)  # as-run: Variable(..., requires_grad=True)
    if input_att is None:
        disc_interpolates = netD(interpolates)
    else:
        disc_interpolates = netD(interpolates, input_att)
    ones = torch.ones(disc_interpolates.size(), device=real_data.device)
    gradients = autograd.grad(outputs=disc_interpolates, inputs=interpolates, grad_outputs=ones,
                              create_graph=True, retain_graph=True, only_inputs=True)[0]
    if input_att is None:
        gradient_penalty = ((gradients.norm(2, dim=1) - 1) ** 2).mean() * opt.lambda2
    else:
        gradient_penalty = ((gradients.norm(2, dim=1) - 1) ** 2).mean() * opt.lambda1
    return gradient_penalty


def official_transductive_optimizers(nets: OfficialNets, netD2: Discriminator_D2, cfg,
                                     make: Callable | None = None) -> dict:
    """The script's six optimisers (or `make(module)` for each, e.g. SGD in a test of the gradients):
    bench/official.py's five, which the transductive script builds alike, and
    optimizerD2 = Adam(netD2, lr, betas (beta1, 0.999))."""
    opts = official_optimizers(nets, cfg, make=make)
    if make is not None:
        opts["optimizerD2"] = make(netD2)
    else:
        opts["optimizerD2"] = torch.optim.Adam(netD2.parameters(), lr=cfg.lr, betas=(cfg.beta1, 0.999))
    return opts


def _script_opt(nets: OfficialNets, cfg, lambda1: float) -> SimpleNamespace:
    """The `opt` fields the iteration reads: the networks' sizes and the run's weights."""
    gammaD2 = cfg.gammaD if cfg.gammaD2 is None else cfg.gammaD2  # unset: as every --transductive command
    gammaG_D2 = cfg.gammaG if cfg.gammaG_D2 is None else cfg.gammaG_D2
    return SimpleNamespace(**vars(nets.opt), batch_size=cfg.batch_size, critic_iter=cfg.critic_iter,
                           encoded_noise=cfg.encoded_noise, recons_weight=cfg.recons_weight, a1=cfg.a1,
                           gammaD=cfg.gammaD, gammaG=cfg.gammaG, gammaD2=gammaD2, gammaG_D2=gammaG_D2,
                           lambda1=lambda1, lambda2=lambda1)  # lambda2: taken equal to lambda1 (docstring)


class _TransductiveLoop:
    """The script's module-level state for one iteration: opt, the buffers input_res, input_att,
    input_res_D2, input_att_D2, noise, one, mone, and its sample, trans_sample and feedback_module."""

    def __init__(self, nets: OfficialNets, netD2: Discriminator_D2, cfg, data, lambda1: float):
        self.nets, self.netD2, self.data = nets, netD2, data
        self.opt = opt = _script_opt(nets, cfg, lambda1)
        device = next(nets.netG.parameters()).device
        self.device = device
        self.input_res = torch.empty(opt.batch_size, opt.resSize, device=device)
        self.input_att = torch.empty(opt.batch_size, opt.attSize, device=device)
        self.input_res_D2 = torch.empty(opt.batch_size, opt.resSize, device=device)
        self.input_att_D2 = torch.empty(opt.batch_size, opt.attSize, device=device)
        self.noise = torch.empty(opt.batch_size, opt.nz, device=device)
        self.one = torch.tensor(1.0, device=device)  # as-run: 0-d (FloatTensor([1]))
        self.mone = self.one * -1

    def feedback_module(self, gen_out, att):
        netG, netDec, netF = self.nets.netG, self.nets.netDec, self.nets.netF
        syn_fake = netG(gen_out, c=att)
        netDec(syn_fake)
        recons_hidden_feat = netDec.getLayersOutDet()
        feedback_out = netF(recons_hidden_feat)
        syn_fake = netG(gen_out, a1=self.opt.a1, c=att, feedback_layers=feedback_out)
        return syn_fake

    def sample(self):  # only seen classes
        batch_feature, batch_att, _ = next_seen_batch(self.data, self.opt.batch_size)
        self.input_res.copy_(batch_feature)
        self.input_att.copy_(batch_att)

    def trans_sample(self):  # only unseen classes
        trans_batch_feature, trans_batch_att = next_unseen_batch(self.data, self.opt.batch_size)
        self.input_res_D2.copy_(trans_batch_feature)
        self.input_att_D2.copy_(trans_batch_att)

    def generated(self, latent_code, att, loop):
        """The script's `if loop == 1: feedback_module(...) else: netG(latent_code, c=att)`."""
        if loop == 1:
            return self.feedback_module(gen_out=latent_code, att=att)
        return self.nets.netG(latent_code, c=att)


def official_transductive_step(nets: OfficialNets, netD2: Discriminator_D2, opts: dict, cfg, data, loop: int,
                               lambda1: float) -> float:
    """One iteration of the authors' transductive loop (`for i in range(0, data.ntrain, opt.batch_size)`):
    critic_iter steps of the decoder and D, critic_iter steps of D2, the adaptive rule on both critics'
    penalties, the generator step. `opts`: official_transductive_optimizers' keys. Returns opt.lambda1
    after the adaptive rule (opt.lambda2 equals it)."""
    state = _TransductiveLoop(nets, netD2, cfg, data, lambda1)
    gp_sum = _critic_d_iterations(state, opts, loop)
    gp_sum = _critic_d2_iterations(state, opts, loop, gp_sum)
    _adapt_lambdas(state, gp_sum)
    _generator_step(state, opts, loop)
    return state.opt.lambda1


def _critic_d_iterations(state: _TransductiveLoop, opts: dict, loop: int):
    opt, netE, netD, netDec = state.opt, state.nets.netE, state.nets.netD, state.nets.netDec
    for p in netD.parameters():  # unfreeze the discriminator
        p.requires_grad = True
    for p in netDec.parameters():  # unfreeze the decoder
        p.requires_grad = True
    gp_sum = 0
    for iter_d in range(opt.critic_iter):
        state.sample()
        netD.zero_grad()
        input_resv, input_attv = state.input_res, state.input_att  # as-run: Variable(x) is x
        # training the auxiliary module
        netDec.zero_grad()
        recons = netDec(input_resv)
        R_cost = opt.recons_weight * WeightedL1(recons, input_attv)
        R_cost.backward()
        opts["optimizerDec"].step()
        criticD_real = netD(input_resv, input_attv)
        criticD_real = opt.gammaD * criticD_real.mean()
        criticD_real.backward(state.mone)
        if opt.encoded_noise:
            means, log_var = netE(input_resv, input_attv)
            std = torch.exp(0.5 * log_var)
            eps = torch.randn([opt.batch_size, opt.latent_size])
            eps = eps.to(state.device)  # as-run: `if opt.cuda: eps = eps.cuda()`
            latent_code = eps * std + means
        else:
            state.noise.normal_(0, 1)
            latent_code = state.noise
        fake = state.generated(latent_code, input_attv, loop)
        criticD_fake = netD(fake.detach(), input_attv)
        criticD_fake = opt.gammaD * criticD_fake.mean()
        criticD_fake.backward(state.one)
        gradient_penalty = opt.gammaD * calc_gradient_penalty(netD, state.input_res, fake.data, opt,
                                                              state.input_att)
        gp_sum += gradient_penalty.data
        gradient_penalty.backward()
        opts["optimizerD"].step()
    return gp_sum


def _critic_d2_iterations(state: _TransductiveLoop, opts: dict, loop: int, gp_sum):
    opt, netD2 = state.opt, state.netD2
    for p in netD2.parameters():  # unfreeze the discriminator
        p.requires_grad = True
    for iter_d in range(opt.critic_iter):
        state.trans_sample()
        netD2.zero_grad()
        input_resv_D2, input_attv_D2 = state.input_res_D2, state.input_att_D2
        criticD2_real = netD2(input_resv_D2)
        criticD2_real = opt.gammaD2 * criticD2_real.mean()
        criticD2_real.backward(state.mone)
        state.noise.normal_(0, 1)
        latent_code_noise = state.noise
        fakeD2 = state.generated(latent_code_noise, input_attv_D2, loop)
        criticD2_fake = netD2(fakeD2.detach())
        criticD2_fake = opt.gammaD2 * criticD2_fake.mean()
        criticD2_fake.backward(state.one)
        gradient_penalty_D2 = opt.gammaD2 * calc_gradient_penalty(netD2, state.input_res_D2, fakeD2.data, opt)
        gp_sum += gradient_penalty_D2.data
        gradient_penalty_D2.backward()
        opts["optimizerD2"].step()
    return gp_sum


def _adapt_lambdas(state: _TransductiveLoop, gp_sum) -> None:
    opt = state.opt
    gp_sum /= (opt.gammaD2 * opt.lambda1 * 2 * opt.critic_iter)
    if (gp_sum > 1.05).sum() > 0:
        opt.lambda2 *= 1.1
        opt.lambda1 *= 1.1
    elif (gp_sum < 1.001).sum() > 0:
        opt.lambda2 /= 1.1
        opt.lambda1 /= 1.1


def _generator_step(state: _TransductiveLoop, opts: dict, loop: int) -> None:
    opt, nets, netD2 = state.opt, state.nets, state.netD2
    netE, netG, netD, netF, netDec = nets.netE, nets.netG, nets.netD, nets.netF, nets.netDec
    for p in netD.parameters():
        p.requires_grad = False
    netE.zero_grad()
    netG.zero_grad()
    netF.zero_grad()
    input_resv, input_attv = state.input_res, state.input_att
    means, log_var = netE(input_resv, input_attv)
    std = torch.exp(0.5 * log_var)
    eps = torch.randn([opt.batch_size, opt.latent_size])
    eps = eps.to(state.device)
    latent_code = eps * std + means
    recon_x = state.generated(latent_code, input_attv, loop)
    if opt.encoded_noise:
        criticG_fake = netD(recon_x, input_attv).mean()  # recomputed below, as the script does
        fake = recon_x
    else:
        state.noise.normal_(0, 1)
        latent_code_noise = state.noise
        fake = state.generated(latent_code_noise, input_attv, loop)  # its own feedback
    criticG_fake = netD(fake, input_attv).mean()
    vae_loss_seen = loss_fn(recon_x, input_resv, means, log_var)
    G_cost = -criticG_fake
    netDec.zero_grad()
    recons_fake = netDec(fake)
    R_cost = WeightedL1(recons_fake, input_attv)
    errG = vae_loss_seen + opt.gammaG * G_cost
    errG += opt.recons_weight * R_cost
    for p in netD2.parameters():  # freeze D2
        p.requires_grad = False
    input_attv_D2 = state.input_att_D2  # the last D2 batch's class embeddings
    state.noise.normal_(0, 1)
    latent_code_noise = state.noise
    fakeD2 = state.generated(latent_code_noise, input_attv_D2, loop)
    criticG_fake_D2 = netD2(fakeD2).mean()
    recons_fake_2 = netDec(fakeD2)
    R_cost_D2 = WeightedL1(recons_fake_2, input_attv_D2)
    G_cost_D2 = -criticG_fake_D2
    errG += opt.recons_weight * R_cost_D2
    errG += opt.gammaG_D2 * G_cost_D2
    errG.backward()
    opts["optimizer"].step()  # the script's optimizerE
    opts["optimizerG"].step()
    if loop == 1:
        opts["optimizerF"].step()
    opts["optimizerDec"].step()  # always: the script ignores freeze_dec
