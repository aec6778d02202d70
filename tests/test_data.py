"""The data loader: both .mat versions, the official preprocessing, the action layout."""
from __future__ import annotations

import numpy as np
import pytest
import torch
from sklearn.preprocessing import MinMaxScaler, StandardScaler
from toy import load_test_split, toy_arrays, write_action_layout, write_toy

from tfvaegan.config import Config
from tfvaegan.data.matfile import read_mat, write_mat
from tfvaegan.data.preprocess import make_split
from tfvaegan.data.validate import load_raw
from tfvaegan.features.dataset import xlsa17_locations


@pytest.fixture(scope="module")
def toy_root(tmp_path_factory):
    root = tmp_path_factory.mktemp("toy")
    write_toy(root, dataset="V5", version="v5")
    write_toy(root, dataset="V73", version="v7.3")
    return root


def test_v5_and_v73_load_identically(toy_root):
    v5 = load_raw(toy_root, Config(dataset="V5"))
    v73 = load_raw(toy_root, Config(dataset="V73"))
    assert v5.formats[str(v5.feature_file)] == "v5" and v73.formats[str(v73.feature_file)] == "v7.3"
    np.testing.assert_array_equal(v5.features, v73.features)
    np.testing.assert_array_equal(v5.labels, v73.labels)
    np.testing.assert_array_equal(v5.attributes, v73.attributes)
    assert v5.locs.keys() == v73.locs.keys()
    for key in v5.locs:
        np.testing.assert_array_equal(v5.locs[key], v73.locs[key])
    assert v5.class_names == v73.class_names and v5.class_names[0] == "001.class_1"
    assert v5.image_files == v73.image_files and len(v5.image_files) == v5.labels.size


def test_raw_matches_the_file_contents(toy_root):
    arrays = toy_arrays()
    raw = load_raw(toy_root, Config(dataset="V73"))
    # the file holds D x N and 1-based indices; the loader gives N x D and 0-based
    np.testing.assert_array_equal(raw.features, arrays["features"].T)
    np.testing.assert_array_equal(raw.labels, arrays["labels"].ravel().astype(int) - 1)
    np.testing.assert_allclose(raw.attributes, arrays["att"].T.astype(np.float32))
    np.testing.assert_array_equal(raw.locs["test_unseen"], arrays["test_unseen_loc"].ravel().astype(int) - 1)
    assert raw.features.dtype == np.float32 and raw.labels.dtype == np.int64


def test_read_mat_undoes_hdf5_transposition(tmp_path):
    matrix = np.arange(6, dtype=np.float64).reshape(2, 3)
    write_mat(tmp_path / "m.mat", {"m": matrix, "name": "abc", "cells": ["x", "yz"]}, version="v7.3")
    content = read_mat(tmp_path / "m.mat")
    np.testing.assert_array_equal(content["m"], matrix)
    assert content["name"] == "abc" and content["cells"] == ["x", "yz"]


@pytest.mark.parametrize("version", ["v5", "v7.3"])
def test_read_mat_round_trips_empty_strings(tmp_path, version):
    write_mat(tmp_path / "m.mat", {"cells": ["a", "", "c"], "blank": ""}, version=version)
    content = read_mat(tmp_path / "m.mat")
    assert content["cells"] == ["a", "", "c"] and content["blank"] == ""


def test_read_mat_reads_h5py_string_datasets(tmp_path):
    import h5py

    write_mat(tmp_path / "m.mat", {"m": np.ones((2, 3))}, version="v7.3")
    with h5py.File(tmp_path / "m.mat", "r+") as handle:  # as a Python user writes strings, not MATLAB
        handle["variable"] = np.array(["img0.jpg", "", "dir/img2.jpg"], dtype=h5py.string_dtype())
        handle["fixed"] = np.array([b"ab", b"c"])
        handle["scalar"] = "hello"
    content = read_mat(tmp_path / "m.mat")
    assert content["variable"] == ["img0.jpg", "", "dir/img2.jpg"] and content["fixed"] == ["ab", "c"]
    assert content["scalar"] == "hello"


