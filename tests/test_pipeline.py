"""The stages and the one-shot `run` command on a small generated dataset, under both protocols."""
from __future__ import annotations

import csv
import json
import pickle

import pytest
import torch
import yaml

from helpers_data import write_action_layout
from tfvaegan.cli import UserError, main
from tfvaegan.pipeline import LOG_COLUMNS, load_checkpoint
from toy_data import TINY, make_toy

HEADLINE = ("zsl_acc", "gzsl_seen", "gzsl_unseen", "gzsl_h")


@pytest.fixture(scope="module")
def toy_root(tmp_path_factory):
    root = tmp_path_factory.mktemp("data")
    make_toy(root)
    config = root / "tiny.yaml"
    config.write_text(yaml.safe_dump(TINY))
    return root, config


@pytest.fixture(scope="module")
def paper_run(toy_root, tmp_path_factory):
    root, config = toy_root
    out = tmp_path_factory.mktemp("paper")
    assert main(["run", "--data-root", str(root), "--dataset", "TOY", "--config", str(config),
                 "--set", "nepoch=5", "--out", str(out), "--benchmark", "Toy"]) == 0
    return out


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


def test_model_and_synthetic_files_load_weights_only(paper_run):
    model = torch.load(paper_run / "model.pt", weights_only=True)
    assert set(model["state"]) == {"generator", "decoder", "feedback"}
    synthetic = load_checkpoint(paper_run / "synthetic.pt", "tfvaegan-synthetic/1")
    assert synthetic["features"].shape == (6 * TINY["syn_num"], 64)
    assert torch.equal(synthetic["labels"].unique(), synthetic["classes"])


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
    assert metrics["final_model"]["zsl_classifier_epoch"] == selection["zsl_classifier_epochs"]


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
