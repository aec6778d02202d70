"""`python -m tfvaegan.bench.transfer_rule`: how the val protocol should carry the classifiers' training
length from its selection run over to the final run, decided on development benchmarks.

The val protocol chooses, on its validation split, how long the final ZSL and GZSL softmax classifiers
train (method/selection.py, `val_selection`), then retrains on trainval and evaluates once on the test set.
The final classifiers see more data than the validation ones (trainval's images, the synthetic features of
the test-unseen classes instead of the validation classes), so "as long" is ambiguous. The candidate
rules (`selection.TRANSFER_RULES`, applied by `selection.final_classifier_epochs`, the package's own code):
- steps: as many optimisation steps as the chosen epochs took on the validation split;
- epochs: the chosen epoch count;
- full: no transfer, the configured classifier_nepoch (the official fixed length, 25).
Beside them, for reference only, `best`: the best test epoch of the same classifier (the paper protocol's
choice on the test set; no rule can reach it). The package's rule (`selection.TRANSFER`) is, per classifier,
the rule with the highest mean test metric (GZSL H, ZSL top-1) over the full family below.

The development benchmarks (FAMILY) are generated here and nowhere else: not the demo (whose README and
docs rows are reported) and not the domain-shift bench (docs/transductive.md). No table of the project
reports a number of theirs except this study's, so their test sets may be used freely to choose the rule.
Each is features = sigmoid(embedding @ mixing + noise) over sparse class embeddings, the attributes a
noisy copy of the embedding (`att_noise`: the semantic gap), in the xlsa17 layout with val_loc
(features/dataset.py `xlsa17_locations`, `val_class_fraction` of the seen classes as validation classes).
They vary in size (24-64 classes, 20-30 images per class, 64-128-d features), difficulty (feature noise,
attribute noise) and the ratio of validation to test-unseen classes, and each is drawn from two data
seeds. STUDY_CONFIG is the demo's config (config/benchmarks/demo.yaml) with networks sized for 64-128-d
features; the classifiers keep the official settings (classifier_lr 0.001, 25 epochs, batch = syn_num 100).

For each benchmark, data seed and training seed: the val protocol's training (selection run on the
validation split, retraining on trainval: stages.train_stage), the synthetic unseen features as the
synthesize stage draws them, then each final classifier trained once on them for as many epochs as the
longest rule needs, scored on the test set after every epoch (classifier k epochs into a longer training is
exactly the classifier of a k-epoch training: the random draws of an epoch do not depend on the total).
Each rule reads its epoch off that curve. The curve is the mean of DRAWS (3) classifier draws: at these sizes
a classifier takes 6-30 steps per epoch and is far from converged after 25 epochs, so one draw is noisy
(one model's 25-epoch ZSL accuracy ranged 16-52 % over 8 draws). Draw k of each classifier starts from a
generator seeded manualSeed + 3 + 1000 k; draw 0 of the GZSL classifier is the one a val-protocol run trains
(classify's seed; a run's ZSL classifier follows its GZSL classifier on one generator, another draw of the
same noise). The draws are the same for every rule: the comparison is paired.

Prints a markdown table (per rule, mean ± sample std over every benchmark, data seed and training seed; the
paired difference to the package's rule, `selection.TRANSFER`) and the means per benchmark; writes
<out>/transfer_rule.csv (one row per run, classifier and rule) and <out>/transfer_rule.md. Runs go to
<out>/runs/<benchmark>/data<D>/seed<N>/ (model.pt, train_log.csv, curves.json, which a second call reuses),
the data to <out>/data/<benchmark>/data<D>/DEV/.
One torch thread by default (CPU results depend on the count). A run takes 2-27 s on one thread; the full
family (6 benchmarks x 2 data seeds x 3 training seeds = 36 runs) about 4 minutes of CPU (8 minutes on the
project's 2-core machine shared with other work), `--quick` (every benchmark, the first data seed and
training seed: 6 runs) about a minute.
"""
from __future__ import annotations

import argparse
import contextlib
import csv
import io
import json
import math
import statistics
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Iterable

import numpy as np
import torch

from tfvaegan import stages
from tfvaegan.bench.domain_shift import torch_threads, write_arrays
from tfvaegan.config import from_mapping
from tfvaegan.errors import UserError
from tfvaegan.features.dataset import xlsa17_locations
from tfvaegan.fileio import atomic_write_text
from tfvaegan.method.classifier import ClassifierSettings, fit_over_classes, predict, train_softmax
from tfvaegan.method.evaluate import classifier_steps_per_epoch, feature_transform
from tfvaegan.method.metrics import harmonic_mean, per_class_accuracy
from tfvaegan.method.selection import TRANSFER, TRANSFER_RULES, final_classifier_epochs

