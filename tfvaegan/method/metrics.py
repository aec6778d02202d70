"""Per-class mean top-1 accuracy and the harmonic mean, vectorised (no loop over classes).

`per_class_counts` is the one per-class computation: each class's samples, correct predictions and
(GZSL) samples that went to the other group of classes; `per_class_accuracy` is its mean, the paper's
metric, and per_class.csv lists its rows.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import Tensor


@dataclass(frozen=True)
class PerClass:
    """Counts of the target classes that have a sample, in the order of the `classes` given (float64 tensors of
    whole numbers, as the mean is taken over them)."""

    classes: Tensor  # class ids
    n_images: Tensor  # samples of each class
    correct: Tensor  # of them, predicted as their class
    to_other: Tensor | None  # of them, flagged as gone to the other group of classes (GZSL); None: not counted

    @property
    def accuracy(self) -> Tensor:
        """Each class's top-1 accuracy (float64)."""
        return self.correct / self.n_images

    def mean(self) -> float:
        """The mean over classes of their accuracies: the per-class top-1 accuracy."""
        return class_mean(self.accuracy)


def class_mean(accuracy: Tensor) -> float:
    """The mean of per-class accuracies, as every reported accuracy is taken (torch's float64 mean)."""
    return float(accuracy.mean())


def per_class_accuracy(predicted: Tensor, label: Tensor, classes: Tensor) -> float:
    """Mean over `classes` of the top-1 accuracy among the samples of each class (`per_class_counts(...).mean()`).

    Labels and predictions are global class ids. Classes without any sample are left out of
    the mean (the official code would return NaN for them); samples whose label is not in
    `classes` are ignored, as in the official loop over the target classes. Labels and classes
    must be non-negative ids (a negative prediction, e.g. "not routed here", is simply wrong).
    """
    return per_class_counts(predicted, label, classes).mean()


def per_class_counts(predicted: Tensor, label: Tensor, classes: Tensor, to_other: Tensor | None = None) -> PerClass:
    """Each of `classes` with a sample: its samples and correct predictions (per_class_accuracy's rules); with
    `to_other`, a flag per sample (GZSL: predicted as a class of the other group, seen or unseen), how many of
    its samples are flagged."""
    if label.numel() == 0:
        raise ValueError("per_class_accuracy: expected at least one labelled sample, found 0")
    if classes.numel() == 0:
        raise ValueError("per_class_accuracy: expected at least one target class, found 0")
    for name, given in (("prediction", predicted), ("to_other flag", to_other)):
        if given is not None and given.shape != label.shape:
            raise ValueError(f"per_class_accuracy: expected one {name} per label ({tuple(label.shape)}), "
                             f"found {tuple(given.shape)}")
    for name, ids in (("label", label), ("classes", classes)):
        if bool((ids < 0).any()):
            raise ValueError(f"per_class_accuracy: expected non-negative class ids in {name}, "
                             f"found {sorted(set(ids[ids < 0].tolist()))[:5]}")
    size = int(max(label.max().item(), classes.max().item())) + 1
    correct = torch.bincount(label, weights=(predicted == label).to(torch.float64), minlength=size)
    total = torch.bincount(label, minlength=size).to(torch.float64)
    correct, total = correct[classes], total[classes]
    present = total > 0
    if not bool(present.any()):
        raise ValueError("per_class_accuracy: none of the target classes has a sample")
    other = None
    if to_other is not None:
        other = torch.bincount(label, weights=to_other.to(torch.float64), minlength=size)[classes][present]
    return PerClass(classes[present], total[present], correct[present], other)


def harmonic_mean(seen: float, unseen: float) -> float:
    """H = 2·s·u / (s + u), 0 when both are 0; s and u are accuracies in [0, 1]."""
    for name, value in (("seen", seen), ("unseen", unseen)):
        if math.isnan(value) or not 0.0 <= value <= 1.0:
            raise ValueError(f"harmonic_mean: expected {name} accuracy in [0, 1], found {value}")
    return 0.0 if seen + unseen == 0 else 2.0 * seen * unseen / (seen + unseen)
