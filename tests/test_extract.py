"""Feature extraction: path safety, the weights rule, the res101.mat layout, determinism."""
from __future__ import annotations

import os

import numpy as np
import pytest

from tfvaegan.cli import UserError
from tfvaegan.data import DataError, read_mat
from tfvaegan.extract import (class_folder_list, extract_features, read_image_list, safe_image_path,
                              write_feature_file)


def test_safe_image_path_accepts_entries_inside_the_root(tmp_path):
    (tmp_path / "a").mkdir()
    assert safe_image_path(tmp_path, "a/b.png") == (tmp_path / "a" / "b.png").resolve()
    assert safe_image_path(tmp_path, "a/../c.png") == (tmp_path / "c.png").resolve()


@pytest.mark.parametrize("entry", ["../outside.png", "a/../../outside.png", "/etc/passwd", "C:/x.png", ""])
def test_safe_image_path_refuses_escapes(tmp_path, entry):
    with pytest.raises(DataError, match="image list entry"):
        safe_image_path(tmp_path / "root", entry)


def test_safe_image_path_refuses_a_link_that_leaves_the_root(tmp_path):
    root = tmp_path / "root"
    root.mkdir()
    (tmp_path / "secret.png").write_bytes(b"x")
    os.symlink(tmp_path / "secret.png", root / "link.png")
    with pytest.raises(DataError, match="leaves it"):
        safe_image_path(root, "link.png")


def test_missing_weights_is_one_clear_error(tmp_path, monkeypatch, small_demo):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    with pytest.raises(UserError) as info:
        extract_features([small_demo / "images/red_circle_small_solid/red_circle_small_solid_000.png"],
                         image_size=32, progress=False)
    message = str(info.value)
    assert "resnet101-63fe2227.pth" in message and str(tmp_path / "torch" / "hub" / "checkpoints") in message
    assert "--weights" in message and "--allow-random-init" in message


def test_random_init_is_seeded_and_features_are_pooled_2048(small_demo):
    paths = [small_demo / "images" / name / f"{name}_000.png"
             for name in ("red_circle_small_solid", "blue_bar_large_striped", "green_cross_small_solid")]
    # resnet50 shares ResNet-101's pooled 2048-d head and is quicker to build
    options = dict(image_size=32, backbone="resnet50", allow_random_init=True, progress=False)
    first = extract_features(paths, batch_size=2, seed=0, **options)
    again = extract_features(paths, batch_size=3, seed=0, **options)
    other = extract_features(paths, seed=1, **options)
    assert first.shape == (3, 2048) and first.dtype == np.float32 and np.isfinite(first).all()
    assert np.allclose(first, again, rtol=1e-3, atol=1e-3)  # batching does not change a row
    assert not np.allclose(first, other)
    assert (first >= 0).all()  # pooled after a ReLU
    assert not np.allclose(first[0], first[1])


def test_local_weights_file_is_loaded(tmp_path, small_demo):
    """A state dict given with weights= is what the backbone uses (here: a seeded network saved to disk)."""
    import torch
    import torchvision

    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(5)
        state = torchvision.models.resnet50(weights=None).state_dict()
    torch.save(state, tmp_path / "resnet50.pth")
    path = [small_demo / "images/red_circle_small_solid/red_circle_small_solid_001.png"]
    from_file = extract_features(path, weights=tmp_path / "resnet50.pth", backbone="resnet50", image_size=32,
                                 progress=False)
    seeded = extract_features(path, backbone="resnet50", image_size=32, seed=5, allow_random_init=True,
                              progress=False)
    assert np.allclose(from_file, seeded, rtol=1e-5, atol=1e-5)
    torch.save({"not": torch.zeros(1)}, tmp_path / "wrong.pth")
    with pytest.raises(UserError, match="not a resnet50 state dict"):
        extract_features(path, weights=tmp_path / "wrong.pth", backbone="resnet50", image_size=32, progress=False)


def test_cli_writes_the_res101_layout(run_cli, tmp_path, small_demo):
    listing = tmp_path / "list.txt"
    lines = (small_demo / "image_list.txt").read_text().splitlines()[:6]
    listing.write_text("\n".join(lines) + "\n")
    out = tmp_path / "feat" / "res101.mat"
    code, err = run_cli("extract", "--image-root", small_demo, "--list", listing, "--out", out,
                        "--image-size", "32", "--allow-random-init")
    assert code == 0, err
    assert "extract: 6/6 images (100%" in err
    content = read_mat(out)
    assert content["features"].shape == (2048, 6)
    assert content["labels"].shape == (6, 1)
    assert content["labels"].ravel().tolist() == [int(line.rsplit(" ", 1)[1]) for line in lines]
    assert content["image_files"] == [line.rsplit(" ", 1)[0] for line in lines]
    # the written file is itself an image list (xlsa17 res101.mat order), so re-extraction reads it
    entries, labels = read_image_list(out)
    assert entries == content["image_files"] and labels.tolist() == content["labels"].ravel().tolist()


def test_cli_refuses_escaping_entries_without_reading(run_cli, tmp_path, small_demo):
    listing = tmp_path / "list.txt"
    listing.write_text("../../etc/passwd 1\n")
    code, err = run_cli("extract", "--image-root", small_demo, "--list", listing, "--out", tmp_path / "f.mat",
                        "--allow-random-init")
    assert code == 2 and "leaves it" in err and err.count("\n") == 1
    assert not (tmp_path / "f.mat").exists()


def test_bad_list_line_names_file_and_line(tmp_path):
    listing = tmp_path / "list.txt"
    listing.write_text("a.png 1\nb.png zero\n")
    with pytest.raises(DataError, match=r"list.txt: line 2: expected '<relative path> <1-based label>'"):
        read_image_list(listing)


def test_class_folders_follow_the_given_class_order(tmp_path):
    for name in ("zebra", "ant"):
        (tmp_path / name).mkdir()
        (tmp_path / name / "1.png").write_bytes(b"")
    (tmp_path / "ant" / "notes.txt").write_text("not an image")
    entries, labels = class_folder_list(tmp_path, ["zebra", "ant"])
    assert entries == ["zebra/1.png", "ant/1.png"] and labels.tolist() == [1, 2]
    assert class_folder_list(tmp_path)[0] == ["ant/1.png", "zebra/1.png"]
    with pytest.raises(DataError, match="no folder|none for"):
        class_folder_list(tmp_path, ["zebra", "ant", "cat"])


def test_write_feature_file_is_atomic(tmp_path, monkeypatch):
    import tfvaegan.data as data_module

    out = tmp_path / "res101.mat"
    write_feature_file(out, np.ones((2, 2048), np.float32), np.array([1, 2]), ["a.png", "b.png"])
    before = out.read_bytes()

    def broken(*args, **kwargs):
        raise OSError("disk full")

    monkeypatch.setattr("scipy.io.savemat", broken)
    with pytest.raises(OSError):
        write_feature_file(out, np.zeros((2, 2048), np.float32), np.array([1, 2]), ["a.png", "b.png"])
    assert out.read_bytes() == before
    assert [p.name for p in tmp_path.iterdir()] == ["res101.mat"]
    assert data_module  # the writer used is tfvaegan.data.write_mat
