"""`python -m tfvaegan.bench.lineage_check`: our side of the lineage's check against the reference codes
(docs/methods.md, "Against the reference codes").

The benchmark is one none of the methods was tuned on: tests/toy.py's generator (features =
sigmoid(attributes @ mixing + noise)) with 40 classes, the last 10 unseen, 40 images each, 128-d
features, 16-d attributes, data seed 11 (`BENCHMARK`), written in the xlsa17 layout as
<out>/data/CUB/{res101.mat, att_splits.mat} with the split locations stored as integers (uint16), as
xlsa17 stores them: the reference loaders index with them as they are read. The folder is named CUB
because FREE's train_free.py picks its center loss by the dataset's name (CUB: the margin form, the one
`center_loss: margin` selects here).

Each method trains with the small settings of the check (`COMMON`, 100 epochs, widths 256, batch 64,
syn_num 100) and its own CUB values (`METHODS`: critic_iter, loss weights, lr as in
config/benchmarks/cub_<method>.yaml), under the paper protocol (epochs chosen on the test set, as the
reference codes do), one run per seed, one torch thread. It prints each run's best-epoch ZSL accuracy
and GZSL H, their mean ± std over the seeds and, for the runs the check made (100 epochs, seeds 1-3),
the reference codes' numbers recorded in `REFERENCE` and whether ours are within noise of them. It
imports no reference code: the reference side is run by hand (the commands and patches are in
docs/methods.md) and only its numbers are kept here.
"""
from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

from tfvaegan import stages
from tfvaegan.bench.domain_shift import torch_threads
from tfvaegan.bench.problem import learnable_arrays
from tfvaegan.config import from_mapping
from tfvaegan.data.matfile import write_mat
from tfvaegan.errors import UserError
from tfvaegan.fileio import atomic_write_text

DATASET = "CUB"
# tests/toy.py write_toy(root, dataset="CUB", **BENCHMARK), its locations as uint16.
BENCHMARK = dict(n_classes=40, n_unseen=10, per_class=40, res_size=128, att_size=16, seed=11, noise=0.3)
# The settings every method and its reference code ran with (the reference codes' flags of the same name).
COMMON: dict[str, Any] = dict(
    dataset=DATASET, image_embedding="res101", class_embedding="att", preprocessing=True, resSize=128, attSize=16,
    nclass_all=40, nz=16, ndh=256, nepoch=100, batch_size=64, syn_num=100, classifier_nepoch=25,
    classifier_lr=0.001, lambda1=10.0, lr=0.0001, beta1=0.5, gzsl=True, protocol="paper", device="cpu",
    checkpoint_every=0)
# Each method's own values, those of config/benchmarks/cub_<method>.yaml.
METHODS: dict[str, dict[str, Any]] = {
    "fclswgan": dict(method="fclswgan", ngh=256, critic_iter=5, adaptive_lambda=False, cls_weight=0.01, gammaD=1.0, gammaG=1.0,
                     feedback_loop=1),
    "fvaegan": dict(method="fvaegan", latent_size=16, encoder_hidden=256, generator_hidden=256, critic_iter=5,
                    adaptive_lambda=True, gammaD=10.0, gammaG=10.0, feedback_loop=1, encoded_noise=True),
    "free": dict(method="free", ngh=256, latent_size=16, encoder_hidden=256, generator_hidden=256, critic_iter=1,
                 adaptive_lambda=True, dec_lr=0.0001, gammaD=10.0, gammaG=10.0, recons_weight=0.001,
                 center_loss="margin", center_weight=0.5, center_margin=200.0, incenter_weight=0.8, feedback_loop=2,
                 encoded_noise=True),
}
SEEDS = (1, 2, 3)
# The reference codes' best-epoch (ZSL accuracy, GZSL H) per seed on this benchmark with these settings
# (100 epochs), as their logs print them; docs/methods.md says how they were run.
REFERENCE: dict[str, dict[int, tuple[float, float]]] = {
    "fclswgan": {1: (0.4, 0.4572), 2: (0.3825, 0.4526), 3: (0.3775, 0.4463)},  # the-klingspor/ZSTTT cc4aa55 clswgan.py
    "fvaegan": {1: (0.8, 0.7275), 2: (0.9, 0.8235), 3: (0.93, 0.7347)},  # akshitac8/tfvaegan train_images.py, baseline
    "free": {1: (1.0, 1.0), 2: (1.0, 1.0), 3: (1.0, 1.0)},  # shiming-chen/FREE train_free.py
}


