"""Small generated datasets in the xlsa17 and action layouts, for tests.

Features are class-conditional (a fixed random map of the class attributes plus noise, kept
non-negative like ReLU features), so a working pipeline reaches accuracy far above chance.
`feature_overrides` / `split_overrides` replace keys of the written files (None deletes a key),
which is how the bad-input tests make one malformed file at a time.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any, Mapping

import numpy as np

from tfvaegan.data import write_mat
from tfvaegan.dataset import xlsa17_locations

XLSA17_ROOT = Path(__file__).resolve().parents[1].parent / "shared" / "xlsa17"


def toy_arrays(n_classes: int = 10, n_unseen: int = 3, per_class: int = 20, res_size: int = 32,
               att_size: int = 8, seed: int = 0, noise: float = 0.3) -> dict[str, Any]:
    """Raw arrays of a toy benchmark: features (D, N), 1-based labels (N, 1), att (A, C), the five locs."""
    rng = np.random.default_rng(seed)
    att = rng.random((att_size, n_classes)) + 0.05
    mapping = rng.normal(size=(res_size, att_size))
    labels = np.repeat(np.arange(n_classes), per_class)
    centres = mapping @ att  # (D, C)
    features = np.maximum(centres[:, labels] + noise * rng.normal(size=(res_size, labels.size)), 0)
    unseen = rng.choice(n_classes, size=n_unseen, replace=False)
    locs = xlsa17_locations(labels, unseen, seed=seed)
    return {
        "features": features.astype(np.float32),
        "labels": (labels + 1).reshape(-1, 1).astype(np.float64),
        "att": att,
        "allclasses_names": [f"{i + 1:03d}.class_{i + 1}" for i in range(n_classes)],
        **{key: rows.reshape(-1, 1).astype(np.float64) for key, rows in locs.items()},
    }


def _apply(variables: dict[str, Any], overrides: Mapping[str, Any] | None) -> dict[str, Any]:
    for key, value in (overrides or {}).items():
        if value is None:
            variables.pop(key, None)
        else:
            variables[key] = value
    return variables


def write_xlsa17(root, dataset: str = "TOY", n_classes: int = 10, n_unseen: int = 3, per_class: int = 20,
                 res_size: int = 32, att_size: int = 8, seed: int = 0, version: str = "v5",
                 image_embedding: str = "res101", class_embedding: str = "att",
                 feature_overrides: Mapping[str, Any] | None = None,
                 split_overrides: Mapping[str, Any] | None = None) -> Path:
    """Write `<root>/<dataset>/{<image_embedding>.mat, <class_embedding>_splits.mat}`; return the folder."""
    arrays = toy_arrays(n_classes, n_unseen, per_class, res_size, att_size, seed)
    folder = Path(root) / dataset
    folder.mkdir(parents=True, exist_ok=True)
    feature_keys = ("features", "labels")
    n = arrays["labels"].size
    feature_vars = {key: arrays[key] for key in feature_keys}
    feature_vars["image_files"] = [f"images/{i:05d}.jpg" for i in range(n)]
    split_vars = {key: value for key, value in arrays.items() if key not in feature_keys}
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
