"""The evaluation strategies: ZSL, GZSL and (action code) OD-GZSL, on discriminative features.

One evaluation, as the official loop runs it after every generator epoch: synthesise `syn_num`
features per unseen class (feedback applied), map every feature to the discriminative features
[x, decoder output, decoder hidden], then
- ZSL: a softmax classifier over the unseen classes, trained on the synthetic features, scored on
  the unseen test samples;
- GZSL: a softmax classifier over all classes, trained on real seen and synthetic unseen features,
  scored on both test sets (s, u and their harmonic mean H);
- OD-GZSL (classifiers/classifier_entropy.py of the action code, with the crashes of
  train_actions.py resolved as docs/actions.md explains): a seen classifier on real seen features,
  an unseen one on synthetic features, and the entropy detector (detector.py) routing each test
  sample to one of them.
Every accuracy is the per-class mean top-1 (method/metrics.py); `evaluate(..., per_class=True)` also
returns the per-class counts behind the reported accuracies (per_class.csv). Epoch selection follows
classifier.ClassifierSettings:
``select="best"`` keeps each model's best epoch on the evaluation set (official: each classifier's
epoch with the best accuracy on its own test set, the detector's epoch with the best H — the *paper*
protocol); ``select="last"`` keeps the last epoch (the test set is evaluated once).
"""
from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field

import torch
from torch import Tensor

from tfvaegan.method.classifier import (SELECT_MODES, ClassifierSettings, fit_over_classes, local_labels,
                                        predict, train_softmax)
from tfvaegan.method.detector import DetectorSettings, train_detector
from tfvaegan.method.metrics import PerClass, harmonic_mean, per_class_accuracy, per_class_counts
from tfvaegan.method.models import CHUNK_ROWS
from tfvaegan.method.synthesize import synthesize

H_EPSILON = 1e-12  # the official OD-GZSL H = 2su / (s + u + 1e-12)


@dataclass
class EvalSet:
    """Discriminative (or raw) features of the labelled evaluation samples."""

    seen_x: Tensor | None
    seen_y: Tensor | None
    unseen_x: Tensor
    unseen_y: Tensor


@dataclass
class ZSLResult:
    acc: float
    epoch: int  # 1-based classifier epoch the accuracy comes from
    curve: list[float] = field(default_factory=list)
    # test unseen predictions (global class ids) of `epoch`, when asked for (None also when no epoch beat the
    # start); not compared: results are equal when their numbers are
    predicted: Tensor | None = field(default=None, compare=False, repr=False)


@dataclass
class GZSLResult:
    seen: float
    unseen: float
    h: float
    epoch: int
    curve: list[float] = field(default_factory=list)  # H per evaluated epoch
    # the test seen and unseen predictions (global ids) of `epoch` (None: no epoch beat H = 0); not compared
    seen_predicted: Tensor | None = field(default=None, compare=False, repr=False)
    unseen_predicted: Tensor | None = field(default=None, compare=False, repr=False)


@dataclass
class ODResult:
    seen: float  # per-class accuracy on test seen samples: routed to seen AND correctly classified
    unseen: float  # the same for test unseen samples, routed to unseen
    h: float
    threshold: float | None  # entropy threshold of the reported detector epoch (None: no epoch beat H = 0)
    epoch: int  # 1-based detector epoch reported
    seen_classifier_epoch: int
    unseen_classifier_epoch: int
    seen_classifier_acc: float  # seen classifier alone on test seen (routing ignored): an upper bound
    unseen_classifier_acc: float  # unseen classifier alone on test unseen (= a ZSL accuracy)
    seen_routed_to_seen: float | None  # share of test seen samples the detector sends to the seen classifier
    unseen_routed_to_unseen: float | None
    curve: list[float] = field(default_factory=list)  # H per evaluated detector epoch
    # each classifier's predictions (global ids) on its own test set, and the detector's routing at `epoch`
    # (True: to that classifier; None when no detector epoch beat H = 0); not compared
    seen_predicted: Tensor | None = field(default=None, compare=False, repr=False)
    unseen_predicted: Tensor | None = field(default=None, compare=False, repr=False)
    seen_routed_mask: Tensor | None = field(default=None, compare=False, repr=False)
    unseen_routed_mask: Tensor | None = field(default=None, compare=False, repr=False)


