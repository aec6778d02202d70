"""A literal transcription of one generator iteration of the official train_images.py.

Three critic backward passes, the generator's feedback pass recomputed from scratch, gradients
built everywhere, batches gathered on the host and copied to the device as the official code does.
It is the oracle the tests compare `Trainer.step` with, and the benchmark's baseline for "the
official code on the same machine". It is not used for training.
"""
from __future__ import annotations

import torch

from tfvaegan.train import vae_loss, weighted_l1


def official_generator_step(model, opts: dict, cfg, data, feedback_pass: bool, lambda1: float,
                            host_features=None, host_labels=None) -> float:
    """One generator iteration; `opts` holds optimizers under enc/gen/critic/fb/dec. Returns λ.

    With `host_features`/`host_labels` (CPU tensors) batches are drawn on the host and copied to
    the model's device each critic step, like the official sample(); otherwise from `data`.
    """
    E, G, D, Dec, Fb = model.encoder, model.generator, model.critic, model.decoder, model.feedback
    device = next(model.parameters()).device
    features = host_features if host_features is not None else data.train_feature
    labels = host_labels if host_labels is not None else data.train_label
    attribute = data.attribute.to(features.device)
    gp_sum = 0.0
    for _ in range(cfg.critic_iter):
        index = torch.randperm(features.size(0), device=features.device)[: cfg.batch_size]
        x = features[index].to(device)
        att = attribute[labels[index]].to(device)
        for p in D.parameters():
            p.requires_grad = True
        for p in Dec.parameters():
            p.requires_grad = True
        D.zero_grad()
        Dec.zero_grad()
        _, recons = Dec(x)
        (cfg.recons_weight * weighted_l1(recons, att)).backward()
        opts["dec"].step()
        critic_real = cfg.gammaD * D(x, att).mean()
        critic_real.backward(torch.tensor(-1.0, device=device))
        mean, log_var = E(x, att)
        z = torch.randn(cfg.batch_size, cfg.latent_size, device=device) * torch.exp(0.5 * log_var) + mean
        fake = G(z, att)
        if feedback_pass:
            hidden, _ = Dec(fake)
            fake = G.output(G.hidden(z, att), Fb(hidden.detach()), cfg.a1)
        critic_fake = cfg.gammaD * D(fake.detach(), att).mean()
        critic_fake.backward(torch.tensor(1.0, device=device))
        alpha = torch.rand(cfg.batch_size, 1, device=device).expand(x.size())
        interpolates = (alpha * x + (1 - alpha) * fake.detach()).requires_grad_(True)
        grads = torch.autograd.grad(D(interpolates, att), interpolates,
                                    torch.ones(cfg.batch_size, 1, device=device), create_graph=True)[0]
        penalty = cfg.gammaD * ((grads.norm(2, dim=1) - 1) ** 2).mean() * lambda1
        gp_sum += penalty.item()  # the official loop synchronises here too
        penalty.backward()
        opts["critic"].step()
    gp_sum /= cfg.gammaD * lambda1 * cfg.critic_iter
    lambda1 = lambda1 * 1.1 if gp_sum > 1.05 else (lambda1 / 1.1 if gp_sum < 1.001 else lambda1)
    for p in D.parameters():
        p.requires_grad = False
    E.zero_grad(), G.zero_grad(), Fb.zero_grad()
    mean, log_var = E(x, att)
    z = torch.randn(cfg.batch_size, cfg.latent_size, device=device) * torch.exp(0.5 * log_var) + mean
    recon = G(z, att)
    if feedback_pass:
        hidden, _ = Dec(recon)
        recon = G.output(G.hidden(z, att), Fb(hidden.detach()), cfg.a1)
    loss = vae_loss(recon, x, mean, log_var) - cfg.gammaG * D(recon, att).mean()
    Dec.zero_grad()
    _, recons_fake = Dec(recon)
    loss = loss + cfg.recons_weight * weighted_l1(recons_fake, att)
    loss.backward()
    opts["enc"].step(), opts["gen"].step()
    if feedback_pass:
        opts["fb"].step()
    opts["dec"].step()
    for p in D.parameters():
        p.requires_grad = True
    return lambda1


def official_optimizers(model, cfg, make=None) -> dict:
    """The official optimisers (or `make(module)` for each, e.g. SGD in tests)."""
    betas = (cfg.beta1, 0.999)
    if make is not None:
        return {k: make(getattr(model, n)) for k, n in
                (("enc", "encoder"), ("gen", "generator"), ("critic", "critic"), ("fb", "feedback"), ("dec", "decoder"))}
    return {"enc": torch.optim.Adam(model.encoder.parameters(), lr=cfg.lr),
            "gen": torch.optim.Adam(model.generator.parameters(), lr=cfg.lr, betas=betas),
            "critic": torch.optim.Adam(model.critic.parameters(), lr=cfg.lr, betas=betas),
            "fb": torch.optim.Adam(model.feedback.parameters(), lr=cfg.feed_lr, betas=betas),
            "dec": torch.optim.Adam(model.decoder.parameters(), lr=cfg.dec_lr, betas=betas)}
