"""Training TF-VAEGAN as the official train_images.py does, one generator step read top to bottom.

Per epoch, `feedback_loop` passes over the training set; pass 1 (the second) applies the feedback
and is the only one that optimises the feedback module. A generator step (`Trainer.step`) is
`critic_iter` critic steps, each first updating the semantic decoder on real features, then one
step of the encoder, generator, feedback module and decoder on the last critic batch. The
gradient-penalty weight λ adapts: x1.1 when the mean penalty of a generator step's critic steps
exceeds 1.05, /1.1 when it is below 1.001.

Deliberate differences from the official code, none of which changes what is computed in float32
(the default, as the official code; on CUDA the opt-in `amp: true` runs the forward passes' matrix
products in bf16 and the rest in TF32, with the generator's and decoder's output activations and
every loss in float32, which moves the numbers at rounding level and, through the GAN, beyond):
- the critic's loss and gradients are written out in closed form (losses.critic_loss_and_gradients):
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

import math
import os
import time
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import torch
from torch import Tensor

from tfvaegan.config import Config
from tfvaegan.data.preprocess import TrainingData, ZSLData, training_data
from tfvaegan.errors import exception_first_line
from tfvaegan.fileio import atomic_torch_save
from tfvaegan.method.losses import adapt_lambda, critic_loss_and_gradients, decoder_loss, vae_loss
from tfvaegan.method.models import FVAEGAN, TFVAEGAN, FeatureGenerator

HISTORY_LOSSES = ("loss_d", "loss_g", "wasserstein", "vae_loss")


def make_optimizers(model: FeatureGenerator, cfg: Config) -> dict[str, torch.optim.Optimizer]:
    """One Adam per module, as the official script builds them: lr for the encoder, generator and
    critic, feed_lr for the feedback module, dec_lr for the decoder (f-VAEGAN has neither, f-CLSWGAN no
    encoder either); betas (beta1, 0.999) except for the encoder, which keeps Adam's default betas.
    FREE and f-CLSWGAN's references build theirs the same way (method/free.py adds its own two).

    Fused Adam: one kernel per parameter group instead of a pass per operation; on a CPU it is ~5x
    faster than the default, which matters with ~160M parameter updates per step.
    """
    betas = (cfg.beta1, 0.999)
    adam = lambda module, **settings: torch.optim.Adam(getattr(model, module).parameters(), fused=True, **settings)
    optimizers = {"encoder": adam("encoder", lr=cfg.lr)} if hasattr(model, "encoder") else {}
    optimizers["generator"] = adam("generator", lr=cfg.lr, betas=betas)
    optimizers["critic"] = adam("critic", lr=cfg.lr, betas=betas)
    if isinstance(model, TFVAEGAN):
        optimizers["feedback"] = adam("feedback", lr=cfg.feed_lr, betas=betas)
        optimizers["decoder"] = adam("decoder", lr=cfg.dec_lr, betas=betas)
    return optimizers


class Trainer:
    """The model, its optimisers and the penalty weight λ; `step` is one generator step.

    TF-VAEGAN's, and f-VAEGAN's (`method: fvaegan`): the same step without the decoder and feedback."""

    history_losses = HISTORY_LOSSES  # the per-epoch means of `step`'s outputs, in train_log.csv

    def __init__(self, cfg: Config, data: TrainingData | ZSLData, device: torch.device):
        self.cfg = cfg
        # A split is cut down to what training may see at once: the trainer never holds a test label
        # that the config does not ask for (data/preprocess.py, TrainingData).
        self.data = training_data(data, cfg)
        data = self.data
        self.device = device
        self.model = self.make_model(cfg).to(device)
        self.opt = self.make_optimizers()
        # The semantic decoder's loss is computed: a decoder (tfvaegan), at a weight above 0.
        self.decodes = self.model.decoder is not None and cfg.recons_weight > 0
        self.lambda1 = torch.tensor(cfg.lambda1, device=device)
        # The decoder regresses the min-max scaled targets in the action code's bce_att mode.
        self.decoder_target = data.bce_attribute if cfg.bce_att and data.bce_attribute is not None else data.attribute
        # bf16 autocast for the model's forward passes (CUDA with cfg.amp); losses stay in float32.
        self.autocast_device = "cuda" if device.type == "cuda" and cfg.amp else None
        # The forward computations of a step are pure functions of tensors (the caller makes every
        # random draw, so a compiled step draws the same numbers as an eager one). With cfg.compile
        # they are torch.compile'd here, in one place: fewer, fused kernels, which is what counts on a
        # GPU at batch 64. The critic's update needs none (closed form, losses.critic_loss_and_gradients).
        if cfg.compile:
            self.decoder_update_loss = torch.compile(self.decoder_update_loss, dynamic=False)
            self.fake_features = torch.compile(self.fake_features, dynamic=False)
            self.generator_losses = torch.compile(self.generator_losses, dynamic=False)

    def make_model(self, cfg: Config) -> FVAEGAN:
        if cfg.method not in ("tfvaegan", "fvaegan"):  # f-CLSWGAN's and FREE's trainers are their rooms'
            raise ValueError(f"Trainer trains methods tfvaegan and fvaegan, not {cfg.method!r}: "
                             f"take the trainer from tfvaegan.method.lineage.trainer_for(cfg)")
        return TFVAEGAN(cfg) if cfg.method == "tfvaegan" else FVAEGAN(cfg)

    def make_optimizers(self) -> dict[str, torch.optim.Optimizer]:
        return make_optimizers(self.model, self.cfg)

    # ------------------------------------------------------------------ the step
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

    def sample(self) -> tuple[Tensor, Tensor, Tensor]:
        """Official next_seen_batch: a random subset of the training set (without replacement)."""
        index = torch.randperm(self.data.train_feature.size(0), device=self.device)[: self.cfg.batch_size]
        self.batch_index = index  # the methods whose losses read the batch's labels (f-CLSWGAN, FREE)
        labels = self.data.train_label[index]
        return self.data.train_feature[index], self.data.attribute[labels], self.decoder_target[labels]

    def critic_step(self, x: Tensor, att: Tensor, target: Tensor, feedback_pass: bool) -> tuple[Tensor, ...]:
        """The decoder's step on real features (min recons_weight·L_R), then the critic's (max L_WGAN).

        The fakes' noise is drawn first: the decoder's step draws nothing, and FREE's step in its place
        (semantic_step) draws after it, as train_free.py does."""
        cfg = self.cfg
        noise = torch.randn(x.size(0), cfg.latent_size if cfg.encoded_noise else cfg.nz, device=self.device)
        self.semantic_step(x, att, target)
        with torch.no_grad():
            fake = self.fake_features(x, att, noise, feedback_pass)
        alpha = torch.rand(x.size(0), 1, device=self.device)
        with self.mixed_precision():
            penalty, loss, wasserstein = critic_loss_and_gradients(
                self.model.critic, x, fake, att, alpha, cfg.gammaD, cfg.gammaD * self.lambda1)
        self.opt["critic"].step()
        return penalty, loss, wasserstein

    def semantic_step(self, x: Tensor, att: Tensor, target: Tensor) -> None:
        """The step a critic iteration makes on real features before the critic's: the decoder's."""
        if self.decodes:  # with weight 0 the official decoder update is an Adam step on zero gradients
            self.opt["decoder"].zero_grad(set_to_none=True)
            self.decoder_update_loss(x, target).backward()
            self.opt["decoder"].step()

    def generator_step(self, x: Tensor, att: Tensor, target: Tensor, feedback_pass: bool) -> tuple[Tensor, Tensor]:
        """min L_VAE − γG·E[D(x̃, a)] + recons_weight·L_R(x̃) over the encoder, generator, feedback
        module (in the feedback pass) and decoder (unless freeze_dec); the critic is fixed."""
        cfg, m = self.cfg, self.model
        train_decoder = self.decodes and not cfg.freeze_dec
        for critic in self.critics():
            critic.requires_grad_(False)
        if m.decoder is not None:
            m.decoder.requires_grad_(train_decoder)
        loss, generator_cost, vae = self.generator_objective(x, att, target, feedback_pass)
        for name, optimizer in self.opt.items():
            if name not in ("critic", "critic2"):  # the critics' gradients are written whole by their own steps
                optimizer.zero_grad(set_to_none=True)
        loss.backward()
        self.opt["encoder"].step()
        self.opt["generator"].step()
        if feedback_pass:
            self.opt["feedback"].step()
        if train_decoder:
            self.opt["decoder"].step()
        for critic in self.critics():
            critic.requires_grad_(True)
        if m.decoder is not None:
            m.decoder.requires_grad_(True)
        return generator_cost.detach(), vae.detach()

    def critics(self) -> list[torch.nn.Module]:
        """The critics the generator step holds fixed."""
        return [self.model.critic]

    def generator_objective(self, x: Tensor, att: Tensor, target: Tensor,
                            feedback_pass: bool) -> tuple[Tensor, Tensor, Tensor]:
        """The generator step's noise draws and its (loss, −E[D(x̃, a)], L_VAE)."""
        noise = torch.randn(x.size(0), self.cfg.latent_size, device=self.device)
        prior_noise = None if self.cfg.encoded_noise else torch.randn(x.size(0), self.cfg.nz, device=self.device)
        return self.generator_losses(x, att, target, noise, prior_noise, feedback_pass)

    # ------------------------------------------------------------------ its forward computations
    def mixed_precision(self):
        """bf16 autocast where enabled (autocast_device), a no-op elsewhere; usable inside torch.compile."""
        return torch.autocast(self.autocast_device or "cpu", dtype=torch.bfloat16,
                              enabled=self.autocast_device is not None)

    def decoder_update_loss(self, x: Tensor, target: Tensor) -> Tensor:
        """recons_weight · L_R(x): the semantic decoder's loss on real features."""
        with self.mixed_precision():
            _, reconstructed = self.model.decoder(x)
        return self.cfg.recons_weight * decoder_loss(reconstructed.float(), target, self.cfg.bce_att)

    def fake_features(self, x: Tensor, att: Tensor, noise: Tensor, feedback_pass: bool) -> Tensor:
        """The critic's fake batch x̃ = G(z, a): z from the encoder (encoded_noise) or the noise itself."""
        cfg, m = self.cfg, self.model
        with self.mixed_precision():
            if cfg.encoded_noise:
                mean, log_var = m.encoder(x, att)
                z = mean + noise * torch.exp(0.5 * log_var)
            else:
                z = noise
            fake = m.generate(z, att, cfg.a1 if feedback_pass else None)
        return fake.to(x.dtype)

    def generator_losses(self, x: Tensor, att: Tensor, target: Tensor, noise: Tensor, prior_noise: Tensor | None,
                         feedback_pass: bool) -> tuple[Tensor, Tensor, Tensor]:
        """(loss, −E[D(x̃, a)], L_VAE) of a generator step.

        z = μ + ε·σ reparametrises the encoder's q(z | x, a) (`noise` is ε) and x̂ = G(z, a) is the
        reconstruction L_VAE scores. The critic and the decoder judge x̃: x̂ itself with
        encoded_noise, otherwise G(`prior_noise`, a), whose feedback is that of x̂ (official).
        """
        cfg, m = self.cfg, self.model
        feedback_weight = cfg.a1 if feedback_pass else None
        with self.mixed_precision():
            mean, log_var = m.encoder(x, att)
            z = mean + noise * torch.exp(0.5 * log_var)
            recon = m.generate(z, att, feedback_weight)
            fake = recon if prior_noise is None else m.generate(prior_noise, att, feedback_weight, recon)
            critic_fake = m.critic(fake, att).float().mean()
            reconstructed = m.decoder(fake)[1] if self.decodes else None
        vae = vae_loss(recon, x, mean.float(), log_var.float())
        generator_cost = -critic_fake
        loss = vae + cfg.gammaG * generator_cost
        if reconstructed is not None:
            loss = loss + cfg.recons_weight * decoder_loss(reconstructed.float(), target, cfg.bce_att)
        return loss, generator_cost, vae

    # ------------------------------------------------------------------ epochs and checkpoints
    def epoch(self) -> dict[str, float]:
        steps_per_pass = math.ceil(self.data.train_feature.size(0) / self.cfg.batch_size)
        totals = torch.zeros(len(self.history_losses), device=self.device)
        for loop in range(self.cfg.feedback_loop):  # passes; the second applies the feedback, if the model has one
            for _ in range(steps_per_pass):
                out = self.step(feedback_pass=loop == 1 and self.model.uses_feedback)
                totals += torch.stack([out[k].float() for k in self.history_losses])
        means = (totals / (self.cfg.feedback_loop * steps_per_pass)).tolist()
        return {**dict(zip(self.history_losses, means)), "lambda1": float(self.lambda1)}

    def state(self) -> dict:
        return {"model": self.model.state_dict(), "optimizers": {k: o.state_dict() for k, o in self.opt.items()},
                "lambda1": self.lambda1.detach().cpu()}

    def misfit(self, state) -> str | None:
        """Why `state` (of `state()`) cannot be loaded into this trainer, or None when it can."""
        if not isinstance(state, dict) or set(state) != {"model", "optimizers", "lambda1"}:
            return "expected the model, optimizers and lambda1 of a trainer"
        if not same_tensors(state["model"], self.model.state_dict()):
            return "its model state does not fit this configuration's model"
        optimizers = state["optimizers"]
        if not isinstance(optimizers, dict) or set(optimizers) != set(self.opt):
            return f"expected the optimizers {sorted(self.opt)}"
        for name, optimizer in self.opt.items():
            groups = optimizers[name].get("param_groups") if isinstance(optimizers[name], dict) else None
            if not isinstance(groups, list) or [len(g.get("params", ())) for g in groups] != \
                    [len(g["params"]) for g in optimizer.param_groups]:
                return f"its {name} optimizer state does not fit this model"
        lambda1 = state["lambda1"]
        if not (isinstance(lambda1, Tensor) and lambda1.dim() == 0 and lambda1.is_floating_point()):
            return "expected lambda1 as a floating-point scalar tensor"
        return None

    def load_state(self, state: dict) -> None:
        self.model.load_state_dict(state["model"])
        for name, optimizer in self.opt.items():
            optimizer.load_state_dict(state["optimizers"][name])
        self.lambda1 = state["lambda1"].to(self.device)


