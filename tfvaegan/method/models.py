"""The paper's boxes: Encoder, Generator, Critic, semantic Decoder and Feedback module (and, for
transductive training, the unconditional critic D2); `FVAEGAN`, the encoder, generator and critic of
f-VAEGAN, which `TFVAEGAN` extends with the decoder and the feedback module, as the paper extends it.

Layer sizes, LeakyReLU(0.2), the generator's sigmoid output and N(0, 0.02) initialisation follow
the official networks/TFVAEGAN_model.py. Unlike it, every width is an argument: the official code
takes the encoder's and generator's hidden width from layer-size lists (4096 whatever `ngh` says)
and its classifiers assume a 4096-wide decoder state; here each comes from the config.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from tfvaegan.config import Config

LEAK = 0.2
# Rows per forward pass outside training (synthesis, discriminative features): bounds the 4096-wide
# hidden activations in memory.
CHUNK_ROWS = 16384


def init_weights(module: nn.Module) -> None:
    if isinstance(module, nn.Linear):
        nn.init.normal_(module.weight, 0.0, 0.02)
        nn.init.zeros_(module.bias)


def leaky(x: Tensor) -> Tensor:
    return F.leaky_relu(x, LEAK, inplace=True)


class Encoder(nn.Module):
    """q(z | x, a): features and class embedding to the mean and log-variance of the latent code."""

    def __init__(self, res_size: int, att_size: int, latent_size: int, hidden: int):
        super().__init__()
        self.fc1 = nn.Linear(res_size + att_size, hidden)
        self.fc3 = nn.Linear(hidden, 2 * latent_size)
        self.linear_means = nn.Linear(2 * latent_size, latent_size)
        self.linear_log_var = nn.Linear(2 * latent_size, latent_size)
        self.apply(init_weights)

    def forward(self, x: Tensor, att: Tensor) -> tuple[Tensor, Tensor]:
        h = leaky(self.fc3(leaky(self.fc1(torch.cat((x, att), dim=1)))))
        return self.linear_means(h), self.linear_log_var(h)


class Generator(nn.Module):
    """p(x | z, a), with the feedback added to its hidden layer: x̂ = σ(W₂(h + α·feedback)).

    `relu_output`: f-CLSWGAN's MLP_G, whose output is ReLU(W₂h) (no feedback there)."""

    def __init__(self, nz: int, att_size: int, res_size: int, hidden: int, relu_output: bool = False):
        super().__init__()
        self.fc1 = nn.Linear(nz + att_size, hidden)
        self.fc3 = nn.Linear(hidden, res_size)
        self.relu_output = relu_output
        self.apply(init_weights)

    def hidden(self, z: Tensor, att: Tensor) -> Tensor:
        return leaky(self.fc1(torch.cat((z, att), dim=1)))

    def output(self, hidden: Tensor, feedback: Tensor | None = None, weight: float = 0.0) -> Tensor:
        if feedback is not None:
            hidden = hidden + weight * feedback
        if self.relu_output:
            return torch.relu(self.fc3(hidden).float())
        # The sigmoid runs in float32 even under bf16 autocast (amp): there it would round to exactly
        # 1 from x ≈ 7 (float32: x ≈ 17), and such units meet the VAE loss's BCE at its clamp with
        # zero gradient. Without autocast .float() is a no-op.
        return torch.sigmoid(self.fc3(hidden).float())

    def forward(self, z: Tensor, att: Tensor) -> Tensor:
        return self.output(self.hidden(z, att))


class Critic(nn.Module):
    """Conditional WGAN critic D(x, a) → score."""

    def __init__(self, res_size: int, att_size: int, hidden: int):
        super().__init__()
        self.fc1 = nn.Linear(res_size + att_size, hidden)
        self.fc2 = nn.Linear(hidden, 1)
        self.apply(init_weights)

    def forward(self, x: Tensor, att: Tensor) -> Tensor:
        return self.fc2(leaky(self.fc1(torch.cat((x, att), dim=1))))


class UnconditionalCritic(Critic):
    """Transductive WGAN critic D2(x) → score on features alone (the authors' Discriminator_D2): a critic
    whose class embedding is empty, so the closed-form critic update serves both critics."""

    def __init__(self, res_size: int, hidden: int):
        super().__init__(res_size, 0, hidden)

    def forward(self, x: Tensor, att: Tensor | None = None) -> Tensor:
        return super().forward(x, x[:, :0])


class Decoder(nn.Module):
    """Semantic embedding decoder x → (hidden, â).

    â is L2-normalised (the image code) or squashed by a sigmoid (the action code's `bce_att`).
    The hidden state feeds the feedback module and the discriminative features.
    """

    def __init__(self, res_size: int, att_size: int, hidden: int, sigmoid_output: bool = False):
        super().__init__()
        self.fc1 = nn.Linear(res_size, hidden)
        self.fc3 = nn.Linear(hidden, att_size)
        self.sigmoid_output = sigmoid_output
        self.apply(init_weights)

    def hidden(self, x: Tensor) -> Tensor:
        """The hidden state alone: all the feedback module needs (the output layer is skipped)."""
        return leaky(self.fc1(x))

    def forward(self, x: Tensor) -> tuple[Tensor, Tensor]:
        hidden = self.hidden(x)
        out = self.fc3(hidden).float()  # the activation the losses read, in float32 under autocast too
        if self.sigmoid_output:
            out = torch.sigmoid(out)
        else:
            out = out / out.norm(dim=1, keepdim=True)
        return hidden, out


