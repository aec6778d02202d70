"""Validation of a benchmark's files: one rule per check, every problem one clear line.

The rules of the xlsa17 "proposed splits" (and of the action layout, whose feature file all splits
share): features D x N and labels N x 1 (1-based) in the feature file; att A x C and 1-based,
disjoint trainval/test_seen/test_unseen locations in the split file; unseen classes absent from
training. Every problem names the file, the key, what was expected and what was found. `inspect`
collects all of them (for `dataset check`); `load_raw` raises the first as a DataError. A problem
that makes the later checks meaningless (a missing file or key, a wrong shape) stops the checking.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import numpy as np

from tfvaegan.data.layout import feature_path, manual_attribute_path, split_path
from tfvaegan.data.matfile import SPARSE, describe, is_sparse, mat_version, read_mat
from tfvaegan.errors import DataError, exception_in_one_line

REQUIRED_LOCS = ("trainval_loc", "test_seen_loc", "test_unseen_loc")
OPTIONAL_LOCS = ("train_loc", "val_loc")
# The three evaluation sets of the xlsa17 protocol must be disjoint; train/val need not be
# (xlsa17 quirk: train_loc ∪ val_loc = trainval_loc ∪ test_seen_loc).
DISJOINT_LOCS = REQUIRED_LOCS


@dataclass
class RawDataset:
    """The files as on disk after validation, with 0-based indices."""

    features: np.ndarray  # (N, D) float32
    labels: np.ndarray  # (N,) int64, 0-based class index
    attributes: np.ndarray  # (C, A) float32, rows = classes (att.T), not normalised
    locs: dict[str, np.ndarray]  # 'trainval', 'test_seen', 'test_unseen' (+ 'train', 'val'), 0-based
    class_names: list[str] | None
    image_files: list[str] | None
    feature_file: Path
    split_file: Path
    attribute_file: Path | None = None  # the manual attribute file when it replaced `att`
    formats: dict[str, str] = field(default_factory=dict)  # file -> 'v5' | 'v7.3' | 'npy'
    notes: list[str] = field(default_factory=list)

    @property
    def n_classes(self) -> int:
        return int(self.attributes.shape[0])

    @property
    def seen_classes(self) -> np.ndarray:
        return np.unique(self.labels[self.locs["trainval"]])

    @property
    def unseen_classes(self) -> np.ndarray:
        return np.unique(self.labels[self.locs["test_unseen"]])


class _Stop(Exception):
    """A problem that makes further checks meaningless (a file or key is missing, a shape is wrong)."""


class _Problems:
    def __init__(self) -> None:
        self.items: list[str] = []

    def add(self, message: str) -> None:
        self.items.append(message)

    def stop_if_any(self) -> None:
        if self.items:
            raise _Stop


def load_raw(data_root, cfg) -> RawDataset:
    """Read and validate the feature and split files named by `cfg`; raise the first problem."""
    raw, problems = inspect(data_root, cfg)
    if problems:
        more = f" (and {len(problems) - 1} more problem(s): run `python -m tfvaegan dataset check`)" \
            if len(problems) > 1 else ""
        raise DataError(problems[0] + more)
    assert raw is not None
    return raw


def inspect(data_root, cfg) -> tuple[RawDataset | None, list[str]]:
    """Read and validate; return the dataset (None when unusable) and every problem found."""
    problems = _Problems()
    try:
        raw = _validated(Path(data_root), cfg, problems)
    except _Stop:
        return None, problems.items
    return (None if problems.items else raw), problems.items


def image_split(split_file, labels: np.ndarray, list_file) -> dict[str, np.ndarray]:
    """The split file's trainval/test_seen/test_unseen locations (and train/val where present) as 0-based
    rows of an image list (a res101.mat's image_files, or an image_list.txt; `labels` its 1-based labels,
    one per row), checked by the rules a feature file's split gets: present, 1-based, in range, distinct,
    disjoint, trainval non-empty, no unseen class among the training labels. Needs no features and no class
    embeddings (fine-tuning reads this before any image); raises the first problem as a DataError."""
    problems = _Problems()
    split_file, list_file = Path(split_file), Path(list_file)
    try:
        content = _read_file(split_file, "split file with trainval_loc, test_seen_loc and test_unseen_loc", problems)
        keys = REQUIRED_LOCS + tuple(key for key in OPTIONAL_LOCS if key in content)
        arrays = {key: _numeric(content, split_file, key, "an n x 1 vector of 1-based row indices into the "
                                f"image list {list_file.name}", problems) for key in keys}
        problems.stop_if_any()
        vectors = {key: _vector(array, split_file, key, problems) for key, array in arrays.items()}
        problems.stop_if_any()
        files = _Files(list_file, split_file, {}, content, {str(split_file): mat_version(split_file)})
        zsl_only = SimpleNamespace(reports_gzsl=False)  # test_seen may be empty: only GZSL scores it
        locs = {key[:-4]: _location(files, key, vector, arrays[key], labels.size, zsl_only, problems)
                for key, vector in vectors.items()}
        problems.stop_if_any()
        _check_disjoint(split_file, locs, problems)
        _check_split_classes(split_file, np.asarray(labels) - 1, locs, _strings(content, split_file,
                             "allclasses_names", []), problems)
        problems.stop_if_any()
    except _Stop:
        raise DataError(problems.items[0]) from None
    return locs


@dataclass
class _Files:
    """The two files being validated: their paths, contents and MATLAB versions."""

    feature_file: Path
    split_file: Path
    features: dict[str, Any]
    splits: dict[str, Any]
    formats: dict[str, str]

    def hint(self, path: Path, matlab: str, stored: str) -> str:
        return _h5py_hint(self.formats[str(path)], matlab, stored)


def _validated(root: Path, cfg, problems: _Problems) -> RawDataset:
    """Every rule in turn, from the files' presence to the classes of the splits."""
    files = _read_files(root, cfg, problems)
    features, labels, att, loc_arrays = _typed_arrays(files, problems)
    locs_1based = _check_dimensions(files, features, labels, att, loc_arrays, problems)
    labels = locs_1based.pop("labels")
    _check_orientation(files, features, labels, att, problems)

    notes: list[str] = []
    class_names = _strings(files.splits, files.split_file, "allclasses_names", notes)
    image_files = _strings(files.features, files.feature_file, "image_files", notes)
    embeddings = _class_embeddings(root, cfg, files, att, problems)
    _check_labels_cover_the_classes(files, labels, embeddings, problems)
    _check_class_names(files, class_names, embeddings.n_classes, problems)
    problems.stop_if_any()

    features = _float32(features, files.feature_file, "features", problems, ("row", "sample"))
    _check_features_vary(files.feature_file, features, problems)
    attributes = embeddings.as_float32(problems)
    _check_attribute_norms(embeddings, attributes, class_names, problems)
    locs = {key[:-4]: _location(files, key, loc, loc_arrays[key], labels.size, cfg, problems)
            for key, loc in locs_1based.items()}
    problems.stop_if_any()

    _check_disjoint(files.split_file, locs, problems)
    _check_split_classes(files.split_file, labels - 1, locs, class_names, problems)
    problems.stop_if_any()
    if "train" in locs and "val" in locs:
        covered = np.union1d(locs["train"], locs["val"])
        if np.intersect1d(covered, locs["test_seen"]).size:
            notes.append("train_loc/val_loc include test_seen images (the xlsa17 convention); "
                         "a validation protocol must intersect them with trainval_loc")
    return RawDataset(
        features=np.ascontiguousarray(features.T), labels=labels - 1,
        attributes=np.ascontiguousarray(attributes), locs=locs, class_names=class_names,
        image_files=image_files, feature_file=files.feature_file, split_file=files.split_file,
        attribute_file=embeddings.manual_file, formats=files.formats, notes=notes,
    )


