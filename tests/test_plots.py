"""Plots: both PNGs are written, non-empty and valid, with and without training logs."""
from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest

from tfvaegan.cli import UserError, main
from tfvaegan.plots import read_train_log

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
LOG_COLUMNS = ["epoch", "seconds", "loss_d", "loss_g", "wasserstein", "vae_loss", "lambda1", "zsl_acc",
               "gzsl_seen", "gzsl_unseen", "gzsl_h", "eval_split"]


def write_run(root: Path, benchmark, protocol, variant, seed, zsl, h, epochs=12, log=True) -> Path:
    folder = root / benchmark / protocol / variant / f"seed{seed}"
    folder.mkdir(parents=True)
    (folder / "metrics.json").write_text(json.dumps({
        "benchmark": benchmark, "protocol": protocol, "variant": variant, "seed": seed,
        "zsl_acc": zsl, "gzsl_seen": h + 0.05, "gzsl_unseen": h - 0.05, "gzsl_h": h}))
    if log:
        rng = np.random.default_rng(seed)
        with (folder / "train_log.csv").open("w", newline="") as handle:
            writer = csv.writer(handle)
            writer.writerow(LOG_COLUMNS)
            for epoch in range(epochs):
                evaluated = epoch % 2 == 0  # accuracy columns empty on epochs not evaluated
                acc = zsl * (1 - np.exp(-epoch / 3)) + rng.normal(0, 0.01)
                writer.writerow([epoch, 1.5, -20 / (epoch + 1), 30 / (epoch + 1) + 5, 3.0, 100.0, 10.0,
                                 acc if evaluated else "", "", "", acc * 0.9 if evaluated else "",
                                 "test" if protocol == "paper" else "val"])
            if protocol == "val":  # the final retraining on trainval: losses only, epochs restart
                for epoch in range(epochs // 2):
                    writer.writerow([epoch, 1.5, -18 / (epoch + 1), 28 / (epoch + 1) + 5, 3.0, 100.0, 10.0,
                                     "", "", "", "", "trainval"])
    return folder / "metrics.json"


def assert_png(path: Path) -> None:
    data = path.read_bytes()
    assert data[:8] == PNG_SIGNATURE and len(data) > 10_000


@pytest.fixture
def runs(tmp_path):
    root = tmp_path / "results"
    return [write_run(root, b, p, "tfvaegan", s, zsl, h)
            for b, zsl, h in (("cub", 0.62, 0.56), ("awa2", 0.70, 0.64), ("demo", 0.4, 0.3))
            for p in ("paper", "val") for s in (1, 2)]


def test_plots_cli_writes_both_pngs(runs, tmp_path):
    out = tmp_path / "plots"
    assert main(["plots", "--metrics", *map(str, runs), "--out-dir", str(out)]) == 0
    assert sorted(p.name for p in out.iterdir()) == ["paper_vs_ours.png", "training_curves.png"]
    assert_png(out / "paper_vs_ours.png")
    assert_png(out / "training_curves.png")


def test_plots_with_ablation_variants_and_missing_logs(tmp_path, capsys):
    root = tmp_path / "results"
    metrics = [write_run(root, "cub", "paper", v, 1, 0.6, 0.5, log=False) for v in ("tfvaegan", "baseline")]
    metrics.append(write_run(root, "cub", "val", "baseline", 1, 0.5, 0.4, log=False))
    out = tmp_path / "plots"
    assert main(["plots", "--metrics", *map(str, metrics), "--out-dir", str(out)]) == 0
    assert "train_log.csv not found" in capsys.readouterr().out
    assert_png(out / "paper_vs_ours.png")
    assert (out / "training_curves.png").read_bytes()[:8] == PNG_SIGNATURE


def test_train_log_without_required_columns_is_a_clear_error(tmp_path):
    log = tmp_path / "train_log.csv"
    log.write_text("epoch,loss_d\n0,1.0\n")
    with pytest.raises(UserError, match=r"train_log\.csv: header.*missing \['eval_split'"):
        read_train_log(log)
