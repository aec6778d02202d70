"""`dataset build` and `dataset check`: users' own data in the xlsa17 layout.

build: an image folder (one sub-folder per class) + class attributes (a CSV, or embeddings of the
class names) + a split spec → `<out>/<image_embedding>.mat` and `<out>/<class_embedding>_splits.mat`,
with the locations built the way xlsa17 builds them. check: validate a dataset folder with the
loader's own rules and print a summary, or every problem found.
"""
from __future__ import annotations

import csv
import json
import os
from dataclasses import replace
from pathlib import Path

import numpy as np
import torch

from tfvaegan.config import Config
from tfvaegan.data.matfile import write_mat
from tfvaegan.data.preprocess import l2_normalise_rows
from tfvaegan.data.validate import RawDataset, inspect
from tfvaegan.errors import DataError
from tfvaegan.features import extract
from tfvaegan.features.embeddings import embed_class_names
from tfvaegan.fileio import staging_folder


# --------------------------------------------------------------------------- splits, the xlsa17 way
def xlsa17_locations(labels: np.ndarray, unseen_classes, seed: int, test_seen_fraction: float = 0.2,
                     val_class_fraction: float = 1 / 3) -> dict[str, np.ndarray]:
    """The five 1-based location vectors of the xlsa17 proposed splits for 0-based `labels`.

    test_unseen = every image of an unseen class; test_seen = a seeded `test_seen_fraction` of each
    seen class's images; trainval = the rest. val = every seen-class image of a seeded
    `val_class_fraction` of the seen classes, train = every image of the other seen classes, so
    that, as in xlsa17, train ∪ val = trainval ∪ test_seen.
    """
    labels = np.asarray(labels, dtype=np.int64)
    unseen = np.unique(np.asarray(list(unseen_classes), dtype=np.int64))
    seen = np.setdiff1d(np.unique(labels), unseen)
    if seen.size < 2 or unseen.size < 1:
        raise DataError(f"split: expected at least 2 seen classes and 1 unseen class, found {seen.size} seen "
                        f"and {unseen.size} unseen")
    rng = np.random.default_rng(seed)
    test_seen = []
    for cls in seen:
        rows = np.flatnonzero(labels == cls)
        n_test = int(round(test_seen_fraction * rows.size)) if rows.size > 1 else 0
        n_test = min(n_test, rows.size - 1)  # every seen class keeps a training image
        test_seen.append(rng.permutation(rows)[:n_test])
    test_seen = np.sort(np.concatenate(test_seen))
    is_unseen = np.isin(labels, unseen)
    test_unseen = np.flatnonzero(is_unseen)
    trainval = np.setdiff1d(np.flatnonzero(~is_unseen), test_seen)
    n_val = min(max(1, int(round(val_class_fraction * seen.size))), seen.size - 1)
    val_classes = rng.choice(seen, size=n_val, replace=False)
    in_val = np.isin(labels, val_classes)
    val = np.flatnonzero(in_val & ~is_unseen)
    train = np.flatnonzero(~in_val & ~is_unseen)
    return {key: rows + 1 for key, rows in (("trainval_loc", trainval), ("test_seen_loc", test_seen),
                                            ("test_unseen_loc", test_unseen), ("train_loc", train),
                                            ("val_loc", val))}


def choose_unseen(class_names: list[str], unseen: str | None, unseen_fraction: float | None,
                  seed: int) -> list[int]:
    """0-based unseen class indices from `--unseen A,B` or `--unseen-fraction F --seed S`."""
    if unseen is not None:
        wanted = [name.strip() for name in unseen.split(",") if name.strip()]
        unknown = [name for name in wanted if name not in class_names]
        if unknown:
            raise DataError(f"--unseen: expected class folder names, found unknown class(es) {unknown} "
                            f"(classes: {', '.join(class_names[:10])}{' ...' if len(class_names) > 10 else ''})")
        indices = sorted({class_names.index(name) for name in wanted})
    else:
        if not 0 < unseen_fraction < 1:
            raise DataError(f"--unseen-fraction: expected a number in (0, 1), found {unseen_fraction}")
        count = max(1, int(round(unseen_fraction * len(class_names))))
        rng = np.random.default_rng(seed)
        indices = sorted(int(i) for i in rng.choice(len(class_names), size=count, replace=False))
    if not indices or len(class_names) - len(indices) < 2:
        raise DataError(f"split: expected at least 1 unseen and 2 seen classes out of {len(class_names)}, "
                        f"found {len(indices)} unseen")
    return indices