# --------------------------------------------------------------------------- files, keys, shapes
def _read_files(root: Path, cfg, problems: _Problems) -> _Files:
    feat_file, split_file = feature_path(root, cfg), split_path(root, cfg)
    feature_content = _read_file(feat_file, "feature file <root>/<image_embedding_path or dataset>/"
                                            "<image_embedding>.mat", problems)
    split_content = _read_file(split_file, "split file <root>/<dataset>/<class_embedding>_splits.mat",
                               problems)
    formats = {str(feat_file): mat_version(feat_file), str(split_file): mat_version(split_file)}
    return _Files(feat_file, split_file, feature_content, split_content, formats)


def _read_file(path: Path, what: str, problems: _Problems) -> dict[str, Any]:
    if not path.is_file():
        problems.add(f"{path}: file not found (expected the {what})")
        raise _Stop
    try:
        return read_mat(path)
    except DataError as exc:
        problems.add(str(exc))
        raise _Stop from None


def _typed_arrays(files: _Files, problems: _Problems):
    """features, labels, att and the location vectors present, each a dense numeric array."""
    features = _numeric(files.features, files.feature_file, "features", "a D x N matrix", problems)
    labels = _numeric(files.features, files.feature_file, "labels", "an N x 1 vector of 1-based class indices",
                      problems)
    att = _numeric(files.splits, files.split_file, "att", "an A x C matrix (attributes x classes)", problems)
    loc_arrays = {}
    for key in REQUIRED_LOCS + OPTIONAL_LOCS:
        if key in files.splits or key in REQUIRED_LOCS:
            loc_arrays[key] = _numeric(files.splits, files.split_file, key, "an n x 1 vector of 1-based row "
                                       "indices into the features", problems)
    problems.stop_if_any()
    return features, labels, att, loc_arrays


