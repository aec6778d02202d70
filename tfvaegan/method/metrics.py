"""Per-class mean top-1 accuracy and the harmonic mean, vectorised (no loop over classes)."""
from __future__ import annotations

import math

import torch
from torch import Tensor


def per_class_accuracy(predicted: Tensor, label: Tensor, classes: Tensor) -> float:
    """Mean over `classes` of the top-1 accuracy among the samples of each class.

    Labels and predictions are global class ids. Classes without any sample are left out of
    the mean (the official code would return NaN for them); samples whose label is not in
    `classes` are ignored, as in the official loop over the target classes. Labels and classes
    must be non-negative ids (a negative prediction, e.g. "not routed here", is simply wrong).
    """
    if label.numel() == 0:
        raise ValueError("per_class_accuracy: expected at least one labelled sample, found 0")
    if classes.numel() == 0:
        raise ValueError("per_class_accuracy: expected at least one target class, found 0")
    if predicted.shape != label.shape:
        raise ValueError(f"per_class_accuracy: expected one prediction per label ({tuple(label.shape)}), "
                         f"found {tuple(predicted.shape)}")
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
    return float((correct[present] / total[present]).mean())


def harmonic_mean(seen: float, unseen: float) -> float:
    """H = 2·s·u / (s + u), 0 when both are 0; s and u are accuracies in [0, 1]."""
    for name, value in (("seen", seen), ("unseen", unseen)):
        if math.isnan(value) or not 0.0 <= value <= 1.0:
            raise ValueError(f"harmonic_mean: expected {name} accuracy in [0, 1], found {value}")
    return 0.0 if seen + unseen == 0 else 2.0 * seen * unseen / (seen + unseen)