# --------------------------------------------------------------------------- inputs of build
def list_images(image_root: Path) -> tuple[list[str], list[str], np.ndarray]:
    """Class names (sorted sub-folders), image entries relative to the root, 0-based labels."""
    if not image_root.is_dir():
        raise DataError(f"{image_root}: expected a folder with one sub-folder of images per class, found "
                        f"{'a file' if image_root.exists() else 'nothing'}")
    class_names = sorted(p.name for p in image_root.iterdir() if p.is_dir())
    entries, labels = extract.class_folder_list(image_root, class_names)
    counts = np.bincount(labels - 1, minlength=len(class_names))
    if not counts.all():
        empty = [name for name, count in zip(class_names, counts) if count == 0]
        raise DataError(f"{image_root / empty[0]}: expected at least one image per class folder, found none "
                        f"in {len(empty)} folder(s): {empty[:5]}")
    return class_names, entries, labels - 1


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


def read_attribute_csv(path: Path, class_names: list[str]) -> np.ndarray:
    """(C, A) attributes in `class_names` order from a CSV: class name, then one column per attribute.

    A header row is optional: the first row is one when its first cell is no class folder's name and
    either reads 'class'/'name' or none of its other cells is a number; otherwise it is data, so that
    a bad value in it is reported as such.
    """
    if not path.is_file():
        raise DataError(f"{path}: file not found (expected the attribute CSV: class name, one column per "
                        f"attribute)")
    try:
        with open(path, newline="", encoding="utf-8-sig") as handle:
            rows = [(line, row) for line, row in enumerate(csv.reader(handle), start=1)
                    if any(cell.strip() for cell in row)]
    except UnicodeDecodeError as exc:
        raise DataError(f"{path}: expected UTF-8 text, found byte {exc.object[exc.start]:#04x} at offset "
                        f"{exc.start}") from None
    if rows and rows[0][1][0].strip() not in class_names and (
            rows[0][1][0].strip().lower() in ("class", "classes", "class_name", "name")
            or not any(_is_number(cell) for cell in rows[0][1][1:])):
        rows = rows[1:]  # header
    if not rows:
        raise DataError(f"{path}: expected one row per class, found no data rows")
    width = len(rows[0][1])
    if width < 2:
        raise DataError(f"{path}: line {rows[0][0]}: expected a class name and at least one attribute column, "
                        f"found {width} column(s)")
    values: dict[str, np.ndarray] = {}
    for line, row in rows:
        name = row[0].strip()
        if len(row) != width:
            raise DataError(f"{path}: line {line}, class '{name}': expected {width} columns as in the first row, "
                            f"found {len(row)}")
        if name in values:
            raise DataError(f"{path}: line {line}, class '{name}': expected one row per class, found a duplicate row")
        bad = next((column for column, cell in enumerate(row[1:], start=2) if not _is_number(cell)), None)
        if bad is not None:
            raise DataError(f"{path}: line {line}, column {bad}, class '{name}': expected a numeric attribute "
                            f"value, found {row[bad - 1]!r}")
        vector = np.array([float(cell) for cell in row[1:]], dtype=np.float64)
        if not np.all(np.isfinite(vector)):
            raise DataError(f"{path}: line {line}, class '{name}': expected finite attribute values, found NaN/Inf")
        if not np.any(vector):
            raise DataError(f"{path}: line {line}, class '{name}': expected a non-zero attribute vector, found all zeros")
        values[name] = vector
    missing = [name for name in class_names if name not in values]
    extra = [name for name in values if name not in class_names]
    if missing or extra:
        raise DataError(f"{path}: column 1 (class name): expected exactly the class folders' names, found "
                        f"missing {missing[:5]}{' ...' if len(missing) > 5 else ''}, "
                        f"extra {extra[:5]}{' ...' if len(extra) > 5 else ''}")
    return np.stack([values[name] for name in class_names])


