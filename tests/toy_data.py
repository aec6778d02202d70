"""A small learnable zero-shot problem in the xlsa17 layout, for the core tests.

Features are a fixed non-linear function of the class attributes plus noise, so unseen classes
are predictable from their attributes and a working TF-VAEGAN scores far above chance.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import scipy.io


def make_toy(root: Path, name: str = "TOY", n_classes: int = 24, n_unseen: int = 6, per_class: int = 20,
             res_size: int = 64, att_size: int = 8, seed: int = 0, noise: float = 0.3) -> Path:
    rng = np.random.default_rng(seed)
    # Sparse, attribute-like class embeddings; enough seen classes to span the attribute space,
    # so that the attribute -> feature map can be learnt and transferred to unseen classes.
    attributes = (rng.random((n_classes, att_size)) < 0.4) + 0.1 * rng.random((n_classes, att_size))
    attributes /= np.linalg.norm(attributes, axis=1, keepdims=True)
    mixing = rng.normal(size=(att_size, res_size)) * 3.0
    labels = np.repeat(np.arange(n_classes), per_class)
    features = 1 / (1 + np.exp(-(attributes[labels] @ mixing + noise * rng.normal(size=(len(labels), res_size)))))
    unseen = np.arange(n_classes - n_unseen, n_classes)
    is_unseen = np.isin(labels, unseen)
    seen_index = np.flatnonzero(~is_unseen)
    test_seen = np.sort(rng.choice(seen_index, size=len(seen_index) // 5, replace=False))
    trainval = np.setdiff1d(seen_index, test_seen)
    test_unseen = np.flatnonzero(is_unseen)
    val_classes = np.arange(4)
    val = np.flatnonzero(np.isin(labels, val_classes) & ~is_unseen)
    train = np.setdiff1d(seen_index, val)
    folder = Path(root) / name
    folder.mkdir(parents=True, exist_ok=True)
    col = lambda index: (index + 1).reshape(-1, 1).astype(np.float64)  # 1-based column vectors
    scipy.io.savemat(folder / "res101.mat", {"features": features.T.astype(np.float32),
                                             "labels": (labels + 1).reshape(-1, 1).astype(np.float64)})
    scipy.io.savemat(folder / "att_splits.mat", {
        "att": attributes.T, "trainval_loc": col(trainval), "test_seen_loc": col(test_seen),
        "test_unseen_loc": col(test_unseen), "train_loc": col(train), "val_loc": col(val),
    })
    return folder


TINY = dict(nepoch=3, ngh=64, ndh=64, encoder_hidden=64, generator_hidden=64, syn_num=50,
            batch_size=32, critic_iter=2, lr=1e-3, classifier_lr=1e-2, gammaD=10, gammaG=10,
            recons_weight=0.1, a1=0.5, a2=0.5, feed_lr=1e-4, dec_lr=1e-4, encoded_noise=True,
            classifier_nepoch=10, manualSeed=7, device="cpu", checkpoint_every=1)
