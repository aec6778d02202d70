"""OD-GZSL: the out-of-distribution-detector based GZSL of the official action code.

Semantics of classifiers/classifier_entropy.py (with the crashes of train_actions.py resolved as
docs/actions.md explains): a *seen* softmax classifier trained on real seen features, an *unseen*
softmax classifier trained on synthetic unseen features, and a detector — an MLP over the seen
classes trained to be confident and correct on real seen features and maximally uncertain on
synthetic unseen ones. A test sample whose detector entropy is below a threshold is classified by
the seen classifier, otherwise by the unseen classifier. All three models take the same features
(the discriminative features [x, decoder output, decoder hidden] in the official code).

The threshold is chosen as officially, from training data only: after each detector epoch it is
Σ(entropies of the real seen samples drawn during the epoch) / (number of real seen samples). Each
step draws batch_size / 2 real samples and there are ceil(n / batch_size) steps, so this is about
half the mean training entropy of seen samples; `DetectorSettings.entropy_threshold` fixes it.

Epoch selection keeps the protocols apart, as in tfvaegan.classify: ``select="best"`` keeps the
best epoch on the test set (official: each classifier's epoch with the best per-class accuracy on
its own test set, the detector's epoch with the best H — the *paper* protocol); ``select="last"``
keeps the last epoch of each model (the test set is evaluated once).
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from torch import Tensor

from tfvaegan.classify import ClassifierSettings, EvalSet, train_softmax, predict
from tfvaegan.metrics import per_class_accuracy

SELECT_MODES = ("best", "last")
THRESHOLD_RULES = ("official", "mean")
EVAL_CHUNK = 8192  # rows per detector forward pass at evaluation, bounds the 512-wide activations
H_EPSILON = 1e-12  # the official H = 2su / (s + u + 1e-12)


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
    select: str = "best"  # best | last

    def __post_init__(self):
        if self.select not in SELECT_MODES:
            raise ValueError(f"detector select: expected one of {SELECT_MODES}, found {self.select!r}")
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
        return cls(entropy_threshold=threshold, select=select)


@dataclass
class ODResult:
    seen: float  # per-class accuracy on test seen samples: routed to seen AND correctly classified
    unseen: float  # the same for test unseen samples, routed to unseen
    h: float
    threshold: float  # entropy threshold of the reported detector epoch
    epoch: int  # 1-based detector epoch reported
    seen_classifier_epoch: int
    unseen_classifier_epoch: int
    seen_classifier_acc: float  # seen classifier alone on test seen (routing ignored): an upper bound
    unseen_classifier_acc: float  # unseen classifier alone on test unseen (= a ZSL accuracy)
    seen_routed_to_seen: float  # share of test seen samples the detector sends to the seen classifier
    unseen_routed_to_unseen: float
    curve: list[float] = field(default_factory=list)  # H per evaluated detector epoch


def entropy(logits: Tensor) -> Tensor:
    """Shannon entropy (nats) of softmax(logits), one value per row; 0·log 0 counts as 0."""
    log_probs = F.log_softmax(logits, dim=1)
    probs = log_probs.exp()
    # A probability that underflows to 0 has log -inf (logits with -inf, or a logit gap beyond the
    # float range): p·log p must be 0 there, not 0·(-inf) = NaN.
    # Masking the log (not the product) keeps the gradient finite too.
    return -(probs * torch.where(probs > 0, log_probs, torch.zeros_like(log_probs))).sum(1)


def local_labels(labels: Tensor, classes: Tensor) -> Tensor:
    """Global class ids → positions in `classes`; a label outside `classes` is a ValueError."""
    if labels.numel() == 0 or classes.numel() == 0:
        raise ValueError(f"local_labels: expected labels and classes, found {labels.numel()} labels "
                         f"and {classes.numel()} classes")
    if bool((labels < 0).any()) or bool((classes < 0).any()):  # lookup[-1] would wrap around
        raise ValueError("local_labels: expected non-negative class ids, found "
                         f"{sorted(set(torch.cat((labels[labels < 0], classes[classes < 0])).tolist()))[:5]}")
    lookup = torch.full((int(max(labels.max(), classes.max())) + 1,), -1, dtype=torch.long,
                        device=labels.device)
    lookup[classes] = torch.arange(len(classes), device=labels.device)
    local = lookup[labels]
    if bool((local < 0).any()):
        stray = sorted(set(labels[local < 0].unique().tolist()))[:5]
        raise ValueError(f"labels {stray} are not among the {len(classes)} classes given")
    return local


def train_local_classifier(train_x: Tensor, train_y: Tensor, classes: Tensor, test_x: Tensor,
                           test_y: Tensor, settings: ClassifierSettings,
                           generator: torch.Generator) -> tuple[Tensor, Tensor, int, float]:
    """A softmax classifier over `classes` only (official fit_zsl); returns W, b, epoch, test accuracy.

    Labels are global ids. With select="best" the epoch with the best per-class accuracy on
    (test_x, test_y) is kept, with select="last" the last epoch.
    """
    every = torch.arange(len(classes), device=train_y.device)
    test_local = local_labels(test_y, classes)
    kept: dict = {"acc": -1.0}

    def on_epoch(epoch, weight, bias):
        acc = per_class_accuracy(predict(test_x, weight, bias), test_local, every)
        if acc > kept["acc"] or settings.select == "last":
            kept.update(acc=acc, epoch=epoch, weight=weight.clone(), bias=bias.clone())

    train_softmax(train_x, local_labels(train_y, classes), len(classes), settings, generator, on_epoch)
    return kept["weight"], kept["bias"], kept["epoch"], kept["acc"]


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


def train_detector(seen_x: Tensor, seen_local_y: Tensor, n_seen: int, syn_x: Tensor,
                   settings: DetectorSettings, generator: torch.Generator, on_epoch) -> Detector:
    """Train the detector; call on_epoch(epoch, detector, threshold) after each epoch.

    Per step: batch_size/2 real seen samples and as many synthetic unseen ones, each a fresh
    random subset drawn without replacement; loss = mean H(seen) + NLL(seen) − mean H(unseen).
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
    for epoch in range(1, settings.nepoch + 1):
        seen_entropy_sum = torch.zeros((), device=device)
        for _ in range(steps):
            seen_index = torch.randperm(n_train, generator=generator, device=device)[:half]
            syn_index = torch.randperm(n_syn, generator=generator, device=device)[:half]
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


