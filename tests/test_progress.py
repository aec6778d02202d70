"""A run's progress and provenance (issue 23): each epoch's line gives the elapsed time and an ETA;
train_log.csv grows after every epoch, so a run killed mid-training leaves the epochs it trained (and the
log the stage writes at the end is the one it grew into); every metrics.json says where it was computed."""
from __future__ import annotations

import csv
import dataclasses
import io
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import threading

import pytest
import torch
from conftest import PROJECT_ROOT
from toy import TINY

import tfvaegan
from tfvaegan import artifacts, protocols, record, stages
from tfvaegan.config import from_mapping
from tfvaegan.method.train import format_row, train
from tfvaegan.record import PROVENANCE_KEYS, provenance
from tfvaegan.report.splits import average_metrics
from tfvaegan.report.tables import check_run

ROW = {"epoch": 3, "seconds": 1.25, "loss_d": 0.5, "loss_g": -0.25, "wasserstein": 1.0, "vae_loss": 40.0,
       "lambda1": 10.0}
CLOCK = r"\d+:\d\d:\d\d"


def _rows(path) -> list[dict]:
    with open(path, newline="") as handle:
        return list(csv.DictReader(handle))


def _config(**overrides):
    return from_mapping({**TINY, "dataset": "TOY", **overrides})


# --------------------------------------------------------------------------- the progress line
def test_progress_line_gives_elapsed_time_and_eta_on_one_line():
    line = format_row(ROW, 10, elapsed=3725.4, eta=65)
    assert line.startswith("[3/10] 1.2s elapsed 1:02:05 ETA 0:01:05 loss_D 0.5000 ")
    assert "\n" not in line
    assert format_row(ROW, 10).startswith("[3/10] 1.2s loss_D 0.5000 ")  # without a clock, as before


def test_every_epoch_logs_its_eta(toy):
    _, cfg, zdata = toy
    messages = []
    train(dataclasses.replace(cfg, nepoch=2), zdata, torch.device("cpu"), log=messages.append)
    lines = [m for m in messages if m.startswith("[")]
    assert len(lines) == 2
    for epoch, line in enumerate(lines, 1):
        assert re.match(rf"\[{epoch}/2\] \d+\.\ds elapsed {CLOCK} ETA {CLOCK} loss_D ", line), line
    assert " ETA 0:00:00 " in lines[-1]


# --------------------------------------------------------------------------- train_log.csv after every epoch
@pytest.mark.slow
def test_train_log_of_a_run_killed_after_two_epochs_holds_those_two(toy_root, tmp_path):
    """A real process, killed (SIGKILL: nothing runs after it) while it waits after epoch 2."""
    root, config = toy_root
    out = tmp_path / "run"
    out.mkdir()
    (out / "model.pt").write_bytes(b"a model of an earlier training")
    env = {**os.environ, "TFVAEGAN_PAUSE_AFTER_EPOCH": "2", "OMP_NUM_THREADS": "1"}
    process = subprocess.Popen([sys.executable, "-m", "tfvaegan", "run", "--data-root", str(root), "--dataset", "TOY",
                                "--config", str(config), "--set", "nepoch=5", "--out", str(out)],
                               cwd=PROJECT_ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                               text=True, start_new_session=True)
    watchdog = threading.Timer(300, process.kill)
    watchdog.start()
    lines = []
    try:
        for line in process.stderr:
            lines.append(line)
            if "pausing after epoch 2" in line:
                break
    finally:
        process.send_signal(signal.SIGKILL)
        process.wait()
        watchdog.cancel()
    assert any("pausing after epoch 2" in line for line in lines), "".join(lines)
    epochs = [line for line in lines if line.startswith("[")]
    assert len(epochs) == 2 and all(re.search(f"elapsed {CLOCK} ETA {CLOCK}", line) for line in epochs), epochs
    rows = _rows(out / "train_log.csv")
    assert tuple(rows[0]) == artifacts.LOG_COLUMNS
    assert [row["epoch"] for row in rows] == ["1", "2"] and {row["eval_split"] for row in rows} == {"test"}
    assert not (out / "model.pt").exists(), "no log of this training beside the model of another"
    assert not (out / "metrics.json").exists()


def _crash_in(monkeypatch, checkpoint_name: str, after_epoch: int) -> None:
    """The protocols' training called `checkpoint_name` is interrupted after `after_epoch` epochs."""
    real = protocols.train

    def crash(row):
        if row["epoch"] == after_epoch:
            raise KeyboardInterrupt

    def train_then_crash(*args, **kwargs):
        if kwargs["checkpoint"].name == checkpoint_name:
            kwargs["on_epoch"] = crash
        return real(*args, **kwargs)

    monkeypatch.setattr(protocols, "train", train_then_crash)


def _snapshot_before_the_final_log(monkeypatch) -> list[str]:
    """Records train_log.csv as it grew, just before the stage writes the final one."""
    grown, real = [], artifacts.write_model_and_log

    def write(saved, model_path, log_path):
        grown.append(log_path.read_text())
        real(saved, model_path, log_path)

    monkeypatch.setattr(artifacts, "write_model_and_log", write)
    return grown


