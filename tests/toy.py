"""The one toy benchmark of the tests: a small learnable zero-shot problem in the xlsa17 layout (and
the action layout), and the tiny config that trains on it in seconds.

Features are a fixed non-linear function of the class attributes plus noise, so unseen classes are
predictable from their attributes and a working TF-VAEGAN scores far above chance. The splits follow
the xlsa17 conventions: the last `n_unseen` classes are unseen; a seeded fifth of the seen images is
test_seen; val_loc holds every seen image of the first four classes (test_seen ones included, as in
xlsa17). `feature_overrides` / `split_overrides` replace keys of the written files (None deletes a
key): that is how the bad-input tests make one malformed file at a time.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any, Mapping

import numpy as np

from tfvaegan.bench.problem import learnable_arrays
from tfvaegan.data.load import load_benchmark
from tfvaegan.data.matfile import write_mat
from tfvaegan.features.dataset import xlsa17_locations

# Config keys of a run that takes seconds on the toy benchmark.
TINY = dict(nepoch=3, ngh=64, ndh=64, encoder_hidden=64, generator_hidden=64, syn_num=50,
            batch_size=32, critic_iter=2, lr=1e-3, classifier_lr=1e-2, gammaD=10, gammaG=10,
            recons_weight=0.1, a1=0.5, a2=0.5, feed_lr=1e-4, dec_lr=1e-4, encoded_noise=True,
            classifier_nepoch=10, manualSeed=7, device="cpu", checkpoint_every=1, gzsl=True, preprocessing=True)
VAL_CLASSES = 4  # the first classes, held out in val_loc


def toy_arrays(n_classes: int = 24, n_unseen: int = 6, per_class: int = 20, res_size: int = 64,
               att_size: int = 8, seed: int = 0, noise: float = 0.3) -> dict[str, Any]:
    """The files' variables (tfvaegan.bench.problem.learnable_arrays, locations as float64 columns)."""
    return learnable_arrays(n_classes, n_unseen, per_class, res_size, att_size, seed, noise, VAL_CLASSES)


def _apply(variables: dict[str, Any], overrides: Mapping[str, Any] | None) -> dict[str, Any]:
    for key, value in (overrides or {}).items():
        if value is None:
            variables.pop(key, None)
        else:
            variables[key] = value
    return variables


def write_toy(root, dataset: str = "TOY", version: str = "v5", image_embedding: str = "res101",
              class_embedding: str = "att", feature_overrides: Mapping[str, Any] | None = None,
              split_overrides: Mapping[str, Any] | None = None, **shape) -> Path:
    """Write `<root>/<dataset>/{<image_embedding>.mat, <class_embedding>_splits.mat}`; return the folder.
    `shape` goes to toy_arrays (n_classes, n_unseen, per_class, res_size, att_size, seed, noise)."""
    arrays = toy_arrays(**shape)
    folder = Path(root) / dataset
    folder.mkdir(parents=True, exist_ok=True)
    n = arrays["labels"].size
    feature_vars = {"features": arrays["features"], "labels": arrays["labels"],
                    "image_files": [f"images/{i:05d}.jpg" for i in range(n)]}
    split_vars = {key: value for key, value in arrays.items() if key not in feature_vars}
    write_mat(folder / f"{image_embedding}.mat", _apply(feature_vars, feature_overrides), version=version)
    write_mat(folder / f"{class_embedding}_splits.mat", _apply(split_vars, split_overrides), version=version)
    return folder


def write_action_layout(root, name: str = "toy_i3d", n_splits: int = 2, n_classes: int = 12, n_unseen: int = 4,
                        per_class: int = 15, res_size: int = 32, att_size: int = 10, manual_att_size: int | None = 6,
                        manual_att_file: str = "ucf101_manual_att.npy", seed: int = 0,
                        version: str = "v5") -> Path:
    """The official action layout: `<root>/<name>/i3d.mat` shared by all splits,
    `<root>/<name>/split_<k>/att_splits.mat` per split (k = 1..n_splits, different unseen classes),
    and, unless manual_att_size is None, a classes x attributes manual attribute .npy beside i3d.mat.
    Returns the feature folder `<root>/<name>`.
    """
    base = toy_arrays(n_classes, n_unseen, per_class, res_size, att_size, seed)
    folder = Path(root) / name
    folder.mkdir(parents=True, exist_ok=True)
    write_mat(folder / "i3d.mat", {"features": base["features"], "labels": base["labels"]}, version=version)
    labels = base["labels"].ravel().astype(np.int64) - 1
    rng = np.random.default_rng(seed + 1)
    for k in range(1, n_splits + 1):
        unseen = rng.choice(n_classes, size=n_unseen, replace=False)
        locs = xlsa17_locations(labels, unseen, seed=seed + k)
        split_dir = folder / f"split_{k}"
        split_dir.mkdir(exist_ok=True)
        write_mat(split_dir / "att_splits.mat", {
            "att": base["att"], "original_att": base["att"],
            **{key: rows.reshape(-1, 1).astype(np.float64) for key, rows in locs.items()},
        }, version=version)
    if manual_att_size:
        manual = np.random.default_rng(seed + 2).random((n_classes, manual_att_size)) + 0.05
        np.save(folder / manual_att_file, manual.astype(np.float64))
    return folder


def load_test_split(root, cfg):
    """The paper's split of a dataset as the stages load it (trainval / test_seen / test_unseen)."""
    return load_benchmark(root, cfg).test_split()
