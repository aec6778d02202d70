"""finetune: trains on trainval_loc's images only (proved by removing every other image), writes
weights extract loads, resumes after an interruption, is deterministic on CPU, refuses bad input.
The val protocol's selection backbone (`--train-part selection`) trains on the validation split's
training part only (proved likewise), and the val protocol's selection run reads its features.

A tiny image set from the demo: 6 classes, 4 seen (3 trainval + 2 test_seen images each) and 2
unseen (5 images each), a seeded random resnet50 at 32 px, so that one fine-tuning takes a second.
"""
from __future__ import annotations

import shutil
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import torch
import yaml
from conftest import XLSA17_ROOT, require_shared

from tfvaegan import protocols
from tfvaegan.config import Config
from tfvaegan.data.matfile import read_mat, write_mat
from tfvaegan.data.validate import image_split
from tfvaegan.errors import DataError
from tfvaegan.features import finetune
from tfvaegan.features.finetune import Recipe

FAST = ["--allow-random-init", "--backbone", "resnet50", "--image-size", "32", "--batch-size", "4",
        "--epochs", "2", "--lr", "0.01", "--device", "cpu", "--seed", "3"]


def write_image_set(root: Path, source: Path, **locations) -> dict[str, Path]:
    """Images of six demo classes under root/images, image_list.txt and att_splits.mat (1-based locs;
    `locations` replaces some, e.g. trainval=[1, 2])."""
    lines = (source / "image_list.txt").read_text().splitlines()
    by_class: dict[int, list[str]] = {}
    for line in lines:
        path, label = line.rsplit(" ", 1)
        by_class.setdefault(int(label), []).append(path)
    rows, locs = [], {"trainval": [], "test_seen": [], "test_unseen": []}
    for label in range(1, 7):
        for k, path in enumerate(by_class[label][:5]):
            rows.append((path, label))
            kind = "test_unseen" if label > 4 else ("trainval" if k < 3 else "test_seen")
            locs[kind].append(len(rows))
            (root / path).parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(source / path, root / path)
    locs.update(locations)
    (root / "image_list.txt").write_text("".join(f"{path} {label}\n" for path, label in rows))
    write_mat(root / "att_splits.mat", {f"{k}_loc": np.array(v, dtype=np.float64).reshape(-1, 1)
                                        for k, v in locs.items()})
    return {"root": root, "list": root / "image_list.txt", "split": root / "att_splits.mat",
            **{k: [rows[i - 1][0] for i in v if 0 < i <= len(rows)] for k, v in locs.items()}}


@pytest.fixture
def image_set(tmp_path, small_demo):
    return write_image_set(tmp_path / "set", small_demo)


def finetune_cli(run_cli, files, out, *extra):
    return run_cli("finetune", "--image-root", files["root"], "--list", files["list"], "--split-file",
                   files["split"], "--out", out, *FAST, *extra)


def load_weights(path: Path) -> dict[str, torch.Tensor]:
    return torch.load(path, map_location="cpu", weights_only=True)


def test_test_images_absent_or_corrupt_give_the_identical_weights_file(run_cli, image_set, tmp_path, small_demo):
    code, err = finetune_cli(run_cli, image_set, tmp_path / "all.pt")
    assert code == 0, err
    assert "12 training images of 4 seen classes" in err and "18 other listed images are never opened" in err
    assert err.count("finetune: epoch ") == 2  # progress per epoch
    stripped = write_image_set(tmp_path / "stripped", small_demo)
    for path in stripped["test_seen"] + stripped["test_unseen"]:
        (stripped["root"] / path).unlink()  # every test image gone: only trainval_loc's remain
    assert finetune_cli(run_cli, stripped, tmp_path / "absent.pt")[0] == 0
    for path in stripped["test_seen"] + stripped["test_unseen"]:
        (stripped["root"] / path).write_bytes(b"not an image")  # present but unreadable
    assert finetune_cli(run_cli, stripped, tmp_path / "corrupt.pt")[0] == 0
    reference = (tmp_path / "all.pt").read_bytes()
    assert (tmp_path / "absent.pt").read_bytes() == reference
    assert (tmp_path / "corrupt.pt").read_bytes() == reference
    # and it did train: the weights moved away from the seeded start, and another seed trains otherwise
    from tfvaegan.features.extract import build_backbone

    start = build_backbone("resnet50", None, seed=3, allow_random_init=True).state_dict()
    trained = load_weights(tmp_path / "all.pt")
    assert set(trained) == set(start) and not any(k.startswith("fc.") for k in trained)
    assert not torch.equal(trained["layer4.2.conv3.weight"], start["layer4.2.conv3.weight"])
    assert finetune_cli(run_cli, image_set, tmp_path / "seed4.pt", "--seed", "4")[0] == 0
    assert not torch.equal(load_weights(tmp_path / "seed4.pt")["conv1.weight"], trained["conv1.weight"])


