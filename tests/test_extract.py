"""Feature extraction: path safety, the weights rule, the res101.mat layout, determinism."""
from __future__ import annotations

import os

import numpy as np
import pytest

from tfvaegan.data.matfile import read_mat
from tfvaegan.errors import DataError, UserError
from tfvaegan.features.extract import (
    class_folder_list,
    extract_features,
    read_image_list,
    safe_image_path,
    write_feature_file,
)


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


# --------------------------------------------------------------------------- bad inputs: one error each
def _png(path, size=8, value=(200, 40, 40)):
    from PIL import Image

    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", (size, size), value).save(path)
    return path


def _bad_images(folder):
    """A truncated PNG, a corrupt and a truncated JPEG (which PIL's verify() passes), a text file and a
    macOS resource fork: each named like an image."""
    import io

    from PIL import Image

    folder.mkdir(parents=True, exist_ok=True)
    png = _png(folder / "whole.png", 64).read_bytes()
    buffer = io.BytesIO()
    Image.fromarray(np.random.default_rng(0).integers(0, 255, (64, 64, 3), dtype=np.uint8)).save(buffer, "JPEG")
    jpeg = buffer.getvalue()
    bad = {"truncated.png": png[:len(png) // 2], "corrupt.jpg": jpeg[:200] + bytes(len(jpeg) - 400) + jpeg[-200:],
           "truncated.jpg": jpeg[:len(jpeg) // 2], "text.png": b"not an image", "._x.png": b"\x00\x05\x16\x07"}
    for name, data in bad.items():
        (folder / name).write_bytes(data)
    return sorted(bad)


def test_every_image_is_checked_before_extraction(run_cli, tmp_path, monkeypatch):
    from tfvaegan.features import extract

    bad = _bad_images(tmp_path / "imgs" / "c")
    listing = tmp_path / "list.txt"
    listing.write_text("c/whole.png 1\n" + "".join(f"c/{name} 1\n" for name in bad))
    loaded = []
    monkeypatch.setattr(extract, "load_image", lambda path, size: loaded.append(path))
    code, err = run_cli("extract", "--image-root", tmp_path / "imgs", "--list", listing, "--out",
                        tmp_path / "f.mat", "--backbone", "resnet50", "--image-size", "32", "--batch-size", "1",
                        "--allow-random-init")
    last = err.strip().splitlines()[-1]
    assert code == 2 and last.startswith("error: ") and "Traceback" not in err
    assert "c/._x.png: expected an image PIL can decode" in last and "(5 of 6 images unreadable" in last
    assert "corrupt.jpg" in last and "whole.png" not in last
    assert not loaded and not (tmp_path / "f.mat").exists()


@pytest.mark.parametrize("name", ["truncated.png", "corrupt.jpg", "truncated.jpg", "text.png", "._x.png"])
def test_each_kind_of_bad_image_is_found(tmp_path, name):
    from tfvaegan.features.extract import check_images, load_image

    _bad_images(tmp_path)
    check_images([tmp_path / "whole.png"])
    with pytest.raises(DataError, match=rf"{name}: expected an image PIL can decode.*\(1 of 2 images"):
        check_images([tmp_path / "whole.png", tmp_path / name])
    with pytest.raises(DataError, match=rf"{name}: expected an image PIL can decode"):
        load_image(tmp_path / name, 32)  # a file that goes bad after the check


def test_sixteen_bit_greyscale_is_scaled_not_clipped(tmp_path):
    from PIL import Image

    from tfvaegan.features.extract import IMAGENET_MEAN, IMAGENET_STD, load_image

    Image.fromarray(np.full((40, 40), 128 * 257, dtype=np.uint16)).save(tmp_path / "grey16.png")
    assert Image.open(tmp_path / "grey16.png").mode.startswith("I")
    pixels = load_image(tmp_path / "grey16.png", 32)
    expected = (128 / 255 - np.array(IMAGENET_MEAN)) / np.array(IMAGENET_STD)
    assert np.allclose(pixels[:, 16, 16], expected, atol=1e-3)


@pytest.mark.parametrize("bad", [0, -3, 1.5, np.nan])
def test_mat_list_labels_must_be_positive_integers(tmp_path, bad):
    from tfvaegan.data.matfile import write_mat

    write_mat(tmp_path / "list.mat", {"image_files": ["a.png", "b.png"], "labels": np.array([[1.0], [bad]])})
    with pytest.raises(DataError, match=r"list.mat: key 'labels': expected positive integers.*at entry 2"):
        read_image_list(tmp_path / "list.mat")


def test_class_folders_refuse_empty_and_unnamed_folders_and_skip_hidden(tmp_path):
    for name in ("ant", "bee"):
        _png(tmp_path / name / "1.png")
    (tmp_path / ".git").mkdir()
    (tmp_path / "ant" / "._1.png").write_bytes(b"\x00\x05\x16\x07")
    assert class_folder_list(tmp_path)[0] == ["ant/1.png", "bee/1.png"]
    with pytest.raises(DataError, match=r"expected only folders of the given classes.*1 other folder\(s\): \['bee'\]"):
        class_folder_list(tmp_path, ["ant"])
    (tmp_path / "cat").mkdir()
    (tmp_path / "cat" / "notes.txt").write_text("no image here")
    with pytest.raises(DataError, match=r"cat: expected at least one image .*none in 1 folder\(s\): \['cat'\]"):
        class_folder_list(tmp_path)


@pytest.mark.parametrize("names", [None, "ant", []])
def test_split_file_without_class_names_is_refused(run_cli, tmp_path, names):
    from tfvaegan.data.matfile import write_mat

    _png(tmp_path / "imgs" / "ant" / "1.png")
    split = {"att": np.ones((1, 2))} | ({} if names is None else {"allclasses_names": names})
    write_mat(tmp_path / "att_splits.mat", split)
    code, err = run_cli("extract", "--image-root", tmp_path / "imgs", "--class-folders", "--split-file",
                        tmp_path / "att_splits.mat", "--out", tmp_path / "f.mat", "--allow-random-init")
    assert code == 2 and err.count("\n") == 1
    assert "att_splits.mat: key 'allclasses_names': expected a cell array of class names" in err


class Opaque:
    """Only full unpickling could load this, which must never happen to a user's file."""


@pytest.mark.parametrize("content", ["list", "tensor", "empty", "text", "object", "non-tensor"])
def test_bad_weights_files_are_one_error(tmp_path, content):
    import torch

    from tfvaegan.features.extract import build_backbone

    path = tmp_path / "weights.pth"
    saved = {"list": [torch.zeros(1)], "tensor": torch.zeros(3), "object": {"conv1.weight": Opaque()},
             "non-tensor": {"conv1.weight": 3}}
    if content in saved:
        torch.save(saved[content], path)
    else:
        path.write_text("" if content == "empty" else "a text file\n")
    with pytest.raises(UserError) as info:
        build_backbone("resnet50", path)
    message = str(info.value)
    assert message.startswith(f"backbone weights {path}: expected a state dict (mapping of parameter names to "
                              f"tensors) saved with torch.save, found")
    assert "weights_only" not in message and "\n" not in message


def test_nested_prefixed_checkpoint_with_another_head_loads(tmp_path):
    import torch
    import torchvision

    from tfvaegan.features.extract import build_backbone

    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(5)
        state = torchvision.models.resnet50(weights=None, num_classes=10).state_dict()
    torch.save({"epoch": 3, "state_dict": {f"module.{k}": v for k, v in state.items()}}, tmp_path / "ckpt.pth")
    model = build_backbone("resnet50", tmp_path / "ckpt.pth")
    assert torch.equal(model.state_dict()["layer4.2.bn3.weight"], state["layer4.2.bn3.weight"])
    del state["conv1.weight"]
    state["extra.weight"] = torch.zeros(1)
    state["bn1.weight"] = torch.zeros(3)
    torch.save(state, tmp_path / "mismatched.pth")
    with pytest.raises(UserError, match=r"not a resnet50 state dict \(missing keys \['conv1.weight'\]; "
                                        r"unexpected keys \['extra.weight'\]; shape mismatch \['bn1.weight'\]\)"):
        build_backbone("resnet50", tmp_path / "mismatched.pth")


@pytest.mark.parametrize("args, expected", [
    (["--batch-size", "0"], "--batch-size: expected an integer >= 1, found 0"),
    (["--image-size", "0"], "--image-size: expected an integer >= 16, found 0"),
    (["--device", "bogus"], "--device: expected cpu, cuda or cuda:N, found 'bogus'"),
    (["--device", "cuda:99"], "--device: expected a GPU that exists, found 'cuda:99'"),
    (["--out", "."], "expected a file path, found a directory"),
    (["--split-file", "att_splits.mat"], "--split-file: expected it only with --class-folders"),
])
def test_bad_options_are_refused_before_extraction(run_cli, tmp_path, monkeypatch, args, expected):
    _png(tmp_path / "imgs" / "a.png")
    (tmp_path / "list.txt").write_text("a.png 1\n")
    monkeypatch.chdir(tmp_path)
    options = {"--out": "f.mat", "--image-size": "32", **dict(zip(args[::2], args[1::2]))}
    code, err = run_cli("extract", "--image-root", "imgs", "--list", "list.txt", "--allow-random-init",
                        *[part for item in options.items() for part in item])
    assert code == 2 and err.count("\n") == 1 and expected in err, err
    assert not (tmp_path / "f.mat").exists()


@pytest.mark.parametrize("lines, expected", [
    (b"a.png 1\nb.png \xff\n", "list.txt: expected UTF-8 text, found byte 0xff at offset 14"),
    ("a.png 1\nb.png \u00b2\n".encode(), "list.txt: line 2: expected '<relative path> <1-based label>'"),
    (b"a.png 1\nb\x00.png 1\n", "list.txt: line 2: image list entry 'b\\x00.png': expected a path, found a NUL"),
    (b"a.png 1\n\nb.png 2\n./a.png 1\n",
     "list.txt: line 4: image './a.png': expected each image listed once, found it also at line 1"),
    (b"a.png 1\n# comment\nlost.png 2\n",
     "list.txt: line 3: image 'lost.png': expected a file under imgs, found none (1 listed image(s) missing)"),
])
def test_list_file_errors_name_the_file_and_line(run_cli, tmp_path, monkeypatch, lines, expected):
    for name in ("a.png", "b.png"):
        _png(tmp_path / "imgs" / name)
    (tmp_path / "list.txt").write_bytes(lines)
    monkeypatch.chdir(tmp_path)
    code, err = run_cli("extract", "--image-root", "imgs", "--list", "list.txt", "--out", "f.mat",
                        "--allow-random-init", "--image-size", "32")
    assert code == 2 and err.count("\n") == 1 and expected in err, err