def _check_dimensions(files: _Files, features: np.ndarray, labels: np.ndarray, att: np.ndarray,
                      loc_arrays: dict[str, np.ndarray], problems: _Problems) -> dict[str, np.ndarray]:
    """Matrices 2-D, labels and locations whole-number vectors; returns those vectors (key 'labels' too)."""
    if features.ndim != 2:
        problems.add(f"{files.feature_file}: key 'features': expected a 2-D D x N matrix, found {features.ndim}-D "
                     f"shape {features.shape}")
    if att.ndim != 2:
        problems.add(f"{files.split_file}: key 'att': expected a 2-D A x C matrix, found {att.ndim}-D shape "
                     f"{att.shape}")
    vectors = {"labels": _vector(labels, files.feature_file, "labels", problems)}
    vectors.update({key: _vector(array, files.split_file, key, problems) for key, array in loc_arrays.items()})
    problems.stop_if_any()
    return vectors


def _check_orientation(files: _Files, features: np.ndarray, labels: np.ndarray, att: np.ndarray,
                       problems: _Problems) -> None:
    """One feature column per label, one att column per class: a transposed matrix is named as such."""
    n_samples = labels.size
    if features.shape[1] != n_samples:
        hint = "" if features.shape[0] != n_samples else (
            " (the matrix looks N x D: xlsa17 stores features as D x N, one column per sample"
            f"{files.hint(files.feature_file, 'D x N', 'N x D')})")
        problems.add(f"{files.feature_file}: key 'features': expected one column per label ({n_samples} columns, "
                     f"D x N), found shape {features.shape}{hint}")
    n_labelled = int(labels.max()) if labels.size else 0
    if att.shape[1] != n_labelled and att.shape[0] == n_labelled:
        # caught here, or the label range check would blame the (correct) labels
        problems.add(f"{files.split_file}: key 'att': expected an A x C matrix, one column per class ({n_labelled}: "
                     f"the labels in {files.feature_file.name} reach {n_labelled}), found shape {att.shape} (the "
                     f"matrix looks transposed, C x A{files.hint(files.split_file, 'A x C', 'C x A')})")
        raise _Stop


