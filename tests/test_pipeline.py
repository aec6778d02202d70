"""The stages and the one-shot `run` command on a small generated dataset, under both protocols."""
from __future__ import annotations

import csv
import json
import pickle

import pytest
import torch
import yaml
from toy import TINY, write_action_layout, write_toy

from tfvaegan.artifacts import LOG_COLUMNS, PER_CLASS_COLUMNS
from tfvaegan.artifacts import load_artifact as load_checkpoint
from tfvaegan.cli import main
from tfvaegan.errors import UserError
from tfvaegan.method.metrics import class_mean

HEADLINE = ("zsl_acc", "gzsl_seen", "gzsl_unseen", "gzsl_h")
PER_CLASS_SPLITS = {"zsl_unseen": "zsl_acc", "gzsl_unseen": "gzsl_unseen", "gzsl_seen": "gzsl_seen"}


def per_class_means(folder) -> dict[str, float]:
    """per_class.csv beside metrics.json: each split's mean accuracy, taken as every accuracy is (class_mean)."""
    with open(folder / "per_class.csv", newline="") as handle:
        rows = list(csv.DictReader(handle))
    assert tuple(rows[0]) == PER_CLASS_COLUMNS
    return {split: class_mean(torch.tensor([float(r["accuracy"]) for r in rows if r["split"] == split],
                                           dtype=torch.float64))
            for split in dict.fromkeys(r["split"] for r in rows)}


@pytest.fixture(scope="module")
def paper_run(toy_root, tmp_path_factory):
    root, config = toy_root
    out = tmp_path_factory.mktemp("paper")
    assert main(["run", "--data-root", str(root), "--dataset", "TOY", "--config", str(config),
                 "--set", "nepoch=5", "--out", str(out), "--benchmark", "Toy"]) == 0
    return out


@pytest.mark.slow
def test_run_writes_all_outputs_with_accuracy_far_above_chance(paper_run):
    metrics = json.loads((paper_run / "metrics.json").read_text())
    for key in HEADLINE:
        assert 0.0 <= metrics[key] <= 1.0, key
    for key in ("best_epoch_zsl", "best_epoch_gzsl", "seconds_per_epoch", "seed", "config", "epochs_trained"):
        assert key in metrics, key
    assert metrics["benchmark"] == "Toy" and metrics["protocol"] == "paper" and metrics["seed"] == TINY["manualSeed"]
    assert metrics["config"]["nepoch"] == 5 and metrics["config"]["attSize"] == 8  # resolved from the data
    chance = 1 / 6  # six unseen classes
    assert metrics["zsl_acc"] >= 2.5 * chance
    assert metrics["gzsl_h"] > chance
    # the headline numbers are the best epochs of the per-epoch test evaluation (paper protocol)
    with open(paper_run / "train_log.csv") as handle:
        rows = list(csv.DictReader(handle))
    assert tuple(rows[0]) == LOG_COLUMNS and len(rows) == 5
    assert {row["eval_split"] for row in rows} == {"test"}
    assert max(float(row["zsl_acc"]) for row in rows) == pytest.approx(metrics["zsl_acc"])
    assert max(float(row["gzsl_h"]) for row in rows) == pytest.approx(metrics["gzsl_h"])
    # the final model is evaluated too, labelled as such
    assert 0.0 <= metrics["final_model"]["zsl_acc"] <= 1.0
    assert not list(paper_run.glob("*.ckpt")), "resumable checkpoints are removed after a finished run"


