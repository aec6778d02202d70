"""MATLAB .mat files as the benchmarks ship them: v5 (scipy) and v7.3 (HDF5), read and written.

Callers see every variable as MATLAB shows it (numeric arrays in MATLAB's (rows, columns)
orientation, char arrays as `str`, cell arrays of strings as `list[str]`), whichever version the
file is; what cannot be decoded comes back as an `Unsupported` placeholder that names itself.
"""
from __future__ import annotations

import io
from pathlib import Path
from typing import Any, Mapping

import h5py
import numpy as np
import scipy.io
import scipy.sparse

from tfvaegan.errors import DataError, exception_in_one_line
from tfvaegan.fileio import atomic_path


def mat_version(path: Path) -> str:
    """'v7.3' for HDF5-based files, else 'v5' (which also covers v4/v6 files scipy reads)."""
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
            f"corrupt file ({exception_in_one_line(exc)})"
        ) from None


def _read_v5_mat(path: Path) -> dict[str, Any]:
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
    result: dict[str, Any] = {}
    with h5py.File(str(path), "r") as handle:
        for key, node in handle.items():
            if key.startswith("#"):  # '#refs#' and '#subsystem#' hold referenced data, not variables
                continue
            # HDF5 variables decode one by one: one bad key must not sink the others, nor go unnamed
            try:
                result[key] = _hdf5_value(handle, node)
            except Exception as exc:  # noqa: BLE001 (h5py raises many types)
                result[key] = Unsupported(f"a variable that could not be decoded ({exception_in_one_line(exc)})")
    return result


def _hdf5_value(handle, node) -> Any:
    matlab_class = node.attrs.get("MATLAB_class", b"")
    if isinstance(matlab_class, bytes):
        matlab_class = matlab_class.decode()
    if not isinstance(node, h5py.Dataset):
        if "MATLAB_sparse" in node.attrs:
            return Unsupported(SPARSE, sparse=True)
        return Unsupported(f"a MATLAB {matlab_class or 'struct'} (not supported)")
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


class Unsupported:
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



def is_sparse(value: Any) -> bool:
    return scipy.sparse.issparse(value) or (isinstance(value, Unsupported) and value.sparse)


def describe(value: Any) -> str:
    """A .mat variable as an error message names it: its MATLAB kind (and dtype for arrays)."""
    if isinstance(value, np.ndarray):
        return f"a {value.dtype} array"
    if isinstance(value, Unsupported):
        return str(value)
    # str() of anything else (scipy's sparse matrices, for one) can run to many lines
    return {str: "a char array (text)", list: "a cell array of strings"}.get(
        type(value), SPARSE if is_sparse(value) else f"a {type(value).__name__}")