def zsl(syn_x: Tensor, syn_y: Tensor, evaluation: EvalSet, unseenclasses: Tensor,
        settings: ClassifierSettings, generator: torch.Generator, predictions: bool = False) -> ZSLResult:
    """Classify unseen test samples among the unseen classes only, trained on synthetic features; with
    `predictions`, the reported epoch's predictions too."""
    fit = fit_over_classes(syn_x, syn_y, unseenclasses, evaluation.unseen_x, evaluation.unseen_y,
                           settings, generator, keep_weights=predictions)
    predicted = None
    if predictions and fit.epoch > 0:  # epoch 0: no epoch beat the official start, accuracy 0 is reported
        predicted = unseenclasses[predict(evaluation.unseen_x, fit.weight, fit.bias)]
    return ZSLResult(acc=fit.acc, epoch=fit.epoch, curve=fit.curve, predicted=predicted)


def gzsl(train_x: Tensor, train_y: Tensor, evaluation: EvalSet, seenclasses: Tensor,
         unseenclasses: Tensor, n_classes: int, settings: ClassifierSettings,
         generator: torch.Generator) -> GZSLResult:
    """Classify seen and unseen test samples among all classes; report s, u and their H."""
    best = GZSLResult(seen=0.0, unseen=0.0, h=0.0, epoch=0)  # official: an epoch must beat H = 0

    def on_epoch(epoch, weight, bias):
        seen_predicted = predict(evaluation.seen_x, weight, bias)
        unseen_predicted = predict(evaluation.unseen_x, weight, bias)
        seen = per_class_accuracy(seen_predicted, evaluation.seen_y, seenclasses)
        unseen = per_class_accuracy(unseen_predicted, evaluation.unseen_y, unseenclasses)
        h = harmonic_mean(seen, unseen)
        best.curve.append(h)
        if h > best.h or settings.select == "last":
            best.seen, best.unseen, best.h, best.epoch = seen, unseen, h, epoch
            best.seen_predicted, best.unseen_predicted = seen_predicted, unseen_predicted

    train_softmax(train_x, train_y, n_classes, settings, generator, on_epoch)
    return best


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

    seen_fit = fit_over_classes(train_seen_x, train_seen_y, seenclasses, evaluation.seen_x, evaluation.seen_y,
                                classifier, generator, keep_weights=True)
    unseen_fit = fit_over_classes(syn_unseen_x, syn_unseen_y, unseenclasses, evaluation.unseen_x,
                                  evaluation.unseen_y, classifier, generator, keep_weights=True)
    # The classifiers are fixed from here on: predict once, let the detector epochs only re-route.
    seen_predicted = seenclasses[predict(evaluation.seen_x, seen_fit.weight, seen_fit.bias)]
    unseen_predicted = unseenclasses[predict(evaluation.unseen_x, unseen_fit.weight, unseen_fit.bias)]

    # official: the detector epoch must beat H = 0; none did -> s = u = H = 0, no threshold
    best: dict = {"seen": 0.0, "unseen": 0.0, "h": 0.0, "threshold": None, "epoch": 0, "seen_routed": None,
                  "unseen_routed": None, "seen_mask": None, "unseen_mask": None}
    curve: list[float] = []

    def on_epoch(epoch, model, threshold: float):
        seen_routed = model.entropy(evaluation.seen_x) < threshold
        unseen_routed = model.entropy(evaluation.unseen_x) >= threshold
        seen = routed_accuracy(seen_predicted, seen_routed, evaluation.seen_y, seenclasses)
        unseen = routed_accuracy(unseen_predicted, unseen_routed, evaluation.unseen_y, unseenclasses)
        h = 2.0 * seen * unseen / (seen + unseen + H_EPSILON)
        curve.append(h)
        if h > best["h"] or detector.select == "last":
            best.update(seen=seen, unseen=unseen, h=h, threshold=threshold, epoch=epoch,
                        seen_routed=float(seen_routed.float().mean()),
                        unseen_routed=float(unseen_routed.float().mean()), seen_mask=seen_routed,
                        unseen_mask=unseen_routed)

    train_detector(train_seen_x, local_labels(train_seen_y, seenclasses), len(seenclasses), syn_unseen_x,
                   detector, generator, on_epoch)
    return ODResult(
        seen=best["seen"], unseen=best["unseen"], h=best["h"], threshold=best["threshold"],
        epoch=best["epoch"], seen_classifier_epoch=seen_fit.epoch, unseen_classifier_epoch=unseen_fit.epoch,
        seen_classifier_acc=seen_fit.acc, unseen_classifier_acc=unseen_fit.acc,
        seen_routed_to_seen=best["seen_routed"], unseen_routed_to_unseen=best["unseen_routed"], curve=curve,
        seen_predicted=seen_predicted, unseen_predicted=unseen_predicted, seen_routed_mask=best["seen_mask"],
        unseen_routed_mask=best["unseen_mask"],
    )


