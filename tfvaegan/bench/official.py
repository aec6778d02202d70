"""Literal transcriptions of the official train_images.py and classifiers/classifier_images.py.

- `official_generator_step`: one generator iteration. Three critic backward passes, the
  generator's feedback pass recomputed from scratch, gradients built everywhere, batches gathered
  on the host and copied to the device as the official code does.
- `official_evaluation`: one per-epoch evaluation. Per-class synthesis, then the GZSL and ZSL
  CLASSIFIERs, each recomputing the discriminative features of every sample batch by batch on the
  host, with autograd, the default Adam, a reshuffled copy of the training matrix every epoch and
  Python loops over the classes.

They are the oracle the tests compare `Trainer.step` with, and the benchmark's baseline for "the
official code on the same machine". Neither is used for training or evaluation.
"""
from __future__ import annotations

import copy

import torch
import torch.nn.functional as F

from tfvaegan.method.losses import vae_loss, weighted_l1


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


def official_evaluation(model, cfg, data) -> dict:
    """One evaluation as the official loop runs it after every epoch; returns its H and ZSL accuracy."""
    G, Dec, Fb = model.generator, model.decoder, model.feedback
    device = data.attribute.device
    syn_x, syn_y = [], []
    for c in data.unseenclasses.tolist():  # generate_syn_feature: one class at a time, graphs recorded
        att = data.attribute[c].repeat(cfg.syn_num, 1)
        z = torch.randn(cfg.syn_num, cfg.nz, device=device)
        fake = G(z, att)
        if cfg.feedback_loop > 1:
            hidden, _ = Dec(fake)
            fake = G.output(G.hidden(z, att), Fb(hidden), cfg.a2)
        syn_x.append(fake.data.cpu())
        syn_y.append(torch.full((cfg.syn_num,), c, dtype=torch.long))
    syn_x, syn_y = torch.cat(syn_x), torch.cat(syn_y)
    unseen = data.unseenclasses.cpu()
    gzsl = _official_classifier(torch.cat((data.train_feature.cpu(), syn_x)), torch.cat((data.train_label.cpu(), syn_y)),
                                data, cfg.nclass_all, cfg, Dec, generalized=True)
    mapped = torch.searchsorted(unseen, syn_y)  # util.map_label (unseenclasses are sorted)
    zsl = _official_classifier(syn_x, mapped, data, len(unseen), cfg, Dec, generalized=False)
    return {"gzsl_h": gzsl, "zsl_acc": zsl}


def _official_classifier(train_x, train_y, data, nclass, cfg, decoder, generalized: bool) -> float:
    device = data.attribute.device
    batch = cfg.cls_batch_size

    def compute_dec_out(x):
        out = torch.zeros(x.size(0), x.size(1) + cfg.attSize + cfg.ngh)
        for start in range(0, x.size(0), batch):
            part = x[start:start + batch].to(device)
            hidden, reconstructed = decoder(part)
            out[start:start + batch] = torch.cat([part, reconstructed, hidden], dim=1).data.cpu()
        return out

    train_x = compute_dec_out(train_x)
    test_unseen = compute_dec_out(data.test_unseen_feature.cpu())
    test_seen = compute_dec_out(data.test_seen_feature.cpu())
    fc = torch.nn.Linear(train_x.size(1), nclass)
    torch.nn.init.normal_(fc.weight, 0.0, 0.02)
    torch.nn.init.zeros_(fc.bias)
    fc.to(device)
    optimizer = torch.optim.Adam(fc.parameters(), lr=cfg.classifier_lr, betas=(cfg.classifier_beta1, 0.999))
    state = {"index": 0, "epochs": 0, "x": train_x, "y": train_y}
    ntrain = train_x.size(0)

    def next_batch():
        start = state["index"]
        if state["epochs"] == 0 and start == 0:
            perm = torch.randperm(ntrain)
            state["x"], state["y"] = state["x"][perm], state["y"][perm]
        if start + batch > ntrain:
            state["epochs"] += 1
            rest_x, rest_y = state["x"][start:], state["y"][start:]
            perm = torch.randperm(ntrain)
            state["x"], state["y"] = state["x"][perm], state["y"][perm]
            state["index"] = batch - rest_x.size(0)
            return (torch.cat((rest_x, state["x"][:state["index"]])),
                    torch.cat((rest_y, state["y"][:state["index"]])))
        state["index"] += batch
        return state["x"][start:start + batch], state["y"][start:start + batch]

    def predict(test_x):
        predicted = torch.empty(test_x.size(0), dtype=torch.long)
        with torch.no_grad():
            for start in range(0, test_x.size(0), batch):
                predicted[start:start + batch] = fc(test_x[start:start + batch].to(device)).argmax(1).cpu()
        return predicted

    def per_class(labels, predicted, classes):
        total = 0.0
        for c in classes:
            index = labels == c
            total += float(torch.sum(labels[index] == predicted[index])) / float(torch.sum(index))
        return total / len(classes)

    best = 0.0
    for _ in range(cfg.classifier_nepoch):
        for _ in range(0, ntrain, batch):
            fc.zero_grad()
            x, y = next_batch()
            loss = F.nll_loss(F.log_softmax(fc(x.to(device)), dim=1), y.to(device))
            loss.backward()
            optimizer.step()
            if not generalized:
                loss.item()  # fit_zsl's `mean_loss += loss.data[0]`: a host synchronisation per step
        if generalized:
            seen = per_class(data.test_seen_label.cpu(), predict(test_seen), data.seenclasses.tolist())
            unseen = per_class(data.test_unseen_label.cpu(), predict(test_unseen), data.unseenclasses.tolist())
            h = 2 * seen * unseen / (seen + unseen) if seen + unseen > 0 else 0.0
            best = max(best, h)
        else:
            mapped = torch.searchsorted(data.unseenclasses.cpu(), data.test_unseen_label.cpu())
            acc = per_class(mapped, predict(test_unseen), range(nclass))
            if acc > best:
                best = acc
                copy.deepcopy(fc.state_dict())  # the official fit_zsl keeps the best model this way
    return best