@pytest.mark.parametrize("standardization", [False, True])
def test_preprocessing_matches_sklearn_by_hand(toy_root, standardization):
    cfg = Config(dataset="V5", preprocessing=True, standardization=standardization)
    raw = load_raw(toy_root, cfg)
    zsl = load_test_split(toy_root, cfg)
    features = raw.features.astype(np.float64)
    scaler = StandardScaler() if standardization else MinMaxScaler()
    train = scaler.fit_transform(features[raw.locs["trainval"]])
    top = train.astype(np.float32).max()
    np.testing.assert_allclose(zsl.train_feature.numpy(), train / top, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(zsl.test_seen_feature.numpy(),
                               scaler.transform(features[raw.locs["test_seen"]]) / top, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(zsl.test_unseen_feature.numpy(),
                               scaler.transform(features[raw.locs["test_unseen"]]) / top, rtol=1e-5, atol=1e-6)
    if not standardization:
        assert zsl.train_feature.max().item() == pytest.approx(1.0)
        # the test splits are scaled with the training statistics, so they may leave [0, 1]
        assert zsl.info["preprocessing"] == "minmax"
    att = raw.attributes
    np.testing.assert_allclose(zsl.attribute.numpy(), att / np.linalg.norm(att, axis=1, keepdims=True), rtol=1e-6)
    np.testing.assert_allclose(zsl.attribute.norm(dim=1).numpy(), 1.0, rtol=1e-6)


def test_no_preprocessing_keeps_raw_features(toy_root):
    cfg = Config(dataset="V5", preprocessing=False)
    raw = load_raw(toy_root, cfg)
    zsl = load_test_split(toy_root, cfg)
    np.testing.assert_array_equal(zsl.train_feature.numpy(), raw.features[raw.locs["trainval"]])
    assert zsl.info["preprocessing"] == "none" and zsl.info["train_max"] is None


def test_zsldata_fields_and_classes(toy_root):
    zsl = load_test_split(toy_root, Config(dataset="V5"))
    arrays = toy_arrays()
    labels0 = arrays["labels"].ravel().astype(int) - 1
    unseen = np.unique(labels0[arrays["test_unseen_loc"].ravel().astype(int) - 1])
    assert zsl.unseenclasses.tolist() == unseen.tolist()
    n_classes = arrays["att"].shape[1]
    assert set(zsl.seenclasses.tolist()) == set(range(n_classes)) - set(unseen.tolist())
    assert (zsl.res_size, zsl.att_size, zsl.n_classes) == (arrays["features"].shape[0], arrays["att"].shape[0], n_classes)
    assert zsl.train_label.dtype == torch.int64 and zsl.train_feature.dtype == torch.float32
    assert set(zsl.test_seen_label.tolist()) <= set(zsl.seenclasses.tolist())
    assert zsl.bce_attribute is None
    moved = zsl.to("cpu")
    assert moved is not zsl and torch.equal(moved.train_feature, zsl.train_feature)
    assert zsl.info["n_train"] == zsl.train_label.numel() and zsl.info["n_unseen_classes"] == unseen.size


def test_make_split_fits_the_scaler_on_the_given_rows_only(toy_root):
    cfg = Config(dataset="V5", preprocessing=True)
    raw = load_raw(toy_root, cfg)
    train = raw.locs["trainval"][:50]
    zsl = make_split(raw, train, raw.locs["trainval"][50:], raw.locs["test_unseen"], cfg)
    expected = MinMaxScaler().fit_transform(raw.features[train].astype(np.float64))
    np.testing.assert_allclose(zsl.train_feature.numpy(), expected / expected.astype(np.float32).max(), atol=1e-6)
    assert zsl.info["n_train"] == 50


def test_make_split_accepts_an_empty_test_split(toy_root):
    cfg = Config(dataset="V5")
    raw = load_raw(toy_root, cfg)
    zsl = make_split(raw, raw.locs["trainval"], raw.locs["test_seen"][:0], raw.locs["test_unseen"], cfg)
    assert zsl.test_seen_feature.shape == (0, zsl.res_size) and zsl.info["n_test_seen"] == 0


def test_same_input_same_numbers(toy_root):
    first = load_test_split(toy_root, Config(dataset="V5"))
    second = load_test_split(toy_root, Config(dataset="V5"))
    for field in ("train_feature", "test_seen_feature", "test_unseen_feature", "attribute"):
        assert torch.equal(getattr(first, field), getattr(second, field))


@pytest.fixture(scope="module")
def action_root(tmp_path_factory):
    root = tmp_path_factory.mktemp("actions")
    write_action_layout(root, name="toy_i3d", n_splits=2)
    return root


def _action_cfg(split: int, **extra) -> Config:
    return Config(dataset=f"toy_i3d/split_{split}", image_embedding="i3d", image_embedding_path="toy_i3d",
                  **{"preprocessing": True, **extra})


def test_action_layout_shares_one_feature_file(action_root):
    first = load_raw(action_root, _action_cfg(1))
    second = load_raw(action_root, _action_cfg(2))
    assert first.feature_file == second.feature_file == action_root / "toy_i3d" / "i3d.mat"
    assert first.split_file.parent.name == "split_1" and second.split_file.parent.name == "split_2"
    assert not np.array_equal(first.unseen_classes, second.unseen_classes)
    assert first.attributes.shape == (12, 10)


def test_manual_attributes_replace_att(action_root):
    zsl = load_test_split(action_root, _action_cfg(1, manual_att=True))
    manual = np.load(action_root / "toy_i3d" / "ucf101_manual_att.npy").astype(np.float32)
    np.testing.assert_allclose(zsl.attribute.numpy(), manual / np.linalg.norm(manual, axis=1, keepdims=True),
                               rtol=1e-6)
    assert zsl.att_size == 6 and zsl.info["attribute_file"].endswith("ucf101_manual_att.npy")


@pytest.mark.parametrize("manual_att", [False, True])
def test_bce_attributes_are_min_max_scaled_normalised_attributes(action_root, manual_att):
    zsl = load_test_split(action_root, _action_cfg(1, manual_att=manual_att, bce_att=True))
    # official: MinMaxScaler over classes of the L2-normalised attributes, times 1/train max (= 1 here)
    expected = MinMaxScaler().fit_transform(zsl.attribute.numpy().astype(np.float64)) / zsl.info["train_max"]
    np.testing.assert_allclose(zsl.bce_attribute.numpy(), expected, rtol=1e-5, atol=1e-6)
    assert zsl.bce_attribute.shape == zsl.attribute.shape
    assert zsl.bce_attribute.min().item() >= 0 and zsl.bce_attribute.max().item() <= 1 + 1e-6
    assert torch.allclose(zsl.bce_attribute.amax(dim=0), torch.ones(zsl.att_size))


@pytest.mark.parametrize("extra", [dict(standardization=True), dict(preprocessing=False)])
def test_bce_attributes_stay_valid_targets_where_the_official_code_breaks(action_root, extra):
    zsl = load_test_split(action_root, _action_cfg(1, bce_att=True, **extra))
    expected = MinMaxScaler().fit_transform(zsl.attribute.numpy().astype(np.float64))
    np.testing.assert_allclose(zsl.bce_attribute.numpy(), expected, rtol=1e-5, atol=1e-6)


def test_xlsa17_locations_follow_the_xlsa17_conventions():
    labels = np.repeat(np.arange(12), np.arange(5, 17))
    locs = {k: v - 1 for k, v in xlsa17_locations(labels, [0, 5, 7], seed=3).items()}
    assert min(v.min() for v in locs.values()) >= 0
    big3 = np.concatenate([locs["trainval_loc"], locs["test_seen_loc"], locs["test_unseen_loc"]])
    assert np.array_equal(np.sort(big3), np.arange(labels.size))  # disjoint and covering
    np.testing.assert_array_equal(np.union1d(locs["train_loc"], locs["val_loc"]),
                                  np.union1d(locs["trainval_loc"], locs["test_seen_loc"]))
    assert set(labels[locs["test_unseen_loc"]]) == {0, 5, 7}
    seen = set(labels[locs["trainval_loc"]])
    assert seen == set(range(12)) - {0, 5, 7} and set(labels[locs["test_seen_loc"]]) <= seen
    assert not set(labels[locs["train_loc"]]) & set(labels[locs["val_loc"]])  # val classes are held out
    share = locs["test_seen_loc"].size / (locs["trainval_loc"].size + locs["test_seen_loc"].size)
    assert 0.15 < share < 0.25
    again = xlsa17_locations(labels, [0, 5, 7], seed=3)
    assert all(np.array_equal(again[k], v + 1) for k, v in locs.items())
    other = xlsa17_locations(labels, [0, 5, 7], seed=4)
    assert not np.array_equal(other["test_seen_loc"], locs["test_seen_loc"] + 1)



@pytest.mark.parametrize("version", ["v5", "v7.3"])
def test_write_mat_gives_the_same_bytes_at_another_time(tmp_path, monkeypatch, version):
    import itertools
    import time

    clock = itertools.count()
    monkeypatch.setattr(time, "asctime", lambda *a: f"Mon Jan {next(clock) % 28 + 1:2d} 00:00:00 2024")
    variables = {"att": np.arange(6.0).reshape(2, 3), "allclasses_names": ["a", "b"], "note": "x"}
    write_mat(tmp_path / "a.mat", variables, version)
    time.sleep(1.1)  # HDF5 would stamp object times in seconds
    write_mat(tmp_path / "b.mat", variables, version)
    assert (tmp_path / "a.mat").read_bytes() == (tmp_path / "b.mat").read_bytes()
    assert read_mat(tmp_path / "a.mat")["allclasses_names"] == ["a", "b"]


@pytest.mark.parametrize("umask,mode", [(0o022, 0o644), (0o027, 0o640)])
def test_atomic_writes_get_the_mode_of_a_plain_open(tmp_path, umask, mode):
    import os

    old = os.umask(umask)
    try:
        write_mat(tmp_path / "a.mat", {"x": np.ones((2, 2))})
    finally:
        os.umask(old)
    assert (tmp_path / "a.mat").stat().st_mode & 0o777 == mode