def routed_accuracy(predicted: Tensor, routed: Tensor, label: Tensor, classes: Tensor) -> float:
    """Per-class accuracy counting a sample correct only if routed to the right classifier and right."""
    return per_class_accuracy(routed_predictions(predicted, routed), label, classes)


def routed_predictions(predicted: Tensor, routed: Tensor) -> Tensor:
    """A classifier's predictions where the detector routed the sample to it, -1 (wrong) elsewhere."""
    return torch.where(routed, predicted, torch.full_like(predicted, -1))


def gzsl_per_class(result: GZSLResult | ODResult, evaluation: EvalSet, seenclasses: Tensor,
                   unseenclasses: Tensor) -> dict[str, PerClass]:
    """The per-class counts behind a GZSL result's u and s (`gzsl_unseen`, `gzsl_seen`), at the epoch it reports:
    `to_other` counts the test unseen samples that went to a seen class and the test seen ones that went to an
    unseen class (OD-GZSL: that the detector routed to the other classifier). When no epoch beat H = 0 (s = u = 0
    reported) nothing counts as correct and where the samples went is not known (`to_other` None)."""
    if isinstance(result, ODResult):
        kept = result.seen_routed_mask is not None
        seen = (routed_predictions(result.seen_predicted, result.seen_routed_mask), ~result.seen_routed_mask) \
            if kept else None
        unseen = (routed_predictions(result.unseen_predicted, result.unseen_routed_mask),
                  ~result.unseen_routed_mask) if kept else None
    else:
        kept = result.seen_predicted is not None
        seen = (result.seen_predicted, torch.isin(result.seen_predicted, unseenclasses)) if kept else None
        unseen = (result.unseen_predicted, torch.isin(result.unseen_predicted, seenclasses)) if kept else None
    return {"gzsl_unseen": _kept_counts(unseen, evaluation.unseen_y, unseenclasses),
            "gzsl_seen": _kept_counts(seen, evaluation.seen_y, seenclasses)}


def _kept_counts(kept: tuple[Tensor, Tensor | None] | None, label: Tensor, classes: Tensor) -> PerClass:
    """per_class_counts of (predictions, to_other flags); None: no epoch kept, nothing correct."""
    if kept is None:
        return per_class_counts(torch.full_like(label, -1), label, classes)
    return per_class_counts(kept[0], label, classes, kept[1])


def feature_transform(model, use_discriminative: bool, generator: torch.Generator | None = None):
    """The classifier's input: the model's discriminative features (TF-VAEGAN: [x, decoder output, decoder
    hidden]; FREE: the refined features, drawn with `generator`) or x itself (also for a model without any)."""
    if not use_discriminative or not model.refines_features:
        return lambda x: x

    def transform(x: Tensor) -> Tensor:
        return torch.cat([model.discriminative_features(part, generator).float() for part in x.split(CHUNK_ROWS)])

    return transform


