"""Where a benchmark's files lie under the data root: the xlsa17 layout and the action layout.

  <root>/<image_embedding_path or dataset>/<image_embedding>.mat   features and labels
  <root>/<dataset>/<class_embedding>_splits.mat                    class embeddings and splits
  <feature folder>/<manual_att_file>                               manual attributes (UCF101)

Imports nothing beyond the standard library, so that the workflow (workflow/rules/common.smk)
reads the same rule without loading torch each time Snakemake parses it. `cfg` is anything with
the Config attributes named here.
"""
from __future__ import annotations

from pathlib import Path


def feature_path(data_root, cfg) -> Path:
    return Path(data_root) / (cfg.image_embedding_path or cfg.dataset) / f"{cfg.image_embedding}.mat"


def split_path(data_root, cfg) -> Path:
    return Path(data_root) / cfg.dataset / f"{cfg.class_embedding}_splits.mat"


def manual_attribute_path(data_root, cfg) -> Path:
    return feature_path(data_root, cfg).parent / cfg.manual_att_file


def data_files(data_root, cfg) -> list[Path]:
    """Every file a dataset (one split) is read from: features, splits, manual attributes if used."""
    files = [feature_path(data_root, cfg), split_path(data_root, cfg)]
    if cfg.manual_att:
        files.append(manual_attribute_path(data_root, cfg))
    return files