# --------------------------------------------------------------------------- build
def build(image_root: Path, out: Path, *, attributes_csv: Path | None = None, attributes_from_names: bool = False,
          embedding_model: str | None = None, unseen: str | None = None, unseen_fraction: float | None = None,
          seed: int = 0, test_seen_fraction: float = 0.2, val_class_fraction: float = 1 / 3,
          image_embedding: str = "res101", class_embedding: str = "att", weights: str | None = None,
          batch_size: int = extract.EXTRACTION.batch_size, device: str = extract.EXTRACTION.device,
          image_size: int = extract.EXTRACTION.image_size, backbone: str = extract.EXTRACTION.backbone,
          allow_random_init: bool = extract.EXTRACTION.allow_random_init) -> Path:
    """Build a dataset folder in the xlsa17 layout; the folder appears whole or not at all."""
    image_root, out = Path(image_root), Path(out)
    if out.exists():
        raise DataError(f"{out}: expected a new dataset folder, found an existing path (remove it or choose "
                        f"another --out; nothing was overwritten)")
    if not 0 < test_seen_fraction < 1:
        raise DataError(f"--test-seen-fraction: expected a number in (0, 1), found {test_seen_fraction}")
    if not 0 < val_class_fraction < 1:
        raise DataError(f"--val-class-fraction: expected a number in (0, 1), found {val_class_fraction}")
    class_names, entries, labels = list_images(image_root)
    print(f"dataset build: {len(class_names)} classes, {len(entries)} images under {image_root}", flush=True)
    if attributes_from_names:
        attributes = embed_class_names(class_names, embedding_model)
        att_source = f"class-name embeddings ({embedding_model or 'default model'})"
    else:
        attributes = read_attribute_csv(Path(attributes_csv), class_names)
        att_source = str(attributes_csv)
    unseen_idx = choose_unseen(class_names, unseen, unseen_fraction, seed)
    locs = xlsa17_locations(labels, unseen_idx, seed, test_seen_fraction, val_class_fraction)
    if locs["test_seen_loc"].size == 0:  # refuse before the long extraction what the loader refuses after it
        largest = np.delete(np.bincount(labels), unseen_idx).max()
        raise DataError(f"{out}: key 'test_seen_loc': expected at least one seen-class test image, found an empty "
                        f"set (largest seen class: {largest} image(s); with --test-seen-fraction {test_seen_fraction}"
                        f" a class needs >= {max(2, int(0.5 / test_seen_fraction) + 1)} to give test_seen one)")

    if device == "auto":
        device = "cuda" if torch.cuda.is_available() else "cpu"
    image_paths = [extract.safe_image_path(image_root, entry) for entry in entries]
    features = extract.extract_features(image_paths, weights=weights, batch_size=batch_size, device=device,
                                        image_size=image_size, backbone=backbone, seed=seed,
                                        allow_random_init=allow_random_init)
    features = np.asarray(features, dtype=np.float32)
    if features.ndim != 2 or features.shape[0] != len(entries):
        raise DataError(f"feature extractor: expected ({len(entries)}, D) features, found shape {features.shape}")

    out.parent.mkdir(parents=True, exist_ok=True)
    with staging_folder(out.parent, f".{out.name}.building-") as staging:
        extract.write_feature_file(staging / f"{image_embedding}.mat", features, labels + 1, entries)
        write_mat(staging / f"{class_embedding}_splits.mat", {
            "att": l2_normalise_rows(attributes).T.astype(np.float64),
            "original_att": attributes.T.astype(np.float64),
            "allclasses_names": class_names,
            **{key: rows.reshape(-1, 1).astype(np.float64) for key, rows in locs.items()},
        })
        (staging / "build_info.json").write_text(json.dumps({
            "image_root": str(image_root.resolve()), "attributes": att_source,
            "unseen_classes": [class_names[i] for i in unseen_idx], "seed": seed,
            "test_seen_fraction": test_seen_fraction, "val_class_fraction": val_class_fraction,
            "backbone": backbone, "weights": weights, "random_init": allow_random_init and extract.weights_path(backbone, weights) is None,
            "image_size": image_size,
            "sizes": {key: int(rows.size) for key, rows in locs.items()},
        }, indent=2) + "\n")
        _, problems = inspect(staging.parent, _check_config(staging.name, image_embedding, class_embedding))
        if problems:  # named as the output, which is what the user asked for and will look at
            raise DataError(f"{out}: the built dataset failed validation: "
                            f"{problems[0].replace(str(staging), str(out))}")
        os.replace(staging, out)
    print(f"dataset build: wrote {out} ({len(class_names) - len(unseen_idx)} seen, {len(unseen_idx)} unseen "
          f"classes; trainval {locs['trainval_loc'].size}, test_seen {locs['test_seen_loc'].size}, "
          f"test_unseen {locs['test_unseen_loc'].size})", flush=True)
    return out


