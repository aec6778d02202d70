"""Preprocessing as the official loader does it, one split of a benchmark as tensors, and the part of
a split that training is given.

Features: MinMaxScaler (StandardScaler with `standardization`) fitted on the training rows only,
then every split multiplied by 1 / (maximum of the scaled training features). Attributes: rows
L2-normalised; with `bce_att` (the action code) also min-max scaled as the decoder's BCE targets.

Training gets a `TrainingData`, not the split: the labelled training rows, the class embeddings and,
when transductive, the unlabelled rows. It holds no test label tensor unless the config asks for
one (docs/transductive.md), so "training reads no test label" is a property of its type.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field

import numpy as np
import torch
from sklearn import preprocessing as skp

from tfvaegan.data.validate import RawDataset
from tfvaegan.errors import DataError


@dataclass
class ZSLData:
    """One split, preprocessed, as torch tensors on one device. Labels are global class ids."""

    train_feature: torch.Tensor
    train_label: torch.Tensor
    test_seen_feature: torch.Tensor
    test_seen_label: torch.Tensor
    test_unseen_feature: torch.Tensor
    test_unseen_label: torch.Tensor
    attribute: torch.Tensor  # (C, A), rows L2-normalised
    seenclasses: torch.Tensor
    unseenclasses: torch.Tensor
    bce_attribute: torch.Tensor | None = None  # (C, A) min-max scaled decoder targets (bce_att)
    info: dict = field(default_factory=dict)
    # Every test row (seen and unseen together) in the feature file's order, which no label decides:
    # what transductive training learns from under transductive_unlabelled `test`.
    test_feature: torch.Tensor | None = None
    test_label: torch.Tensor | None = None

    def for_training(self, cfg) -> "TrainingData":
        """The part of this split that training under `cfg` is given (see TrainingData)."""
        unlabelled = {}
        if cfg.transductive:
            unlabelled = self._unlabelled(cfg)
        return TrainingData(self.train_feature, self.train_label, self.attribute, self.seenclasses,
                            self.unseenclasses, self.bce_attribute,
                            source=self.info.get("split_file", "the split file"), **unlabelled)

    def _unlabelled(self, cfg) -> dict:
        where = self.info.get("split_file", "the split file")
        if self.unseenclasses.numel() == 0:
            raise DataError(f"{where}: transductive: true needs unseen classes in the split it trains on, found none")
        if cfg.transductive_unlabelled == "test_unseen":  # the authors': a test label decides each row's set
            features, labels, classes = self.test_unseen_feature, self.test_unseen_label, self.unseenclasses
            if features.size(0) == 0:
                raise DataError(f"{where}: key 'test_unseen_loc': transductive: true trains on unlabelled features "
                                f"of the unseen classes, expected at least one, found an empty set")
        else:  # `test`: every test row, unlabelled; its fakes may be of any class the test set may hold
            if self.test_feature is None:
                raise DataError(f"{where}: transductive_unlabelled 'test' needs the split's test rows in the feature "
                                f"file's order (made by make_split), found none")
            features, labels = self.test_feature, self.test_label
            classes = torch.unique(torch.cat([self.seenclasses, self.unseenclasses]))
            if features.size(0) == 0:
                raise DataError(f"{where}: keys 'test_seen_loc', 'test_unseen_loc': transductive: true trains on "
                                f"unlabelled test features, expected at least one, found an empty set")
        return {"unlabelled_feature": features, "unlabelled_classes": classes,
                "unlabelled_label": labels if cfg.transductive_prior == "labels" else None,
                "unlabelled_rows": cfg.transductive_unlabelled}

    def to(self, device) -> "ZSLData":
        moved = {
            f.name: getattr(self, f.name).to(device)
            for f in dataclasses.fields(self)
            if isinstance(getattr(self, f.name), torch.Tensor)
        }
        return dataclasses.replace(self, **moved)

    @property
    def res_size(self) -> int:
        return int(self.train_feature.shape[1])

    @property
    def att_size(self) -> int:
        return int(self.attribute.shape[1])

    @property
    def n_classes(self) -> int:
        return int(self.attribute.shape[0])


@dataclass(frozen=True)
class TrainingData:
    """What a trainer is given: the labelled training rows, every class's embedding, and, when
    transductive, the unlabelled rows D2 learns from. A test label is here only where the config reads
    one: `unlabelled_label` with transductive_prior `labels`; and under transductive_unlabelled
    `test_unseen` the choice of rows is the test labels' (the authors' setting)."""

    train_feature: torch.Tensor
    train_label: torch.Tensor
    attribute: torch.Tensor
    seenclasses: torch.Tensor
    unseenclasses: torch.Tensor  # as a set: the classes to synthesise, known in zero-shot learning
    bce_attribute: torch.Tensor | None = None
    unlabelled_feature: torch.Tensor | None = None  # (n, D) transductive only
    unlabelled_classes: torch.Tensor | None = None  # the classes the unlabelled rows may belong to, sorted
    unlabelled_label: torch.Tensor | None = None  # each unlabelled row's label: prior `labels` only
    unlabelled_rows: str | None = None  # transductive_unlabelled: test | test_unseen
    source: str = "the split file"  # named in messages


def training_data(data: ZSLData | TrainingData, cfg) -> TrainingData:
    """`data` as training under `cfg` is given it: a split is cut down (ZSLData.for_training), a TrainingData
    is already what training may see."""
    return data if isinstance(data, TrainingData) else data.for_training(cfg)


def l2_normalise_rows(matrix: np.ndarray) -> np.ndarray:
    """Rows divided by their L2 norm, in float32 as the official loader computes it."""
    matrix = matrix.astype(np.float32)
    return matrix / np.sqrt((matrix ** 2).sum(axis=1, keepdims=True))


def make_split(raw: RawDataset, train_idx, test_seen_idx, test_unseen_idx, cfg) -> ZSLData:
    """Preprocess as the official loader does, with the scaler fitted on `train_idx` only.

    Features: MinMaxScaler (StandardScaler with cfg.standardization) fitted on the training
    rows, then every split multiplied by 1 / (maximum of the scaled training features);
    cfg.preprocessing False keeps the raw features. Attributes: rows L2-normalised.
    """
    train_idx, test_seen_idx, test_unseen_idx = (np.asarray(i, dtype=np.int64)
                                                 for i in (train_idx, test_seen_idx, test_unseen_idx))
    features = raw.features
    parts = [features[train_idx], features[test_seen_idx], features[test_unseen_idx]]
    train_max = None
    if cfg.preprocessing:
        scaler = skp.StandardScaler() if cfg.standardization else skp.MinMaxScaler()
        # float64 as the official code, whose features come from loadmat as doubles
        train = scaler.fit_transform(parts[0].astype(np.float64)).astype(np.float32)
        train_max = float(train.max())
        if not train_max > 0:
            raise DataError(f"{raw.feature_file}: key 'features': expected training features that vary, "
                            f"found a maximum of {train_max} after scaling (constant features?)")
        scale = np.float32(1.0 / train_max)
        parts = [train * scale] + [
            scaler.transform(p.astype(np.float64)).astype(np.float32) * scale if len(p) else p
            for p in parts[1:]]
    attribute = l2_normalise_rows(raw.attributes)

    bce_attribute = None
    if cfg.bce_att:
        # The official action loader min-max scales the normalised attributes over classes and
        # multiplies by 1/train_max (= 1 after MinMax preprocessing). Under standardization it
        # would swap in a StandardScaler, giving BCE targets outside [0, 1]; targets stay min-max.
        bce = skp.MinMaxScaler().fit_transform(attribute.astype(np.float64)).astype(np.float32)
        if cfg.preprocessing and not cfg.standardization:
            bce = bce * np.float32(1.0 / train_max)
        bce_attribute = torch.from_numpy(bce)

    labels = [torch.from_numpy(raw.labels[idx]) for idx in (train_idx, test_seen_idx, test_unseen_idx)]
    file_order = np.argsort(np.concatenate([test_seen_idx, test_unseen_idx]), kind="stable")
    seen = torch.unique(labels[0])
    unseen = torch.unique(labels[2])
    info = {
        "feature_file": str(raw.feature_file),
        "split_file": str(raw.split_file),
        "attribute_file": str(raw.attribute_file) if raw.attribute_file else None,
        "formats": dict(raw.formats),
        "n_classes": raw.n_classes,
        "n_seen_classes": int(seen.numel()),
        "n_unseen_classes": int(unseen.numel()),
        "n_train": int(train_idx.size),
        "n_test_seen": int(test_seen_idx.size),
        "n_test_unseen": int(test_unseen_idx.size),
        "res_size": int(features.shape[1]),
        "att_size": int(attribute.shape[1]),
        "preprocessing": ("standard" if cfg.standardization else "minmax") if cfg.preprocessing else "none",
        "train_max": train_max,
        "notes": list(raw.notes),
    }
    return ZSLData(
        train_feature=torch.from_numpy(np.ascontiguousarray(parts[0])),
        train_label=labels[0],
        test_seen_feature=torch.from_numpy(np.ascontiguousarray(parts[1])),
        test_seen_label=labels[1],
        test_unseen_feature=torch.from_numpy(np.ascontiguousarray(parts[2])),
        test_unseen_label=labels[2],
        attribute=torch.from_numpy(np.ascontiguousarray(attribute)),
        seenclasses=seen,
        unseenclasses=unseen,
        bce_attribute=bce_attribute,
        info=info,
        test_feature=torch.from_numpy(np.ascontiguousarray(
            np.concatenate([parts[1], parts[2]])[file_order].astype(parts[0].dtype, copy=False))),
        test_label=torch.cat([labels[1], labels[2]])[torch.from_numpy(file_order)],
    )