DATASET = "DEV"
# config/benchmarks/demo.yaml with networks for 64-128-d features; the classifiers' settings are official.
STUDY_CONFIG: dict[str, Any] = dict(
    dataset=DATASET, preprocessing=True, gzsl=True, protocol="val", nepoch=10, encoder_hidden=128,
    generator_hidden=128, ngh=128, ndh=128, syn_num=100, lr=0.001, gammaD=10.0, gammaG=10.0,
    recons_weight=0.01, feed_lr=0.0001, encoded_noise=False, device="cpu", checkpoint_every=0,
)
KINDS = ("gzsl", "zsl")
REFERENCE = "best"  # the best test epoch: the paper protocol's choice, for reference only


@dataclass(frozen=True)
class DevSpec:
    """One generated development benchmark (its data seed is given apart)."""

    name: str
    n_classes: int
    n_unseen: int
    per_class: int
    res_size: int
    att_size: int
    noise: float  # standard deviation of the pre-sigmoid feature noise
    att_noise: float  # attributes = |class embedding + this much noise| (per unit-norm row): the semantic gap
    val_class_fraction: float = 1 / 3  # validation classes / seen classes (xlsa17: val ≈ test-unseen)


FAMILY = (
    DevSpec("small", 24, 6, 20, 64, 8, noise=0.5, att_noise=0.05),
    DevSpec("small-hard", 24, 6, 20, 64, 8, noise=1.0, att_noise=0.3),
    DevSpec("medium", 40, 10, 30, 128, 12, noise=0.5, att_noise=0.1),
    DevSpec("medium-hard", 40, 10, 30, 128, 12, noise=1.0, att_noise=0.3),
    DevSpec("large", 64, 16, 30, 128, 16, noise=0.8, att_noise=0.2),
    # fewer validation classes than test-unseen ones (7 of 36 seen classes against 12 unseen; the demo: 8 against 12)
    DevSpec("few-val", 48, 12, 25, 128, 12, noise=0.8, att_noise=0.2, val_class_fraction=0.2),
)
DATA_SEEDS = (101, 202)
DRAWS = 3  # classifier draws per run, averaged: a ZSL classifier of 25 epochs is far from converged here
TRAIN_SEEDS = (1, 2, 3)


def generate(spec: DevSpec, seed: int) -> dict[str, Any]:
    """features (N, D) float32 in (0, 1), labels (N,) 0-based, attributes (C, A), unseen (the last
    n_unseen classes), locs (the five xlsa17 location vectors, 1-based)."""
    rng = np.random.default_rng(seed)
    n, att = spec.n_classes, spec.att_size
    embedding = (rng.random((n, att)) < 0.4) + 0.1 * rng.random((n, att))
    embedding /= np.linalg.norm(embedding, axis=1, keepdims=True)
    mixing = rng.normal(size=(att, spec.res_size)) * 3.0
    labels = np.repeat(np.arange(n), spec.per_class)
    pre = embedding[labels] @ mixing + spec.noise * rng.normal(size=(len(labels), spec.res_size))
    attributes = np.abs(embedding + spec.att_noise * rng.normal(size=embedding.shape) / math.sqrt(att))
    unseen = np.arange(n - spec.n_unseen, n)
    locs = xlsa17_locations(labels, unseen, seed=seed, val_class_fraction=spec.val_class_fraction)
    return {"features": (1 / (1 + np.exp(-pre))).astype(np.float32), "labels": labels,
            "attributes": attributes, "unseen": unseen, "locs": locs}


def write_dataset(root: Path, spec: DevSpec, seed: int) -> Path:
    """`<root>/DEV/{res101.mat, att_splits.mat}` (xlsa17 layout); returns the folder."""
    return write_arrays(Path(root) / DATASET, generate(spec, seed))


# --------------------------------------------------------------------------- one run
def gzsl_curve(train_x, train_y, seen_x, seen_y, unseen_x, unseen_y, seenclasses, unseenclasses, n_classes,
               settings: ClassifierSettings, generator) -> list[dict[str, float]]:
    """u, s, H on the test set after every epoch of the GZSL classifier (evaluate.gzsl's training)."""
    curve = []

    def on_epoch(epoch, weight, bias):
        seen = per_class_accuracy(predict(seen_x, weight, bias), seen_y, seenclasses)
        unseen = per_class_accuracy(predict(unseen_x, weight, bias), unseen_y, unseenclasses)
        curve.append({"u": unseen, "s": seen, "h": harmonic_mean(seen, unseen)})

    train_softmax(train_x, train_y, n_classes, settings, generator, on_epoch)
    return curve


