"""The bench's problems: random features of CUB's shapes, with the official CUB settings (the time of a
CUB run, without CUB's files: 7057 training features of 2048-d, 312-d attributes, 200 classes (50 unseen),
ngh = ndh = 4096, batch 64, critic_iter 5, feedback_loop 2, syn_num 300); and `learnable_arrays`, a small
learnable zero-shot problem in the xlsa17 layout (the tests' toy benchmark, the lineage check's).
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch

from tfvaegan.config import Config
from tfvaegan.data.matfile import write_mat
from tfvaegan.data.preprocess import ZSLData

CUB = dict(n_train=7057, n_test_seen=1764, n_test_unseen=2967, n_seen=150, n_unseen=50, res=2048, att=312)
CUB_CONFIG = dict(gammaD=10, gammaG=10, encoded_noise=True, nepoch=300, ngh=4096, ndh=4096, lr=1e-4,
                  classifier_lr=1e-3, lambda1=10, critic_iter=5, batch_size=64, syn_num=300,
                  recons_weight=0.01, a1=1, a2=1, feed_lr=1e-5, dec_lr=1e-4, feedback_loop=2, manualSeed=3483)


def cub_sized_samples(seed: int = 0) -> dict[str, torch.Tensor]:
    """Random features and class embeddings of CUB's shapes (classes 0-149 seen, 150-199 unseen)."""
    g = torch.Generator().manual_seed(seed)
    n_classes = CUB["n_seen"] + CUB["n_unseen"]
    attribute = torch.rand(n_classes, CUB["att"], generator=g)
    attribute /= attribute.norm(dim=1, keepdim=True)
    seen, unseen = torch.arange(CUB["n_seen"]), torch.arange(CUB["n_seen"], n_classes)
    arrays = {"attribute": attribute, "seen": seen, "unseen": unseen}
    for name, n, classes in (("train", CUB["n_train"], seen), ("test_seen", CUB["n_test_seen"], seen),
                             ("test_unseen", CUB["n_test_unseen"], unseen)):
        arrays[f"{name}_y"] = classes[torch.randint(len(classes), (n,), generator=g)]
        arrays[f"{name}_x"] = torch.rand(n, CUB["res"], generator=g)
    return arrays


def cub_sized_problem(device: torch.device, seed: int = 0) -> tuple[Config, ZSLData]:
    a = cub_sized_samples(seed)
    data = ZSLData(a["train_x"], a["train_y"], a["test_seen_x"], a["test_seen_y"], a["test_unseen_x"],
                   a["test_unseen_y"], a["attribute"], a["seen"], a["unseen"]).to(device)
    cfg = Config(**CUB_CONFIG, device=str(device)).resolved(CUB["res"], CUB["att"], len(a["attribute"]))
    return cfg, data


def write_cub_sized_dataset(root: Path, seed: int = 0) -> Path:
    """The bench's problem as an xlsa17 dataset <root>/CUB (res101.mat, att_splits.mat), so that a
    whole `python -m tfvaegan run` with config/benchmarks/cub.yaml can be timed where CUB is absent.
    Random features: the accuracies mean nothing, the time is a CUB run's."""
    a = cub_sized_samples(seed)
    parts = ("train", "test_seen", "test_unseen")
    features = torch.cat([a[f"{part}_x"] for part in parts])
    labels = torch.cat([a[f"{part}_y"] for part in parts]) + 1
    bounds = torch.tensor([0] + [len(a[f"{part}_y"]) for part in parts]).cumsum(0).tolist()
    loc = lambda start, stop: torch.arange(start + 1, stop + 1, dtype=torch.float64).numpy()[:, None]
    folder = Path(root) / "CUB"
    folder.mkdir(parents=True, exist_ok=True)
    write_mat(folder / "res101.mat", {"features": features.t().numpy(),
                                      "labels": labels.double().numpy()[:, None]})
    write_mat(folder / "att_splits.mat", {"att": a["attribute"].t().double().numpy(),
                                          "trainval_loc": loc(bounds[0], bounds[1]),
                                          "test_seen_loc": loc(bounds[1], bounds[2]),
                                          "test_unseen_loc": loc(bounds[2], bounds[3])})
    return folder


def learnable_arrays(n_classes: int = 24, n_unseen: int = 6, per_class: int = 20, res_size: int = 64,
                     att_size: int = 8, seed: int = 0, noise: float = 0.3, val_classes: int = 4,
                     location_dtype: type = np.float64, image_files: bool = False) -> dict[str, Any]:
    """The xlsa17 files' variables in MATLAB orientation: features (D, N) float32, 1-based labels (N, 1), att
    (A, C), allclasses_names and the five 1-based location columns (`location_dtype`: float64 as some MATLAB
    writers store them; the reference codes index with them and need an integer type, as xlsa17's uint16).

    Features are a fixed non-linear function of the class attributes plus noise, so unseen classes are
    predictable from their attributes. The last `n_unseen` classes are unseen; a seeded fifth of the seen images
    is test_seen; val_loc holds every seen image of the first `val_classes` classes (test_seen ones included, as
    in xlsa17)."""
    rng = np.random.default_rng(seed)
    # Sparse, attribute-like class embeddings; enough seen classes to span the attribute space,
    # so that the attribute -> feature map can be learnt and transferred to unseen classes.
    attributes = (rng.random((n_classes, att_size)) < 0.4) + 0.1 * rng.random((n_classes, att_size))
    attributes /= np.linalg.norm(attributes, axis=1, keepdims=True)
    mixing = rng.normal(size=(att_size, res_size)) * 3.0
    labels = np.repeat(np.arange(n_classes), per_class)
    features = 1 / (1 + np.exp(-(attributes[labels] @ mixing + noise * rng.normal(size=(len(labels), res_size)))))
    is_unseen = labels >= n_classes - n_unseen
    seen_index = np.flatnonzero(~is_unseen)
    test_seen = np.sort(rng.choice(seen_index, size=len(seen_index) // 5, replace=False))
    val = np.flatnonzero((labels < val_classes) & ~is_unseen)
    col = lambda index: (index + 1).reshape(-1, 1).astype(location_dtype)  # 1-based column vectors
    arrays = {
        "features": features.T.astype(np.float32),
        "labels": (labels + 1).reshape(-1, 1).astype(np.float64),
        "att": attributes.T,
        "allclasses_names": [f"{i + 1:03d}.class_{i + 1}" for i in range(n_classes)],
        "trainval_loc": col(np.setdiff1d(seen_index, test_seen)), "test_seen_loc": col(test_seen),
        "test_unseen_loc": col(np.flatnonzero(is_unseen)), "train_loc": col(np.setdiff1d(seen_index, val)),
        "val_loc": col(val),
    }
    if image_files:
        arrays["image_files"] = [f"images/{i:05d}.jpg" for i in range(len(labels))]
    return arrays