def test_per_class_csv_and_features_figure_beside_metrics(paper_run):
    """per_class.csv: each split's mean accuracy is the final evaluation's number, to the float (paper protocol:
    final_model; the headline is the training run's best test epochs); the images add up to the test sets."""
    metrics = json.loads((paper_run / "metrics.json").read_text())
    means = per_class_means(paper_run)
    assert list(means) == list(PER_CLASS_SPLITS)
    for split, key in PER_CLASS_SPLITS.items():
        assert means[split] == metrics["final_model"][key], split
    with open(paper_run / "per_class.csv", newline="") as handle:
        rows = list(csv.DictReader(handle))
    data = metrics["data"]
    for split, size, n_classes in (("zsl_unseen", "n_test_unseen", "n_unseen_classes"),
                                   ("gzsl_unseen", "n_test_unseen", "n_unseen_classes"),
                                   ("gzsl_seen", "n_test_seen", None)):
        part = [r for r in rows if r["split"] == split]
        assert sum(int(r["n_images"]) for r in part) == data[size]
        assert n_classes is None or len(part) == data[n_classes]
        for row in part:
            assert float(row["accuracy"]) == int(row["correct"]) / int(row["n_images"])
            other = {"zsl_unseen": None, "gzsl_unseen": "to_seen", "gzsl_seen": "to_unseen"}[split]
            for column in ("to_seen", "to_unseen"):
                assert (row[column] != "") == (column == other), (split, column)
            if other:  # right, gone to the other group, or wrong within its own group
                assert 0 <= int(row[other]) <= int(row["n_images"]) - int(row["correct"])
    assert rows[0]["class_name"] == "019.class_19"  # the split file's allclasses_names (toy: classes 18-23 unseen)
    png = (paper_run / "features_2d.png").read_bytes()
    assert png[:8] == b"\x89PNG\r\n\x1a\n" and len(png) > 10_000
    assert any("per_class.csv" in note for note in metrics["notes"])


def test_model_and_synthetic_files_load_weights_only(paper_run):
    model = torch.load(paper_run / "model.pt", weights_only=True)
    assert set(model["state"]) == {"generator", "decoder", "feedback"}
    synthetic = load_checkpoint(paper_run / "synthetic.pt", "tfvaegan-synthetic/1")
    assert synthetic["features"].shape == (6 * TINY["syn_num"], 64)
    assert torch.equal(synthetic["labels"].unique(), synthetic["classes"])


@pytest.mark.slow
def test_stages_reproduce_run(paper_run, toy_root, tmp_path):
    """synthesize + classify from the saved model give the metrics `run` wrote (same seed)."""
    root, _ = toy_root
    assert main(["synthesize", "--model", str(paper_run / "model.pt"), "--out", str(tmp_path / "s.pt")]) == 0
    assert torch.equal(torch.load(tmp_path / "s.pt", weights_only=True)["features"],
                       torch.load(paper_run / "synthetic.pt", weights_only=True)["features"])
    assert main(["classify", "--model", str(paper_run / "model.pt"), "--synthetic", str(tmp_path / "s.pt"),
                 "--data-root", str(root), "--out", str(tmp_path / "m.json"), "--benchmark", "Toy"]) == 0
    again, first = json.loads((tmp_path / "m.json").read_text()), json.loads((paper_run / "metrics.json").read_text())
    assert again["final_model"] == first["final_model"]
    # per_class.csv beside --out, class names read with the data (run hands them over)
    assert (tmp_path / "per_class.csv").read_text() == (paper_run / "per_class.csv").read_text()
    assert (tmp_path / "features_2d.png").read_bytes() == (paper_run / "features_2d.png").read_bytes()


