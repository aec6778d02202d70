"""A literal transcription of the authors' transductive iteration: the oracle of method/transductive.py.

From the pre-release code in the public fork xvdp/tfvaegan: zero-shot-images/train_tfvaegan_transductive.py
(one iteration of `for i in range(0, data.ntrain, opt.batch_size)`), model.py's Discriminator_D2 and
util.py's next_unseen_batch. Like bench/official.py (whose networks and losses it reuses, themselves
transcriptions) it uses nothing of the package's model or losses. `# as-run:` marks the smallest
changes that run on a modern PyTorch. The fork's config.py is not public: `lambda2`, the weight of
D2's gradient penalty, is taken equal to `lambda1` (10 in every script), and both adapt together.
What the authors' code does and the package deliberately does not (tests/test_transductive_oracle.py states it):
the generator step always steps the decoder (it ignores `freeze_dec`), and the seen fakes from N(0, I)
noise (`encoded_noise` off) take their own feedback.
"""
from __future__ import annotations

import torch
import torch.autograd as autograd
import torch.nn as nn

from tfvaegan.bench.official import WeightedL1, loss_fn, next_seen_batch, weights_init


class Discriminator_D2(nn.Module):
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


def next_unseen_batch(data, unseen_batch):
    idx = torch.randperm(data.test_unseen_feature.size(0))[0:unseen_batch]
    batch_feature = data.test_unseen_feature.cpu()[idx]
    batch_label = data.test_unseen_label.cpu()[idx]
    batch_att = data.attribute.cpu()[batch_label]
    return batch_feature, batch_att


def calc_gradient_penalty(netD, real_data, fake_data, opt, input_att=None):
    alpha = torch.rand(real_data.size(0), 1)  # as-run: the batch's size (opt.batch_size when full)
    alpha = alpha.expand(real_data.size()).to(real_data.device)
    interpolates = alpha * real_data + ((1 - alpha) * fake_data)
    interpolates = interpolates.detach().requires_grad_(True)
    disc_interpolates = netD(interpolates) if input_att is None else netD(interpolates, input_att)
    ones = torch.ones(disc_interpolates.size(), device=real_data.device)
    gradients = autograd.grad(outputs=disc_interpolates, inputs=interpolates, grad_outputs=ones,
                              create_graph=True, retain_graph=True, only_inputs=True)[0]
    weight = opt.lambda2 if input_att is None else opt.lambda1
    return ((gradients.norm(2, dim=1) - 1) ** 2).mean() * weight


def optimizerD2(netD2, cfg):
    return torch.optim.Adam(netD2.parameters(), lr=cfg.lr, betas=(cfg.beta1, 0.999))


class _State:
    def __init__(self, nets, netD2, cfg, data, lambda1):
        self.nets, self.netD2, self.cfg, self.data = nets, netD2, cfg, data
        self.opt = type("opt", (), {"lambda1": lambda1, "lambda2": lambda1, "batch_size": cfg.batch_size,
                                    "latent_size": cfg.latent_size, "nz": cfg.nz})()
        self.device = next(nets.netG.parameters()).device
        self.one = torch.tensor(1.0, device=self.device)  # as-run: 0-d
        self.mone = self.one * -1

    def feedback_module(self, gen_out, att):
        netG, netDec, netF = self.nets.netG, self.nets.netDec, self.nets.netF
        syn_fake = netG(gen_out, c=att)
        netDec(syn_fake)
        recons_hidden_feat = netDec.getLayersOutDet()
        feedback_out = netF(recons_hidden_feat)
        return netG(gen_out, a1=self.cfg.a1, c=att, feedback_layers=feedback_out)

    def generate(self, z, att, loop):
        return self.feedback_module(z, att) if loop == 1 else self.nets.netG(z, c=att)


def official_transductive_step(nets, netD2, opts: dict, cfg, data, loop: int, lambda1: float) -> float:
    """One iteration of the authors' transductive loop; `opts` holds optimizer, optimizerD, optimizerG,
    optimizerF, optimizerDec (as bench/official.py names them) and optimizerD2. Returns lambda1 after it."""
    s = _State(nets, netD2, cfg, data, lambda1)
    input_res, input_att, gp_sum = _critic_d1(s, opts, loop)
    input_res_D2, input_att_D2, gp_sum = _critic_d2(s, opts, loop, gp_sum)
    gp_sum /= (cfg.gamma_d2 * s.opt.lambda1 * 2 * cfg.critic_iter)
    if (gp_sum > 1.05).sum() > 0:
        s.opt.lambda2 *= 1.1
        s.opt.lambda1 *= 1.1
    elif (gp_sum < 1.001).sum() > 0:
        s.opt.lambda2 /= 1.1
        s.opt.lambda1 /= 1.1
    _generator(s, opts, loop, input_res, input_att, input_att_D2)
    return s.opt.lambda1