def same_tensors(found, expected: dict[str, Tensor]) -> bool:
    return (isinstance(found, dict) and set(found) == set(expected)
            and all(isinstance(found[k], Tensor) and found[k].shape == v.shape for k, v in expected.items()))


@dataclass
class TrainResult:
    trainer: Trainer
    history: list[dict] = field(default_factory=list)
    seconds_per_epoch: float = 0.0


def train(cfg: Config, data: TrainingData | ZSLData, device: torch.device, *,
          make_trainer: Callable[[Config, TrainingData, torch.device], Trainer] = Trainer,
          evaluate: Callable[[Trainer, int, torch.Generator], dict] | None = None,
          checkpoint: Path | None = None, fingerprint: str = "",
          log: Callable[[str], None] = print, on_epoch: Callable[[dict], None] | None = None) -> TrainResult:
    """Train for cfg.nepoch epochs; `evaluate(trainer, epoch, generator)` runs after the epochs it is due.

    With `checkpoint`, a resumable state is written every cfg.checkpoint_every epochs (atomically)
    and picked up again when the same run (same `fingerprint`) is started anew; it is removed at
    the end. Resuming gives the same numbers as an uninterrupted run. `make_trainer` builds the
    trainer (method/transductive.py's for transductive training).
    """
    seed = cfg.manualSeed if cfg.manualSeed is not None else 0
    torch.manual_seed(seed)  # seeds CUDA too
    eval_generator = torch.Generator(device=device).manual_seed(seed + 1)
    trainer = make_trainer(cfg, training_data(data, cfg), device)
    result = TrainResult(trainer, resume(checkpoint, fingerprint, trainer, eval_generator, log))
    elapsed = sum(row["seconds"] for row in result.history)
    started, first_epoch = time.perf_counter(), len(result.history)  # for the progress line's clock
    for epoch in range(len(result.history), cfg.nepoch):
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
        wall = time.perf_counter() - started
        log(format_row(row, cfg.nepoch, wall, wall / (epoch + 1 - first_epoch) * (cfg.nepoch - epoch - 1)))
        every = cfg.checkpoint_every
        if checkpoint is not None and every and (epoch + 1) % every == 0 and epoch + 1 < cfg.nepoch:
            atomic_torch_save({"fingerprint": fingerprint, "epoch": epoch + 1, "trainer": trainer.state(),
                               "rng": _rng_state(device, eval_generator), "history": result.history}, checkpoint)
        for watcher in _WATCHERS.get():
            watcher(list(result.history), checkpoint)
        if on_epoch is not None:
            on_epoch(row)
        _pause_if_asked(epoch + 1, log)
    result.seconds_per_epoch = elapsed / max(len(result.history), 1)
    return result