def test_val_runs_interrupted_leave_the_epochs_trained(toy_root, tmp_path, monkeypatch):
    """The val protocol's two trainings: its selection run interrupted after two epochs, then (resumed) its
    final run after one; then, with the selection read from its cache, the whole run, whose log is the
    protocol's history (the final run's rows labelled trainval)."""
    root, _ = toy_root
    cfg = _config(protocol="val", nepoch=3)
    model, log_path = tmp_path / "model.pt", tmp_path / "train_log.csv"
    with monkeypatch.context() as patch:
        _crash_in(patch, "model.select.ckpt", 2)
        with pytest.raises(KeyboardInterrupt):
            stages.train_stage(cfg, root, model, log_path)
    rows = _rows(log_path)
    assert [row["epoch"] for row in rows] == ["1", "2"] and {row["eval_split"] for row in rows} == {"val"}
    with monkeypatch.context() as patch:
        _crash_in(patch, "model.ckpt", 1)
        with pytest.raises(KeyboardInterrupt):
            stages.train_stage(cfg, root, model, log_path)
    # the selection run's three epochs (two resumed), then the final run's first (labelled at the end)
    assert [(row["epoch"], row["eval_split"]) for row in _rows(log_path)] == [("1", "val"), ("2", "val"),
                                                                               ("3", "val"), ("1", "")]
    assert not model.exists() and artifacts.selection_cache_path(model).is_file()
    grown = _snapshot_before_the_final_log(monkeypatch)
    saved = stages.train_stage(cfg, root, model, log_path).saved
    assert log_path.read_text() == artifacts.train_log_text(saved["history"])
    final_rows = [row for row in _rows(log_path) if row["eval_split"] == "trainval"]
    assert len(final_rows) == saved["epochs_trained"]
    grown_rows = list(csv.DictReader(io.StringIO(grown[0])))  # the final run's, the selection coming from its cache
    assert [{**row, "eval_split": "trainval"} for row in grown_rows] == final_rows


# --------------------------------------------------------------------------- provenance
def _expected_commit():
    if shutil.which("git") is None or not (PROJECT_ROOT / ".git").exists():
        return None
    found = subprocess.run(["git", "rev-parse", "HEAD"], cwd=PROJECT_ROOT, capture_output=True, text=True, check=False)
    return found.stdout.strip() if found.returncode == 0 else None


def test_metrics_json_carries_the_provenance_of_classify_and_of_training(toy_root, tmp_path, monkeypatch):
    root, _ = toy_root
    grown = _snapshot_before_the_final_log(monkeypatch)
    metrics = stages.run(_config(nepoch=2), root, tmp_path)
    assert grown == [(tmp_path / "train_log.csv").read_text()]  # paper protocol: grown into the final log
    written = json.loads((tmp_path / "metrics.json").read_text())
    assert written["provenance"] == json.loads(json.dumps(metrics["provenance"]))
    found = written["provenance"]
    assert set(found) == {*PROVENANCE_KEYS, "train"} and set(found["train"]) == set(PROVENANCE_KEYS)
    saved = torch.load(tmp_path / "model.pt", weights_only=True)  # plain values only: loads weights-only
    assert found["train"] == saved["provenance"]
    for prov in (found, found["train"]):
        assert prov["torch"] == str(torch.__version__) and prov["cuda"] == torch.version.cuda
        assert prov["torch_threads"] == torch.get_num_threads() == written["train_torch_threads"]
        assert prov["tfvaegan_version"] == tfvaegan.__version__
        assert isinstance(prov["device"], str) and prov["device"] and isinstance(prov["platform"], str)
        assert prov["python"].startswith(f"{sys.version_info.major}.{sys.version_info.minor}.")
        commit = _expected_commit()
        assert prov["git_commit"] == commit
        if commit is not None:  # run from this checkout
            assert re.fullmatch(r"[0-9a-f]{40}", prov["git_commit"]) and isinstance(prov["git_dirty"], bool)
    # the record reads: `tables` accept it (and files without it)
    check_run(tmp_path / "metrics.json", written)
    check_run(tmp_path / "metrics.json", {k: v for k, v in written.items() if k != "provenance"})


def test_provenance_without_git_or_outside_a_checkout_is_null(tmp_path, monkeypatch):
    assert record.git_state(tmp_path) == (None, None)  # not a checkout (or the package is not tracked there)

    def no_git(*args, **kwargs):
        raise FileNotFoundError("git")

    monkeypatch.setattr(record.subprocess, "run", no_git)
    found = provenance()
    assert (found["git_commit"], found["git_dirty"]) == (None, None) and found["torch"] == str(torch.__version__)

    def hangs(*args, **kwargs):
        raise subprocess.TimeoutExpired("git", record.GIT_TIMEOUT)

    monkeypatch.setattr(record.subprocess, "run", hangs)
    assert record.git_state() == (None, None)


def test_split_mean_carries_the_first_splits_provenance_and_reads_older_files():
    split = {"benchmark": "ucf101", "protocol": "paper", "variant": "tfvaegan", "seed": 0, "zsl_acc": 0.5,
             "gzsl_seen": None, "gzsl_unseen": None, "gzsl_h": None, "notes": []}
    first = {**split, "provenance": {"torch": "2.0", "train": None}}
    assert average_metrics([first, split])["provenance"] == first["provenance"]
    assert average_metrics([split, split])["provenance"] is None  # files written before provenance existed
    check_run("metrics.json", average_metrics([first, split]))
