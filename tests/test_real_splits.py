"""The loaders on the real xlsa17 attribute/split files (../shared/xlsa17), with generated features.

The features are random (the real res101.mat files cannot be fetched here) but have the real
number of images and the real labels (labels.npy), so every real location, class and quirk is
exercised. Skipped when the shared folder is absent, failed then under CI=true.
"""
from __future__ import annotations

import os

import numpy as np
import pytest
from conftest import XLSA17_ROOT
from toy import load_test_split

from tfvaegan.cli import main
from tfvaegan.config import Config
from tfvaegan.data.matfile import read_mat, write_mat
from tfvaegan.data.validate import load_raw

pytestmark = pytest.mark.shared(XLSA17_ROOT)

# From ../shared/xlsa17/README.md: split sizes, attribute width, classes (seen, unseen).
EXPECTED = {
    ("CUB", "att"): dict(trainval=7057, test_seen=1764, test_unseen=2967, train=5875, val=2946,
                         att=312, classes=200, seen=150, unseen=50),
    ("CUB", "sent"): dict(trainval=7057, test_seen=1764, test_unseen=2967, train=5875, val=2946,
                          att=1024, classes=200, seen=150, unseen=50),
    ("AWA2", "att"): dict(trainval=23527, test_seen=5882, test_unseen=7913, train=20218, val=9191,
                          att=85, classes=50, seen=40, unseen=10),
    ("SUN", "att"): dict(trainval=10320, test_seen=2580, test_unseen=1440, train=11600, val=1300,
                         att=102, classes=717, seen=645, unseen=72),
    ("FLO", "att"): dict(trainval=5631, test_seen=1403, test_unseen=1155, train=5878, val=1156,
                         att=1024, classes=102, seen=82, unseen=20),
    ("APY", "att"): dict(trainval=5932, test_seen=1483, test_unseen=7924, att=64, classes=32, seen=20, unseen=12),
}
FEATURE_WIDTH = 4


def _real_split_files():
    return sorted((path.parent.name, path.name[: -len("_splits.mat")])
                  for path in XLSA17_ROOT.glob("*/*_splits.mat")) if XLSA17_ROOT.is_dir() else []


def test_every_real_split_file_is_covered():
    assert set(_real_split_files()) == set(EXPECTED)


def _stage(root, name, labels, version="v5"):
    """root/<name>/res101.mat with random features of the real N and the real labels; the split
    files are linked, not copied."""
    folder = root / name
    folder.mkdir()
    rng = np.random.default_rng(0)
    features = rng.random((FEATURE_WIDTH, labels.size), dtype=np.float32)
    write_mat(folder / "res101.mat", {"features": features, "labels": labels.reshape(-1, 1)}, version=version)
    for split_file in (XLSA17_ROOT / name).glob("*_splits.mat"):
        os.symlink(split_file, folder / split_file.name)
    return features


@pytest.fixture(scope="module")
def staged(tmp_path_factory):
    root = tmp_path_factory.mktemp("xlsa17")
    for name in sorted({name for name, _ in EXPECTED}):
        _stage(root, name, np.load(XLSA17_ROOT / name / "labels.npy"))
    return root


@pytest.mark.parametrize("name,stem", sorted(EXPECTED))
def test_real_split_loads_with_the_published_sizes(staged, name, stem):
    expected = EXPECTED[(name, stem)]
    cfg = Config(dataset=name, class_embedding=stem, preprocessing=True)
    raw = load_raw(staged, cfg)
    for key in ("trainval", "test_seen", "test_unseen", "train", "val"):
        if key in expected:
            assert raw.locs[key].size == expected[key], key
    assert raw.attributes.shape == (expected["classes"], expected["att"])
    assert raw.seen_classes.size == expected["seen"] and raw.unseen_classes.size == expected["unseen"]
    assert raw.labels.size == np.load(XLSA17_ROOT / name / "labels.npy").size
    if name != "FLO":
        assert raw.class_names is not None and len(raw.class_names) == expected["classes"]
    if "train" in raw.locs:
        # the xlsa17 quirk is accepted, and reported
        np.testing.assert_array_equal(np.union1d(raw.locs["train"], raw.locs["val"]),
                                      np.union1d(raw.locs["trainval"], raw.locs["test_seen"]))
        assert any("xlsa17" in note for note in raw.notes)

    zsl = load_test_split(staged, cfg)
    assert zsl.n_classes == expected["classes"] and zsl.att_size == expected["att"]
    assert zsl.res_size == FEATURE_WIDTH
    assert zsl.train_feature.shape[0] == expected["trainval"]
    assert zsl.seenclasses.numel() == expected["seen"] and zsl.unseenclasses.numel() == expected["unseen"]
    assert zsl.train_feature.max().item() == pytest.approx(1.0)
    np.testing.assert_allclose(zsl.attribute.norm(dim=1).numpy(), 1.0, rtol=1e-5)


def test_real_split_check_command(staged, capsys):
    assert main(["dataset", "check", str(staged / "CUB")]) == 0
    out = capsys.readouterr().out
    assert "200 (150 seen, 50 unseen)" in out and "trainval 7057" in out and "OK" in out


def test_real_split_rewritten_as_v73_loads_identically(staged, tmp_path):
    name = "AWA2"
    labels = np.load(XLSA17_ROOT / name / "labels.npy")
    folder = tmp_path / name
    folder.mkdir()
    v5 = load_raw(staged, Config(dataset=name))
    content = read_mat(XLSA17_ROOT / name / "att_splits.mat")
    write_mat(folder / "att_splits.mat", content, version="v7.3")
    write_mat(folder / "res101.mat", {"features": v5.features.T, "labels": labels.reshape(-1, 1)},
                   version="v7.3")
    v73 = load_raw(tmp_path, Config(dataset=name))
    assert v73.formats[str(v73.split_file)] == "v7.3"
    np.testing.assert_array_equal(v5.features, v73.features)
    np.testing.assert_array_equal(v5.attributes, v73.attributes)
    assert v5.class_names == v73.class_names
    for key in v5.locs:
        np.testing.assert_array_equal(v5.locs[key], v73.locs[key])