# Watchers of every training's history as it grows, beside one call's `on_epoch`: the train stage keeps
# train_log.csv current through one (stages.train_stage) for each training its protocol makes, without the
# protocols passing a callback down. Called after every epoch (after its checkpoint, before `on_epoch`) with
# the history so far (resumed epochs included) and the training's checkpoint path, which tells a protocol's
# trainings apart (the val protocol's selection run and final run).
_WATCHERS: ContextVar[tuple[Callable[[list[dict], Path | None], None], ...]] = ContextVar("watchers", default=())


@contextmanager
def watching_history(watcher: Callable[[list[dict], Path | None], None]):
    """Inside the block, every `train` (in this thread or task) calls watcher(history, checkpoint) after each epoch."""
    token = _WATCHERS.set(_WATCHERS.get() + (watcher,))
    try:
        yield
    finally:
        _WATCHERS.reset(token)


# For tests of interruption: training stops after this epoch (and its checkpoint) and waits to be
# interrupted, so that a Ctrl-C lands mid-training whatever the machine's speed.
PAUSE_AFTER_EPOCH = "TFVAEGAN_PAUSE_AFTER_EPOCH"


def _pause_if_asked(epoch: int, log: Callable[[str], None]) -> None:
    if os.environ.get(PAUSE_AFTER_EPOCH) == str(epoch):
        log(f"pausing after epoch {epoch} ({PAUSE_AFTER_EPOCH}); waiting to be interrupted")
        while True:
            time.sleep(3600)