def routed_accuracy(predicted: Tensor, routed: Tensor, label: Tensor, classes: Tensor) -> float:
    """Per-class accuracy counting a sample correct only if routed to the right classifier and right."""
    return per_class_accuracy(torch.where(routed, predicted, torch.full_like(predicted, -1)), label, classes)


def od_gzsl(train_seen_x: Tensor, train_seen_y: Tensor, syn_unseen_x: Tensor, syn_unseen_y: Tensor,
            evaluation: EvalSet, seenclasses: Tensor, unseenclasses: Tensor, *,
            classifier: ClassifierSettings, detector: DetectorSettings | None = None,
            generator: torch.Generator) -> ODResult:
    """OD-based GZSL accuracies (seen, unseen, H) as the official action code reports them.

    Features are what the classifiers see (discriminative features or raw x), all on one device;
    labels are global class ids; `generator` lives on that device and drives every random draw
    (initialisation, batches), so equal inputs and seeds give equal results.
    """
    detector = detector or DetectorSettings()
    if classifier.select not in SELECT_MODES:
        raise ValueError(f"od_gzsl: classifier select: expected one of {SELECT_MODES}, found {classifier.select!r}")
    if evaluation.seen_x is None or evaluation.seen_y is None:
        raise ValueError("od_gzsl: the evaluation set has no seen samples; GZSL needs them")
    for name, x, y in (("training seen", train_seen_x, train_seen_y),
                       ("synthetic unseen", syn_unseen_x, syn_unseen_y),
                       ("test seen", evaluation.seen_x, evaluation.seen_y),
                       ("test unseen", evaluation.unseen_x, evaluation.unseen_y)):
        if len(x) == 0 or len(x) != len(y):
            raise ValueError(f"od_gzsl: {name} samples: expected at least one, with one label each; "
                             f"found {len(x)} samples and {len(y)} labels")
    if (detector.entropy_threshold is not None and math.isfinite(detector.entropy_threshold)
            and detector.entropy_threshold > math.log(len(seenclasses))):
        # The detector's entropy over n seen classes is at most ln n: every sample would go to seen
        # (s = the seen classifier alone, u = 0). +inf asks for that on purpose, a finite value is a slip.
        raise ValueError(f"key 'od_entropy_threshold': expected null or a number in (0, ln(number of seen "
                         f"classes)] = (0, {math.log(len(seenclasses)):.4f}], found {detector.entropy_threshold}")

    seen_w, seen_b, seen_epoch, seen_alone = train_local_classifier(
        train_seen_x, train_seen_y, seenclasses, evaluation.seen_x, evaluation.seen_y, classifier, generator)
    unseen_w, unseen_b, unseen_epoch, unseen_alone = train_local_classifier(
        syn_unseen_x, syn_unseen_y, unseenclasses, evaluation.unseen_x, evaluation.unseen_y, classifier,
        generator)
    # The classifiers are fixed from here on: predict once, let the detector epochs only re-route.
    seen_predicted = seenclasses[predict(evaluation.seen_x, seen_w, seen_b)]
    unseen_predicted = unseenclasses[predict(evaluation.unseen_x, unseen_w, unseen_b)]

    best: dict = {"h": -1.0}
    curve: list[float] = []

    def on_epoch(epoch, model: Detector, threshold: float):
        seen_routed = model.entropy(evaluation.seen_x) < threshold
        unseen_routed = model.entropy(evaluation.unseen_x) >= threshold
        seen = routed_accuracy(seen_predicted, seen_routed, evaluation.seen_y, seenclasses)
        unseen = routed_accuracy(unseen_predicted, unseen_routed, evaluation.unseen_y, unseenclasses)
        h = 2.0 * seen * unseen / (seen + unseen + H_EPSILON)
        curve.append(h)
        if h > best["h"] or detector.select == "last":
            best.update(seen=seen, unseen=unseen, h=h, threshold=threshold, epoch=epoch,
                        seen_routed=float(seen_routed.float().mean()),
                        unseen_routed=float(unseen_routed.float().mean()))

    train_detector(train_seen_x, local_labels(train_seen_y, seenclasses), len(seenclasses), syn_unseen_x,
                   detector, generator, on_epoch)
    return ODResult(
        seen=best["seen"], unseen=best["unseen"], h=best["h"], threshold=best["threshold"],
        epoch=best["epoch"], seen_classifier_epoch=seen_epoch, unseen_classifier_epoch=unseen_epoch,
        seen_classifier_acc=seen_alone, unseen_classifier_acc=unseen_alone,
        seen_routed_to_seen=best["seen_routed"], unseen_routed_to_unseen=best["unseen_routed"], curve=curve,
    )
