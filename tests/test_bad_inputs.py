"""The catalogue of malformed inputs: each one clear error (file, key, expected vs found), a
non-zero exit through the command line, and nothing partial left behind."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import scipy.sparse
import torch
from toy import load_test_split, toy_arrays, write_toy

from tfvaegan import config
from tfvaegan.cli import main
from tfvaegan.config import Config, ConfigError
from tfvaegan.data.validate import load_raw
from tfvaegan.errors import DataError, UserError

REPO = Path(__file__).resolve().parents[1]
TOY = toy_arrays()  # what write_toy writes by default
N = TOY["labels"].size  # its number of samples
C = TOY["att"].shape[1]  # and of classes


def _col(values) -> np.ndarray:
    return np.asarray(values, dtype=np.float64).reshape(-1, 1)


def _with(array, index, value):
    array = np.array(array, dtype=np.float64)
    array[index] = value
    return array


def _first_unseen_row() -> int:
    return int(TOY["test_unseen_loc"][0, 0])


def _a_seen_class_without_training() -> np.ndarray:
    """test_seen_loc extended by every image of one unseen class (a class absent from trainval)."""
    labels = TOY["labels"].ravel()
    unseen_class = labels[_first_unseen_row() - 1]
    rows = np.flatnonzero(labels == unseen_class) + 1
    unseen_rest = np.setdiff1d(TOY["test_unseen_loc"].ravel(), rows)
    return _col(np.concatenate([TOY["test_seen_loc"].ravel(), rows])), _col(unseen_rest)


# id -> (feature overrides, split overrides, file stem that must be named, key that must be named)
CASES = {
    "missing key features": ({"features": None}, {}, "res101.mat", "'features'"),
    "missing key trainval_loc": ({}, {"trainval_loc": None}, "att_splits.mat", "'trainval_loc'"),
    "missing key att": ({}, {"att": None}, "att_splits.mat", "'att'"),
    "features not 2-D": ({"features": np.zeros((2, 4, N))}, {}, "res101.mat", "'features'"),
    "non-numeric features": ({"features": ["a", "b"]}, {}, "res101.mat", "'features'"),
    "labels count != feature count": ({"labels": TOY["labels"][:-5]}, {}, "res101.mat", "'features'"),
    "features stored N x D": ({"features": TOY["features"].T.copy()}, {}, "res101.mat", "'features'"),
    "labels not a vector": ({"labels": np.ones((N, 2))}, {}, "res101.mat", "'labels'"),
    "labels 0-based": ({"labels": TOY["labels"] - 1}, {}, "res101.mat", "'labels'"),
    "0-based locations": ({}, {"trainval_loc": TOY["trainval_loc"] - 1}, "att_splits.mat", "'trainval_loc'"),
    "location out of range": ({}, {"test_seen_loc": _with(TOY["test_seen_loc"], (0, 0), N + 1)},
                              "att_splits.mat", "'test_seen_loc'"),
    "non-integer locations": ({}, {"test_seen_loc": _with(TOY["test_seen_loc"], (0, 0), 2.5)},
                              "att_splits.mat", "'test_seen_loc'"),
    "overlapping splits": ({}, {"trainval_loc": np.vstack([TOY["trainval_loc"], [[_first_unseen_row()]]])},
                           "att_splits.mat", "'trainval_loc' and 'test_unseen_loc'"),
    "empty unseen set": ({}, {"test_unseen_loc": np.zeros((0, 1))}, "att_splits.mat", "'test_unseen_loc'"),
    "test_seen class without training samples": (
        {}, dict(zip(("test_seen_loc", "test_unseen_loc"), _a_seen_class_without_training())),
        "att_splits.mat", "'test_seen_loc'"),
    "unseen class among the training labels": (
        {}, {"test_unseen_loc": np.vstack([TOY["test_unseen_loc"], TOY["trainval_loc"][:1]]),
             "trainval_loc": TOY["trainval_loc"][1:]},
        "att_splits.mat", "'test_unseen_loc' and 'trainval_loc'"),
    "NaN in features": ({"features": _with(TOY["features"], (3, 7), np.nan)}, {}, "res101.mat", "'features'"),
    "Inf in attributes": ({}, {"att": _with(TOY["att"], (2, 4), np.inf)}, "att_splits.mat", "'att'"),
    "constant features": ({"features": np.ones_like(TOY["features"])}, {}, "res101.mat", "'features'"),
    "all-zero attribute row": ({}, {"att": _with(TOY["att"], (slice(None), 5), 0.0)}, "att_splits.mat", "'att'"),
    "attribute count != class count": ({}, {"att": np.hstack([TOY["att"], TOY["att"][:, :1]])},
                                       "att_splits.mat", "'att'"),
    "labels beyond the attribute classes": ({}, {"att": TOY["att"][:, :-1]}, "res101.mat", "'labels'"),
    "class names count != class count": ({}, {"allclasses_names": ["a", "b"]}, "att_splits.mat",
                                         "'allclasses_names'"),
    "att stored C x A": ({}, {"att": TOY["att"].T.copy()}, "att_splits.mat", "'att'"),
    "features beyond float32": ({"features": _with(TOY["features"], (3, 7), 1e39)}, {}, "res101.mat",
                                "'features'"),
    "attributes beyond float32": ({}, {"att": _with(TOY["att"], (2, 4), -1e39)}, "att_splits.mat", "'att'"),
    "attribute norm underflows in float32": ({}, {"att": _with(TOY["att"], (slice(None), 5), 1e-30)},
                                             "att_splits.mat", "'att'"),
    "sparse features": ({"features": scipy.sparse.csc_matrix(TOY["features"].astype(np.float64))}, {},
                        "res101.mat", "'features'"),
    "repeated locations": ({}, {"test_seen_loc": np.vstack([TOY["test_seen_loc"], TOY["test_seen_loc"][3:5]])},
                           "att_splits.mat", "'test_seen_loc'"),
    "logical mask as locations": ({}, {"trainval_loc": _col(np.isin(np.arange(N) + 1, TOY["trainval_loc"]))},
                                  "att_splits.mat", "'trainval_loc'"),
    "empty test_seen set": ({}, {"test_seen_loc": np.zeros((0, 1))}, "att_splits.mat", "'test_seen_loc'"),
}
# case -> (what the message must say, what it must not): the diagnosis, not just the culprit
HINTS = {
    "att stored C x A": ("looks transposed, C x A)", "'labels'"),
    "features stored N x D": ("looks N x D", "h5py"),  # the HDF5 advice is for v7.3 files only
    "features beyond float32": ("found 1 finite value(s) beyond it (first at row 4, sample 8, value 1e+39)", "NaN"),
    "attributes beyond float32": ("expected values within the float32 range", "NaN"),
    "attribute norm underflows in float32": ("1 class(es) whose float32 L2 norm underflows to 0", "all-zero"),
    "sparse features": ("found a sparse matrix (save it with full(features))", "Coords"),
    "repeated locations": (("expected distinct row indices, found 2 repeated (first: "
                            f"{int(TOY['test_seen_loc'][3, 0])}, again at position {TOY['test_seen_loc'].size + 1})"),
                           "disjoint"),
    "logical mask as locations": ("looks like a logical mask", "0-based"),
    "empty test_seen set": ("expected at least one row index (GZSL scores seen test images", "disjoint"),
}


def _snapshot(folder: Path) -> dict[str, tuple[int, int]]:
    return {str(p.relative_to(folder)): (p.stat().st_size, p.stat().st_mtime_ns)
            for p in sorted(folder.rglob("*"))}


@pytest.mark.parametrize("case", sorted(CASES))
def test_malformed_dataset_is_refused_clearly(tmp_path, capsys, case):
    feature_overrides, split_overrides, file_named, key_named = CASES[case]
    folder = write_toy(tmp_path, feature_overrides=feature_overrides, split_overrides=split_overrides)
    before = _snapshot(tmp_path)
    with pytest.raises(DataError) as caught:
        load_test_split(tmp_path, Config(dataset="TOY", gzsl=True))  # as the benchmark files set it
    message = str(caught.value)
    assert file_named in message and key_named in message, message
    assert "expected" in message and "found" in message, message
    assert "\n" not in message
    must, must_not = HINTS.get(case, ("", None))
    assert must in message and (must_not is None or must_not not in message), message

    assert main(["dataset", "check", str(folder)]) != 0
    out = capsys.readouterr().out
    assert "problem(s)" in out and key_named in out
    assert _snapshot(tmp_path) == before  # nothing written, nothing changed


@pytest.mark.parametrize("version", ["v5", "v7.3"])
def test_truncated_mat_is_refused(tmp_path, capsys, version):
    folder = write_toy(tmp_path, version=version)
    split_file = folder / "att_splits.mat"
    split_file.write_bytes(split_file.read_bytes()[: split_file.stat().st_size // 2])
    with pytest.raises(DataError, match=r"att_splits\.mat: expected a readable MATLAB .mat file.*found a "
                                             r"truncated or corrupt file"):
        load_raw(tmp_path, Config(dataset="TOY"))
    assert main(["dataset", "check", str(folder)]) != 0
    assert "truncated or corrupt" in capsys.readouterr().out


def test_foreign_file_named_mat_is_refused(tmp_path):
    folder = write_toy(tmp_path)
    (folder / "res101.mat").write_text("features,labels\n1,2\n")
    with pytest.raises(DataError, match=r"res101\.mat: expected a readable MATLAB"):
        load_raw(tmp_path, Config(dataset="TOY"))


@pytest.mark.parametrize("missing", ["res101.mat", "att_splits.mat"])
def test_missing_file_is_refused(tmp_path, capsys, missing):
    folder = write_toy(tmp_path)
    (folder / missing).unlink()
    with pytest.raises(DataError, match=rf"{missing}: file not found \(expected the"):
        load_raw(tmp_path, Config(dataset="TOY"))
    assert main(["dataset", "check", str(folder)]) != 0
    assert f"{missing}: file not found" in capsys.readouterr().out


def test_matlab_struct_in_place_of_features_is_refused(tmp_path):
    import h5py

    folder = write_toy(tmp_path, version="v7.3")
    with h5py.File(folder / "res101.mat", "r+") as handle:
        del handle["features"]
        handle.create_group("features").attrs["MATLAB_class"] = np.bytes_("struct")
    with pytest.raises(DataError, match=r"res101\.mat: key 'features': expected a D x N matrix \(numeric\), "
                                             r"found a MATLAB struct"):
        load_raw(tmp_path, Config(dataset="TOY"))


def test_v73_sparse_features_are_refused_briefly(tmp_path):
    import h5py

    folder = write_toy(tmp_path, version="v7.3")
    with h5py.File(folder / "res101.mat", "r+") as handle:  # MATLAB's layout of a sparse matrix
        del handle["features"]
        group = handle.create_group("features")
        group.attrs["MATLAB_class"], group.attrs["MATLAB_sparse"] = np.bytes_("double"), np.uint64(32)
        group["data"], group["ir"], group["jc"] = np.ones(3), np.zeros(3, np.uint64), np.zeros(201, np.uint64)
    with pytest.raises(DataError, match=r"res101\.mat: key 'features': expected a D x N matrix \(dense numeric\), "
                                             r"found a sparse matrix \(save it with full\(features\)\)$"):
        load_raw(tmp_path, Config(dataset="TOY"))


@pytest.mark.parametrize("key,stored", [("features", "N x D"), ("att", "C x A")])
def test_transposed_v73_array_gets_the_h5py_hint(tmp_path, key, stored):
    overrides = {key: TOY[key].T.copy()}
    write_toy(tmp_path, version="v7.3", **{"feature_overrides" if key == "features" else "split_overrides": overrides})
    with pytest.raises(DataError, match=rf"key '{key}'.*a v7\.3 file stores the transpose of each MATLAB "
                                             rf"array, so h5py must write {stored} to give MATLAB's"):
        load_raw(tmp_path, Config(dataset="TOY"))


def _replace_with_dangling_cell(path: Path, key: str) -> None:
    """`key` becomes a v7.3 cell whose references point nowhere: readable file, undecodable variable."""
    import h5py

    with h5py.File(path, "r+") as handle:
        del handle[key]
        cell = handle.create_dataset(key, data=np.array([[h5py.Reference()] * 3], dtype=h5py.ref_dtype))
        cell.attrs["MATLAB_class"] = np.bytes_("cell")


@pytest.mark.parametrize("file,key", [("res101.mat", "image_files"), ("att_splits.mat", "allclasses_names")])
def test_undecodable_optional_key_is_ignored_with_a_note(tmp_path, file, key):
    folder = write_toy(tmp_path, version="v7.3")
    _replace_with_dangling_cell(folder / file, key)
    raw = load_raw(tmp_path, Config(dataset="TOY"))
    assert raw.image_files is None if key == "image_files" else raw.class_names is None
    assert any(f"{file}: key '{key}' ignored" in note and "could not be decoded" in note for note in raw.notes)
    assert raw.features.shape == TOY["features"].T.shape


def test_undecodable_required_key_is_named(tmp_path):
    folder = write_toy(tmp_path, version="v7.3")
    _replace_with_dangling_cell(folder / "res101.mat", "labels")
    with pytest.raises(DataError, match=r"res101\.mat: key 'labels': expected .*found a variable that could "
                                             r"not be decoded \(ValueError") as caught:
        load_raw(tmp_path, Config(dataset="TOY"))
    assert "corrupt" not in str(caught.value)


def test_wrong_stem_names_the_file_looked_for(tmp_path):
    write_toy(tmp_path)
    with pytest.raises(DataError, match=r"TOY/sent_splits\.mat: file not found"):
        load_raw(tmp_path, Config(dataset="TOY", class_embedding="sent"))


def test_manual_attributes_with_wrong_class_count_are_refused(tmp_path):
    folder = write_toy(tmp_path)
    np.save(folder / "manual.npy", np.ones((9, 4)))
    with pytest.raises(DataError, match=rf"manual\.npy: key '\(manual attributes\)': expected {C} rows.*found 9"):
        load_raw(tmp_path, Config(dataset="TOY", manual_att=True, manual_att_file="manual.npy"))


def _savez(path: Path, array: np.ndarray) -> None:
    with open(path, "wb") as handle:  # np.savez would append .npz to a path
        np.savez(handle, att=array)


GOOD_MANUAL = np.random.default_rng(0).random((C, 4)) + 0.05
MANUAL_CASES = {
    "npz archive": (lambda path: _savez(path, GOOD_MANUAL),
                    r"expected a numeric \.npy array .*found an \.npz archive \(arrays: att;"),
    "transposed": (lambda path: np.save(path, GOOD_MANUAL.T),
                   rf"expected {C} rows.*found 4 \(the array looks transposed, attributes x classes\)"),
    "beyond float32": (lambda path: np.save(path, _with(GOOD_MANUAL, (2, 1), 1e39)),
                       (r"expected values within the float32 range.*found 1 finite value\(s\) beyond it \(first at "
                        r"class 3, attribute 2, value 1e\+39\)")),
    "norm underflows": (lambda path: np.save(path, _with(GOOD_MANUAL, 7, 1e-30)),
                        r"found 1 class\(es\) whose float32 L2 norm underflows to 0 or overflows \(first: class 8"),
}


@pytest.mark.parametrize("case", sorted(MANUAL_CASES))
def test_malformed_manual_attributes_are_refused(tmp_path, case):
    write, pattern = MANUAL_CASES[case]
    folder = write_toy(tmp_path)
    write(folder / "manual.npy")
    with pytest.raises(DataError, match=r"manual\.npy: .*" + pattern) as caught:
        load_raw(tmp_path, Config(dataset="TOY", manual_att=True, manual_att_file="manual.npy"))
    assert "\n" not in str(caught.value)


def test_pickled_manual_attributes_are_not_unpickled(tmp_path):
    folder = write_toy(tmp_path)
    np.save(folder / "manual.npy", np.array([{"a": 1}] * 10, dtype=object), allow_pickle=True)
    with pytest.raises(DataError, match=r"manual\.npy: expected a numeric \.npy array"):
        load_raw(tmp_path, Config(dataset="TOY", manual_att=True, manual_att_file="manual.npy"))


def test_check_lists_every_independent_problem(tmp_path, capsys):
    folder = write_toy(tmp_path, feature_overrides={"features": _with(TOY["features"], (0, 0), np.nan)},
                          split_overrides={"att": _with(TOY["att"], (slice(None), 2), 0.0)})
    assert main(["dataset", "check", str(folder)]) == 1
    out = capsys.readouterr().out
    assert "2 problem(s)" in out and "NaN" in out and "all-zero" in out
    with pytest.raises(DataError, match=r"and 1 more problem"):
        load_raw(tmp_path, Config(dataset="TOY"))


@pytest.mark.slow
def test_check_through_a_real_process(tmp_path):
    folder = write_toy(tmp_path, split_overrides={"trainval_loc": TOY["trainval_loc"] - 1})
    result = subprocess.run([sys.executable, "-m", "tfvaegan", "dataset", "check", str(folder)],
                            capture_output=True, text=True, cwd=REPO, timeout=120)
    assert result.returncode == 1
    assert "att_splits.mat: key 'trainval_loc': expected 1-based row indices >= 1, found minimum 0" in result.stdout


# --------------------------------------------------------------------------- other modules' entry points
@pytest.mark.parametrize("values,key", [({"nepochs": 3}, "nepochs"), ({"nepoch": "ten"}, "nepoch"),
                                        ({"nepoch": 0}, "nepoch"), ({"syn_num": -1}, "syn_num"),
                                        ({"gzsl": "yes"}, "gzsl")])
def test_bad_config_is_refused(tmp_path, values, key):
    import yaml

    path = tmp_path / "bad.yaml"
    path.write_text(yaml.safe_dump(values))
    with pytest.raises(ConfigError) as caught:
        config.load(path)
    message = str(caught.value)
    assert "bad.yaml" in message and key in message and "\n" not in message


def _run_command(tmp_path, *overrides):
    root = tmp_path / "data"
    write_toy(root)
    out = tmp_path / "out"
    argv = ["run", "--data-root", str(root), "--dataset", "TOY", "--out", str(out)]
    for item in overrides:
        argv += ["--set", item]
    return main(argv), out


@pytest.mark.parametrize("override", ["nepoch=0", "syn_num=0", "nepochs=3", "nepoch=ten"])
def test_run_refuses_bad_config_before_writing(tmp_path, capsys, override):
    status, out = _run_command(tmp_path, override)
    assert status == 2
    assert override.split("=")[0] in capsys.readouterr().err
    assert not (out / "metrics.json").exists() and not (out / "model.pt").exists()


@pytest.mark.skipif(torch.cuda.is_available(), reason="a GPU is present here")
def test_gpu_requested_where_none_exists(tmp_path, capsys):
    from tfvaegan.device import resolve_device

    with pytest.raises(ConfigError, match=r"device.*expected.*found 'cuda'"):
        resolve_device("cuda")
    status, out = _run_command(tmp_path, "device=cuda", "nepoch=1")
    assert status == 2 and "device" in capsys.readouterr().err
    assert not (out / "metrics.json").exists()


def test_run_on_malformed_data_exits_2_without_metrics(tmp_path, capsys):
    root = tmp_path / "data"
    write_toy(root, feature_overrides={"features": _with(TOY["features"], (1, 1), np.inf)})
    out = tmp_path / "out"
    assert main(["run", "--data-root", str(root), "--dataset", "TOY", "--out", str(out),
                 "--set", "nepoch=1"]) == 2
    assert "res101.mat: key 'features': expected finite values" in capsys.readouterr().err
    assert not (out / "metrics.json").exists() and not (out / "model.pt").exists()


@pytest.mark.parametrize("entry", ["../outside.jpg", "cls/../../outside.jpg", "/etc/passwd"])
def test_image_entry_escaping_the_root_is_refused(tmp_path, entry):
    from tfvaegan.features.extract import safe_image_path

    root = tmp_path / "images"
    (root / "cls").mkdir(parents=True)
    (tmp_path / "outside.jpg").write_bytes(b"not an image")
    with pytest.raises(DataError, match=r"image list entry .*expected a path"):
        safe_image_path(root, entry)
    assert safe_image_path(root, "cls/a.jpg") == (root / "cls" / "a.jpg").resolve()


class NotAStateDict:
    """A custom object: loading it needs full unpickling, which weights-only loading refuses."""

    def __init__(self):
        self.payload = [1, 2, 3]


def test_checkpoint_that_is_not_a_plain_state_dict_is_refused(tmp_path):
    from tfvaegan.artifacts import load_artifact as load_checkpoint

    path = tmp_path / "model.pt"
    torch.save({"format": "x", "evil": NotAStateDict()}, path)
    with pytest.raises(UserError, match=r"model\.pt: expected .*weights_only"):
        load_checkpoint(path)
    status = main(["synthesize", "--model", str(path), "--out", str(tmp_path / "synthetic.pt")])
    assert status == 2 and not (tmp_path / "synthetic.pt").exists()


def test_zsl_only_dataset_without_seen_test_images_loads_and_evaluates(tmp_path):
    # An empty test_seen_loc is refused only when GZSL needs it (the catalogue above); ZSL runs.
    from tfvaegan.method.evaluate import evaluate
    from tfvaegan.method.models import TFVAEGAN

    write_toy(tmp_path, split_overrides={"test_seen_loc": np.zeros((0, 1))})
    cfg = Config(dataset="TOY", gzsl=False, syn_num=5, classifier_nepoch=2, ngh=16, generator_hidden=16,
                 encoder_hidden=16, ndh=16)
    zdata = load_test_split(tmp_path, cfg)
    assert zdata.test_seen_feature.shape[0] == 0 and zdata.test_unseen_feature.shape[0] > 0
    cfg = cfg.resolved(zdata.res_size, zdata.att_size, zdata.n_classes)
    row = evaluate(TFVAEGAN(cfg), zdata, cfg, torch.Generator().manual_seed(0))
    assert 0.0 <= row["zsl_acc"] <= 1.0 and "gzsl_h" not in row