# --------------------------------------------------------------------------- the benchmark
def write_benchmark(root: Path) -> Path:
    """<root>/CUB/{res101.mat, att_splits.mat}; returns the folder."""
    arrays = learnable_arrays(**BENCHMARK, location_dtype=np.uint16, image_files=True)
    folder = Path(root) / DATASET
    folder.mkdir(parents=True, exist_ok=True)
    feature_keys = ("features", "labels", "image_files")
    write_mat(folder / "res101.mat", {key: arrays[key] for key in feature_keys})
    write_mat(folder / "att_splits.mat", {key: value for key, value in arrays.items() if key not in feature_keys})
    return folder


# --------------------------------------------------------------------------- the runs
def run_one(method: str, seed: int, nepoch: int, data_root: Path, out: Path) -> dict[str, Any]:
    """One paper-protocol run into `out`; its best-epoch numbers."""
    cfg = from_mapping({**COMMON, **METHODS[method], "nepoch": nepoch, "manualSeed": seed}, f"lineage check {method}")
    began = time.perf_counter()
    metrics = stages.run(cfg, data_root, out, benchmark_name="lineage_check", variant=method)
    return {"method": method, "seed": seed, "epochs": nepoch, "zsl": metrics["zsl_acc"], "gzsl_h": metrics["gzsl_h"],
            "seconds": round(time.perf_counter() - began, 1)}


def mean_std(values: list[float]) -> str:
    if len(values) < 2:
        return f"{100 * values[0]:.1f}"
    return f"{100 * statistics.mean(values):.1f} ± {100 * statistics.stdev(values):.1f}"


def within_noise(ours: list[float], reference: list[float]) -> tuple[float, float, bool]:
    """(Δ mean, 2 × the larger std, |Δ| ≤ that bound)."""
    delta = statistics.mean(ours) - statistics.mean(reference)
    bound = 2 * max(statistics.stdev(ours), statistics.stdev(reference))
    return delta, bound, abs(delta) <= bound


def summary(rows: list[dict[str, Any]], nepoch: int) -> list[str]:
    """Per method: ours mean ± std and, where the reference ran the same seeds and epochs, its numbers."""
    lines = []
    for method in dict.fromkeys(row["method"] for row in rows):
        mine = {row["seed"]: (row["zsl"], row["gzsl_h"]) for row in rows if row["method"] == method}
        ref = REFERENCE.get(method, {})
        compare = nepoch == COMMON["nepoch"] and len(mine) > 1 and set(mine) <= set(ref)
        for i, name in ((0, "ZSL"), (1, "GZSL H")):
            ours = [mine[seed][i] for seed in sorted(mine)]
            line = f"{method:>9} {name:>6}: ours {mean_std(ours)}"
            if compare:
                theirs = [ref[seed][i] for seed in sorted(mine)]
                delta, bound, ok = within_noise(ours, theirs)
                line += (f"  reference {mean_std(theirs)}  Δ {100 * delta:+.1f} (2·max std {100 * bound:.1f}): "
                         + ("within noise" if ok else "OUTSIDE noise"))
            lines.append(line)
    return lines


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m tfvaegan.bench.lineage_check", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", default="results/lineage_check", help="folder for the data and the runs "
                        "(default results/lineage_check)")
    parser.add_argument("--method", nargs="+", choices=list(METHODS), default=list(METHODS), help="methods to run")
    parser.add_argument("--seed", type=int, nargs="+", default=list(SEEDS), help="training seeds (default 1 2 3)")
    parser.add_argument("--nepoch", type=int, default=COMMON["nepoch"],
                        help=f"generator epochs (default {COMMON['nepoch']}; the reference numbers are for that)")
    parser.add_argument("--threads", type=int, default=1, help="torch threads (default 1, as the check ran)")
    return parser


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    out = Path(args.out)
    if args.nepoch < 1 or args.threads < 1:
        print("error: --nepoch and --threads must be positive", file=sys.stderr)
        return 2
    try:
        data_root = out / "data"
        write_benchmark(data_root)
        rows = []
        with torch_threads(args.threads):
            for seed in args.seed:
                for method in args.method:
                    row = run_one(method, seed, args.nepoch, data_root, out / "runs" / method / f"seed{seed}")
                    rows.append(row)
                    print(f"{method:>9} seed {seed}: ZSL {100 * row['zsl']:.1f}  GZSL H {100 * row['gzsl_h']:.1f}  "
                          f"({row['seconds']} s)", flush=True)
    except UserError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    lines = summary(rows, args.nepoch)
    print("\n".join(["", "best-epoch numbers (paper protocol), mean ± std over seeds:", *lines]))
    atomic_write_text(out / "lineage_check.json", json.dumps({"rows": rows, "summary": lines}, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
