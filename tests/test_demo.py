"""The embedded demo benchmark: xlsa17 layout, attribute-defined classes, unseen combinations."""
from __future__ import annotations

import numpy as np
import pytest

from tfvaegan.data.matfile import read_mat
from tfvaegan.features.demo import ATTRIBUTE_NAMES, N_CLASSES, all_classes, make_demo


def _locs(split: dict) -> dict[str, np.ndarray]:
    return {k[:-4]: v.ravel().astype(int) for k, v in split.items() if k.endswith("_loc")}


def test_layout_and_splits(small_demo):
    split = read_mat(small_demo / "att_splits.mat")
    lines = (small_demo / "image_list.txt").read_text().splitlines()
    labels = np.array([int(line.rsplit(" ", 1)[1]) for line in lines])
    locs = _locs(split)
    assert set(locs) == {"trainval", "test_seen", "test_unseen", "train", "val"}
    n = len(lines)
    assert n == N_CLASSES * 5
    for rows in locs.values():  # 1-based row indices into the feature file
        assert rows.min() >= 1 and rows.max() <= n
    partition = np.concatenate([locs["trainval"], locs["test_seen"], locs["test_unseen"]])
    assert np.array_equal(np.sort(partition), np.arange(1, n + 1))
    # as in xlsa17: train ∪ val = trainval ∪ test_seen, and val classes are seen classes
    assert np.array_equal(np.sort(np.concatenate([locs["train"], locs["val"]])),
                          np.sort(np.concatenate([locs["trainval"], locs["test_seen"]])))
    seen = set(labels[locs["trainval"] - 1])
    unseen = set(labels[locs["test_unseen"] - 1])
    assert seen == set(labels[locs["test_seen"] - 1]) and not seen & unseen
    assert len(unseen) >= 10
    assert set(labels[locs["val"] - 1]) <= seen
    assert split["att"].shape == (len(ATTRIBUTE_NAMES), N_CLASSES)
    assert np.allclose(np.linalg.norm(split["att"], axis=0), 1.0)
    assert split["allclasses_names"] == [c.name for c in all_classes()]


def test_unseen_classes_are_new_combinations_of_seen_attribute_values(small_demo):
    split = read_mat(small_demo / "att_splits.mat")
    labels = np.array([int(line.rsplit(" ", 1)[1]) - 1
                       for line in (small_demo / "image_list.txt").read_text().splitlines()])
    locs = _locs(split)
    att = split["att"].T > 0
    seen = np.unique(labels[locs["trainval"] - 1])
    unseen = np.unique(labels[locs["test_unseen"] - 1])
    assert att[seen].any(0).all(), "every attribute value must occur among the seen classes"
    seen_rows = {tuple(row) for row in att[seen]}
    assert all(tuple(att[u]) not in seen_rows for u in unseen)


def test_images_exist_and_class_folders_match_labels(small_demo):
    from PIL import Image

    names = read_mat(small_demo / "att_splits.mat")["allclasses_names"]
    for line in (small_demo / "image_list.txt").read_text().splitlines()[::37]:
        path, label = line.rsplit(" ", 1)
        assert path.split("/")[1] == names[int(label) - 1]
        with Image.open(small_demo / path) as image:
            assert image.size == (32, 32) and image.mode == "RGB"


def test_same_seed_same_benchmark_other_seed_differs(tmp_path, small_demo):
    make_demo(tmp_path / "a", seed=0, images_per_class=5, image_size=32, progress=False)
    make_demo(tmp_path / "b", seed=1, images_per_class=5, image_size=32, progress=False)
    first = small_demo / "images" / "red_circle_small_solid" / "red_circle_small_solid_000.png"
    again = tmp_path / "a" / first.relative_to(small_demo)
    other = tmp_path / "b" / first.relative_to(small_demo)
    assert again.read_bytes() == first.read_bytes()
    assert other.read_bytes() != first.read_bytes()
    assert np.array_equal(read_mat(tmp_path / "a" / "att_splits.mat")["test_unseen_loc"],
                          read_mat(small_demo / "att_splits.mat")["test_unseen_loc"])


def test_loads_with_the_data_module(tmp_path, small_demo):
    """With features written in the res101.mat layout, tfvaegan.data reads the demo as a benchmark."""
    import shutil

    from tfvaegan.config import Config
    from tfvaegan.data.validate import load_raw
    from tfvaegan.features.extract import read_image_list, write_feature_file

    folder = tmp_path / "demo"
    folder.mkdir()
    shutil.copy(small_demo / "att_splits.mat", folder)
    entries, labels = read_image_list(small_demo / "image_list.txt")
    features = np.random.default_rng(0).random((len(entries), 2048), dtype=np.float32)
    write_feature_file(folder / "res101.mat", features, labels, entries)
    raw = load_raw(tmp_path, Config(dataset="demo"))
    assert raw.features.shape == (N_CLASSES * 5, 2048)
    assert raw.attributes.shape == (N_CLASSES, len(ATTRIBUTE_NAMES))
    assert len(np.unique(raw.labels[raw.locs["test_unseen"]])) == 12


