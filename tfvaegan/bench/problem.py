"""The bench's problem: random features of CUB's shapes, with the official CUB settings.

7057 training features of 2048-d, 312-d attributes, 200 classes (50 unseen), ngh = ndh = 4096,
batch 64, critic_iter 5, feedback_loop 2, syn_num 300: the time of a CUB run, without CUB's files.
"""
from __future__ import annotations

from pathlib import Path

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
