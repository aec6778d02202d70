"""f-CLSWGAN (Xian et al., CVPR 2018), `method: fclswgan`: a conditional WGAN-GP whose generator is also
trained to make features a softmax classifier, pre-trained on the seen classes' real features, recognises.

    critic:     max  E[D(x, a)] − E[D(G(z, a), a)] − λ·E[(‖∇D(x̂, a)‖ − 1)²]       (λ fixed: adaptive_lambda false)
    generator:  min −E[D(G(z, a), a)] + cls_weight · NLL(P(y | G(z, a); θ_pretrained))

G is an MLP with one hidden layer of `ngh` units and a ReLU output; no encoder, no decoder, no feedback.
The classifiers of the evaluation read the generated features themselves. bench/official_fclswgan.py
transcribes the reference code (its docstring says which copy and why); tests/test_method_oracles.py
compares the two. The weights γD, γG of the shared critic code are 1 in f-CLSWGAN's settings files.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from tfvaegan.config import Config
from tfvaegan.method.classifier import ClassifierSettings, local_labels, train_softmax
from tfvaegan.method.models import Critic, FeatureGenerator, Generator
from tfvaegan.method.train import Trainer

# The pre-trained classifier: the reference's CLASSIFIER(..., 0.001, 0.5, 50, 100, ...) call in clswgan.py
# (lr, beta1, epochs, batch size), trained to the last epoch.
PRETRAIN = ClassifierSettings(lr=0.001, beta1=0.5, nepoch=50, batch_size=100, select="last")


class FCLSWGAN(FeatureGenerator):
    """f-CLSWGAN's boxes: the generator, the conditional critic and (while training) the frozen seen-class
    classifier."""

    def __init__(self, cfg: Config, seen_classifier: nn.Linear | None = None):
        super().__init__(cfg)
        self.generator = Generator(cfg.nz, cfg.attSize, cfg.resSize, cfg.ngh, relu_output=True)
        self.critic = Critic(cfg.resSize, cfg.attSize, cfg.ndh)
        self.seen_classifier = seen_classifier
        if seen_classifier is not None:
            seen_classifier.requires_grad_(False)


def pretrain_seen_classifier(features: Tensor, seen_labels: Tensor, n_seen: int,
                             generator: torch.Generator) -> nn.Linear:
    """The softmax classifier over the seen classes, trained on their real features (PRETRAIN's settings)."""
    trained = {}
    train_softmax(features, seen_labels, n_seen, PRETRAIN, generator,
                  on_epoch=lambda epoch, weight, bias: trained.update(weight=weight, bias=bias))
    layer = nn.Linear(features.size(1), n_seen).to(features.device)
    with torch.no_grad():
        layer.weight.copy_(trained["weight"].t())
        layer.bias.copy_(trained["bias"])
    return layer


class FCLSWGANTrainer(Trainer):
    """The critic's steps and optimisers as every method's (Trainer.critic_step: z ~ N(0, I), the closed-form
    WGAN-GP; train.make_optimizers: the reference's two Adam at lr, betas (beta1, 0.999)), then the generator's
    step with the classification loss."""

    def make_model(self, cfg: Config) -> FCLSWGAN:
        data = self.data
        seed = cfg.manualSeed if cfg.manualSeed is not None else 0
        # Its own random stream (the reference draws from the global one before training starts), so that
        # the generator's training draws the same numbers whatever the pre-training consumed.
        generator = torch.Generator(device=data.train_feature.device).manual_seed(seed + 4)
        classifier = pretrain_seen_classifier(data.train_feature, local_labels(data.train_label, data.seenclasses),
                                              len(data.seenclasses), generator)
        return FCLSWGAN(cfg, classifier)

    def generator_step(self, x: Tensor, att: Tensor, target: Tensor, feedback_pass: bool) -> tuple[Tensor, Tensor]:
        """min −γG·E[D(G(z, a), a)] + cls_weight·NLL on the last critic batch's classes; returns
        (−E[D], the classification loss), the latter in train_log.csv's vae_loss column."""
        cfg, m = self.cfg, self.model
        noise = torch.randn(x.size(0), cfg.nz, device=self.device)
        labels = local_labels(self.data.train_label[self.batch_index], self.data.seenclasses)
        m.critic.requires_grad_(False)
        self.opt["generator"].zero_grad(set_to_none=True)
        fake = m.generator(noise, att)
        generator_cost = -m.critic(fake, att).mean()
        classification = F.cross_entropy(m.seen_classifier(fake), labels)
        (cfg.gammaG * generator_cost + cfg.cls_weight * classification).backward()
        self.opt["generator"].step()
        m.critic.requires_grad_(True)
        return generator_cost.detach(), classification.detach()
