"""The out-of-distribution detector of the official action code (classifiers/classifier_entropy.py).

An MLP over the seen classes, trained to be confident and correct on real seen features and
maximally uncertain on synthetic unseen ones. At test time a sample whose detector entropy is below
a threshold goes to the seen classifier, the others to the unseen one (evaluate.od_gzsl).

The threshold is chosen as officially, from training data only: after each detector epoch it is
Σ(entropies of the real seen samples drawn during the epoch) / (number of real seen samples). Each
step draws batch_size / 2 real samples and there are ceil(n / batch_size) steps, so this is about
half the mean training entropy of seen samples; `DetectorSettings.entropy_threshold` fixes it.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor

from tfvaegan.method.classifier import SELECT_MODES

THRESHOLD_RULES = ("official", "mean")
SAMPLERS = ("official", "random")
EVAL_CHUNK = 8192  # rows per detector forward pass at evaluation, bounds the 512-wide activations


@dataclass
class DetectorSettings:
    """The entropy-based detector; defaults are the official classifier_entropy.CLASSIFIER call."""

    lr: float = 0.001
    beta1: float = 0.5
    nepoch: int = 50
    batch_size: int = 128  # half real seen, half synthetic unseen
    hidden: int = 512
    entropy_threshold: float | None = None  # None: chosen from the training entropies by threshold_rule
    threshold_rule: str = "official"  # official: Σ entropies / n_train; mean: Σ entropies / samples drawn
    sampler: str = "official"  # official: in order until the first wrap, then random subsets; random: always
    select: str = "best"  # best | last

    def __post_init__(self):
        if self.select not in SELECT_MODES:
            raise ValueError(f"detector select: expected one of {SELECT_MODES}, found {self.select!r}")
        if self.sampler not in SAMPLERS:
            raise ValueError(f"key 'od_sampler': expected one of {SAMPLERS}, found {self.sampler!r}")
        if self.threshold_rule not in THRESHOLD_RULES:
            raise ValueError(f"detector threshold_rule: expected one of {THRESHOLD_RULES}, "
                             f"found {self.threshold_rule!r}")
        if self.batch_size < 2:  # half of it real seen, half synthetic: 1 would give empty batches
            raise ValueError(f"detector batch_size: expected an integer >= 2, found {self.batch_size}")
        if self.entropy_threshold is not None and math.isnan(self.entropy_threshold):
            # entropy < NaN and entropy >= NaN are both false: every sample would be routed nowhere.
            # (±inf stay allowed here: they route everything one way, a diagnostic.)
            raise ValueError(f"detector entropy_threshold: expected None or a number, found {self.entropy_threshold}")

    @classmethod
    def from_config(cls, cfg, select: str = "best") -> "DetectorSettings":
        threshold = cfg.od_entropy_threshold
        if threshold is not None and (not math.isfinite(threshold) or threshold <= 0):
            # entropy >= 0: a threshold <= 0 routes every test sample to the unseen classifier (s = 0)
            raise ValueError(f"key 'od_entropy_threshold': expected null or a number in (0, ln(number of "
                             f"seen classes)], found {threshold}")
        return cls(entropy_threshold=threshold, sampler=cfg.od_sampler, select=select)


def entropy(logits: Tensor) -> Tensor:
    """Shannon entropy (nats) of softmax(logits), one value per row; 0·log 0 counts as 0."""
    log_probs = F.log_softmax(logits, dim=1)
    probs = log_probs.exp()
    # A probability that underflows to 0 has log -inf (logits with -inf, or a logit gap beyond the
    # float range): p·log p must be 0 there, not 0·(-inf) = NaN.
    # Masking the log (not the product) keeps the gradient finite too.
    return -(probs * torch.where(probs > 0, log_probs, torch.zeros_like(log_probs))).sum(1)


class Detector:
    """The official ODDetector: Linear(in, h) → ReLU → Linear(h, h) → ReLU → Linear(h, n_seen)."""

    def __init__(self, in_dim: int, hidden: int, n_out: int, generator: torch.Generator, device):
        def linear(n_in, n_out_):  # official weights_init: N(0, 0.02) weights, zero biases
            weight = torch.randn(n_out_, n_in, generator=generator, device=device) * 0.02
            return [weight.requires_grad_(), torch.zeros(n_out_, device=device, requires_grad=True)]

        self.parameters = linear(in_dim, hidden) + linear(hidden, hidden) + linear(hidden, n_out)

    def __call__(self, x: Tensor) -> Tensor:
        w1, b1, w2, b2, w3, b3 = self.parameters
        h = torch.relu(torch.addmm(b1, x, w1.t()))
        h = torch.relu(torch.addmm(b2, h, w2.t()))
        return torch.addmm(b3, h, w3.t())

    @torch.no_grad()
    def entropy(self, x: Tensor) -> Tensor:
        return torch.cat([entropy(self(part)) for part in x.split(EVAL_CHUNK)])


class HalfBatches:
    """Row indices of the detector's half-batches from one set (real seen or synthetic unseen).

    official (classifier_entropy.next_batch / next_batch_syn): consecutive rows in the data's order
    until the next half-batch would pass n - half; from then on, since the official counter is never
    reset, every call reshuffles and takes the first `half` rows. The synthetic features are
    class-major, so their first half-batches hold one class each. random: a fresh random subset
    every call (what the official sampler does after its first wrap).
    """

    def __init__(self, n: int, half: int, generator: torch.Generator, device, sampler: str = "official"):
        self.n, self.half, self.generator, self.device = n, half, generator, device
        self.order = torch.arange(n, device=device)
        self.consumed = 0 if sampler == "official" else n  # random: as if past the wrap already

    def __call__(self) -> Tensor:
        start = self.consumed
        self.consumed += self.half
        if self.consumed > self.n - self.half:
            self.order = self.order[torch.randperm(self.n, generator=self.generator, device=self.device)]
            start = 0
        return self.order[start:start + self.half]


def train_detector(seen_x: Tensor, seen_local_y: Tensor, n_seen: int, syn_x: Tensor,
                   settings: DetectorSettings, generator: torch.Generator, on_epoch) -> Detector:
    """Train the detector; call on_epoch(epoch, detector, threshold) after each epoch.

    Per step: batch_size/2 real seen samples and as many synthetic unseen ones (HalfBatches);
    loss = mean H(seen) + NLL(seen) − mean H(unseen).
    `threshold` is the official one (see the module docstring) unless the settings fix it or ask for
    the mean training entropy of the seen samples drawn (threshold_rule="mean": the official code
    counts its steps in `batch_num` but divides by the training size).
    """
    device = seen_x.device
    detector = Detector(seen_x.shape[1], settings.hidden, n_seen, generator, device)
    optimizer = torch.optim.Adam(detector.parameters, lr=settings.lr, betas=(settings.beta1, 0.999))
    n_train, n_syn = len(seen_x), len(syn_x)
    half = settings.batch_size // 2
    steps = math.ceil(n_train / settings.batch_size)
    divisor = n_train if settings.threshold_rule == "official" else steps * min(half, n_train)
    seen_batches = HalfBatches(n_train, half, generator, device, settings.sampler)
    syn_batches = HalfBatches(n_syn, half, generator, device, settings.sampler)
    for epoch in range(1, settings.nepoch + 1):
        seen_entropy_sum = torch.zeros((), device=device)
        for _ in range(steps):
            seen_index, syn_index = seen_batches(), syn_batches()
            seen_logits = detector(seen_x[seen_index])
            seen_entropy = entropy(seen_logits)
            loss = (seen_entropy.mean() + F.cross_entropy(seen_logits, seen_local_y[seen_index])
                    - entropy(detector(syn_x[syn_index])).mean())
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            seen_entropy_sum += seen_entropy.detach().sum()
        if settings.select == "best" or epoch == settings.nepoch:
            threshold = settings.entropy_threshold
            if threshold is None:
                threshold = float(seen_entropy_sum) / divisor
            on_epoch(epoch, detector, threshold)
    return detector