def resume(checkpoint: Path | None, fingerprint: str, trainer: Trainer, eval_generator: torch.Generator,
           log: Callable[[str], None]) -> list[dict]:
    """Restore `trainer` and the random state from `checkpoint` when it holds this run (`fingerprint`);
    returns the history of the epochs it had trained, [] when starting afresh.

    The checkpoint is only a cache: one that cannot be read or does not fit (truncated, not a
    checkpoint, inconsistent) is ignored, and overwritten by the next checkpoint. Everything is
    checked before anything is restored, so a refused checkpoint leaves the fresh trainer as it is.
    """
    if checkpoint is None or not Path(checkpoint).is_file():
        return []
    device = trainer.device
    try:
        saved = torch.load(checkpoint, map_location=device, weights_only=True)
        if not isinstance(saved, dict):
            raise TypeError(f"expected a dict, found {type(saved).__name__}")
        if saved.get("fingerprint") != fingerprint:
            log(f"ignoring {checkpoint}: it belongs to a different configuration or dataset")
            return []
        history, start = list(saved["history"]), int(saved["epoch"])
        if not 0 < start <= trainer.cfg.nepoch or len(history) != start or not all(
                isinstance(row, dict) and isinstance(row.get("seconds"), (int, float)) for row in history):
            raise ValueError(f"epoch {start} does not match its {len(history)} history rows")
        problem = trainer.misfit(saved["trainer"]) or _rng_misfit(saved["rng"], device, eval_generator)
        if problem:
            raise ValueError(problem)
    except Exception as exc:  # noqa: BLE001 - any unreadable cache means: start afresh
        log(f"ignoring {checkpoint}: not a usable training checkpoint ({exception_first_line(exc)}); "
            f"starting from scratch")
        return []
    trainer.load_state(saved["trainer"])
    _set_rng_state(saved["rng"], device, eval_generator)
    log(f"resuming from {checkpoint} after epoch {start}")
    return history


