"""The TF-VAEGAN training loop, as in the official train_images.py, read top to bottom.

Per epoch, `feedback_loop` passes over the training set; pass 1 (the second) applies the feedback
and is the only one that optimises the feedback module. Per generator step, `critic_iter` critic
steps, each of which first updates the semantic decoder on real features. The gradient-penalty
weight adapts: x1.1 when the mean penalty of a generator step's critic steps exceeds 1.05, /1.1
when it is below 1.001.

Deliberate differences from the official code, none of which changes what is computed in float32
(on CUDA the default `amp: true` runs the forward passes in bf16 and products in TF32, which moves
the numbers at rounding level and, through the GAN, beyond; `amp: false` is float32 throughout):
- the critic's loss and gradients are written out in closed form (critic_loss_and_gradients):
  real and fake scored in one batch, the penalty's input gradient and its backward without the
  double-backward autograd graph, the official three backward passes summed in one GEMM;
- work whose result the official code discards is skipped (the generator's first pass without
  feedback is not recomputed from scratch; nothing is built for gradients that are never used;
  the decoder is not run when its loss weight is 0);
- the penalty weight lives on the device, so the adaptive rule needs no host synchronisation;
- evaluation draws from its own random generator, so how often one evaluates does not change the
  trained model.
"""
from __future__ import annotations

import ctypes
import math
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import torch
import torch.nn.functional as F
from torch import Tensor

from tfvaegan.cli import exception_first_line
from tfvaegan.config import Config, ConfigError
from tfvaegan.data import ZSLData
from tfvaegan.fileio import atomic_torch_save
from tfvaegan.models import LEAK, TFVAEGAN, Critic

M_TRIM_THRESHOLD, M_MMAP_MAX = -1, -4  # glibc mallopt parameters (malloc.h)
HISTORY_LOSSES = ("loss_d", "loss_g", "wasserstein", "vae_loss")


def resolve_device(name: str) -> torch.device:
    """'auto' picks CUDA when present; asking for CUDA where there is none is a config error."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name.startswith("cuda"):
        if not torch.cuda.is_available():
            raise ConfigError(
                f"config key 'device': expected a device that exists, found {name!r} but CUDA is not "
                f"available here (no GPU, or a CPU-only PyTorch); use device=auto or device=cpu"
            )
        index = torch.device(name).index
        if index is not None and index >= torch.cuda.device_count():
            raise ConfigError(
                f"config key 'device': expected cuda:0..cuda:{torch.cuda.device_count() - 1}, found {name!r}"
            )
    return torch.device(name)


def prepare_device(device: torch.device, tf32: bool = True) -> None:
    """Process-wide settings for fast work on `device`; idempotent.

    CUDA: TF32 matrix products unless `tf32` is off (callers pass the config's `amp`, so that
    `amp: false` is float32 throughout, as the official code ran). CPU with glibc: keep freed memory in the heap. Every weight-sized
    tensor here (33-39 MB at the official widths) is above glibc's largest mmap threshold (32 MB),
    so by default each new gradient is a fresh mmap whose pages the kernel faults in and zeroes,
    and each freed one an munmap: on a CUB-size step about 86 000 page faults and 0.3 CPU-seconds
    in the kernel, all gone once the heap recycles the blocks.
    """
    if device.type == "cuda":
        torch.backends.cuda.matmul.allow_tf32 = tf32
        torch.backends.cudnn.allow_tf32 = tf32
    elif device.type == "cpu" and sys.platform.startswith("linux"):
        mallopt = getattr(ctypes.CDLL(None), "mallopt", None)  # glibc only (not musl)
        if mallopt is not None:
            mallopt(M_MMAP_MAX, 0)
            mallopt(M_TRIM_THRESHOLD, 1 << 30)


def seed_everything(seed: int) -> None:
    torch.manual_seed(seed)  # seeds CUDA too


def weighted_l1(pred: Tensor, target: Tensor) -> Tensor:
    """Official WeightedL1: |error| weighted by its squared error normalised per sample."""
    error = pred - target
    weight = error.pow(2)
    weight = weight / weight.sum(1, keepdim=True).sqrt()
    return (weight * error.abs()).sum() / pred.size(0)


def decoder_loss(pred: Tensor, target: Tensor, bce: bool) -> Tensor:
    """The semantic decoder's reconstruction loss: weighted L1, or (action code, bce_att) summed BCE."""
    if bce:
        return F.binary_cross_entropy(pred + 1e-12, target, reduction="sum") / pred.size(0)
    return weighted_l1(pred, target)