@pytest.mark.slow
def test_val_protocol_selects_on_validation_only(toy_root, tmp_path):
    root, config = toy_root
    assert main(["run", "--data-root", str(root), "--dataset", "TOY", "--config", str(config),
                 "--set", "nepoch=3", "--set", "protocol=val", "--out", str(tmp_path)]) == 0
    metrics = json.loads((tmp_path / "metrics.json").read_text())
    selection = metrics["selection"]
    assert metrics["protocol"] == "val" and selection["selected_on"] == "validation"
    assert 1 <= selection["generator_epochs"] <= 3
    assert metrics["epochs_trained"] == selection["generator_epochs"]
    with open(tmp_path / "train_log.csv") as handle:
        rows = list(csv.DictReader(handle))
    evaluated = [row for row in rows if row["zsl_acc"]]
    assert evaluated and {row["eval_split"] for row in evaluated} == {"val"}, "no test evaluation during training"
    assert [row["eval_split"] for row in rows].count("trainval") == selection["generator_epochs"]
    # the reported numbers are the single test evaluation of the retrained model
    for key in HEADLINE:
        assert metrics[key] == metrics["final_model"][key]
    # per_class.csv: its means are the headline numbers, to the float
    for split, value in per_class_means(tmp_path).items():
        assert value == metrics[PER_CLASS_SPLITS[split]], split
    # the final GZSL classifier trains as many steps as its chosen epochs took on the validation split; the
    # ZSL one its configured length (method/selection.py TRANSFER, chosen on development data)
    from tfvaegan.method.selection import final_classifier_epochs

    steps_per_epoch = {k: metrics["final_model"][f"{k}_classifier_steps_per_epoch"] for k in ("zsl", "gzsl")}
    chosen = final_classifier_epochs(selection, steps_per_epoch)
    assert selection["zsl_classifier_steps"] == selection["zsl_classifier_epochs"] * [
        row for row in json.loads((tmp_path / "model.selection.json").read_text())["history"]
        if row["epoch"] == selection["generator_epochs"]][0]["zsl_classifier_steps_per_epoch"]
    configured = metrics["config"]["classifier_nepoch"]
    assert chosen["zsl"] is None  # TRANSFER["zsl"] == "full": the configured length
    assert metrics["final_model"]["zsl_classifier_epoch"] == configured
    assert metrics["final_model"]["gzsl_classifier_epoch"] == chosen["gzsl"]
    assert any("as many steps" in note for note in metrics["notes"])


def test_failed_run_leaves_no_metrics(toy_root, tmp_path, capsys):
    root, config = toy_root
    (tmp_path / "metrics.json").write_text("{}")  # from an earlier run
    status = main(["run", "--data-root", str(root), "--dataset", "MISSING", "--config", str(config),
                   "--out", str(tmp_path)])
    assert status == 2
    assert not (tmp_path / "metrics.json").exists()
    assert "MISSING" in capsys.readouterr().err