def _numeric(content: dict, path: Path, key: str, expected: str, problems: _Problems) -> np.ndarray | None:
    if key not in content:
        present = ", ".join(sorted(content)) or "no variables"
        problems.add(f"{path}: key '{key}': expected {expected}, found no such key (keys: {present})")
        return None
    value = content[key]
    if is_sparse(value):
        problems.add(f"{path}: key '{key}': expected {expected} (dense numeric), found {SPARSE} "
                     f"(save it with full({key}))")
        return None
    if not isinstance(value, np.ndarray) or value.dtype.kind not in "biuf":
        problems.add(f"{path}: key '{key}': expected {expected} (numeric), found {describe(value)}")
        return None
    return value


def _strings(content: dict, path: Path, key: str, notes: list[str]) -> list[str] | None:
    """An optional cell array of strings; anything else is ignored as if absent, with a note,
    since nothing the model computes depends on it."""
    value = content.get(key)
    if value is None or isinstance(value, list):
        return value
    notes.append(f"{path}: key '{key}' ignored: expected a cell array of strings, found {describe(value)}")
    return None


def _vector(array: np.ndarray, path: Path, key: str, problems: _Problems) -> np.ndarray | None:
    if array.ndim > 2 or (array.ndim == 2 and min(array.shape) > 1 and array.size > 0):
        problems.add(f"{path}: key '{key}': expected an n x 1 vector, found shape {array.shape}")
        return None
    vector = array.ravel()
    if vector.dtype.kind == "f" and not np.all(np.isfinite(vector) & (vector == np.round(vector))):
        problems.add(f"{path}: key '{key}': expected whole numbers, found non-integer or NaN values")
        return None
    return vector.astype(np.int64)


def _h5py_hint(version: str, matlab: str, stored: str) -> str:
    return (f"; a v7.3 file stores the transpose of each MATLAB array, so h5py must write {stored} to give "
            f"MATLAB's {matlab}") if version == "v7.3" else ""


# --------------------------------------------------------------------------- classes and their embeddings
@dataclass
class _ClassEmbeddings:
    """The class embeddings in use: `att` of the split file (A x C), or the manual file (C x A)."""

    values: np.ndarray
    file: Path
    key: str
    manual_file: Path | None

    @property
    def n_classes(self) -> int:
        return self.values.shape[0] if self.manual_file else self.values.shape[1]

    def as_float32(self, problems: _Problems) -> np.ndarray:
        """(C, A) float32, rows = classes."""
        if self.manual_file:
            return _float32(self.values, self.file, self.key, problems, ("class", "attribute"))
        return _float32(self.values, self.file, self.key, problems, ("attribute", "class")).T


def _class_embeddings(root: Path, cfg, files: _Files, att: np.ndarray, problems: _Problems) -> _ClassEmbeddings:
    if not cfg.manual_att:
        return _ClassEmbeddings(att, files.split_file, "att", None)
    path = manual_attribute_path(root, cfg)
    manual = _manual_attributes(path, att.shape[1], problems)
    files.formats[str(path)] = "npy"
    return _ClassEmbeddings(manual, path, "(manual attributes)", path)


def _manual_attributes(path: Path, n_classes: int, problems: _Problems) -> np.ndarray:
    if not path.is_file():
        problems.add(f"{path}: file not found (expected the manual attribute file, classes x attributes "
                     f".npy, option manual_att_file)")
        raise _Stop
    try:
        array = np.load(path, allow_pickle=False)
    except Exception as exc:
        problems.add(f"{path}: expected a numeric .npy array (classes x attributes), found an unreadable "
                     f"file ({exception_in_one_line(exc)})")
        raise _Stop from None
    if isinstance(array, np.lib.npyio.NpzFile):
        with array:  # np.load leaves an archive open
            names = ", ".join(array.files) or "none"
        problems.add(f"{path}: expected a numeric .npy array (classes x attributes, written by np.save), found "
                     f"an .npz archive (arrays: {names}; written by np.savez)")
        raise _Stop
    if array.ndim != 2 or array.dtype.kind not in "biuf":
        problems.add(f"{path}: key '(manual attributes)': expected a numeric 2-D array ({n_classes} classes x "
                     f"attributes), found {array.dtype} shape {array.shape}")
        raise _Stop
    if array.shape[0] != n_classes:
        hint = " (the array looks transposed, attributes x classes)" if array.shape[1] == n_classes else ""
        problems.add(f"{path}: key '(manual attributes)': expected {n_classes} rows (one per class of 'att'), "
                     f"found {array.shape[0]}{hint}")
        raise _Stop
    return array