def vae_loss(recon: Tensor, x: Tensor, mean: Tensor, log_var: Tensor) -> Tensor:
    """Official loss_fn: summed binary cross-entropy + KL divergence, both per sample."""
    bce = F.binary_cross_entropy(recon.float() + 1e-12, x, reduction="sum")
    kld = -0.5 * torch.sum(1 + log_var - mean.pow(2) - log_var.exp())
    return (bce + kld.float()) / x.size(0)


def gradient_penalty(grad: Tensor) -> Tensor:
    """WGAN-GP: mean of (‖∇ₓD‖₂ − 1)²; the caller scales it by λ and gammaD."""
    return ((grad.float().norm(2, dim=1) - 1) ** 2).mean()


def adapt_lambda(lambda1: Tensor, mean_penalty: Tensor) -> Tensor:
    """Official adaptive rule for the gradient-penalty weight."""
    up = torch.full_like(lambda1, 1.1)
    down = torch.full_like(lambda1, 1 / 1.1)
    same = torch.ones_like(lambda1)
    return lambda1 * torch.where(mean_penalty > 1.05, up, torch.where(mean_penalty < 1.001, down, same))


def critic_loss_and_gradients(critic: Critic, x: Tensor, fake: Tensor, att: Tensor, alpha: Tensor,
                              gamma_d: float, penalty_weight: Tensor) -> tuple[Tensor, Tensor, Tensor]:
    """The critic's WGAN-GP loss and its exact gradients, written into the critic's `.grad`.

    loss = −γD·(mean D(x, a) − mean D(x̃, a)) + penalty_weight·mean (‖∇ₓD(x̂, a)‖ − 1)²,
    x̂ = α·x + (1 − α)·x̃; penalty_weight is γD·λ. Returns (penalty, loss, γD·wasserstein), detached.

    Why by hand: the critic D = w₂ᵀ·lrelu(W₁[x; a] + b₁) + b₂ is piecewise linear in x, so
    ∇ₓD(x̂) = W₁ₓᵀ(s ⊙ w₂) with s the LeakyReLU slopes at x̂, and since the first layer is affine
    x̂'s pre-activations are α·h(x) + (1 − α)·h(x̃), no forward pass of their own. Autograd's double
    backward reaches the same gradients but also pushes the activation's zero second derivative
    back through the first layer and accumulates three weight-sized gradients: four wasted
    weight-sized GEMMs and two weight-sized additions per critic step. Written out, the loss and all
    its gradients take four GEMMs, the last producing the whole W₁ gradient in place.
    Checked against autograd in the tests.
    """
    batch, res = x.size(0), x.size(1)
    w1, b1, w2, b2 = critic.fc1.weight, critic.fc1.bias, critic.fc2.weight, critic.fc2.bias
    exact = torch.promote_types(w1.dtype, torch.float32)  # sums and norms out of bf16 under autocast
    with torch.no_grad():
        inputs = torch.cat((torch.cat((x, fake)), att.repeat(2, 1)), dim=1)  # real rows, then fake rows
        pre = F.linear(inputs, w1, b1)
        slopes = leaky_slopes(pre, exact)
        activation = pre * slopes
        score = F.linear(activation, w2, b2).to(exact)
        real, fake_score = score[:batch], score[batch:]
        wasserstein = gamma_d * (real.mean() - fake_score.mean())

        hat_slopes = leaky_slopes(alpha * pre[:batch] + (1 - alpha) * pre[batch:], exact)
        slope_weighted = hat_slopes * w2  # s ⊙ w₂ per sample
        w1_x = w1[:, :res]
        input_gradient = slope_weighted @ w1_x  # ∇ₓD(x̂)
        penalty = gradient_penalty(input_gradient)
        norm = input_gradient.to(exact).norm(dim=1)
        loss = -wasserstein + penalty_weight * penalty

        # d loss / d score: −γD/B on real rows, +γD/B on fake rows.
        d_score = torch.full((2 * batch, 1), gamma_d / batch, device=x.device, dtype=exact)
        d_score[:batch] = -gamma_d / batch
        d_pre = d_score * w2 * slopes
        # d loss / d ∇ₓD(x̂); zero where the norm is (as autograd's norm backward).
        scale = torch.where(norm > 0, (norm - 1) / norm, torch.zeros_like(norm)) * (2 / batch) * penalty_weight
        d_input_gradient = scale[:, None] * input_gradient.to(exact)

        # W₁: scores path d_preᵀ·inputs and penalty path (s ⊙ w₂)ᵀ·[d∇ₓD, 0], as one GEMM.
        left = torch.cat((d_pre, slope_weighted))
        right = torch.cat((inputs, F.pad(d_input_gradient, (0, inputs.size(1) - res))))
        _write_grad(w1, left.t(), right)
        _set_grad(b1, d_pre.sum(0))
        _set_grad(w2, d_score.t() @ activation + (hat_slopes * (d_input_gradient @ w1_x.t())).sum(0, keepdim=True))
        _set_grad(b2, d_score.sum(0))
    return penalty, loss, wasserstein