def test_only_trainval_images_are_opened(image_set, tmp_path, monkeypatch):
    from PIL import Image

    opened = []
    real_open = Image.open
    monkeypatch.setattr(Image, "open", lambda path, *a, **k: opened.append(Path(path)) or real_open(path, *a, **k))
    finetune.finetune_stage(image_set["root"], image_set["list"], image_set["split"], tmp_path / "w.pt",
                            allow_random_init=True, backbone="resnet50", device="cpu",
                            recipe=Recipe(epochs=1, batch_size=4, image_size=32))
    allowed = {(image_set["root"] / p).resolve() for p in image_set["trainval"]}
    assert opened and {p.resolve() for p in opened} == allowed


def test_extract_loads_the_fine_tuned_weights(run_cli, image_set, tmp_path):
    assert finetune_cli(run_cli, image_set, tmp_path / "w.pt")[0] == 0
    common = ["extract", "--image-root", image_set["root"], "--list", image_set["list"], "--backbone", "resnet50",
              "--image-size", "32", "--seed", "3"]
    code, err = run_cli(*common, "--weights", tmp_path / "w.pt", "--out", tmp_path / "res101_finetuned.mat")
    assert code == 0, err
    assert run_cli(*common, "--allow-random-init", "--out", tmp_path / "res101.mat")[0] == 0
    tuned, plain = read_mat(tmp_path / "res101_finetuned.mat"), read_mat(tmp_path / "res101.mat")
    assert tuned["features"].shape == plain["features"].shape == (2048, 30)
    assert tuned["image_files"] == plain["image_files"]  # same rows, same order
    assert not np.allclose(tuned["features"], plain["features"])


def test_interrupted_run_resumes_to_the_same_weights(image_set, tmp_path, monkeypatch, capsys):
    def stage(out, **recipe):
        return finetune.finetune_stage(image_set["root"], image_set["list"], image_set["split"], out,
                                       allow_random_init=True, backbone="resnet50", device="cpu", seed=1,
                                       recipe=Recipe(batch_size=4, image_size=32, lr=0.01, **recipe))

    stage(tmp_path / "whole.pt", epochs=3)
    real_epoch, calls = finetune._epoch, []

    def interrupted(*args, **kwargs):
        calls.append(args[5])  # the 0-based epoch
        if args[5] == 2:
            raise KeyboardInterrupt
        return real_epoch(*args, **kwargs)

    monkeypatch.setattr(finetune, "_epoch", interrupted)
    with pytest.raises(KeyboardInterrupt):
        stage(tmp_path / "resumed.pt", epochs=3)
    checkpoint = tmp_path / "resumed.pt.ckpt"
    assert checkpoint.is_file() and not (tmp_path / "resumed.pt").exists()  # nothing partial as the output
    monkeypatch.setattr(finetune, "_epoch", real_epoch)
    capsys.readouterr()
    stage(tmp_path / "resumed.pt", epochs=3)
    assert "resuming from" in capsys.readouterr().err and calls == [0, 1, 2]
    assert (tmp_path / "resumed.pt").read_bytes() == (tmp_path / "whole.pt").read_bytes()
    assert not checkpoint.exists()