def _mean_curve(curves: list[list[dict[str, float]]]) -> list[dict[str, float]]:
    return [{key: statistics.fmean(c[i][key] for c in curves) for key in curves[0][i]} for i in range(len(curves[0]))]


def test_curves(trained, synthetic: dict, n_epochs: int, draws: int = 1) -> dict[str, Any]:
    """The final model's classifiers on the test set after each of `n_epochs` epochs (classify's inputs: the
    synthetic features, discriminative features), each the mean of `draws` classifier draws; draw k starts
    from a generator seeded manualSeed + 3 + 1000 k (draw 0: classify's seed)."""
    cfg, zdata, model = trained.cfg, trained.test_split(None), trained.model
    syn_x, syn_y = synthetic["features"].float(), synthetic["labels"].long()
    settings = ClassifierSettings.from_config(cfg, "best", n_epochs)
    seeded = lambda k: torch.Generator(device=trained.device).manual_seed(cfg.manualSeed + 3 + 1000 * k)
    with torch.no_grad():
        model.eval()
        transform = feature_transform(model, cfg.disc_features, seeded(-1))  # FREE's refined features draw
        syn_f, train_f = transform(syn_x), transform(zdata.train_feature)
        seen_f, unseen_f = transform(zdata.test_seen_feature), transform(zdata.test_unseen_feature)
    gzsl = [gzsl_curve(torch.cat((train_f, syn_f)), torch.cat((zdata.train_label, syn_y)), seen_f,
                       zdata.test_seen_label, unseen_f, zdata.test_unseen_label, zdata.seenclasses,
                       zdata.unseenclasses, zdata.n_classes, settings, seeded(k)) for k in range(draws)]
    zsl = [[{"acc": acc} for acc in fit_over_classes(syn_f, syn_y, zdata.unseenclasses, unseen_f,
                                                    zdata.test_unseen_label, settings, seeded(k)).curve]
           for k in range(draws)]
    return {"gzsl": _mean_curve(gzsl), "zsl": _mean_curve(zsl), "draws": draws,
            "steps_per_epoch": classifier_steps_per_epoch(cfg, len(zdata.train_label), len(syn_y))}


def rule_epochs(selection: dict, steps_per_epoch: dict, classifier_nepoch: int) -> dict[str, dict[str, int]]:
    """{rule: {kind: final epochs}} for every rule of TRANSFER_RULES, by the package's final_classifier_epochs."""
    out = {}
    for rule in TRANSFER_RULES:
        chosen = final_classifier_epochs(selection, steps_per_epoch, {kind: rule for kind in KINDS})
        out[rule] = {kind: classifier_nepoch if chosen[kind] is None else chosen[kind] for kind in KINDS}
    return out


def run_one(values: dict[str, Any], spec: DevSpec, data_seed: int, seed: int, out: Path,
            draws: int = DRAWS) -> dict[str, Any]:
    """The val protocol's training on one development benchmark, then the test curves; cached in curves.json."""
    where = out / "runs" / spec.name / f"data{data_seed}" / f"seed{seed}"
    cached = where / "curves.json"
    if cached.is_file():
        record = json.loads(cached.read_text())
        if record.get("draws") == draws:
            return record
    data_root = out / "data" / spec.name / f"data{data_seed}"
    write_dataset(data_root, spec, data_seed)
    cfg = from_mapping({**values, "manualSeed": seed})
    where.mkdir(parents=True, exist_ok=True)
    began = time.perf_counter()
    stage_log = io.StringIO()
    with contextlib.redirect_stderr(stage_log):
        trained = stages.train_stage(cfg, data_root, where / "model.pt", where / "train_log.csv")
        synthetic = stages.synthesize_stage(trained, where / "synthetic.pt")
    selection = trained.saved["selection"]
    steps_per_epoch = classifier_steps_per_epoch(cfg, len(trained.test_split(None).train_label),
                                                 len(synthetic["labels"]))
    chosen = rule_epochs(selection, steps_per_epoch, cfg.classifier_nepoch)
    n_epochs = max(cfg.classifier_nepoch, *(e for by_kind in chosen.values() for e in by_kind.values()))
    curves = test_curves(trained, synthetic, n_epochs, draws)
    record = {"benchmark": spec.name, "data_seed": data_seed, "seed": seed, "selection": selection,
              "classifier_nepoch": cfg.classifier_nepoch, **curves, "seconds": time.perf_counter() - began}
    atomic_write_text(where / "run.log", stage_log.getvalue())
    atomic_write_text(cached, json.dumps(record, indent=1, default=float))
    (where / "synthetic.pt").unlink(missing_ok=True)
    return record