def test_bad_option_is_one_line_error(run_cli, tmp_path):
    code, err = run_cli("demo", "--out", tmp_path / "x", "--n-unseen", "40")
    assert code == 2
    assert err.startswith("error: demo: n_unseen") and err.count("\n") == 1


@pytest.mark.parametrize("n_unseen", [10, 12, 20])
def test_unseen_count_is_honoured(tmp_path, n_unseen):
    summary = make_demo(tmp_path, seed=3, images_per_class=5, image_size=32, n_unseen=n_unseen, progress=False)
    assert summary["unseen"] == n_unseen and summary["seen"] == N_CLASSES - n_unseen


def _tree(folder):
    return {p.relative_to(folder).as_posix(): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def test_same_seed_same_bytes_in_another_folder_at_another_time(tmp_path, small_demo, monkeypatch):
    import time

    monkeypatch.setattr(time, "asctime", lambda *a: "Thu Jan  1 00:00:00 1970")  # not the session's clock
    make_demo(tmp_path / "again", seed=0, images_per_class=5, image_size=32, progress=False)
    assert _tree(tmp_path / "again") == _tree(small_demo)


def test_rerun_replaces_the_images_and_keeps_other_files(tmp_path):
    out = tmp_path / "demo"
    make_demo(out, seed=0, images_per_class=6, image_size=32, progress=False)
    (out / "res101.mat").write_bytes(b"features")  # extract writes beside the demo
    for name in ("att_splits.mat", "image_list.txt"):  # snakemake removes the rule's outputs first
        (out / name).unlink()
    make_demo(out, seed=0, images_per_class=5, image_size=32, progress=False)
    assert not list(out.rglob("*_005.png")) and len(list(out.rglob("*.png"))) == N_CLASSES * 5
    assert sorted(p.name for p in out.iterdir()) == ["att_splits.mat", "image_list.txt", "images", "res101.mat"]


def test_failed_run_keeps_the_previous_images(tmp_path, monkeypatch):
    import tfvaegan.features.demo as demo

    out = tmp_path / "demo"
    make_demo(out, seed=0, images_per_class=5, image_size=32, progress=False)
    before = _tree(out)
    monkeypatch.setattr(demo, "render", lambda *a: (_ for _ in ()).throw(RuntimeError("boom")))
    with pytest.raises(RuntimeError):
        make_demo(out, seed=1, images_per_class=5, image_size=32, progress=False)
    assert _tree(out) == before and not [p for p in out.iterdir() if p.name.startswith(".")]


def test_output_that_is_not_a_demo_folder_is_refused(run_cli, tmp_path):
    (tmp_path / "afile").write_text("mine")
    (tmp_path / "other").mkdir()
    (tmp_path / "other" / "notes.txt").write_text("mine")
    (tmp_path / "photos" / "images" / "holiday").mkdir(parents=True)
    for out, message in ((tmp_path / "afile", "found a file"), (tmp_path / "afile" / "x", "Not a directory"),
                         (tmp_path / "other", "no images/ of a previous demo run"),
                         (tmp_path / "photos", "images/ holding ['holiday']")):
        code, err = run_cli("demo", "--out", out, "--images-per-class", 5)
        assert code == 2 and err.startswith(f"error: {out}") and message in err and err.count("\n") == 1
    assert (tmp_path / "afile").read_text() == "mine" and sorted(p.name for p in (tmp_path / "other").iterdir()) == ["notes.txt"]
    assert [p.name for p in (tmp_path / "photos" / "images").iterdir()] == ["holiday"]


@pytest.mark.parametrize("error,message", [
    (IsADirectoryError(21, "Is a directory", "some/dir"), "error: some/dir: Is a directory"),
    (PermissionError(13, "Permission denied", "/root/x"), "error: /root/x: Permission denied"),
    (FileExistsError(17, "File exists", "a", None, "b"), "error: a -> b: File exists"),
    (UnicodeDecodeError("utf-8", b"ab\xff", 2, 3, "invalid"),
     "error: a text input: expected utf-8 text, found byte 0xff at offset 2 (a binary file, or another "
     "encoding?)"),
    (ValueError("embedded null byte"), "error: a path: expected a path, found one containing a NUL byte"),
])
def test_user_path_errors_are_one_line(run_cli, tmp_path, monkeypatch, error, message):
    import tfvaegan.features.demo as demo

    def fail(*args, **kwargs):
        raise error

    monkeypatch.setattr(demo, "make_demo", fail)
    code, err = run_cli("demo", "--out", tmp_path / "x")
    assert code == 2 and err == message + "\n"
    monkeypatch.setenv("TFVAEGAN_DEBUG", "1")  # developers get the traceback
    with pytest.raises(type(error)):
        run_cli("demo", "--out", tmp_path / "x")


@pytest.mark.parametrize("error", [ValueError("shapes do not match"), KeyError("att"), OSError(5, "I/O error")])
def test_programming_errors_keep_their_traceback(run_cli, tmp_path, monkeypatch, error):
    import tfvaegan.features.demo as demo

    monkeypatch.setattr(demo, "make_demo", lambda *a, **k: (_ for _ in ()).throw(error))
    with pytest.raises(type(error)):
        run_cli("demo", "--out", tmp_path / "x")