def _critic_d1(s: _State, opts, loop):
    cfg, opt, netE, netD, netDec = s.cfg, s.opt, s.nets.netE, s.nets.netD, s.nets.netDec
    for p in netD.parameters():
        p.requires_grad = True
    for p in netDec.parameters():
        p.requires_grad = True
    gp_sum = 0
    for _ in range(cfg.critic_iter):
        batch_feature, batch_att, _ = next_seen_batch(s.data, opt.batch_size)
        input_res, input_att = batch_feature.to(s.device), batch_att.to(s.device)
        netD.zero_grad()
        netDec.zero_grad()
        recons = netDec(input_res)
        R_cost = cfg.recons_weight * WeightedL1(recons, input_att)
        R_cost.backward()
        opts["optimizerDec"].step()
        criticD_real = cfg.gammaD * netD(input_res, input_att).mean()
        criticD_real.backward(s.mone)
        if cfg.encoded_noise:
            means, log_var = netE(input_res, input_att)
            std = torch.exp(0.5 * log_var)
            eps = torch.randn([opt.batch_size, opt.latent_size]).to(s.device)
            latent_code = eps * std + means
        else:
            latent_code = torch.randn(opt.batch_size, opt.nz).to(s.device)  # noise.normal_(0, 1)
        fake = s.generate(latent_code, input_att, loop)
        criticD_fake = cfg.gammaD * netD(fake.detach(), input_att).mean()
        criticD_fake.backward(s.one)
        gradient_penalty = cfg.gammaD * calc_gradient_penalty(netD, input_res, fake.data, opt, input_att)
        gp_sum += gradient_penalty.data
        gradient_penalty.backward()
        opts["optimizerD"].step()
    return input_res, input_att, gp_sum


def _critic_d2(s: _State, opts, loop, gp_sum):
    cfg, opt, netD2 = s.cfg, s.opt, s.netD2
    for p in netD2.parameters():
        p.requires_grad = True
    for _ in range(cfg.critic_iter):
        batch_feature, batch_att = next_unseen_batch(s.data, opt.batch_size)
        input_res_D2, input_att_D2 = batch_feature.to(s.device), batch_att.to(s.device)
        netD2.zero_grad()
        criticD2_real = cfg.gamma_d2 * netD2(input_res_D2).mean()
        criticD2_real.backward(s.mone)
        latent_code_noise = torch.randn(input_res_D2.size(0), opt.nz).to(s.device)  # noise.normal_(0, 1)
        fakeD2 = s.generate(latent_code_noise, input_att_D2, loop)
        criticD2_fake = cfg.gamma_d2 * netD2(fakeD2.detach()).mean()
        criticD2_fake.backward(s.one)
        gradient_penalty_D2 = cfg.gamma_d2 * calc_gradient_penalty(netD2, input_res_D2, fakeD2.data, opt)
        gp_sum += gradient_penalty_D2.data
        gradient_penalty_D2.backward()
        opts["optimizerD2"].step()
    return input_res_D2, input_att_D2, gp_sum


def _generator(s: _State, opts, loop, input_res, input_att, input_att_D2):
    cfg, opt, nets, netD2 = s.cfg, s.opt, s.nets, s.netD2
    netE, netG, netD, netF, netDec = nets.netE, nets.netG, nets.netD, nets.netF, nets.netDec
    for p in netD.parameters():
        p.requires_grad = False
    netE.zero_grad()
    netG.zero_grad()
    netF.zero_grad()
    means, log_var = netE(input_res, input_att)
    std = torch.exp(0.5 * log_var)
    eps = torch.randn([opt.batch_size, opt.latent_size]).to(s.device)
    latent_code = eps * std + means
    recon_x = s.generate(latent_code, input_att, loop)
    if cfg.encoded_noise:
        fake = recon_x
    else:
        latent_code_noise = torch.randn(opt.batch_size, opt.nz).to(s.device)
        fake = s.generate(latent_code_noise, input_att, loop)
    criticG_fake = netD(fake, input_att).mean()
    vae_loss_seen = loss_fn(recon_x, input_res, means, log_var)
    G_cost = -criticG_fake
    netDec.zero_grad()
    recons_fake = netDec(fake)
    R_cost = WeightedL1(recons_fake, input_att)
    errG = vae_loss_seen + cfg.gammaG * G_cost
    errG += cfg.recons_weight * R_cost
    for p in netD2.parameters():
        p.requires_grad = False
    latent_code_noise = torch.randn(input_att_D2.size(0), opt.nz).to(s.device)
    fakeD2 = s.generate(latent_code_noise, input_att_D2, loop)
    criticG_fake_D2 = netD2(fakeD2).mean()
    recons_fake_2 = netDec(fakeD2)
    R_cost_D2 = WeightedL1(recons_fake_2, input_att_D2)
    G_cost_D2 = -criticG_fake_D2
    errG += cfg.recons_weight * R_cost_D2
    errG += cfg.gamma_g_d2 * G_cost_D2
    errG.backward()
    opts["optimizer"].step()
    opts["optimizerG"].step()
    if loop == 1:
        opts["optimizerF"].step()
    opts["optimizerDec"].step()