# --------------------------------------------------------------------------- rules and the table
def rows_of(record: dict[str, Any]) -> list[dict[str, Any]]:
    """One row per (classifier, rule) of a run: the final epochs and the test metric (percent)."""
    chosen = rule_epochs(record["selection"], record["steps_per_epoch"], record["classifier_nepoch"])
    rows = []
    for kind in KINDS:
        curve = record[kind]
        metric = "h" if kind == "gzsl" else "acc"
        best = max(range(len(curve)), key=lambda i: (curve[i][metric], -i))
        picks = {**{rule: chosen[rule][kind] for rule in TRANSFER_RULES}, REFERENCE: best + 1}
        for rule, epochs in picks.items():
            point = curve[min(epochs, len(curve)) - 1]
            rows.append({"benchmark": record["benchmark"], "data_seed": record["data_seed"], "seed": record["seed"],
                         "classifier": kind, "rule": rule, "validation_epochs": record["selection"].get(
                             f"{kind}_classifier_epochs"), "epochs": epochs,
                         **{key: round(100 * value, 2) for key, value in point.items()}})
    return rows


def _mean_std(values: list[float]) -> str:
    if not values:
        return "-"
    spread = f" ± {statistics.stdev(values):.1f}" if len(values) > 1 else ""
    return f"{statistics.fmean(values):.1f}{spread}"


def summary(rows: list[dict[str, Any]]) -> str:
    """The markdown table: per classifier and rule, mean ± std over runs of the final epochs and of the test
    metric (GZSL: H, u, s; ZSL: top-1), and the paired difference to the package's rule (selection.TRANSFER):
    its mean ± standard error over runs, and in how many runs the rule scores above / below it."""
    lines = [("| classifier | rule | final epochs | test ZSL top-1 / GZSL H | GZSL u | GZSL s "
              "| − package's rule, paired (± s.e.) | runs above / below it |"), "|---|---|---|---|---|---|---|---|"]
    for kind in KINDS:
        metric, default = ("h" if kind == "gzsl" else "acc"), TRANSFER[kind]
        base = {(r["benchmark"], r["data_seed"], r["seed"]): r[metric] for r in rows
                if r["classifier"] == kind and r["rule"] == default}
        for rule in (*TRANSFER_RULES, REFERENCE):
            mine = [r for r in rows if r["classifier"] == kind and r["rule"] == rule]
            diff = [r[metric] - base[(r["benchmark"], r["data_seed"], r["seed"])] for r in mine]
            name = f"**{rule}** (the package's)" if rule == default else (
                f"{rule} (reference: best test epoch)" if rule == REFERENCE else rule)
            extra = ([_mean_std([r["u"] for r in mine]), _mean_std([r["s"] for r in mine])] if kind == "gzsl"
                     else ["", ""])
            paired = (f"{statistics.fmean(diff):+.1f} ± {statistics.stdev(diff) / math.sqrt(len(diff)):.1f}"
                      if rule != default and len(diff) > 1 else "")
            counts = f"{sum(d > 0 for d in diff)} / {sum(d < 0 for d in diff)}" if rule != default else ""
            lines.append(f"| {kind.upper()} | {name} | {_mean_std([r['epochs'] for r in mine])} | "
                         f"{_mean_std([r[metric] for r in mine])} | {extra[0]} | {extra[1]} | {paired} | {counts} |")
    runs = {(r["benchmark"], r["data_seed"], r["seed"]) for r in rows}
    lines.append(f"\n{len(runs)} runs ({len({r['benchmark'] for r in rows})} benchmarks, data seeds "
                 f"{sorted({r['data_seed'] for r in rows})}, training seeds {sorted({r['seed'] for r in rows})}); "
                 "mean ± sample std over the runs.")
    return "\n".join(lines)