def _check_labels_cover_the_classes(files: _Files, labels: np.ndarray, embeddings: _ClassEmbeddings,
                                    problems: _Problems) -> None:
    """Labels are 1-based class indices, and the highest one is the last class."""
    n_classes, att_key, att_file = embeddings.n_classes, embeddings.key, embeddings.file
    if labels.size and (labels.min() < 1 or labels.max() > n_classes):
        problems.add(f"{files.feature_file}: key 'labels': expected 1-based class indices in [1, {n_classes}] "
                     f"(one per class of '{att_key}' in {att_file}), found values in "
                     f"[{labels.min()}, {labels.max()}]")
    elif labels.size and labels.max() != n_classes:
        problems.add(f"{att_file}: key '{att_key}': expected {labels.max()} classes, one per label value "
                     f"(labels in {files.feature_file} reach {labels.max()}), found {n_classes} classes")


def _check_class_names(files: _Files, class_names: list[str] | None, n_classes: int, problems: _Problems) -> None:
    if class_names is not None and len(class_names) != n_classes:
        problems.add(f"{files.split_file}: key 'allclasses_names': expected {n_classes} names (one per class of "
                     f"'att'), found {len(class_names)}")


# --------------------------------------------------------------------------- values
def _float32(array: np.ndarray, path: Path, key: str, problems: _Problems, axes: tuple[str, str]) -> np.ndarray:
    """`array` in float32, the precision used from here on. The cast is what is checked: a finite
    double beyond the float32 range would otherwise become Inf and fail deep inside sklearn."""
    with np.errstate(over="ignore", invalid="ignore"):
        single = array.astype(np.float32)
    bad = ~np.isfinite(single)
    if bad.any():
        overflow = bad & np.isfinite(array)
        for mask, expected, found in ((bad & ~overflow, "finite values", "NaN/Inf"),
                                      (overflow, "values within the float32 range (|x| <= 3.4e38)",
                                       "finite value(s) beyond it")):
            if mask.any():
                row, col = np.argwhere(mask)[0]
                problems.add(f"{path}: key '{key}': expected {expected}, found {int(mask.sum())} {found} "
                             f"(first at {axes[0]} {row + 1}, {axes[1]} {col + 1}, value {array[row, col]})")
    return single


def _check_features_vary(path: Path, features: np.ndarray, problems: _Problems) -> None:
    if features.size and features.min() == features.max():
        problems.add(f"{path}: key 'features': expected values that vary between samples, found every "
                     f"value equal to {features.flat[0]}")


def _check_attribute_norms(embeddings: _ClassEmbeddings, attributes: np.ndarray, class_names: list[str] | None,
                           problems: _Problems) -> None:
    """Every class vector can be L2-normalised in float32."""
    with np.errstate(over="ignore", under="ignore"):
        norms = np.sqrt((attributes ** 2).sum(axis=1))  # as l2_normalise_rows computes them
    all_zero = ~np.any(attributes != 0, axis=1)
    # a row of tiny (or huge) values has a float32 norm of 0 (or Inf) and would normalise to NaN (or 0)
    degenerate = ~all_zero & np.isfinite(attributes).all(axis=1) & ~(np.isfinite(norms) & (norms > 0))
    for rows, found in ((all_zero, "all-zero class(es)"),
                        (degenerate, "class(es) whose float32 L2 norm underflows to 0 or overflows")):
        if rows.any():
            first = int(np.flatnonzero(rows)[0])
            label = f" ({class_names[first]})" if class_names else ""
            problems.add(f"{embeddings.file}: key '{embeddings.key}': expected a non-zero attribute vector with a "
                         f"finite float32 L2 norm for every class, found {int(rows.sum())} {found} (first: class "
                         f"{first + 1}{label}, norm {norms[first]})")