def evaluate(model, data, cfg, generator: torch.Generator, *, select: str = "best",
             zsl_epochs: int | None = None, gzsl_epochs: int | None = None,
             synthetic: tuple[Tensor, Tensor] | None = None, per_class: bool = False) -> dict:
    """One evaluation as the official loop does it: synthesise unseen features, train the GZSL and
    ZSL classifiers on discriminative features and score them on `data`'s evaluation splits.

    Discriminative features of the real samples are computed once and shared by both classifiers.
    Returns the flat metrics of a history row (accuracies as fractions, classifier epochs 1-based); with
    `per_class`, the row also holds `per_class`: {"zsl_unseen", and with GZSL "gzsl_unseen", "gzsl_seen": the
    PerClass counts of the epochs reported}, whose means are the row's zsl_acc, gzsl_unseen and gzsl_seen.
    """
    if synthetic is None:
        synthetic = synthesize(model, data.attribute, data.unseenclasses, cfg.syn_num, cfg.nz, generator)
    syn_x, syn_y = synthetic
    was_training = model.training
    model.eval()
    transform = feature_transform(model, cfg.disc_features, generator)
    syn_f = transform(syn_x)
    evaluation = EvalSet(transform(data.test_seen_feature), data.test_seen_label,
                         transform(data.test_unseen_feature), data.test_unseen_label)
    row: dict = {}
    counts: dict[str, PerClass] = {}
    if cfg.reports_gzsl:  # the official action code reports GZSL through the OD detector only
        train_f = transform(data.train_feature)
        if cfg.gzsl_od:
            detector = DetectorSettings.from_config(cfg, select)
            if gzsl_epochs is not None:
                detector = dataclasses.replace(detector, nepoch=gzsl_epochs)
            out = od_gzsl(train_f, data.train_label, syn_f, syn_y, evaluation, data.seenclasses,
                          data.unseenclasses, classifier=ClassifierSettings.from_config(cfg, select),
                          detector=detector, generator=generator)
            row.update(gzsl_seen=out.seen, gzsl_unseen=out.unseen, gzsl_h=out.h,
                       gzsl_classifier_epoch=out.epoch, od_threshold=out.threshold)
        else:
            settings = ClassifierSettings.from_config(cfg, select, gzsl_epochs)
            out = gzsl(torch.cat((train_f, syn_f)), torch.cat((data.train_label, syn_y)), evaluation,
                       data.seenclasses, data.unseenclasses, data.n_classes, settings, generator)
            row.update(gzsl_seen=out.seen, gzsl_unseen=out.unseen, gzsl_h=out.h,
                       gzsl_classifier_epoch=out.epoch)
        if per_class:
            counts.update(gzsl_per_class(out, evaluation, data.seenclasses, data.unseenclasses))
        del train_f
    result = zsl(syn_f, syn_y, evaluation, data.unseenclasses,
                 ClassifierSettings.from_config(cfg, select, zsl_epochs), generator, predictions=per_class)
    row.update(zsl_acc=result.acc, zsl_classifier_epoch=result.epoch)
    if per_class:
        zsl_counts = _kept_counts(None if result.predicted is None else (result.predicted, None),
                                  evaluation.unseen_y, data.unseenclasses)
        row["per_class"] = {"zsl_unseen": zsl_counts, **counts}
    row.update({f"{kind}_classifier_steps_per_epoch": steps
                for kind, steps in classifier_steps_per_epoch(cfg, len(data.train_label), len(syn_y)).items()})
    model.train(was_training)
    return row


def classifier_steps_per_epoch(cfg, n_train: int, n_synthetic: int) -> dict[str, int]:
    """Optimisation steps in one epoch of each classifier an evaluation trains, given its real seen
    training samples and synthetic unseen ones: ZSL on the synthetic features, GZSL on both (the
    detector, with gzsl_od, on the real ones), each ceil(samples / batch) steps."""
    gzsl = (math.ceil(n_train / DetectorSettings().batch_size) if cfg.gzsl_od
            else math.ceil((n_train + n_synthetic) / cfg.cls_batch_size))
    return {"zsl": math.ceil(n_synthetic / cfg.cls_batch_size), "gzsl": gzsl}