def per_benchmark(rows: list[dict[str, Any]]) -> str:
    """Per benchmark, the mean test metric of each rule (ZSL top-1 and GZSL H), to see whether one benchmark
    decides the mean."""
    rules = (*TRANSFER_RULES, REFERENCE)
    lines = ["| benchmark | " + " | ".join(f"{k.upper()} {r}" for k in KINDS for r in rules) + " |",
             "|---|" + "---|" * (len(KINDS) * len(rules))]
    for name in dict.fromkeys(r["benchmark"] for r in rows):
        cells = []
        for kind in KINDS:
            metric = "h" if kind == "gzsl" else "acc"
            for rule in rules:
                mine = [r[metric] for r in rows if (r["benchmark"], r["classifier"], r["rule"]) == (name, kind, rule)]
                cells.append(f"{statistics.fmean(mine):.1f}")
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def to_csv(rows: list[dict[str, Any]]) -> str:
    columns = ("benchmark", "data_seed", "seed", "classifier", "rule", "validation_epochs", "epochs", "acc", "u",
               "s", "h")
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=columns, lineterminator="\n", extrasaction="ignore")
    writer.writeheader()
    writer.writerows({key: row.get(key, "") for key in columns} for row in rows)
    return buffer.getvalue()


# --------------------------------------------------------------------------- the command
def measure(out: Path, specs: Iterable[DevSpec], data_seeds: Iterable[int], seeds: Iterable[int],
            values: dict[str, Any] | None = None, threads: int | None = 1, progress=None,
            draws: int = DRAWS) -> list[dict[str, Any]]:
    values = dict(STUDY_CONFIG if values is None else values)
    rows = []
    with torch_threads(threads):
        for spec in specs:
            for data_seed in data_seeds:
                for seed in seeds:
                    record = run_one(values, spec, data_seed, seed, Path(out), draws)
                    mine = rows_of(record)
                    rows += mine
                    if progress:
                        said = {(r["classifier"], r["rule"]): r for r in mine}
                        progress(f"{spec.name} data{data_seed} seed{seed} ({record['seconds']:.0f} s): " + "  ".join(
                            f"{kind} {rule} {said[(kind, rule)]['epochs']} ep "
                            f"{said[(kind, rule)]['h' if kind == 'gzsl' else 'acc']:.1f}"
                            for kind in KINDS for rule in (*TRANSFER_RULES, REFERENCE)))
    return rows


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m tfvaegan.bench.transfer_rule", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", required=True, help="folder for the data, the runs and the tables")
    parser.add_argument("--quick", action="store_true", help="every benchmark, the first data seed and the "
                        "first training seed only")
    parser.add_argument("--benchmark", nargs="+", choices=[s.name for s in FAMILY], help="only these benchmarks")
    parser.add_argument("--data-seed", type=int, nargs="+", help=f"data seeds (default {list(DATA_SEEDS)})")
    parser.add_argument("--seed", type=int, nargs="+", help=f"training seeds (default {list(TRAIN_SEEDS)})")
    parser.add_argument("--draws", type=int, default=DRAWS, help=f"final classifier draws per run, their test "
                        f"curves averaged (default {DRAWS}; the first is the one a val-protocol run trains)")
    parser.add_argument("--threads", type=int, default=1, help="torch threads (default 1; results depend on it)")
    return parser


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    out = Path(args.out)
    specs = [s for s in FAMILY if not args.benchmark or s.name in args.benchmark]
    data_seeds = args.data_seed or (DATA_SEEDS[:1] if args.quick else DATA_SEEDS)
    seeds = args.seed or (TRAIN_SEEDS[:1] if args.quick else TRAIN_SEEDS)
    log = lambda line: print(line, file=sys.stderr, flush=True)
    try:
        if out.exists() and not out.is_dir():
            raise UserError(f"--out {out}: expected a folder, found a file")
        log(f"transfer rule: {len(specs) * len(data_seeds) * len(seeds)} val-protocol runs into {out}")
        if min(args.draws, args.threads, *seeds, *data_seeds) < 0 or min(args.draws, args.threads) < 1:
            raise UserError("--draws and --threads: expected positive integers; --seed, --data-seed: non-negative")
        rows = measure(out, specs, data_seeds, seeds, threads=args.threads, progress=log, draws=args.draws)
    except UserError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    table = summary(rows) + "\n\nPer benchmark (mean over its runs):\n\n" + per_benchmark(rows)
    atomic_write_text(out / "transfer_rule.csv", to_csv(rows))
    atomic_write_text(out / "transfer_rule.md", table + "\n")
    atomic_write_text(out / "benchmarks.json", json.dumps([asdict(s) for s in specs], indent=1))
    print(table)
    print(f"\nwritten: {out / 'transfer_rule.csv'}, {out / 'transfer_rule.md'}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
