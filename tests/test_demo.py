"""The embedded demo benchmark: xlsa17 layout, attribute-defined classes, unseen combinations."""
from __future__ import annotations

import numpy as np
import pytest

from tfvaegan.data import read_mat
from tfvaegan.demo import ATTRIBUTE_NAMES, N_CLASSES, all_classes, make_demo


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
    from tfvaegan.data import load_raw
    from tfvaegan.extract import read_image_list, write_feature_file

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