# --------------------------------------------------------------------------- locations
def _location(files: _Files, key: str, loc: np.ndarray, stored: np.ndarray, n_samples: int, cfg,
              problems: _Problems) -> np.ndarray:
    """One *_loc vector as 0-based row indices: 1-based, in range, distinct, not a logical mask."""
    split_file, feat_file = files.split_file, files.feature_file
    if loc.size == 0:
        if key in REQUIRED_LOCS and not (key == "test_seen_loc" and not cfg.reports_gzsl):
            # seen test images are only needed to score GZSL
            why = " (GZSL scores seen test images; gzsl: false evaluates ZSL only)" if key == "test_seen_loc" else ""
            problems.add(f"{split_file}: key '{key}': expected at least one row index{why}, found an empty set")
        return loc
    if stored.dtype.kind == "b" or (loc.size == n_samples > 1 and np.isin(loc, (0, 1)).all()):
        problems.add(f"{split_file}: key '{key}': expected 1-based row indices, found what looks like a "
                     f"logical mask ({loc.size} values, all 0 or 1; store find(mask) instead)")
    elif loc.min() < 1:
        zero_hint = " (0 found: the file looks 0-based; xlsa17 locations are 1-based)" if loc.min() == 0 else ""
        problems.add(f"{split_file}: key '{key}': expected 1-based row indices >= 1, found minimum "
                     f"{loc.min()}{zero_hint}")
    elif loc.max() > n_samples:
        problems.add(f"{split_file}: key '{key}': expected row indices in [1, {n_samples}] (the number of "
                     f"samples in {feat_file.name}), found maximum {loc.max()}")
    elif (repeated := _repeated(loc)).size:
        problems.add(f"{split_file}: key '{key}': expected distinct row indices, found {repeated.size} "
                     f"repeated (first: {loc[repeated[0]]}, again at position {repeated[0] + 1})")
    return loc - 1


def _repeated(loc: np.ndarray) -> np.ndarray:
    """Positions (ascending) of the entries of `loc` that repeat an earlier one."""
    order = np.argsort(loc, kind="stable")
    return np.sort(order[1:][loc[order][1:] == loc[order][:-1]])


def _check_disjoint(split_file: Path, locs: dict[str, np.ndarray], problems: _Problems) -> None:
    for i, first in enumerate(DISJOINT_LOCS):
        for second in DISJOINT_LOCS[i + 1:]:
            common = np.intersect1d(locs[first[:-4]], locs[second[:-4]])
            if common.size:
                problems.add(f"{split_file}: keys '{first}' and '{second}': expected disjoint sets, found "
                             f"{common.size} shared row(s) (first: {common[0] + 1})")


def _check_split_classes(split_file: Path, labels0: np.ndarray, locs: dict[str, np.ndarray],
                         class_names: list[str] | None, problems: _Problems) -> None:
    """test_seen holds only training classes; no unseen class is trained on."""
    seen = np.unique(labels0[locs["trainval"]])
    unseen = np.unique(labels0[locs["test_unseen"]])
    stray = np.setdiff1d(np.unique(labels0[locs["test_seen"]]), seen)
    if stray.size:
        problems.add(f"{split_file}: key 'test_seen_loc': expected only classes present in 'trainval_loc', "
                     f"found {stray.size} class(es) without training samples "
                     f"(first: {_class_label(stray[0], class_names)})")
    leaked = np.intersect1d(seen, unseen)
    if leaked.size:
        problems.add(f"{split_file}: keys 'test_unseen_loc' and 'trainval_loc': expected unseen classes "
                     f"absent from the training labels, found {leaked.size} unseen class(es) among them "
                     f"(first: {_class_label(leaked[0], class_names)})")


def _class_label(index: int, class_names: list[str] | None) -> str:
    return f"class {index + 1}" + (f" ({class_names[index]})" if class_names else "")