def test_checkpoint_of_another_recipe_or_a_damaged_one_is_ignored(image_set, tmp_path, capsys):
    out = tmp_path / "w.pt"
    checkpoint = tmp_path / "w.pt.ckpt"

    def stage(lr):
        finetune.finetune_stage(image_set["root"], image_set["list"], image_set["split"], out,
                                allow_random_init=True, backbone="resnet50", device="cpu",
                                recipe=Recipe(epochs=1, batch_size=4, image_size=32, lr=lr))

    stage(0.01)
    reference = out.read_bytes()
    other = finetune._fingerprint(Recipe(lr=0.5), "resnet50", 0, None, [], np.array([]))
    torch.save({"format": finetune.CHECKPOINT_FORMAT, "fingerprint": other, "epochs_done": 1}, checkpoint)
    capsys.readouterr()
    stage(0.01)
    assert "belongs to other images, labels, weights or recipe" in capsys.readouterr().err
    assert out.read_bytes() == reference
    checkpoint.write_bytes(b"truncated")
    stage(0.01)
    assert "not a usable checkpoint" in capsys.readouterr().err and out.read_bytes() == reference


def test_same_seed_same_weights_on_cpu(image_set, tmp_path):
    for name in ("a.pt", "b.pt"):
        finetune.finetune_stage(image_set["root"], image_set["list"], image_set["split"], tmp_path / name,
                                allow_random_init=True, backbone="resnet50", device="cpu", seed=5,
                                recipe=Recipe(epochs=1, batch_size=5, image_size=32, amp=True))  # amp: CUDA only
    assert (tmp_path / "a.pt").read_bytes() == (tmp_path / "b.pt").read_bytes()


# --------------------------------------------------------------------------- bad input
def _corrupt_first_training_image(files):
    (files["root"] / files["trainval"][0]).write_bytes(b"\x89PNG\r\n\x1a\n truncated")


def _remove_first_training_image(files):
    (files["root"] / files["trainval"][0]).unlink()


@pytest.mark.parametrize("spoil, extra, message", [
    (_remove_first_training_image, [], "image_list.txt: line 1: image 'images/"),
    (_corrupt_first_training_image, [], "expected an image PIL can decode"),
    (lambda f: f["weights"].write_text("not a state dict"), ["--weights"], "expected a state dict"),
    (lambda f: torch.save([1, 2], f["weights"]), ["--weights"], "expected a state dict (mapping of parameter names"),
    (lambda f: None, ["--image-size", "8"], "--image-size: expected an integer >= 16, found 8"),
    (lambda f: None, ["--batch-size", "1"], "--batch-size: expected an integer >= 2 (BatchNorm"),
    (lambda f: None, ["--epochs", "0"], "--epochs: expected an integer >= 1, found 0"),
    (lambda f: None, ["--lr", "-1"], "--lr: expected a number in (0, inf), found -1.0"),
    (lambda f: None, ["--momentum", "1"], "--momentum: expected a number in [0, 1), found 1.0"),
    (lambda f: None, ["--crop-scale", "0"], "--crop-scale: expected a number in (0, 1], found 0.0"),
    (lambda f: None, ["--device", "tpu"], "--device: expected cpu, cuda or cuda:N, found 'tpu'"),
])
def test_bad_input_is_one_clear_error_and_writes_nothing(run_cli, image_set, tmp_path, spoil, extra, message):
    files = {**image_set, "weights": tmp_path / "start.pth"}
    spoil(files)
    args = [*extra, files["weights"]] if extra == ["--weights"] else extra
    out = tmp_path / "out" / "w.pt"
    code, err = finetune_cli(run_cli, files, out, *args)
    assert code == 2 and message in err, err
    assert err.strip().count("\n") == 0 or all(line.startswith("finetune: ") for line in err.splitlines()[:-1])
    assert err.splitlines()[-1].startswith("error: ") and "Traceback" not in err
    assert not out.exists() and not out.with_name("w.pt.ckpt").exists()


UNSEEN_BUT_26 = [21, 22, 23, 24, 25, 27, 28, 29, 30]


