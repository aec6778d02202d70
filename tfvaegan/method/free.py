"""FREE (Chen et al., ICCV 2021), `method: free`: f-VAEGAN's encoder, generator and critic with a feature
refinement module trained beside them, as shiming-chen/FREE train_free.py trains it.

The refinement module (FR) maps a feature x to a hidden state h = lrelu(W₁x) and a latent code
[μ, σ] = W₃h (σ through a sigmoid); its semantic reconstruction is â = sigmoid(μ + ε·σ). Per critic
iteration, before the critic's step:
    min  center_weight·L_center(μ(x), y) + recons_weight·L1w(â(x), a)        over FR and the class centers
with the self-adaptive margin center loss
    L_center = mean over the batch of max(0, margin + w·‖μ − c_y‖² − (1 − w)·‖μ − c_o‖²),
w = incenter_weight, o a random other seen class (`center_loss: margin`; train_free.py's choice for CUB,
FLO, SUN) or the nearest other center (`min_margin`: AWA). The generator step is f-VAEGAN's plus
recons_weight·L1w(â(x̃), a) on the fake, which also steps FR (unless freeze_dec). The classifiers read the
refined features [x, h, â] (classifier.py's compute_fear_out), â drawn with fresh ε.

As run, not as one might expect (kept: the published numbers were made so):
- the centers' gradient is never zeroed in train_free.py, so each centers step uses the sum of every
  gradient since the start;
- FR has the same ε-sampled â in training and at classification (random features at evaluation).
Skipped, because the reference discards their results: FR on the critic's fakes and FR's gradient
penalty, computed in every critic iteration and never used; they only consumed random numbers.
bench/official_free.py transcribes the reference; tests/test_method_oracles.py compares the two.
"""
from __future__ import annotations

import torch
from torch import Tensor, nn

from tfvaegan.config import Config
from tfvaegan.method.classifier import local_labels
from tfvaegan.method.losses import vae_loss, weighted_l1
from tfvaegan.method.models import FVAEGAN, init_weights, leaky
from tfvaegan.method.train import Trainer, make_optimizers