class Feedback(nn.Module):
    """Maps the decoder's hidden state to a correction of the generator's hidden state."""

    def __init__(self, hidden: int):
        super().__init__()
        self.fc1 = nn.Linear(hidden, hidden)
        self.fc2 = nn.Linear(hidden, hidden)
        self.apply(init_weights)

    def forward(self, decoder_hidden: Tensor) -> Tensor:
        return leaky(self.fc2(leaky(self.fc1(decoder_hidden))))


class FeatureGenerator(nn.Module):
    """What synthesis, evaluation and model.pt read of every method's model: a `generator` G(z, a), and no
    feedback, no refined features unless a method adds them (TFVAEGAN, FREE)."""

    saved_modules: tuple[str, ...] = ("generator",)  # what synthesis and classification need (model.pt)
    uses_feedback = False
    refines_features = False  # the classifiers read x itself; True: the model has discriminative_features(x, generator)

    def __init__(self, cfg: Config):
        super().__init__()
        if cfg.resSize is None or cfg.attSize is None or cfg.nz is None or cfg.latent_size is None:
            raise ValueError(f"{type(self).__name__} needs a resolved config (Config.resolved) with data sizes filled in")
        self.decoder: nn.Module | None = None  # TFVAEGAN's semantic decoder; the trainers test for it

    def generate(self, z: Tensor, att: Tensor, feedback_weight: float | None = None,
                 feedback_source: Tensor | None = None) -> Tensor:
        """x̃ = G(z, a) (the model has no feedback: the trainers pass no weight)."""
        return self.generator(z, att)

    @torch.no_grad()
    def synthesize(self, z: Tensor, att: Tensor) -> Tensor:
        """Features for noise z and class embeddings att, as at synthesis."""
        return self.generate(z, att)


class FVAEGAN(FeatureGenerator):
    """f-VAEGAN's boxes (Xian et al. 2019): the encoder, the generator and the conditional critic, built from a
    resolved config (sizes filled from the data). No semantic decoder, no feedback: synthesis is G(z, a) and
    the classifiers read the features themselves."""

    def __init__(self, cfg: Config):
        super().__init__(cfg)
        self.encoder = Encoder(cfg.resSize, cfg.attSize, cfg.latent_size, cfg.encoder_hidden)
        self.generator = Generator(cfg.nz, cfg.attSize, cfg.resSize, cfg.generator_hidden)
        self.critic = Critic(cfg.resSize, cfg.attSize, cfg.ndh)


class TFVAEGAN(FVAEGAN):
    """The five boxes together: f-VAEGAN's, the semantic decoder and the feedback module."""

    saved_modules = ("generator", "decoder", "feedback")
    refines_features = True

    def __init__(self, cfg: Config):
        super().__init__(cfg)
        self.decoder = Decoder(cfg.resSize, cfg.attSize, cfg.ngh, sigmoid_output=cfg.bce_att)
        self.feedback = Feedback(cfg.ngh)
        self.a2 = cfg.a2
        # Synthesis applies feedback only when training did. The official generate_syn_feature
        # always applies it, so with feedback_loop 1 (the ablation's baseline and +decoder) it
        # would add an untrained, randomly initialised feedback module's output at weight a2.
        self.uses_feedback = cfg.feedback_loop > 1

    def generate(self, z: Tensor, att: Tensor, feedback_weight: float | None = None,
                 feedback_source: Tensor | None = None) -> Tensor:
        """x̃ = G(z, a); with a feedback weight δ, the paper's feedback pass x̃ = σ(W₂(h + δ·F(Dec_h(x))))
        with h the generator's hidden state for (z, a), which is computed once.

        x is what the semantic decoder reads: G(z, a) itself, or `feedback_source` (the official loop
        feeds the generator's second, prior sample the feedback of its reconstruction). The decoder's
        hidden state is read without gradient, as the official getLayersOutDet detaches it.
        """
        hidden = self.generator.hidden(z, att)
        if feedback_weight is None:
            return self.generator.output(hidden)
        with torch.no_grad():
            if feedback_source is None:
                feedback_source = self.generator.output(hidden)
            decoder_hidden = self.decoder.hidden(feedback_source)
        return self.generator.output(hidden, self.feedback(decoder_hidden), feedback_weight)

    @torch.no_grad()
    def synthesize(self, z: Tensor, att: Tensor) -> Tensor:
        """Features for noise z and class embeddings att, with feedback (weight a2) as at synthesis."""
        return self.generate(z, att, self.a2 if self.uses_feedback else None)

    @torch.no_grad()
    def discriminative_features(self, x: Tensor, generator: torch.Generator | None = None) -> Tensor:
        """[x, decoder output, decoder hidden] (the official order): what the final classifier sees."""
        hidden, out = self.decoder(x)
        return torch.cat((x, out, hidden), dim=1)