@pytest.mark.parametrize("locations, message", [
    ({"trainval": []}, "key 'trainval_loc': expected at least one row index, found an empty set"),
    ({"trainval": [1, 2, 3], "test_seen": [4, 5]},
     "expected images of at least two seen classes to fine-tune a classifier on, found 1"),
    ({"trainval": [1, 2, 6, 7, 11, 12, 16, 17, 26], "test_unseen": UNSEEN_BUT_26},
     "keys 'test_unseen_loc' and 'trainval_loc': expected unseen classes absent from the training labels"),
    ({"trainval": [1, 2, 26]}, "keys 'trainval_loc' and 'test_unseen_loc': expected disjoint sets"),
    ({"trainval": [1, 2, 31]}, ("key 'trainval_loc': expected row indices in [1, 30] (the number of samples in "
                                "image_list.txt)")),
    ({"trainval": [1, 3, 3]}, "key 'trainval_loc': expected distinct row indices"),
    ({"trainval": [0, 1]}, "key 'trainval_loc': expected 1-based row indices >= 1"),
])
def test_bad_split_is_one_clear_error_before_any_image(run_cli, tmp_path, small_demo, locations, message):
    files = write_image_set(tmp_path / "set", small_demo, **locations)
    shutil.rmtree(files["root"] / "images")  # no image is needed to find a bad split
    out = tmp_path / "w.pt"
    code, err = finetune_cli(run_cli, files, out)
    assert code == 2 and message in err, err
    assert not out.exists()


def test_trainval_overlapping_test_seen_is_refused(tmp_path, small_demo):
    files = write_image_set(tmp_path / "set", small_demo, trainval=[1, 2, 4, 6])  # row 4 is test_seen
    labels = np.repeat(np.arange(1, 7), 5)
    with pytest.raises(DataError, match="keys 'trainval_loc' and 'test_seen_loc': expected disjoint sets"):
        image_split(files["split"], labels, files["list"])


def test_batches_keep_every_image_and_never_a_single_one():
    order = np.arange(9)
    assert [len(b) for b in finetune._batches(order, 4)] == [4, 5]
    assert [len(b) for b in finetune._batches(order, 3)] == [3, 3, 3]
    assert np.array_equal(np.concatenate(finetune._batches(order, 4)), order)


def test_step_learning_rate():
    assert Recipe(lr=0.01, lr_step=7, lr_gamma=0.1).lr_at(6) == pytest.approx(0.01)
    assert Recipe(lr=0.01, lr_step=7, lr_gamma=0.1).lr_at(7) == pytest.approx(0.001)
    assert Recipe(lr=0.01).lr_at(100) == 0.01  # lr_step 0: constant


def test_cli_has_the_issue_flags_with_the_documented_defaults():
    from tfvaegan.cli import build_parser

    parser = build_parser()
    args = parser.parse_args(["finetune", "--image-root", "R", "--list", "L", "--split-file", "S", "--out", "W"])
    assert (args.epochs, args.lr, args.batch_size, args.image_size) == (150, 1e-3, 16, 448)
    assert (args.backbone, args.device, args.seed, args.strip_prefix, args.weights) == ("resnet101", "auto", 0, "",
                                                                                       None)
    assert (args.momentum, args.weight_decay, args.lr_step, args.lr_gamma, args.crop_scale, args.flip, args.amp) == (
        0.9, 0.0, 0, 0.1, 0.08, True, False)
    assert parser.parse_args(["finetune", "--image-root", "R", "--list", "L", "--split-file", "S", "--out", "W",
                              "--no-flip", "--amp", "--allow-random-init"]).flip is False


@pytest.mark.parametrize("dataset, trainval", [("CUB", 7057), ("AWA2", 23527), ("SUN", 10320), ("FLO", 5631)])
def test_real_splits_name_their_trainval_images(tmp_path, dataset, trainval):
    """xlsa17's own split files with their per-image labels: the training images are trainval_loc's, of
    the seen classes only (the check finetune runs before it opens an image)."""
    folder = XLSA17_ROOT / dataset
    require_shared(folder / "att_splits.mat")
    labels = np.load(folder / "labels.npy").astype(np.int64)
    image_list = tmp_path / "image_list.txt"  # stands for res101.mat's row order in messages only
    locs = image_split(folder / "att_splits.mat", labels, image_list)
    assert locs["trainval"].size == trainval
    seen, unseen = np.unique(labels[locs["trainval"]]), np.unique(labels[locs["test_unseen"]])
    assert np.intersect1d(seen, unseen).size == 0


# --------------------------------------------------------------------------- the val protocol's selection backbone
SELECTION = ["--train-part", "selection", "--val-seed", "7", "--epochs", "1"]
LABELS = np.repeat(np.arange(6), 5)  # write_image_set's rows: six classes of five images, in order


