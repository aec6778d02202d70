"""Per-class mean top-1 accuracy and the harmonic mean, vectorised (no loop over classes)."""
from __future__ import annotations

import torch
from torch import Tensor


def per_class_accuracy(predicted: Tensor, label: Tensor, classes: Tensor) -> float:
    """Mean over `classes` of the top-1 accuracy among the samples of each class.

    Labels and predictions are global class ids. Classes without any sample are left out of
    the mean (the official code would return NaN for them).
    """
    size = int(max(label.max().item(), classes.max().item(), predicted.max().item())) + 1
    correct = torch.bincount(label, weights=(predicted == label).to(torch.float64), minlength=size)
    total = torch.bincount(label, minlength=size).to(torch.float64)
    correct, total = correct[classes], total[classes]
    present = total > 0
    if not bool(present.any()):
        raise ValueError("per_class_accuracy: none of the target classes has a sample")
    return float((correct[present] / total[present]).mean())


def harmonic_mean(seen: float, unseen: float) -> float:
    """H = 2·s·u / (s + u), 0 when both are 0."""
    return 0.0 if seen + unseen == 0 else 2.0 * seen * unseen / (seen + unseen)
