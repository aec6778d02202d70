"""The data a stage needs, loaded and validated once: a benchmark's files and the config fitted to them.

Every stage (train, synthesize, classify, verify-features, and `run`, which hands the loaded
benchmark from stage to stage) goes through `load_benchmark`; each split the protocols need is
then preprocessed from the same validated files.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from tfvaegan.config import Config
from tfvaegan.data.preprocess import ZSLData, make_split
from tfvaegan.data.validate import RawDataset, load_raw


@dataclass(frozen=True)
class Benchmark:
    """A validated dataset and its config, with the sizes (resSize, attSize, nclass_all) from the data."""

    raw: RawDataset
    cfg: Config
    data_root: Path

    def split(self, train: np.ndarray, test_seen: np.ndarray, test_unseen: np.ndarray,
              device: torch.device | str = "cpu") -> ZSLData:
        """Images `train` to train on (the scaler is fitted on them) and the two sets to evaluate on."""
        return make_split(self.raw, train, test_seen, test_unseen, self.cfg).to(device)

    def test_split(self, device: torch.device | str = "cpu") -> ZSLData:
        """The paper's split: train on trainval, evaluate on test_seen and test_unseen."""
        locs = self.raw.locs
        return self.split(locs["trainval"], locs["test_seen"], locs["test_unseen"], device)


def load_benchmark(data_root: str | Path, cfg: Config) -> Benchmark:
    """Read and validate the files `cfg` names; refuse sizes the config states and the data contradict."""
    raw = load_raw(data_root, cfg)
    n_classes, att_size = raw.attributes.shape
    attribute_source = str(raw.attribute_file or raw.split_file)
    resolved = cfg.resolved(raw.features.shape[1], att_size, n_classes,
                            source={"resSize": str(raw.feature_file), "attSize": attribute_source,
                                    "nclass_all": attribute_source})
    return Benchmark(raw, resolved, Path(data_root))
