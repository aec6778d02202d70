"""Synthesis of class-conditional features, with feedback (weight a2), all classes batched."""
from __future__ import annotations

import torch
from torch import Tensor

from tfvaegan.method.models import CHUNK_ROWS, TFVAEGAN


@torch.no_grad()
def synthesize(model: TFVAEGAN, attribute: Tensor, classes: Tensor, per_class: int,
               nz: int, generator: torch.Generator | None = None) -> tuple[Tensor, Tensor]:
    """`per_class` features for each class in `classes` (global ids), class-major like the official code."""
    if per_class < 1:
        raise ValueError(f"per_class: expected a positive number of features per class, found {per_class}")
    was_training = model.training
    model.eval()
    labels = classes.repeat_interleave(per_class)
    att = attribute[labels]
    noise = torch.randn(len(labels), nz, generator=generator, device=attribute.device)
    features = torch.cat([model.synthesize(z, a) for z, a in zip(noise.split(CHUNK_ROWS), att.split(CHUNK_ROWS))])
    model.train(was_training)
    return features, labels