def test_bad_override_is_one_clear_error(toy_root, tmp_path, capsys):
    root, config = toy_root
    assert main(["run", "--data-root", str(root), "--config", str(config), "--set", "syn_num=0",
                 "--out", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert "syn_num" in err and "positive" in err and "0" in err
    assert not (tmp_path / "metrics.json").exists()


def test_checkpoint_that_is_not_a_plain_dict_is_refused(tmp_path):
    class Payload:
        def __reduce__(self):
            return (print, ("this must never run",))

    path = tmp_path / "model.pt"
    with open(path, "wb") as handle:
        pickle.dump({"format": "tfvaegan-model/1", "x": Payload()}, handle)
    with pytest.raises(UserError, match="weights_only"):
        load_checkpoint(path)


@pytest.mark.slow
def test_action_layout_with_od_gzsl(tmp_path):
    root = tmp_path / "data"
    write_action_layout(root, name="toy_i3d", n_splits=1)
    cfg = {**TINY, "nepoch": 2, "image_embedding": "i3d", "image_embedding_path": "toy_i3d",
           "gzsl_od": True, "bce_att": True, "classifier_nepoch": 3}
    (tmp_path / "c.yaml").write_text(yaml.safe_dump(cfg))
    assert main(["run", "--data-root", str(root), "--dataset", "toy_i3d/split_1", "--config", str(tmp_path / "c.yaml"),
                 "--set", "od_entropy_threshold=null", "--out", str(tmp_path / "out")]) == 0
    metrics = json.loads((tmp_path / "out" / "metrics.json").read_text())
    assert 0.0 <= metrics["gzsl_h"] <= 1.0 and "od_threshold" in metrics["final_model"]
    # OD-GZSL's per-class rows: right when routed to its own classifier and right; to_seen: routed to the seen one
    for split, value in per_class_means(tmp_path / "out").items():
        assert value == metrics["final_model"][PER_CLASS_SPLITS[split]], split


# --------------------------------------------------------------------------- damaged or mismatched inputs
def _one_error_line(capsys, *words):
    """The stage failed with exactly one `error:` line (no traceback) that names all `words`."""
    err = capsys.readouterr().err
    assert "Traceback" not in err, err
    errors = [line for line in err.splitlines() if line.startswith("error:")]
    assert len(errors) == 1, err
    for word in words:
        assert word in errors[0], (word, errors[0])
    return errors[0]


@pytest.fixture(scope="module")
def other_models(toy_root, tmp_path_factory):
    """Two more trained models: same dataset and another seed; another dataset of another feature width."""
    root, config = toy_root
    write_toy(root, dataset="TOY32", res_size=32, seed=1)
    outs = {}
    for name, dataset, seed in (("same_dataset", "TOY", 8), ("other_dataset", "TOY32", 7)):
        outs[name] = tmp_path_factory.mktemp(name)
        assert main(["run", "--data-root", str(root), "--dataset", dataset, "--config", str(config),
                     "--set", "nepoch=1", "--set", f"manualSeed={seed}", "--out", str(outs[name])]) == 0
    return outs


@pytest.mark.parametrize("which", ["same_dataset", "other_dataset"])
def test_classify_refuses_synthetic_features_of_another_model(paper_run, other_models, which, tmp_path, capsys):
    model, synthetic = paper_run / "model.pt", other_models[which] / "synthetic.pt"
    capsys.readouterr()
    assert main(["classify", "--model", str(model), "--synthetic", str(synthetic),
                 "--out", str(tmp_path / "m.json")]) == 2
    _one_error_line(capsys, str(model), str(synthetic), "model_id", "another model")
    assert not (tmp_path / "m.json").exists()
    # its own model accepts it
    assert main(["classify", "--model", str(other_models[which] / "model.pt"), "--synthetic", str(synthetic),
                 "--out", str(tmp_path / "m.json")]) == 0


def _drop(key):
    return lambda s: s.pop(key)


def _set(key, value):
    return lambda s: s.update({key: value(s)})


SYNTHETIC_DAMAGE = {
    "no classes": (_drop("classes"), ("'classes' missing",)),
    "no labels": (_drop("labels"), ("'labels' missing",)),
    "no model_id (an older file)": (_drop("model_id"), ("'model_id' missing", "synthesize it again")),
    "other feature width": (_set("features", lambda s: s["features"][:, :32].contiguous()),
                            ("'features'", "(N, 64)", "(300, 32)")),
    "features not 2-D": (_set("features", lambda s: s["features"].reshape(-1)), ("'features'", "(19200,)")),
    "integer features": (_set("features", lambda s: s["features"].long()), ("'features'", "int64")),
    "NaN features": (_set("features", lambda s: s["features"].index_fill(0, torch.tensor([3]), float("nan"))),
                     ("'features'", "finite")),
    "shorter labels": (_set("labels", lambda s: s["labels"][:-1]), ("'labels'", "(300,)", "(299,)")),
    "float labels": (_set("labels", lambda s: s["labels"].float()), ("'labels'", "float32")),
    "labels outside classes": (_set("labels", lambda s: torch.zeros_like(s["labels"])), ("'labels'", "[0]")),
    "seen classes": (lambda s: s.update(classes=s["classes"] - 6, labels=s["labels"] - 6),
                     ("'classes'", "unseen classes")),
    "model_id not a string": (_set("model_id", lambda s: torch.zeros(3)), ("'model_id'",)),
}


@pytest.mark.parametrize("case", list(SYNTHETIC_DAMAGE))
def test_classify_refuses_a_damaged_synthetic_file_with_one_clear_error(paper_run, case, tmp_path, capsys):
    change, words = SYNTHETIC_DAMAGE[case]
    synthetic = torch.load(paper_run / "synthetic.pt", weights_only=True)
    change(synthetic)
    path = tmp_path / "synthetic.pt"
    torch.save(synthetic, path)
    capsys.readouterr()
    assert main(["classify", "--model", str(paper_run / "model.pt"), "--synthetic", str(path),
                 "--out", str(tmp_path / "m.json")]) == 2
    _one_error_line(capsys, str(path), *words)
    assert not (tmp_path / "m.json").exists()
    assert not (tmp_path / "per_class.csv").exists() and not (tmp_path / "features_2d.png").exists()


def _model_damage():
    def truncated(path, model_bytes, saved):
        path.write_bytes(model_bytes[: len(model_bytes) // 2])  # raised OSError [Errno 22] before

    def text(path, model_bytes, saved):
        path.write_text("hello\n")  # raised KeyError: 101 before

    def without(key):
        def damage(path, model_bytes, saved):
            saved.pop(key)
            torch.save(saved, path)
        return damage

    def state(change):
        def damage(path, model_bytes, saved):
            change(saved["state"])
            torch.save(saved, path)
        return damage

    def wrong_shape(state_dicts):
        key = sorted(state_dicts["generator"])[0]
        state_dicts["generator"][key] = torch.zeros(3, 3)

    return {
        "truncated": (truncated, ("damaged", "tfvaegan-model/1")),
        "text": (text, ("damaged", "tfvaegan-model/1")),
        "no state": (without("state"), ("'state' missing",)),
        "no config": (without("config"), ("'config' missing",)),
        "no feedback module": (state(lambda s: s.pop("feedback")), ("'state.feedback'", "state dict")),
        "wrong tensor shape": (state(wrong_shape), ("'state.generator.", "(3, 3)", "from its config")),
        "missing parameter": (state(lambda s: s["decoder"].pop(sorted(s["decoder"])[0])),
                              ("'state.decoder'", "missing")),
    }


MODEL_DAMAGE = _model_damage()


@pytest.mark.parametrize("case", list(MODEL_DAMAGE))
@pytest.mark.parametrize("stage", ["synthesize", "classify"])
def test_damaged_model_file_is_one_clear_error(paper_run, stage, case, tmp_path, capsys):
    damage, words = MODEL_DAMAGE[case]
    model_bytes = (paper_run / "model.pt").read_bytes()
    path = tmp_path / "model.pt"
    damage(path, model_bytes, torch.load(paper_run / "model.pt", weights_only=True))
    out = tmp_path / "out"
    extra = ["--synthetic", str(paper_run / "synthetic.pt")] if stage == "classify" else []
    capsys.readouterr()
    assert main([stage, "--model", str(path), *extra, "--out", str(out)]) == 2
    _one_error_line(capsys, str(path), *words)
    assert not out.exists()


@pytest.mark.parametrize("num", ["0", "-5"])
def test_synthesize_refuses_a_non_positive_num(paper_run, num, tmp_path, capsys):
    out = tmp_path / "s.pt"
    capsys.readouterr()
    assert main(["synthesize", "--model", str(paper_run / "model.pt"), "--out", str(out), f"--num={num}"]) == 2
    _one_error_line(capsys, "--num", "positive", num)
    assert not out.exists()


def test_synthesize_num_sets_the_features_per_class(paper_run, tmp_path):
    assert main(["synthesize", "--model", str(paper_run / "model.pt"), "--out", str(tmp_path / "s.pt"),
                 "--num", "3"]) == 0
    assert torch.load(tmp_path / "s.pt", weights_only=True)["features"].shape == (6 * 3, 64)


def test_damaged_caches_are_ignored_logged_and_rebuilt(toy_root, tmp_path, capsys):
    """<model>.selection.json and the resumable .ckpt files are caches: damaged ones are recomputed."""
    root, config = toy_root
    model = tmp_path / "model.pt"
    selection = tmp_path / "model.selection.json"
    selection.write_text('{"fingerprint": ')  # truncated JSON
    (tmp_path / "model.select.ckpt").write_text("not a checkpoint\n")
    torch.save([1, 2, 3], tmp_path / "model.ckpt")  # loads, but is not a checkpoint
    capsys.readouterr()
    assert main(["train", "--data-root", str(root), "--dataset", "TOY", "--config", str(config),
                 "--set", "nepoch=2", "--set", "protocol=val", "--model", str(model),
                 "--log", str(tmp_path / "train_log.csv")]) == 0
    err = capsys.readouterr().err
    for cache in (selection, tmp_path / "model.select.ckpt", tmp_path / "model.ckpt"):
        assert f"ignoring {cache}" in err, cache
    assert model.is_file() and json.loads(selection.read_text())["selection"]["selected_on"] == "validation"
    assert not list(tmp_path.glob("*.ckpt"))
    # a valid cache is reused; one without its keys is ignored again
    assert main(["train", "--data-root", str(root), "--dataset", "TOY", "--config", str(config),
                 "--set", "nepoch=2", "--set", "protocol=val", "--model", str(model),
                 "--log", str(tmp_path / "train_log.csv")]) == 0
    assert f"reusing the epoch selection in {selection}" in capsys.readouterr().err
    selection.write_text("[]")
    assert main(["train", "--data-root", str(root), "--dataset", "TOY", "--config", str(config),
                 "--set", "nepoch=2", "--set", "protocol=val", "--model", str(model),
                 "--log", str(tmp_path / "train_log.csv")]) == 0
    assert f"ignoring {selection}" in capsys.readouterr().err


def test_checkpoint_that_fails_to_restore_restarts_from_scratch(toy_root, tmp_path):
    """A checkpoint of this very run (same fingerprint) whose state cannot be restored is ignored,
    and the run gives exactly the numbers of a run without it (nothing half-restored)."""
    from toy import load_test_split

    from tfvaegan.config import from_mapping
    from tfvaegan.method.train import train

    root, _ = toy_root
    cfg = from_mapping({**TINY, "dataset": "TOY", "nepoch": 2})
    zdata = load_test_split(root, cfg)
    cfg = cfg.resolved(zdata.res_size, zdata.att_size, zdata.n_classes)
    straight = train(cfg, zdata, torch.device("cpu"), log=lambda _: None)
    ckpt = tmp_path / "model.ckpt"
    bad_state = {name: torch.zeros(1) for name in straight.trainer.state()}
    torch.save({"fingerprint": "x", "epoch": 1, "trainer": bad_state, "rng": {},
                "history": straight.history[:1]}, ckpt)
    messages = []
    resumed = train(cfg, zdata, torch.device("cpu"), checkpoint=ckpt, fingerprint="x", log=messages.append)
    assert any(m.startswith(f"ignoring {ckpt}") and "starting from scratch" in m for m in messages), messages
    assert len(resumed.history) == 2
    for name, value in straight.trainer.model.state_dict().items():
        assert torch.equal(value, resumed.trainer.model.state_dict()[name]), name


def test_model_file_is_written_after_the_log_so_a_crash_leaves_no_mismatched_pair(toy_root, tmp_path, monkeypatch):
    from tfvaegan import config as config_module
    from tfvaegan import stages as pipeline

    root, config = toy_root
    model, log_path = tmp_path / "model.pt", tmp_path / "train_log.csv"
    model.write_bytes(b"old model")
    log_path.write_text("old log\n")

    def disk_full(*args, **kwargs):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(pipeline.torch, "save", disk_full)  # nepoch=1: no checkpoint is saved
    cfg = config_module.load(config, ["nepoch=1"], extra={"dataset": "TOY"})
    with pytest.raises(OSError, match="No space"):
        pipeline.train_stage(cfg, root, model, log_path)
    # either the old pair is untouched or there is no model: never a new log beside an old model (the log grows
    # after every epoch, so the old model goes before the first row: here the log of the one epoch trained)
    assert not model.exists() or (model.read_bytes(), log_path.read_text()) == (b"old model", "old log\n")
    assert {p.name for p in tmp_path.iterdir()} <= {"model.pt", "train_log.csv"}, "no temporary files left"


def test_run_resolves_the_device_and_prepares_each_split_once(toy_root, tmp_path, monkeypatch):
    """`run` hands the device and the prepared test split from train to synthesize and classify (paper
    protocol: one split, the test split; the stages called one by one each prepare their own)."""
    from tfvaegan import stages
    from tfvaegan.data.load import Benchmark

    root, config = toy_root
    calls = {"device": 0, "split": 0}
    real_device_for, real_split = stages.device_for, Benchmark.split

    def counted_device_for(*args, **kwargs):
        calls["device"] += 1
        return real_device_for(*args, **kwargs)

    def counted_split(self, *args, **kwargs):
        calls["split"] += 1
        return real_split(self, *args, **kwargs)

    monkeypatch.setattr(stages, "device_for", counted_device_for)
    monkeypatch.setattr(Benchmark, "split", counted_split)
    assert main(["run", "--data-root", str(root), "--dataset", "TOY", "--config", str(config),
                 "--set", "nepoch=1", "--set", "classifier_nepoch=1", "--out", str(tmp_path)]) == 0
    assert calls == {"device": 1, "split": 1}