def selection_split(files):
    """The validation split the val protocol draws with seed 7 on FILES (the rule protocols.py owns)."""
    locs = image_split(files["split"], LABELS + 1, files["list"])
    raw = SimpleNamespace(labels=LABELS, locs=locs, split_file=files["split"])
    return protocols.validation_split(raw, Config(), 7), locs


def listed(files, rows) -> list[str]:
    lines = files["list"].read_text().splitlines()
    return [lines[i].rsplit(" ", 1)[0] for i in rows]


@pytest.mark.parametrize("locations", [{}, {"val": [1, 2, 3, 4]}], ids=["generated", "val_loc"])
def test_selection_backbone_is_identical_without_validation_unseen_and_test_images(run_cli, tmp_path, small_demo,
                                                                                    locations):
    """Issue 22, item 3: the selection backbone never sees a validation-unseen (or test) image. Without
    val_loc the validation class is drawn by the seed; with one (xlsa17-like: class 1's trainval images and a
    test_seen one) it is val_loc's."""
    files = write_image_set(tmp_path / "all", small_demo, **locations)
    split, locs = selection_split(files)
    assert split.val_unseen.size == 3 and split.val_seen.size == 3 and split.train.size == 6
    code, err = finetune_cli(run_cli, files, tmp_path / "all.pt", *SELECTION)
    assert code == 0, err
    assert "6 training images of 3 seen classes (the val protocol's selection part of trainval_loc of" in err
    assert "24 other listed images are never opened" in err
    stripped = write_image_set(tmp_path / "stripped", small_demo, **locations)
    gone = listed(stripped, np.concatenate([split.val_unseen, locs["test_seen"], locs["test_unseen"]]))
    for path in gone:
        (stripped["root"] / path).unlink()
    code, err = finetune_cli(run_cli, stripped, tmp_path / "stripped.pt", *SELECTION)
    assert code == 0, err
    assert (tmp_path / "stripped.pt").read_bytes() == (tmp_path / "all.pt").read_bytes()
    # the trainval backbone needs the validation-unseen images the selection backbone did without
    code, err = finetune_cli(run_cli, stripped, tmp_path / "trainval.pt", "--epochs", "1")
    assert code == 2 and "3 listed image(s) missing" in err and any(path in err for path in gone), err


def test_selection_backbone_opens_exactly_the_selection_runs_training_images(run_cli, image_set, tmp_path,
                                                                             monkeypatch):
    from PIL import Image

    opened = []
    real_open = Image.open
    monkeypatch.setattr(Image, "open", lambda path, *a, **k: opened.append(Path(path)) or real_open(path, *a, **k))
    assert finetune_cli(run_cli, image_set, tmp_path / "w.pt", *SELECTION)[0] == 0
    split, _ = selection_split(image_set)
    assert {p.resolve() for p in opened} == {(image_set["root"] / p).resolve() for p in listed(image_set, split.train)}
    # another seed draws another split, hence another backbone
    assert finetune_cli(run_cli, image_set, tmp_path / "w8.pt", *SELECTION, "--val-seed", "8")[0] == 0
    assert (tmp_path / "w8.pt").read_bytes() != (tmp_path / "w.pt").read_bytes()


@pytest.mark.parametrize("extra, message", [
    (["--train-part", "selection"], "--train-part selection: expected --val-seed"),
    (["--val-seed", "1"], "--val-seed: only with --train-part selection"),
    (["--val-unseen-fraction", "0.5"], "--val-unseen-fraction: only with --train-part selection"),
    (["--train-part", "selection", "--val-seed", "1", "--val-seen-fraction", "1.5"],
     "key 'val_seen_fraction': expected in (0, 1), found 1.5"),
])
def test_bad_selection_options_are_one_clear_error(run_cli, image_set, tmp_path, extra, message):
    code, err = finetune_cli(run_cli, image_set, tmp_path / "w.pt", *extra)
    assert code == 2 and message in err, err
    assert not (tmp_path / "w.pt").exists()


