"""Transductive TF-VAEGAN: a second, unconditional critic D2 on unlabelled test features.

As the authors' pre-release train_tfvaegan_transductive.py (public fork xvdp/tfvaegan) computes it,
one generator step is
1. `critic_iter` steps of the semantic decoder and the conditional critic D on seen batches, as
   inductively (method/train.py);
2. `critic_iter` steps of D2 on unlabelled batches x_u: max γD2·(E[D2(x_u)] − E[D2(x̃_u)]) minus
   its gradient penalty (weight γD2·λ), x̃_u = G(z, a_u) with z ~ N(0, I) and the feedback pass as
   for the seen fakes;
3. λ adapts on the penalties of both critics (the authors' sum, see `step`);
4. one step of the encoder, generator, feedback module and decoder on
   L_VAE − γG·E[D(x̃, a)] + w·L_R(x̃) − γG_D2·E[D2(x̃_u)] + w·L_R(x̃_u),
   with a_u the class embeddings of the last D2 batch.

Which rows x_u are, and what a_u is, decide whether training reads test labels:
- `transductive_unlabelled`: `test` (default) every test row, seen and unseen together, in the feature
  file's order; `test_unseen` (the authors' and f-VAEGAN-D2's) the test_unseen rows only, a set that
  the test labels choose.
- `transductive_prior`: `uniform` (default) classes drawn uniformly from those the unlabelled rows may
  belong to (every class under `test`, the unseen ones under `test_unseen`); `labels` (the authors'
  code, the "known class prior" setting) the class embeddings of the batch's TRUE labels.
With both defaults the trainer is given no test label (data/preprocess.py, TrainingData): neither the
labels, nor the seen/unseen partition, nor the classes' sizes, nor the share of unseen rows.

Where this differs from the authors' code: `freeze_dec` keeps the decoder out of the generator step,
as the released inductive code does (the pre-release transductive script accepts the flag and
ignores it); with `encoded_noise: false` the seen fakes' feedback is that of the reconstruction, as
in the released code (the pre-release script takes each sample's own). docs/transductive.md.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from tfvaegan.config import Config
from tfvaegan.data.preprocess import TrainingData, ZSLData, training_data
from tfvaegan.errors import DataError
from tfvaegan.method.losses import adapt_lambda, critic_loss_and_gradients, decoder_loss
from tfvaegan.method.models import UnconditionalCritic
from tfvaegan.method.train import HISTORY_LOSSES, Trainer, same_tensors


@dataclass(frozen=True)
class UnlabelledSet:
    """The unlabelled features D2 learns from and the classes their fakes are drawn from (as a set)."""

    features: Tensor  # (n, D): the test rows (final run) or the validation rows (selection run)
    classes: Tensor  # sorted: every class under `test`, the unseen ones under `test_unseen`
    labels: Tensor | None  # each row's label: only with transductive_prior `labels` (it reads test labels)


def unlabelled_set(data: TrainingData | ZSLData, cfg: Config) -> UnlabelledSet:
    """The unlabelled part of `data` as transductive training may use it (DataError when empty)."""
    data = training_data(data, cfg)
    if data.unlabelled_feature is None:
        raise DataError(f"{data.source}: transductive training needs unlabelled rows; this data was cut for "
                        f"inductive training")
    return UnlabelledSet(data.unlabelled_feature, data.unlabelled_classes, data.unlabelled_label)


class TransductiveTrainer(Trainer):
    """Trainer with D2 (`critic2`), its Adam (lr, betas (beta1, 0.999), as the authors' optimizerD2)
    and the unlabelled set; `step` is one transductive generator step."""

    history_losses = HISTORY_LOSSES + ("loss_d2", "wasserstein2")

    def __init__(self, cfg: Config, data: TrainingData | ZSLData, device: torch.device):
        data = training_data(data, cfg)
        self.unlabelled = unlabelled_set(data, cfg)
        self.critic2 = UnconditionalCritic(cfg.resSize, cfg.ndh).to(device)  # made first: the authors' order
        super().__init__(cfg, data, device)
        self.opt["critic2"] = torch.optim.Adam(self.critic2.parameters(), lr=cfg.lr, betas=(cfg.beta1, 0.999),
                                               fused=True)
        self.last_unlabelled_classes: tuple[Tensor, Tensor] | None = None
        if cfg.compile:  # D2's forward computations, beside the three Trainer compiles
            self.unlabelled_fakes = torch.compile(self.unlabelled_fakes, dynamic=False)
            self.unlabelled_generator_loss = torch.compile(self.unlabelled_generator_loss, dynamic=False)

    # ------------------------------------------------------------------ the step
    def step(self, feedback_pass: bool) -> dict[str, Tensor]:
        cfg, k = self.cfg, self.cfg.critic_iter
        weighted_penalties = []  # γ·penalty of each critic step, the authors' gp_sum (over λ)
        for _ in range(k):
            x, att, target = self.sample()
            penalty, loss_d, wasserstein = self.critic_step(x, att, target, feedback_pass)
            weighted_penalties.append(cfg.gammaD * penalty)
        for _ in range(k):
            unlabelled, att_u, target_u = self.sample_unlabelled()
            penalty2, loss_d2, wasserstein2 = self.unlabelled_critic_step(unlabelled, att_u, feedback_pass)
            weighted_penalties.append(cfg.gamma_d2 * penalty2)
        if cfg.adaptive_lambda:
            # The authors divide the sum by γD2·2k: the mean penalty when γD2 = γD, as in every script.
            self.lambda1 = adapt_lambda(self.lambda1, torch.stack(weighted_penalties).sum() / (cfg.gamma_d2 * 2 * k))
        # The generator's D2 fakes take the class embeddings of the last D2 batch, as the authors' step.
        self.last_unlabelled_classes = (att_u, target_u)
        loss_g, vae = self.generator_step(x, att, target, feedback_pass)
        return {"loss_d": loss_d, "loss_g": loss_g, "wasserstein": wasserstein, "vae_loss": vae,
                "loss_d2": loss_d2, "wasserstein2": wasserstein2}

    def sample_unlabelled(self) -> tuple[Tensor, Tensor, Tensor]:
        """The authors' next_unseen_batch: a random subset of the unlabelled features, and the class
        embeddings (and decoder targets) the generator's D2 fakes are conditioned on."""
        n = self.unlabelled.features.size(0)
        index = torch.randperm(n, device=self.device)[: self.cfg.batch_size]
        if self.unlabelled.labels is not None:  # prior `labels`: the batch's true labels (test labels)
            classes = self.unlabelled.labels[index]
        else:  # prior `uniform`: classes drawn uniformly, independent of the batch
            draws = torch.randint(self.unlabelled.classes.numel(), (index.numel(),), device=self.device)
            classes = self.unlabelled.classes[draws]
        return self.unlabelled.features[index], self.data.attribute[classes], self.decoder_target[classes]

    def unlabelled_critic_step(self, unlabelled: Tensor, att_u: Tensor, feedback_pass: bool) -> tuple[Tensor, ...]:
        """D2's step: max γD2·(E[D2(x_u)] − E[D2(x̃_u)]) − γD2·λ·penalty."""
        cfg = self.cfg
        noise = torch.randn(unlabelled.size(0), cfg.nz, device=self.device)
        with torch.no_grad():
            fake = self.unlabelled_fakes(noise, att_u, feedback_pass)
        alpha = torch.rand(unlabelled.size(0), 1, device=self.device)
        no_embedding = unlabelled[:, :0]
        with self.mixed_precision():
            penalty, loss, wasserstein = critic_loss_and_gradients(
                self.critic2, unlabelled, fake, no_embedding, alpha, cfg.gamma_d2, cfg.gamma_d2 * self.lambda1)
        self.opt["critic2"].step()
        return penalty, loss, wasserstein

    def critics(self) -> list[torch.nn.Module]:
        return [self.model.critic, self.critic2]

    def generator_objective(self, x: Tensor, att: Tensor, target: Tensor,
                            feedback_pass: bool) -> tuple[Tensor, Tensor, Tensor]:
        loss, generator_cost, vae = super().generator_objective(x, att, target, feedback_pass)
        att_u, target_u = self.last_unlabelled_classes
        noise = torch.randn(att_u.size(0), self.cfg.nz, device=self.device)
        return loss + self.unlabelled_generator_loss(noise, att_u, target_u, feedback_pass), generator_cost, vae

    # ------------------------------------------------------------------ its forward computations
    def unlabelled_fakes(self, noise: Tensor, att_u: Tensor, feedback_pass: bool) -> Tensor:
        """x̃_u = G(z, a_u), z ~ N(0, I), with its own feedback in the feedback pass."""
        with self.mixed_precision():
            fake = self.model.generate(noise, att_u, self.cfg.a1 if feedback_pass else None)
        return fake.float()

    def unlabelled_generator_loss(self, noise: Tensor, att_u: Tensor, target_u: Tensor,
                                  feedback_pass: bool) -> Tensor:
        """−γG_D2·E[D2(x̃_u)] + recons_weight·L_R(x̃_u)."""
        cfg, m = self.cfg, self.model
        with self.mixed_precision():
            fake = m.generate(noise, att_u, cfg.a1 if feedback_pass else None)
            score = self.critic2(fake).float().mean()
            reconstructed = m.decoder(fake)[1] if self.decodes else None
        loss = -cfg.gamma_g_d2 * score
        if reconstructed is not None:
            loss = loss + cfg.recons_weight * decoder_loss(reconstructed.float(), target_u, cfg.bce_att)
        return loss

    # ------------------------------------------------------------------ checkpoints
    def state(self) -> dict:
        return {**super().state(), "critic2": self.critic2.state_dict()}

    def misfit(self, state) -> str | None:
        if not isinstance(state, dict) or "critic2" not in state:
            return "expected the model, optimizers, lambda1 and critic2 of a transductive trainer"
        if not same_tensors(state["critic2"], self.critic2.state_dict()):
            return "its critic2 state does not fit this configuration's D2"
        return super().misfit({key: value for key, value in state.items() if key != "critic2"})

    def load_state(self, state: dict) -> None:
        super().load_state(state)
        self.critic2.load_state_dict(state["critic2"])