def leaky_slopes(pre: Tensor, dtype: torch.dtype) -> Tensor:
    """LeakyReLU's slope at each pre-activation, 1 or LEAK; filled from Python scalars, because a
    0-d tensor made from one is a host-to-device copy that would stall the step on a GPU."""
    return torch.full_like(pre, LEAK, dtype=dtype).masked_fill_(pre > 0, 1.0)


def _write_grad(param: Tensor, left: Tensor, right: Tensor) -> None:
    """param.grad = left @ right, into the existing buffer when there is one (no page faults)."""
    if param.grad is not None and param.grad.dtype == left.dtype and param.grad.is_contiguous():
        torch.mm(left, right, out=param.grad)
    else:
        param.grad = (left @ right).to(param.dtype)


def _set_grad(param: Tensor, value: Tensor) -> None:
    param.grad = value.to(param.dtype).reshape(param.shape)


@dataclass
class Optimizers:
    encoder: torch.optim.Optimizer
    generator: torch.optim.Optimizer
    critic: torch.optim.Optimizer
    feedback: torch.optim.Optimizer
    decoder: torch.optim.Optimizer

    @classmethod
    def official(cls, model: TFVAEGAN, cfg: Config) -> "Optimizers":
        # Fused Adam: one kernel per parameter group instead of a pass per operation; on a CPU
        # it is ~5x faster than the default, which matters with ~160M parameter updates per step.
        extra = {"fused": True}
        betas = (cfg.beta1, 0.999)
        return cls(
            encoder=torch.optim.Adam(model.encoder.parameters(), lr=cfg.lr, **extra),  # default betas, as official
            generator=torch.optim.Adam(model.generator.parameters(), lr=cfg.lr, betas=betas, **extra),
            critic=torch.optim.Adam(model.critic.parameters(), lr=cfg.lr, betas=betas, **extra),
            feedback=torch.optim.Adam(model.feedback.parameters(), lr=cfg.feed_lr, betas=betas, **extra),
            decoder=torch.optim.Adam(model.decoder.parameters(), lr=cfg.dec_lr, betas=betas, **extra),
        )

    def state_dict(self) -> dict:
        return {name: getattr(self, name).state_dict() for name in self.__dataclass_fields__}

    def load_state_dict(self, state: dict) -> None:
        for name in self.__dataclass_fields__:
            getattr(self, name).load_state_dict(state[name])