class FeatureRefinement(nn.Module):
    """FREE's FR box: x → (μ, h, â). Its discriminator and classifier heads, whose outputs train_free.py
    never uses in a loss, are left out."""

    def __init__(self, res_size: int, att_size: int, hidden: int):
        super().__init__()
        self.att_size = att_size
        self.fc1 = nn.Linear(res_size, hidden)
        self.fc3 = nn.Linear(hidden, 2 * att_size)
        self.apply(init_weights)

    def forward(self, x: Tensor, noise: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        """(μ, hidden state h, reconstruction â = sigmoid(μ + noise·σ))."""
        hidden = leaky(self.fc1(x))
        latent = self.fc3(hidden)
        mean, std = latent[:, : self.att_size], torch.sigmoid(latent[:, self.att_size:])
        return mean, hidden, torch.sigmoid(mean + noise * std)


class CenterLoss(nn.Module):
    """The self-adaptive margin center loss (center_loss.py), one center per seen class, N(0, I) initialised."""

    def __init__(self, n_classes: int, dim: int):
        super().__init__()
        self.centers = nn.Parameter(torch.randn(n_classes, dim))

    def forward(self, latent: Tensor, labels: Tensor, other_offset: Tensor | None, margin: float,
                incenter_weight: float) -> Tensor:
        """`labels`: seen-class indices; `other_offset`: the margin form's random offsets in [0, classes)
        (label + offset wraps to the other class, which may be the own class at offset 0, as run); None: the
        nearest other center (min_margin)."""
        n_classes = self.centers.size(0)
        distances = (latent.pow(2).sum(1, keepdim=True) + self.centers.pow(2).sum(1)[None, :]
                     - 2 * latent @ self.centers.t())  # ‖μ‖² + ‖c‖² − 2μ·c, the reference's distmat
        own = distances.gather(1, labels[:, None]).squeeze(1)
        if other_offset is not None:
            other = distances.gather(1, ((labels + other_offset) % n_classes)[:, None]).squeeze(1)
        else:
            other = distances.scatter(1, labels[:, None], float("inf")).min(1).values
        hinge = margin + incenter_weight * own - (1 - incenter_weight) * other
        return torch.maximum(hinge, torch.zeros_like(hinge)).sum() / latent.size(0)


class FREE(FVAEGAN):
    """f-VAEGAN's boxes and the refinement module; the class centers only while training (`n_seen`)."""

    saved_modules = ("generator", "refinement")
    refines_features = True

    def __init__(self, cfg: Config, n_seen: int | None = None):
        super().__init__(cfg)
        self.refinement = FeatureRefinement(cfg.resSize, cfg.attSize, cfg.ngh)
        self.center = CenterLoss(n_seen, cfg.attSize) if n_seen else None

    @torch.no_grad()
    def discriminative_features(self, x: Tensor, generator: torch.Generator | None = None) -> Tensor:
        """[x, h, â] (compute_fear_out), â with ε drawn from `generator`."""
        noise = torch.randn(x.size(0), self.refinement.att_size, generator=generator, device=x.device)
        _, hidden, reconstructed = self.refinement(x, noise)
        return torch.cat((x, hidden, reconstructed), dim=1)


class FREETrainer(Trainer):
    """f-VAEGAN's step with FREE's refinement and center-loss update in every critic iteration."""

    def make_model(self, cfg: Config) -> FREE:
        return FREE(cfg, n_seen=len(self.data.seenclasses))

    def make_optimizers(self) -> dict[str, torch.optim.Optimizer]:
        """train_free.py's five Adam: the encoder's, generator's and critic's as every method's
        (train.make_optimizers), FR's at dec_lr and the centers' at lr, with betas (beta1, 0.999)."""
        cfg, m, betas = self.cfg, self.model, (self.cfg.beta1, 0.999)
        return {**make_optimizers(m, cfg),
                "refinement": torch.optim.Adam(m.refinement.parameters(), lr=cfg.dec_lr, betas=betas, fused=True),
                "centers": torch.optim.Adam(m.center.parameters(), lr=cfg.lr, betas=betas, fused=True)}

    # ------------------------------------------------------------------ checkpoints: the centers' gradient too
    def state(self) -> dict:
        """Trainer.state and the centers' accumulated gradient, which the next centers step reads (as run)."""
        grad = self.model.center.centers.grad
        return {**super().state(), "center_grad": (torch.zeros_like(self.model.center.centers) if grad is None
                                                   else grad).detach().cpu()}

    def misfit(self, state) -> str | None:
        centers = self.model.center.centers
        if not isinstance(state, dict) or not isinstance(state.get("center_grad"), Tensor) \
                or state["center_grad"].shape != centers.shape:
            return f"expected the model, optimizers, lambda1 and center_grad {tuple(centers.shape)} of a FREE trainer"
        return super().misfit({key: value for key, value in state.items() if key != "center_grad"})

    def load_state(self, state: dict) -> None:
        super().load_state({key: value for key, value in state.items() if key != "center_grad"})
        self.model.center.centers.grad = state["center_grad"].to(self.device, self.model.center.centers.dtype)

    def seen_labels(self) -> Tensor:
        """The last batch's labels as seen-class indices (the centers' rows)."""
        return local_labels(self.data.train_label[self.batch_index], self.data.seenclasses)

    def semantic_step(self, x: Tensor, att: Tensor, target: Tensor) -> None:
        """FR's and the centers' step on real features, in the decoder's place (Trainer.critic_step)."""
        cfg = self.cfg
        refinement_noise = torch.randn(x.size(0), cfg.attSize, device=self.device)
        offset = (torch.randint(len(self.data.seenclasses), (x.size(0),), device=self.device)
                  if cfg.center_loss == "margin" else None)
        self.opt["refinement"].zero_grad(set_to_none=True)
        # The centers' gradient is not zeroed: train_free.py never zeroes it (module docstring).
        self.refinement_loss(x, att, refinement_noise, self.seen_labels(), offset).backward()
        self.opt["refinement"].step()
        self.opt["centers"].step()

    def refinement_loss(self, x: Tensor, att: Tensor, noise: Tensor, labels: Tensor, offset: Tensor | None) -> Tensor:
        """center_weight·L_center(μ(x)) + recons_weight·L1w(â(x), a)."""
        cfg, m = self.cfg, self.model
        mean, _, reconstructed = m.refinement(x, noise)
        center = m.center(mean, labels, offset, cfg.center_margin, cfg.incenter_weight)
        return cfg.center_weight * center + cfg.recons_weight * weighted_l1(reconstructed, att)

    def generator_step(self, x: Tensor, att: Tensor, target: Tensor, feedback_pass: bool) -> tuple[Tensor, Tensor]:
        """min L_VAE − γG·E[D(x̃, a)] + recons_weight·L1w(â(x̃), a) over the encoder, generator and FR (unless
        freeze_dec); the critic and the centers are fixed."""
        cfg, m = self.cfg, self.model
        noise = torch.randn(x.size(0), cfg.latent_size, device=self.device)
        prior_noise = None if cfg.encoded_noise else torch.randn(x.size(0), cfg.nz, device=self.device)
        refinement_noise = torch.randn(x.size(0), cfg.attSize, device=self.device)
        m.critic.requires_grad_(False)
        m.refinement.requires_grad_(not cfg.freeze_dec)
        for name in ("encoder", "generator", "refinement"):
            self.opt[name].zero_grad(set_to_none=True)
        mean, log_var = m.encoder(x, att)
        recon = m.generator(mean + noise * torch.exp(0.5 * log_var), att)
        fake = recon if prior_noise is None else m.generator(prior_noise, att)
        generator_cost = -m.critic(fake, att).mean()
        vae = vae_loss(recon, x, mean, log_var)
        _, _, reconstructed = m.refinement(fake, refinement_noise)
        (vae + cfg.gammaG * generator_cost + cfg.recons_weight * weighted_l1(reconstructed, att)).backward()
        self.opt["encoder"].step()
        self.opt["generator"].step()
        if not cfg.freeze_dec:
            self.opt["refinement"].step()
        m.critic.requires_grad_(True)
        m.refinement.requires_grad_(True)
        return generator_cost.detach(), vae.detach()