# --------------------------------------------------------------------------- check
def _check_config(dataset: str, image_embedding: str, class_embedding: str, feature_dir: Path | None = None,
                  manual_att_file: str | None = None):
    # checked for what a dataset is for: ZSL and GZSL (which needs seen test images)
    cfg = Config(dataset=dataset, image_embedding=image_embedding, class_embedding=class_embedding,
                 image_embedding_path=str(feature_dir.resolve()) if feature_dir else None, gzsl=True)
    if manual_att_file:
        cfg = replace(cfg, manual_att=True, manual_att_file=manual_att_file)
    return cfg


def summary(raw: RawDataset) -> str:
    """A human-readable description of a valid dataset."""
    seen, unseen = raw.seen_classes, raw.unseen_classes
    lines = [
        f"feature file: {raw.feature_file} ({raw.formats.get(str(raw.feature_file))})",
        f"split file:   {raw.split_file} ({raw.formats.get(str(raw.split_file))})",
    ]
    if raw.attribute_file:
        lines.append(f"attributes:   {raw.attribute_file} (replaces 'att')")
    lines += [
        f"classes: {raw.n_classes} ({seen.size} seen, {unseen.size} unseen"
        + (f", {raw.n_classes - seen.size - unseen.size} in neither" if raw.n_classes != seen.size + unseen.size
           else "") + ")",
        "samples: " + ", ".join(f"{key} {rows.size}" for key, rows in raw.locs.items())
        + f" (of {raw.labels.size})",
        f"features: {raw.features.shape[1]}-d, values in [{raw.features.min():.4g}, {raw.features.max():.4g}]",
        f"attributes: {raw.attributes.shape[1]}-d, values in [{raw.attributes.min():.4g}, "
        f"{raw.attributes.max():.4g}]",
    ]
    if raw.class_names:
        shown = ", ".join(raw.class_names[i] for i in unseen[:5])
        lines.append(f"unseen classes: {shown}{' ...' if unseen.size > 5 else ''}")
    lines += [f"note: {note}" for note in raw.notes]
    return "\n".join(lines)


def check(directory: Path, image_embedding: str = "res101", class_embedding: str = "att",
          feature_dir: Path | None = None, manual_att_file: str | None = None) -> tuple[RawDataset | None, list[str]]:
    directory = Path(directory).resolve()
    cfg = _check_config(directory.name, image_embedding, class_embedding, feature_dir, manual_att_file)
    return inspect(directory.parent, cfg)