class Trainer:
    """Holds the model, optimisers and the penalty weight; `step` is one generator step."""

    def __init__(self, cfg: Config, data: ZSLData, device: torch.device):
        self.cfg = cfg
        self.data = data
        self.device = device
        self.model = TFVAEGAN(cfg).to(device)
        self.opt = Optimizers.official(self.model, cfg)
        self.lambda1 = torch.tensor(cfg.lambda1, device=device)
        # The decoder regresses the min-max scaled targets in the action code's bce_att mode.
        self.decoder_target = data.bce_attribute if cfg.bce_att and data.bce_attribute is not None else data.attribute
        # bf16 autocast for the model's forward passes (CUDA with cfg.amp); losses stay in float32.
        self.autocast_device = "cuda" if device.type == "cuda" and cfg.amp else None
        # The forward computations of a step, as pure functions of tensors (random draws are made
        # by the caller, so a compiled step draws the same numbers as an eager one). With
        # cfg.compile each is torch.compile'd: fewer, fused kernels, which is what counts on a GPU
        # at batch 64. The critic's update is written out by hand (critic_loss_and_gradients).
        self.fake_features_fn = self.fake_features
        self.generator_losses_fn = self.generator_losses
        self.decoder_update_loss_fn = self.decoder_update_loss
        if cfg.compile:
            self.fake_features_fn = torch.compile(self.fake_features, dynamic=False)
            self.generator_losses_fn = torch.compile(self.generator_losses, dynamic=False)
            self.decoder_update_loss_fn = torch.compile(self.decoder_update_loss, dynamic=False)

    # ------------------------------------------------------------------ one batch
    def sample(self) -> tuple[Tensor, Tensor, Tensor]:
        """Official next_seen_batch: a random subset of the training set (without replacement)."""
        index = torch.randperm(self.data.train_feature.size(0), device=self.device)[: self.cfg.batch_size]
        labels = self.data.train_label[index]
        return self.data.train_feature[index], self.data.attribute[labels], self.decoder_target[labels]

    def mixed_precision(self):
        """bf16 autocast where enabled (autocast_device), a no-op elsewhere; usable inside torch.compile."""
        return torch.autocast(self.autocast_device or "cpu", dtype=torch.bfloat16,
                              enabled=self.autocast_device is not None)

    def fake_features(self, x: Tensor, att: Tensor, noise: Tensor, feedback_pass: bool) -> Tensor:
        """The critic's fake batch, from the encoder's latent (encoded_noise) or from the noise itself."""
        cfg, m = self.cfg, self.model
        with self.mixed_precision():
            if cfg.encoded_noise:
                mean, log_var = m.encoder(x, att)
                z = mean + noise * torch.exp(0.5 * log_var)
            else:
                z = noise
            fake = m.generate(z, att, cfg.a1 if feedback_pass else None)
        return fake.to(x.dtype)

    def decoder_update_loss(self, x: Tensor, target: Tensor) -> Tensor:
        """recons_weight x the semantic decoder's loss on real features (its update in a critic step)."""
        with self.mixed_precision():
            _, reconstructed = self.model.decoder(x)
        return self.cfg.recons_weight * decoder_loss(reconstructed.float(), target, self.cfg.bce_att)

    def generator_losses(self, x: Tensor, att: Tensor, target: Tensor, noise: Tensor, prior_noise: Tensor | None,
                         feedback_pass: bool) -> tuple[Tensor, Tensor, Tensor]:
        """(loss, −critic score, VAE loss) of a generator step. `noise` reparametrises the encoder's
        latent; `prior_noise` (without encoded_noise) is the generator's second, prior sample."""
        cfg, m = self.cfg, self.model
        with self.mixed_precision():
            mean, log_var = m.encoder(x, att)
            z = mean + noise * torch.exp(0.5 * log_var)
            hidden = m.generator.hidden(z, att)
            if feedback_pass:
                with torch.no_grad():
                    decoder_hidden = m.decoder.hidden(m.generator.output(hidden))
                recon = m.generator.output(hidden, m.feedback(decoder_hidden), cfg.a1)
            else:
                recon = m.generator.output(hidden)
            if prior_noise is None:
                fake = recon
            else:
                noise_hidden = m.generator.hidden(prior_noise, att)
                if feedback_pass:
                    with torch.no_grad():  # official: the feedback for the noise sample comes from recon
                        decoder_hidden = m.decoder.hidden(recon)
                    fake = m.generator.output(noise_hidden, m.feedback(decoder_hidden), cfg.a1)
                else:
                    fake = m.generator.output(noise_hidden)
            critic_fake = m.critic(fake, att).float().mean()
            reconstructed = m.decoder(fake)[1] if cfg.recons_weight > 0 else None
        vae = vae_loss(recon, x, mean.float(), log_var.float())
        generator_cost = -critic_fake
        loss = vae + cfg.gammaG * generator_cost
        if reconstructed is not None:
            loss = loss + cfg.recons_weight * decoder_loss(reconstructed.float(), target, cfg.bce_att)
        return loss, generator_cost, vae

    def critic_step(self, x: Tensor, att: Tensor, target: Tensor, feedback_pass: bool) -> tuple[Tensor, ...]:
        cfg, m = self.cfg, self.model
        if cfg.recons_weight > 0:  # with weight 0 the official decoder update is an Adam step on zero gradients
            self.opt.decoder.zero_grad(set_to_none=True)
            self.decoder_update_loss_fn(x, target).backward()
            self.opt.decoder.step()
        noise = torch.randn(x.size(0), cfg.latent_size if cfg.encoded_noise else cfg.nz, device=self.device)
        with torch.no_grad():
            fake = self.fake_features_fn(x, att, noise, feedback_pass)
        alpha = torch.rand(x.size(0), 1, device=self.device)
        with self.mixed_precision():
            penalty, loss, wasserstein = critic_loss_and_gradients(
                m.critic, x, fake, att, alpha, cfg.gammaD, cfg.gammaD * self.lambda1)
        self.opt.critic.step()
        return penalty, loss, wasserstein

    def generator_step(self, x: Tensor, att: Tensor, target: Tensor, feedback_pass: bool) -> tuple[Tensor, Tensor]:
        cfg, m = self.cfg, self.model
        train_decoder = cfg.recons_weight > 0 and not cfg.freeze_dec
        m.critic.requires_grad_(False)
        m.decoder.requires_grad_(train_decoder)
        noise = torch.randn(x.size(0), cfg.latent_size, device=self.device)
        prior_noise = None if cfg.encoded_noise else torch.randn(x.size(0), cfg.nz, device=self.device)
        loss, generator_cost, vae = self.generator_losses_fn(x, att, target, noise, prior_noise, feedback_pass)
        for optimizer in (self.opt.encoder, self.opt.generator, self.opt.feedback, self.opt.decoder):
            optimizer.zero_grad(set_to_none=True)
        loss.backward()
        self.opt.encoder.step()
        self.opt.generator.step()
        if feedback_pass:
            self.opt.feedback.step()
        if train_decoder:
            self.opt.decoder.step()
        m.critic.requires_grad_(True)
        m.decoder.requires_grad_(True)
        return generator_cost.detach(), vae.detach()

    def step(self, feedback_pass: bool) -> dict[str, Tensor]:
        """One generator step preceded by `critic_iter` critic steps; returns device scalars."""
        penalties = []
        for _ in range(self.cfg.critic_iter):
            x, att, target = self.sample()
            penalty, loss_d, wasserstein = self.critic_step(x, att, target, feedback_pass)
            penalties.append(penalty)
        if self.cfg.adaptive_lambda:
            self.lambda1 = adapt_lambda(self.lambda1, torch.stack(penalties).mean())
        # The generator step reuses the last critic batch, as the official code does.
        loss_g, vae = self.generator_step(x, att, target, feedback_pass)
        return {"loss_d": loss_d, "loss_g": loss_g, "wasserstein": wasserstein, "vae_loss": vae}

    def epoch(self) -> dict[str, float]:
        steps_per_pass = math.ceil(self.data.train_feature.size(0) / self.cfg.batch_size)
        totals = torch.zeros(len(HISTORY_LOSSES), device=self.device)
        for loop in range(self.cfg.feedback_loop):
            for _ in range(steps_per_pass):
                out = self.step(feedback_pass=loop == 1)
                totals += torch.stack([out[k].float() for k in HISTORY_LOSSES])
        means = (totals / (self.cfg.feedback_loop * steps_per_pass)).tolist()
        return {**dict(zip(HISTORY_LOSSES, means)), "lambda1": float(self.lambda1)}

    # ------------------------------------------------------------------ checkpoints
    def state(self) -> dict:
        return {"model": self.model.state_dict(), "optimizers": self.opt.state_dict(),
                "lambda1": self.lambda1.detach().cpu()}

    def load_state(self, state: dict) -> None:
        self.model.load_state_dict(state["model"])
        self.opt.load_state_dict(state["optimizers"])
        self.lambda1 = state["lambda1"].to(self.device)