@pytest.fixture
def toy_with_selection_features(tmp_path):
    """The toy benchmark, with a second feature file beside res101.mat: the same images, labels and split,
    other features (standing for the selection backbone's)."""
    from toy import TINY, write_toy

    root = tmp_path / "data"
    write_toy(root)
    write_toy(root, image_embedding="res101_selection_seed7", noise=0.6)  # same draws: the same split file
    config = tmp_path / "tiny.yaml"
    config.write_text(yaml.safe_dump({**TINY, "nepoch": 1, "classifier_nepoch": 2}))
    return root, config, root / "TOY" / "res101_selection_seed7.mat"


def test_the_val_protocol_selects_on_the_selection_features(toy_with_selection_features, tmp_path, monkeypatch):
    """The selection run trains and validates on the selection features, the final run on the run's own;
    model.pt's selection record (metrics.json's `selection`) says which file the selection read."""
    from tfvaegan.cli import main
    from tfvaegan.data.load import Benchmark

    root, config, selection_file = toy_with_selection_features
    made, trained = [], []
    real_split, real_train = Benchmark.split, protocols.train

    def split(self, *args, **kwargs):
        data = real_split(self, *args, **kwargs)
        made.append((Path(self.raw.feature_file).name, data))
        return data

    def train(cfg, data, *args, **kwargs):
        trained.append((data.train_feature, kwargs.get("evaluate") is not None))
        return real_train(cfg, data, *args, **kwargs)

    monkeypatch.setattr(Benchmark, "split", split)
    monkeypatch.setattr(protocols, "train", train)
    model = tmp_path / "run" / "model.pt"
    assert main(["train", "--data-root", str(root), "--dataset", "TOY", "--config", str(config), "--set",
                 "protocol=val", "--model", str(model), "--log", str(tmp_path / "run" / "train_log.csv"),
                 "--selection-features", str(selection_file)]) == 0
    assert [name for name, _ in made] == ["res101_selection_seed7.mat", "res101.mat"]  # selection, then trainval
    (selection_features, selecting), (final_features, final) = trained
    assert selecting and not final
    assert torch.equal(selection_features, made[0][1].train_feature)
    assert torch.equal(final_features, made[1][1].train_feature)
    assert made[0][1].info["feature_file"] == str(selection_file)
    selection = torch.load(model, weights_only=True)["selection"]
    assert selection["features"] == {"file": str(selection_file), "same_as_final": False}
    assert any(note.startswith(f"the selection run read {selection_file}") for note in selection["validation"]["notes"])


@pytest.mark.parametrize("where, protocol, message", [
    ("elsewhere", "val", "--selection-features: expected another .mat feature file beside"),
    ("own", "val", "--selection-features: expected another .mat feature file beside"),
    ("beside", "paper", "--selection-features: the paper protocol has no selection run"),
])
def test_selection_features_are_refused_where_they_cannot_be_the_runs(toy_with_selection_features, tmp_path, run_cli,
                                                                      where, protocol, message):
    root, config, selection_file = toy_with_selection_features
    path = {"elsewhere": tmp_path / "res101_selection_seed7.mat", "own": root / "TOY" / "res101.mat",
            "beside": selection_file}[where]
    if where == "elsewhere":
        shutil.copyfile(selection_file, path)
    code, err = run_cli("train", "--data-root", root, "--dataset", "TOY", "--config", config, "--set",
                        f"protocol={protocol}", "--model", tmp_path / "m.pt", "--log", tmp_path / "log.csv",
                        "--selection-features", path)
    assert code == 2 and message in err, err
    assert not (tmp_path / "m.pt").exists()


def test_a_search_trial_selects_on_the_selection_features(toy_with_selection_features, tmp_path, run_cli):
    """A trial is the val protocol's selection run: on a fine-tuned benchmark it reads the selection features
    too, and its selection cache (the search's final run reuses it) says so."""
    import json

    root, config, selection_file = toy_with_selection_features
    out = tmp_path / "trial" / "trial.json"
    code, err = run_cli("search", "trial", "--data-root", root, "--dataset", "TOY", "--config", config,
                        "--trial", "lr=0.001", "--out", out, "--selection-features", selection_file)
    assert code == 0, err
    assert f"the selection run reads {selection_file}" in err
    cached = json.loads(out.read_text())["selection_cache"]["selection"]
    assert cached["features"] == {"file": str(selection_file), "same_as_final": False}
