"""Reading, validating and preprocessing a zero-shot benchmark (xlsa17 and action layouts).

On disk (the xlsa17 "proposed splits" convention, MATLAB v5 or v7.3):
  <root>/<image_embedding_path or dataset>/<image_embedding>.mat  features D x N, labels N x 1 (1-based)
  <root>/<dataset>/<class_embedding>_splits.mat                   att A x C and 1-based *_loc vectors
The same rule covers the action layout, whose feature file is shared by all splits
(`--dataset hmdb_i3d/split_1 --image_embedding_path hmdb_i3d`).

Every problem found is one line naming the file, the key, what was expected and what was found.
`inspect` collects all of them (for `dataset check`); `load_raw` raises the first as a DataError.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping

import numpy as np
import torch

from tfvaegan.fileio import atomic_path


class DataError(ValueError):
    """A data file is missing or malformed; the message names the file, the key, expected and found."""


REQUIRED_LOCS = ("trainval_loc", "test_seen_loc", "test_unseen_loc")
OPTIONAL_LOCS = ("train_loc", "val_loc")
# The three evaluation sets of the xlsa17 protocol must be disjoint; train/val need not be
# (xlsa17 quirk: train_loc ∪ val_loc = trainval_loc ∪ test_seen_loc).
DISJOINT_LOCS = REQUIRED_LOCS


# --------------------------------------------------------------------------- .mat reading
def mat_version(path: Path) -> str:
    """'v7.3' for HDF5-based files, else 'v5' (which also covers v4/v6 files scipy reads)."""
    import h5py

    return "v7.3" if h5py.is_hdf5(str(path)) else "v5"


def read_mat(path: Path) -> dict[str, Any]:
    """All variables of a .mat file as MATLAB shows them: numeric arrays in MATLAB's
    (rows, columns) orientation, char arrays as `str`, cell arrays of strings as `list[str]`.

    v7.3 files are HDF5, which stores arrays transposed and strings/cells as references;
    both are undone here so that callers never see the difference. A v7.3 variable that cannot
    be decoded comes back as a placeholder whose str() says why, so that only a caller that
    needs it fails, naming its key.
    """
    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path}: file not found")
    version = mat_version(path)
    try:
        return _read_hdf5_mat(path) if version == "v7.3" else _read_v5_mat(path)
    except DataError:
        raise
    except Exception as exc:  # scipy/h5py raise many types on truncated or foreign files
        raise DataError(
            f"{path}: expected a readable MATLAB .mat file (v5 or v7.3), found a truncated or "
            f"corrupt file ({_reason(exc)})"
        ) from None


def _reason(exc: Exception) -> str:
    return f"{type(exc).__name__}: {' '.join(str(exc).split()) or '(no message)'}"


def _read_v5_mat(path: Path) -> dict[str, Any]:
    import scipy.io

    content = scipy.io.loadmat(str(path))
    result: dict[str, Any] = {}
    for key, value in content.items():
        if key.startswith("__"):
            continue
        if isinstance(value, np.ndarray) and value.dtype.kind == "U":
            # a char matrix: one string per row
            strings = [str(s).rstrip() for s in value.ravel()]
            result[key] = strings[0] if len(strings) == 1 else (strings or "")  # '' has no rows
        elif isinstance(value, np.ndarray) and value.dtype == object:
            result[key] = _v5_cell_strings(value)
        else:
            result[key] = value
    return result


def _v5_cell_strings(cell: np.ndarray) -> list[str] | np.ndarray:
    """A cell array of strings as a list (MATLAB column order); other cells stay as they are."""
    strings = []
    for item in cell.ravel(order="F"):
        item = np.asarray(item)
        if item.dtype.kind != "U":
            return cell
        strings.append(str(item.ravel()[0]) if item.size else "")
    return strings


def _read_hdf5_mat(path: Path) -> dict[str, Any]:
    import h5py

    result: dict[str, Any] = {}
    with h5py.File(str(path), "r") as handle:
        for key, node in handle.items():
            if key.startswith("#"):  # '#refs#' and '#subsystem#' hold referenced data, not variables
                continue
            # HDF5 variables decode one by one: one bad key must not sink the others, nor go unnamed
            try:
                result[key] = _hdf5_value(handle, node)
            except Exception as exc:  # noqa: BLE001 (h5py raises many types)
                result[key] = _Unsupported(f"a variable that could not be decoded ({_reason(exc)})")
    return result


def _hdf5_value(handle, node) -> Any:
    import h5py

    matlab_class = node.attrs.get("MATLAB_class", b"")
    if isinstance(matlab_class, bytes):
        matlab_class = matlab_class.decode()
    if not isinstance(node, h5py.Dataset):
        if "MATLAB_sparse" in node.attrs:
            return _Unsupported(SPARSE, sparse=True)
        return _Unsupported(f"a MATLAB {matlab_class or 'struct'} (not supported)")
    empty = node.attrs.get("MATLAB_empty", 0)
    if matlab_class == "char":
        if empty:  # MATLAB marks '' as empty; it must stay a string, as in v5
            return ""
        rows = np.atleast_2d(np.asarray(node[()])).T  # MATLAB view: one string per row
        strings = ["".join(map(chr, row)).rstrip("\x00") for row in rows]
        return strings[0] if len(strings) == 1 else strings
    if empty:
        return [] if matlab_class == "cell" else np.zeros((0, 0))
    if h5py.check_string_dtype(node.dtype) is not None:  # strings written by h5py, not MATLAB's char codes
        strings = np.asarray(node.asstr()[()], dtype=object)
        return str(strings) if strings.ndim == 0 else [str(s) for s in strings.T.ravel(order="F")]
    data = node[()]
    if matlab_class == "cell" or (isinstance(data, np.ndarray) and data.dtype == object):
        items = [_hdf5_value(handle, handle[ref]) for ref in np.asarray(data).T.ravel(order="F")]
        if all(isinstance(item, str) for item in items):
            return items
        return np.array(items, dtype=object)
    return np.asarray(data).T


SPARSE = "a sparse matrix"


class _Unsupported:
    """A MATLAB struct, object or sparse matrix, or an undecodable variable: kept only to be named in an error."""

    def __init__(self, description: str, sparse: bool = False) -> None:
        self.description = description
        self.sparse = sparse

    def __str__(self) -> str:
        return self.description


def write_mat(path: Path, variables: Mapping[str, Any], version: str = "v5") -> None:
    """Write `variables` (arrays in MATLAB orientation, str, list[str]) as a .mat file, atomically.

    v5 is what scipy and MATLAB read everywhere but holds at most 2 GiB per variable; v7.3
    (HDF5, MATLAB's own layout: transposed arrays, strings as uint16, cells as references)
    has no such limit.
    """
    if version not in ("v5", "v7.3"):
        raise ValueError(f"write_mat: version must be 'v5' or 'v7.3', got {version!r}")
    with atomic_path(path) as temp:
        if version == "v5":
            import io

            import scipy.io

            buffer = io.BytesIO()
            scipy.io.savemat(buffer, {k: _v5_value(v) for k, v in variables.items()}, do_compression=False)
            data = buffer.getbuffer()
            # scipy puts "Created on: <time>" in the 116-byte header text; a fixed text keeps the
            # bytes (and the checksums verify-features records) a function of the data alone.
            data[:116] = _V5_HEADER_TEXT
            temp.write_bytes(data)
        else:
            _write_hdf5_mat(temp, variables)


_V5_HEADER_TEXT = b"MATLAB 5.0 MAT-file, written by tfvaegan".ljust(116, b" ")


def _v5_value(value: Any) -> Any:
    if isinstance(value, (list, tuple)):
        cell = np.empty((len(value), 1), dtype=object)
        for i, item in enumerate(value):
            cell[i, 0] = np.array([str(item)])
        return cell
    return value


_HDF5_CLASSES = {
    np.dtype("float64"): "double", np.dtype("float32"): "single", np.dtype("int64"): "int64",
    np.dtype("int32"): "int32", np.dtype("int16"): "int16", np.dtype("int8"): "int8",
    np.dtype("uint64"): "uint64", np.dtype("uint32"): "uint32", np.dtype("uint16"): "uint16",
    np.dtype("uint8"): "uint8", np.dtype("bool"): "logical",
}


def _write_hdf5_mat(path: Path, variables: Mapping[str, Any]) -> None:
    import h5py

    # MATLAB recognises a v7.3 file by a 512-byte user block carrying a v5-style header.
    with h5py.File(str(path), "w", userblock_size=512) as handle:
        refs = handle.create_group("#refs#")
        for key, value in variables.items():
            if isinstance(value, str):
                _hdf5_char(handle, key, value)
            elif isinstance(value, (list, tuple)):
                references = []
                for i, item in enumerate(value):
                    references.append(_hdf5_char(refs, f"{key}_{i}", str(item)).ref)
                cell = np.array(references, dtype=h5py.ref_dtype).reshape(1, len(value))  # MATLAB N x 1
                dataset = handle.create_dataset(key, data=cell)
                dataset.attrs["MATLAB_class"] = np.bytes_("cell")
            else:
                array = np.asarray(value)
                if array.ndim < 2:
                    array = array.reshape(-1, 1)
                dataset = handle.create_dataset(key, data=np.ascontiguousarray(array.T))
                dataset.attrs["MATLAB_class"] = np.bytes_(_HDF5_CLASSES.get(array.dtype, "double"))
    header = b"MATLAB 7.3 MAT-file, Platform: GLNXA64, Created by: tfvaegan HDF5 schema 1.00 ."
    with open(path, "r+b") as raw:
        raw.write(header.ljust(116, b" ") + b"\x00" * 8 + b"\x00\x02IM")


def _hdf5_char(group, name: str, text: str):
    codes = np.array([ord(c) for c in text] or [0], dtype=np.uint16).reshape(-1, 1)  # MATLAB 1 x L
    dataset = group.create_dataset(name, data=codes)
    dataset.attrs["MATLAB_class"] = np.bytes_("char")
    if not text:
        dataset.attrs["MATLAB_empty"] = np.uint8(1)
    return dataset


# --------------------------------------------------------------------------- the raw dataset
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


def feature_path(data_root: Path, cfg) -> Path:
    return Path(data_root) / (cfg.image_embedding_path or cfg.dataset) / f"{cfg.image_embedding}.mat"


def split_path(data_root: Path, cfg) -> Path:
    return Path(data_root) / cfg.dataset / f"{cfg.class_embedding}_splits.mat"


def manual_attribute_path(data_root: Path, cfg) -> Path:
    return feature_path(data_root, cfg).parent / cfg.manual_att_file


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
        raw = _read_and_validate(Path(data_root), cfg, problems)
    except _Stop:
        return None, problems.items
    return (None if problems.items else raw), problems.items


def _read_file(path: Path, what: str, problems: _Problems) -> dict[str, Any]:
    if not path.is_file():
        problems.add(f"{path}: file not found (expected the {what})")
        raise _Stop
    try:
        return read_mat(path)
    except DataError as exc:
        problems.add(str(exc))
        raise _Stop from None


def _numeric(content: dict, path: Path, key: str, expected: str, problems: _Problems) -> np.ndarray | None:
    if key not in content:
        present = ", ".join(sorted(content)) or "no variables"
        problems.add(f"{path}: key '{key}': expected {expected}, found no such key (keys: {present})")
        return None
    value = content[key]
    if _is_sparse(value):
        problems.add(f"{path}: key '{key}': expected {expected} (dense numeric), found {SPARSE} "
                     f"(save it with full({key}))")
        return None
    if not isinstance(value, np.ndarray) or value.dtype.kind not in "biuf":
        problems.add(f"{path}: key '{key}': expected {expected} (numeric), found {_describe(value)}")
        return None
    return value


def _is_sparse(value: Any) -> bool:
    import scipy.sparse

    return scipy.sparse.issparse(value) or (isinstance(value, _Unsupported) and value.sparse)


def _describe(value: Any) -> str:
    if isinstance(value, np.ndarray):
        return f"a {value.dtype} array"
    if isinstance(value, _Unsupported):
        return str(value)
    # str() of anything else (scipy's sparse matrices, for one) can run to many lines
    return {str: "a char array (text)", list: "a cell array of strings"}.get(
        type(value), SPARSE if _is_sparse(value) else f"a {type(value).__name__}")


def _strings(content: dict, path: Path, key: str, notes: list[str]) -> list[str] | None:
    """An optional cell array of strings; anything else is ignored as if absent, with a note,
    since nothing the model computes depends on it."""
    value = content.get(key)
    if value is None or isinstance(value, list):
        return value
    notes.append(f"{path}: key '{key}' ignored: expected a cell array of strings, found {_describe(value)}")
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


def _h5py_hint(version: str, matlab: str, stored: str) -> str:
    return (f"; a v7.3 file stores the transpose of each MATLAB array, so h5py must write {stored} to give "
            f"MATLAB's {matlab}") if version == "v7.3" else ""


def _read_and_validate(root: Path, cfg, problems: _Problems) -> RawDataset:
    feat_file, split_file = feature_path(root, cfg), split_path(root, cfg)
    feature_content = _read_file(feat_file, "feature file <root>/<image_embedding_path or dataset>/"
                                            "<image_embedding>.mat", problems)
    split_content = _read_file(split_file, "split file <root>/<dataset>/<class_embedding>_splits.mat",
                               problems)
    formats = {str(feat_file): mat_version(feat_file), str(split_file): mat_version(split_file)}

    # ---- keys, types and shapes
    features = _numeric(feature_content, feat_file, "features", "a D x N matrix", problems)
    labels_raw = _numeric(feature_content, feat_file, "labels", "an N x 1 vector of 1-based class indices",
                          problems)
    att = _numeric(split_content, split_file, "att", "an A x C matrix (attributes x classes)", problems)
    loc_arrays = {}
    for key in REQUIRED_LOCS + OPTIONAL_LOCS:
        if key in split_content or key in REQUIRED_LOCS:
            loc_arrays[key] = _numeric(split_content, split_file, key, "an n x 1 vector of 1-based row "
                                       "indices into the features", problems)
    problems.stop_if_any()
    if features.ndim != 2:
        problems.add(f"{feat_file}: key 'features': expected a 2-D D x N matrix, found {features.ndim}-D "
                     f"shape {features.shape}")
    if att.ndim != 2:
        problems.add(f"{split_file}: key 'att': expected a 2-D A x C matrix, found {att.ndim}-D shape {att.shape}")
    labels = _vector(labels_raw, feat_file, "labels", problems)
    locs_1based = {key: _vector(array, split_file, key, problems) for key, array in loc_arrays.items()}
    problems.stop_if_any()

    n_samples = labels.size
    if features.shape[1] != n_samples:
        hint = "" if features.shape[0] != n_samples else (
            " (the matrix looks N x D: xlsa17 stores features as D x N, one column per sample"
            f"{_h5py_hint(formats[str(feat_file)], 'D x N', 'N x D')})")
        problems.add(f"{feat_file}: key 'features': expected one column per label ({n_samples} columns, "
                     f"D x N), found shape {features.shape}{hint}")
    n_labelled = int(labels.max()) if labels.size else 0
    if att.shape[1] != n_labelled and att.shape[0] == n_labelled:
        # caught here, or the label range check below would blame the (correct) labels
        problems.add(f"{split_file}: key 'att': expected an A x C matrix, one column per class ({n_labelled}: "
                     f"the labels in {feat_file.name} reach {n_labelled}), found shape {att.shape} (the matrix "
                     f"looks transposed, C x A{_h5py_hint(formats[str(split_file)], 'A x C', 'C x A')})")
        raise _Stop

    # ---- attributes: (C, A) rows = classes
    notes: list[str] = []
    class_names = _strings(split_content, split_file, "allclasses_names", notes)
    image_files = _strings(feature_content, feat_file, "image_files", notes)
    attribute_file = manual = None
    if cfg.manual_att:
        attribute_file = manual_attribute_path(root, cfg)
        manual = _manual_attributes(attribute_file, att.shape[1], problems)
        formats[str(attribute_file)] = "npy"
    n_classes = manual.shape[0] if cfg.manual_att else att.shape[1]
    att_key, att_file = ("(manual attributes)", attribute_file) if cfg.manual_att else ("att", split_file)
    if labels.size and (labels.min() < 1 or labels.max() > n_classes):
        problems.add(f"{feat_file}: key 'labels': expected 1-based class indices in [1, {n_classes}] "
                     f"(one per class of '{att_key}' in {att_file}), found values in "
                     f"[{labels.min()}, {labels.max()}]")
    elif labels.size and labels.max() != n_classes:
        problems.add(f"{att_file}: key '{att_key}': expected {labels.max()} classes, one per label value "
                     f"(labels in {feat_file} reach {labels.max()}), found {n_classes} classes")
    if class_names is not None and len(class_names) != n_classes:
        problems.add(f"{split_file}: key 'allclasses_names': expected {n_classes} names (one per class of "
                     f"'att'), found {len(class_names)}")
    problems.stop_if_any()

    # ---- values
    features = _float32(features, feat_file, "features", problems, ("row", "sample"))
    if features.size and features.min() == features.max():
        problems.add(f"{feat_file}: key 'features': expected values that vary between samples, found every "
                     f"value equal to {features.flat[0]}")
    if cfg.manual_att:
        attributes = _float32(manual, att_file, att_key, problems, ("class", "attribute"))
    else:
        attributes = _float32(att, att_file, att_key, problems, ("attribute", "class")).T
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
            problems.add(f"{att_file}: key '{att_key}': expected a non-zero attribute vector with a finite "
                         f"float32 L2 norm for every class, found {int(rows.sum())} {found} (first: class "
                         f"{first + 1}{label}, norm {norms[first]})")

    # ---- locations
    locs: dict[str, np.ndarray] = {}
    for key, loc in locs_1based.items():
        if loc.size == 0:
            if key == "test_seen_loc" and not cfg.reports_gzsl:
                pass  # seen test images are only needed to score GZSL
            elif key in REQUIRED_LOCS:
                why = " (GZSL scores seen test images; gzsl: false evaluates ZSL only)" if key == "test_seen_loc" else ""
                problems.add(f"{split_file}: key '{key}': expected at least one row index{why}, found an empty set")
            locs[key[:-4]] = loc
            continue
        if loc_arrays[key].dtype.kind == "b" or (loc.size == n_samples > 1 and np.isin(loc, (0, 1)).all()):
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
        locs[key[:-4]] = loc - 1
    problems.stop_if_any()

    for i, first in enumerate(DISJOINT_LOCS):
        for second in DISJOINT_LOCS[i + 1:]:
            common = np.intersect1d(locs[first[:-4]], locs[second[:-4]])
            if common.size:
                problems.add(f"{split_file}: keys '{first}' and '{second}': expected disjoint sets, found "
                             f"{common.size} shared row(s) (first: {common[0] + 1})")

    labels0 = labels - 1
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
    problems.stop_if_any()

    if "train" in locs and "val" in locs:
        covered = np.union1d(locs["train"], locs["val"])
        if np.intersect1d(covered, locs["test_seen"]).size:
            notes.append("train_loc/val_loc include test_seen images (the xlsa17 convention); "
                         "a validation protocol must intersect them with trainval_loc")
    return RawDataset(
        features=np.ascontiguousarray(features.T),
        labels=labels0,
        attributes=np.ascontiguousarray(attributes),
        locs=locs,
        class_names=class_names,
        image_files=image_files,
        feature_file=feat_file,
        split_file=split_file,
        attribute_file=attribute_file,
        formats=formats,
        notes=notes,
    )


def _repeated(loc: np.ndarray) -> np.ndarray:
    """Positions (ascending) of the entries of `loc` that repeat an earlier one."""
    order = np.argsort(loc, kind="stable")
    return np.sort(order[1:][loc[order][1:] == loc[order][:-1]])


def _class_label(index: int, class_names: list[str] | None) -> str:
    return f"class {index + 1}" + (f" ({class_names[index]})" if class_names else "")


def _manual_attributes(path: Path, n_classes: int, problems: _Problems) -> np.ndarray:
    if not path.is_file():
        problems.add(f"{path}: file not found (expected the manual attribute file, classes x attributes "
                     f".npy, option manual_att_file)")
        raise _Stop
    try:
        array = np.load(path, allow_pickle=False)
    except Exception as exc:
        problems.add(f"{path}: expected a numeric .npy array (classes x attributes), found an unreadable "
                     f"file ({_reason(exc)})")
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


# --------------------------------------------------------------------------- preprocessing
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
    from sklearn import preprocessing as skp

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
    )


def load(data_root, cfg) -> ZSLData:
    """The paper's split: train on trainval, test on test_seen and test_unseen."""
    raw = load_raw(data_root, cfg)
    return make_split(raw, raw.locs["trainval"], raw.locs["test_seen"], raw.locs["test_unseen"], cfg)