@dataclass
class TrainResult:
    trainer: Trainer
    history: list[dict] = field(default_factory=list)
    seconds_per_epoch: float = 0.0


def _rng_state(device: torch.device, eval_generator: torch.Generator) -> dict:
    state = {"cpu": torch.get_rng_state(), "eval": eval_generator.get_state()}
    if device.type == "cuda":
        state["cuda"] = torch.cuda.get_rng_state(device)
    return state


def _set_rng_state(state: dict, device: torch.device, eval_generator: torch.Generator) -> None:
    torch.set_rng_state(state["cpu"])
    eval_generator.set_state(state["eval"])
    if device.type == "cuda" and "cuda" in state:
        torch.cuda.set_rng_state(state["cuda"], device)


def train(cfg: Config, data: ZSLData, device: torch.device, *,
          evaluate: Callable[[Trainer, int, torch.Generator], dict] | None = None,
          checkpoint: Path | None = None, fingerprint: str = "",
          log: Callable[[str], None] = print, on_epoch: Callable[[dict], None] | None = None) -> TrainResult:
    """Train for cfg.nepoch epochs; `evaluate(trainer, epoch, generator)` runs after the epochs it is due.

    With `checkpoint`, a resumable state is written every cfg.checkpoint_every epochs (atomically)
    and picked up again when the same run (same `fingerprint`) is started anew; it is removed at
    the end. Resuming gives the same numbers as an uninterrupted run.
    """
    seed = cfg.manualSeed if cfg.manualSeed is not None else 0
    seed_everything(seed)
    eval_generator = torch.Generator(device=device).manual_seed(seed + 1)
    trainer = Trainer(cfg, data, device)
    result = TrainResult(trainer)
    start = 0
    if checkpoint is not None and Path(checkpoint).is_file():
        # The checkpoint is only a cache: one that cannot be read or restored (truncated, not a
        # checkpoint, inconsistent) is ignored and training starts from scratch; it is overwritten by
        # the next checkpoint. A failed restore may have half-applied, so everything is rebuilt.
        try:
            saved = torch.load(checkpoint, map_location=device, weights_only=True)
            if not isinstance(saved, dict):
                raise TypeError(f"expected a dict, found {type(saved).__name__}")
            if saved.get("fingerprint") == fingerprint:
                history = list(saved["history"])
                start = int(saved["epoch"])
                if not 0 < start <= cfg.nepoch or len(history) != start or not all(
                        isinstance(row, dict) and isinstance(row.get("seconds"), (int, float)) for row in history):
                    raise ValueError(f"epoch {start} does not match its {len(history)} history rows")
                trainer.load_state(saved["trainer"])
                _set_rng_state(saved["rng"], device, eval_generator)
                result.history = history
                log(f"resuming from {checkpoint} after epoch {start}")
            else:
                log(f"ignoring {checkpoint}: it belongs to a different configuration or dataset")
        except Exception as exc:  # noqa: BLE001 - any unreadable cache means: start afresh
            log(f"ignoring {checkpoint}: not a usable training checkpoint ({exception_first_line(exc)}); "
                f"starting from scratch")
            seed_everything(seed)
            eval_generator = torch.Generator(device=device).manual_seed(seed + 1)
            trainer = Trainer(cfg, data, device)
            result = TrainResult(trainer)
            start = 0
    elapsed = sum(row["seconds"] for row in result.history)
    for epoch in range(start, cfg.nepoch):
        began = time.perf_counter()
        row = {"epoch": epoch + 1, **trainer.epoch()}
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        row["seconds"] = time.perf_counter() - began
        elapsed += row["seconds"]
        due = (epoch + 1) % cfg.eval_every == 0 or epoch + 1 == cfg.nepoch
        if evaluate is not None and due:
            row.update(evaluate(trainer, epoch + 1, eval_generator))
        result.history.append(row)
        log(format_row(row, cfg.nepoch))
        every = cfg.checkpoint_every
        if checkpoint is not None and every and (epoch + 1) % every == 0 and epoch + 1 < cfg.nepoch:
            atomic_torch_save({"fingerprint": fingerprint, "epoch": epoch + 1, "trainer": trainer.state(),
                               "rng": _rng_state(device, eval_generator), "history": result.history}, checkpoint)
        if on_epoch is not None:
            on_epoch(row)
    result.seconds_per_epoch = elapsed / max(len(result.history), 1)
    return result


def format_row(row: dict, nepoch: int) -> str:
    text = (f"[{row['epoch']}/{nepoch}] {row['seconds']:.1f}s loss_D {row['loss_d']:.4f} "
            f"loss_G {row['loss_g']:.4f} W {row['wasserstein']:.4f} vae {row['vae_loss']:.4f} "
            f"lambda {row['lambda1']:.3f}")
    if row.get("gzsl_h") is not None:
        text += f" | GZSL s {row['gzsl_seen']:.4f} u {row['gzsl_unseen']:.4f} H {row['gzsl_h']:.4f}"
    if row.get("zsl_acc") is not None:
        text += f" | ZSL {row['zsl_acc']:.4f}"
    return text