def _rng_state(device: torch.device, eval_generator: torch.Generator) -> dict:
    state = {"cpu": torch.get_rng_state(), "eval": eval_generator.get_state()}
    if device.type == "cuda":
        state["cuda"] = torch.cuda.get_rng_state(device)
    return state


def _rng_misfit(saved, device: torch.device, eval_generator: torch.Generator) -> str | None:
    current = _rng_state(device, eval_generator)
    if not isinstance(saved, dict) or not all(
            isinstance(saved.get(key), Tensor) and saved[key].dtype == state.dtype and saved[key].shape == state.shape
            for key, state in current.items() if key != "cuda"):
        return "expected the random states of the run (cpu, eval)"
    return None


def _set_rng_state(state: dict, device: torch.device, eval_generator: torch.Generator) -> None:
    torch.set_rng_state(state["cpu"].cpu())
    eval_generator.set_state(state["eval"].cpu())
    if device.type == "cuda" and "cuda" in state:
        torch.cuda.set_rng_state(state["cuda"].cpu(), device)


def format_row(row: dict, nepoch: int, elapsed: float | None = None, eta: float | None = None) -> str:
    """An epoch's progress line: its seconds; with `elapsed`, the wall-clock time since the training (or its
    resumption) began, evaluations included, and the `eta` of its remaining epochs at that pace; its losses
    and accuracies."""
    text = f"[{row['epoch']}/{nepoch}] {row['seconds']:.1f}s"
    if elapsed is not None:
        text += f" elapsed {_clock(elapsed)}" + ("" if eta is None else f" ETA {_clock(eta)}")
    text += (f" loss_D {row['loss_d']:.4f} "
            f"loss_G {row['loss_g']:.4f} W {row['wasserstein']:.4f} vae {row['vae_loss']:.4f} "
            f"lambda {row['lambda1']:.3f}")
    if row.get("loss_d2") is not None:
        text += f" loss_D2 {row['loss_d2']:.4f} W2 {row['wasserstein2']:.4f}"
    if row.get("gzsl_h") is not None:
        text += f" | GZSL s {row['gzsl_seen']:.4f} u {row['gzsl_unseen']:.4f} H {row['gzsl_h']:.4f}"
    if row.get("zsl_acc") is not None:
        text += f" | ZSL {row['zsl_acc']:.4f}"
    return text


def _clock(seconds: float) -> str:
    """Seconds as h:mm:ss."""
    minutes, secs = divmod(round(seconds), 60)
    return f"{minutes // 60}:{minutes % 60:02d}:{secs:02d}"
