"""`python -m tfvaegan.bench.domain_shift`: transductive against inductive TF-VAEGAN where the unseen
classes are hard inductively.

The benchmark (`generate`, written in the xlsa17 layout by `write_dataset`): 24 classes, 6 of them
unseen, 30 images each, 64-d features = sigmoid(attributes @ mixing + noise), as the tests' toy
benchmark but noisier. Every image of an unseen class has its pre-sigmoid features moved by one
constant offset: `shift` times the spread of the unseen class means along their first principal
axis, in that direction. The attributes, the seen classes and every training image are those of
the unshifted problem; only the unlabelled test_unseen features reveal the shift. An inductive
model, which maps attributes to features as the seen classes taught it, puts every unseen class
where its attributes say, and, the offset running along the axis the unseen classes differ most
on, reads each as a neighbour; a transductive one can learn the offset from the unlabelled features.

The command writes the benchmark with the given shift and without one (the control, shift 0),
trains each under the same config, seed and epochs (SHIFT_CONFIG; config/benchmarks/shift.yaml
holds the same values with comments) as
- inductive;
- transductive, prior uniform, D2 on every test row (the defaults: no test label read), D2 weighted
  γD2 = γG_D2 = 1 (a tenth of γD, γG);
- the same with D2 on the test_unseen rows only (the authors' set: test labels choose it);
- transductive, prior labels, test_unseen (the authors' known-prior code; it reads test labels: for
  information);
- transductive, prior uniform, every test row, D2 weighted as the authors' scripts do (γD2 = γD,
  γG_D2 = γG),
under the paper and the val protocol, prints the table and writes it as <out>/domain_shift.csv.
(Under the val protocol the selection run's validation-unseen classes are seen classes, which
carry no shift: the epochs are chosen on an unshifted problem, and only the retrain meets it.)
Runs go to <out>/runs/shift_<S>/seed<N>/<protocol>/<row>/ (metrics.json, train_log.csv, run.log),
the data to <out>/data/shift_<S>/SHIFT/. One torch thread by default: CPU results depend on the
thread count, and these networks are too small to gain from more. A run takes 5-11 s on one
thread; the 20 runs of a seed (default 25 epochs) about 3 minutes.
"""
from __future__ import annotations

import argparse
import contextlib
import csv
import io
import math
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable

import numpy as np
import torch

from tfvaegan import stages
from tfvaegan.config import from_mapping, parse_override, read_file
from tfvaegan.data.matfile import write_mat
from tfvaegan.errors import UserError
from tfvaegan.features.dataset import xlsa17_locations
from tfvaegan.fileio import atomic_write_text

DATASET = "SHIFT"
# The tests' tiny config (tests/toy.py TINY) with 25 epochs and D2 weighted a tenth of D; seconds per run.
SHIFT_CONFIG: dict[str, Any] = dict(
    dataset=DATASET, preprocessing=True, gzsl=True, nepoch=25, ngh=64, ndh=64, encoder_hidden=64,
    generator_hidden=64, syn_num=50, batch_size=32, critic_iter=2, lr=1e-3, classifier_lr=1e-2,
    classifier_nepoch=10, gammaD=10.0, gammaG=10.0, gammaD2=1.0, gammaG_D2=1.0, recons_weight=0.1,
    a1=0.5, a2=0.5, feed_lr=1e-4, dec_lr=1e-4, encoded_noise=True, device="cpu", checkpoint_every=0,
)
# What the command itself sets (nepoch: --nepoch, by default the base config's); `--set` may not give them.
BENCH_KEYS = ("transductive", "transductive_prior", "transductive_unlabelled", "manualSeed", "nepoch", "protocol",
              "dataset")
# (row name, setting, prior, unlabelled set, config values on top of the base): the rows of each
# (shift, seed, protocol).
ROWS = (
    ("inductive", "inductive", "", "", {"transductive": False}),
    ("transductive_uniform", "transductive", "uniform", "test",
     {"transductive": True, "transductive_prior": "uniform", "transductive_unlabelled": "test"}),
    ("transductive_uniform_test_unseen", "transductive", "uniform", "test_unseen",
     {"transductive": True, "transductive_prior": "uniform", "transductive_unlabelled": "test_unseen"}),
    ("transductive_labels", "transductive", "labels", "test_unseen",
     {"transductive": True, "transductive_prior": "labels", "transductive_unlabelled": "test_unseen"}),
    ("transductive_uniform_d2_as_d", "transductive", "uniform", "test",
     {"transductive": True, "transductive_prior": "uniform", "transductive_unlabelled": "test", "gammaD2": None,
      "gammaG_D2": None}),
)
PROTOCOLS = ("paper", "val")
COLUMNS = ("shift", "seed", "protocol", "setting", "prior", "unlabelled", "d2_weights", "epochs", "zsl", "gzsl_u", "gzsl_s",
           "gzsl_h", "seconds")


# --------------------------------------------------------------------------- the benchmark
@dataclass(frozen=True)
class ShiftSpec:
    """The generated problem: `shift` in units of the unseen class means' spread along their first
    principal axis (pre-sigmoid); `seed` draws everything but the shift, so that specs differing in
    `shift` only have the same attributes, splits, seen-class features and noise."""

    shift: float = 2.0
    seed: int = 0
    n_classes: int = 24
    n_unseen: int = 6
    per_class: int = 30
    res_size: int = 64
    att_size: int = 8
    noise: float = 0.6

    def check(self) -> "ShiftSpec":
        if not math.isfinite(self.shift) or self.shift < 0:
            raise UserError(f"domain shift: expected a finite shift >= 0, found {self.shift}")
        if self.n_unseen < 2 or self.n_classes - self.n_unseen < 2:
            raise UserError(f"domain shift: expected at least 2 seen and 2 unseen classes, found "
                            f"{self.n_classes - self.n_unseen} seen and {self.n_unseen} unseen")
        if self.per_class < 2 or self.res_size < 1 or self.att_size < 1 or not self.noise >= 0:
            raise UserError(f"domain shift: expected per_class >= 2, res_size, att_size >= 1 and noise >= 0, "
                            f"found {self.per_class}, {self.res_size}, {self.att_size}, {self.noise}")
        return self


def generate(spec: ShiftSpec) -> dict[str, Any]:
    """The problem as arrays: features (N, D) float32 in (0, 1), labels (N,) 0-based, attributes (C, A),
    unseen (the last n_unseen classes), offset (D,) added to every unseen image's pre-sigmoid features,
    locs (the five xlsa17 location vectors, 1-based)."""
    spec.check()
    rng = np.random.default_rng(spec.seed)
    n, att = spec.n_classes, spec.att_size
    # Sparse, attribute-like class embeddings, as tests/toy.py: the seen classes span the attribute space.
    attributes = (rng.random((n, att)) < 0.4) + 0.1 * rng.random((n, att))
    attributes /= np.linalg.norm(attributes, axis=1, keepdims=True)
    mixing = rng.normal(size=(att, spec.res_size)) * 3.0
    labels = np.repeat(np.arange(n), spec.per_class)
    unseen = np.arange(n - spec.n_unseen, n)
    pre = attributes[labels] @ mixing + spec.noise * rng.normal(size=(len(labels), spec.res_size))
    offset = spec.shift * unseen_axis(attributes[unseen] @ mixing)
    pre[np.isin(labels, unseen)] += offset
    return {"features": (1 / (1 + np.exp(-pre))).astype(np.float32), "labels": labels, "attributes": attributes,
            "unseen": unseen, "offset": offset, "locs": xlsa17_locations(labels, unseen, seed=spec.seed)}


def unseen_axis(means: np.ndarray) -> np.ndarray:
    """The first principal axis of the class means, scaled to their standard deviation along it; its
    sign fixed (largest component positive) so that it does not depend on the LAPACK build."""
    _, singular, axes = np.linalg.svd(means - means.mean(0), full_matrices=False)
    axis = axes[0] * singular[0] / math.sqrt(len(means))
    return axis if axis[np.argmax(np.abs(axis))] > 0 else -axis


def write_dataset(root: Path, spec: ShiftSpec, dataset: str = DATASET) -> Path:
    """`<root>/<dataset>/{res101.mat, att_splits.mat}` (xlsa17 layout); returns the folder."""
    return write_arrays(Path(root) / dataset, generate(spec))


def write_arrays(folder: Path, arrays: dict) -> Path:
    """A generated problem's arrays (`features`, 0-based `labels`, `attributes`, 0-based `locs`) as
    `<folder>/{res101.mat, att_splits.mat}` in the xlsa17 layout; returns the folder."""
    folder.mkdir(parents=True, exist_ok=True)
    column = lambda rows: np.asarray(rows, dtype=np.float64).reshape(-1, 1)
    write_mat(folder / "res101.mat", {"features": arrays["features"].T, "labels": column(arrays["labels"] + 1)})
    write_mat(folder / "att_splits.mat", {
        "att": arrays["attributes"].T,
        "allclasses_names": [f"{i + 1:03d}.class_{i + 1}" for i in range(len(arrays["attributes"]))],
        **{key: column(rows) for key, rows in arrays["locs"].items()},
    })
    return folder


# --------------------------------------------------------------------------- the runs
@contextlib.contextmanager
def torch_threads(n: int | None):
    """Run with `n` torch threads (None: as set), restoring the count afterwards."""
    before = torch.get_num_threads()
    if n is not None:
        torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def base_values(config_file: Path | None = None, overrides: Iterable[str] = ()) -> tuple[dict[str, Any], list[str]]:
    """SHIFT_CONFIG, or a YAML file's keys, then `--set key=value`, checked once; and the keys of the file
    that the command sets itself (dropped: each row sets them). `--set` may not give those keys."""
    values = dict(read_file(config_file)) if config_file is not None else dict(SHIFT_CONFIG)
    for item in overrides:
        key, value = parse_override(item)
        if key in BENCH_KEYS:
            raise UserError(f"domain shift: --set {item!r}: key '{key}' is set by the command "
                            f"(--seed, --nepoch, --protocol; the rows set transductive and its prior)")
        values[key] = value
    dropped = sorted(str(key) for key in BENCH_KEYS if key in values and key != "nepoch"
                     and not (key == "dataset" and values[key] == DATASET))
    values = {key: value for key, value in values.items() if key not in BENCH_KEYS or key == "nepoch"}
    values["dataset"] = DATASET
    from_mapping(values, str(config_file or "domain shift config"))  # every other key checked once, up front
    return values, dropped


def run_row(values: dict[str, Any], row: tuple, data_root: Path, out: Path, seed: int, nepoch: int,
            protocol: str) -> dict[str, Any]:
    """One run (train, synthesize, classify) into `out`; its stage log goes to out/run.log."""
    _, setting, prior, unlabelled, on_top = row
    cfg = from_mapping({**values, **on_top, "manualSeed": seed, "nepoch": nepoch, "protocol": protocol})
    out.mkdir(parents=True, exist_ok=True)
    began = time.perf_counter()
    stage_log = io.StringIO()
    try:
        with contextlib.redirect_stderr(stage_log):
            metrics = stages.run(cfg, data_root, out)
    finally:
        atomic_write_text(out / "run.log", stage_log.getvalue())
    percent = lambda key: None if metrics.get(key) is None else round(100 * metrics[key], 1)
    return {"setting": setting, "prior": prior, "unlabelled": unlabelled, "d2_weights": f"{cfg.gamma_d2:g}/{cfg.gamma_g_d2:g}" if
            cfg.transductive else "", "epochs": nepoch, "zsl": percent("zsl_acc"), "gzsl_u": percent("gzsl_unseen"),
            "gzsl_s": percent("gzsl_seen"), "gzsl_h": percent("gzsl_h"),
            "seconds": round(time.perf_counter() - began, 1)}


def measure(out: Path, shifts: Iterable[float], seeds: Iterable[int], nepoch: int | None = None,
            protocols: Iterable[str] = PROTOCOLS, values: dict[str, Any] | None = None, data_seed: int = 0,
            rows: Iterable[tuple] = ROWS, threads: int | None = 1, progress=None) -> list[dict[str, Any]]:
    """Every row of ROWS for each shift, seed and protocol, `nepoch` epochs (None: the base config's);
    the table's rows in that order."""
    values = dict(SHIFT_CONFIG if values is None else values)
    nepoch = nepoch or values.get("nepoch") or SHIFT_CONFIG["nepoch"]
    table = []
    with torch_threads(threads):
        for shift in shifts:
            data_root = Path(out) / "data" / f"shift_{shift:g}"
            write_dataset(data_root, ShiftSpec(shift=shift, seed=data_seed))
            for seed in seeds:
                for protocol in protocols:
                    for row in rows:
                        where = Path(out) / "runs" / f"shift_{shift:g}" / f"seed{seed}" / protocol / row[0]
                        result = {"shift": shift, "seed": seed, "protocol": protocol,
                                  **run_row(values, row, data_root, where, seed, nepoch, protocol)}
                        table.append(result)
                        if progress:
                            progress(format_row(result))
    return table


# --------------------------------------------------------------------------- the table
ONE_DECIMAL = ("zsl", "gzsl_u", "gzsl_s", "gzsl_h", "seconds")


def _cell(key: str, value) -> str:
    if value is None or value == "":
        return "-"
    if isinstance(value, float):
        return f"{value:.1f}" if key in ONE_DECIMAL else f"{value:g}"
    return str(value)


def format_row(row: dict[str, Any]) -> str:
    widths = {"setting": 12, "prior": 7, "unlabelled": 11, "protocol": 8, "d2_weights": 10}
    return "  ".join(_cell(key, row.get(key)).ljust(widths.get(key, 6)) for key in COLUMNS).rstrip()


def format_table(table: list[dict[str, Any]]) -> str:
    header = format_row({key: key for key in COLUMNS})
    return "\n".join([header, "-" * len(header)] + [format_row(row) for row in table])


def to_csv(table: list[dict[str, Any]]) -> str:
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=COLUMNS, lineterminator="\n")
    writer.writeheader()
    writer.writerows({key: "" if row.get(key) is None else row[key] for key in COLUMNS} for row in table)
    return buffer.getvalue()


# --------------------------------------------------------------------------- the command
def _number(kind, check, wanted: str):
    def parse(text: str):
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected {wanted}, found {text!r}") from None
        if not check(value):
            raise argparse.ArgumentTypeError(f"expected {wanted}, found {text!r}")
        return value
    return parse


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m tfvaegan.bench.domain_shift", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", required=True, help="folder for the data, the runs and domain_shift.csv")
    parser.add_argument("--shift", type=_number(float, lambda v: math.isfinite(v) and v > 0, "a finite number > 0"),
                        default=2.0, help="the unseen classes' offset, in units of their means' spread along "
                        "its first principal axis (default 2)")
    parser.add_argument("--no-control", action="store_true", help="skip the control runs without shift (shift 0)")
    parser.add_argument("--seed", type=_number(int, lambda v: 0 <= v <= 2**64 - 4, "an integer in [0, 2**64 - 4]"),
                        nargs="+", default=[1],
                        help="training seed(s) (manualSeed): every row runs with each (default 1)")
    parser.add_argument("--data-seed", type=_number(int, lambda v: 0 <= v < 2**32, "an integer in [0, 2**32)"),
                        default=0, help="seed of the generated benchmark (default 0)")
    parser.add_argument("--nepoch", type=_number(int, lambda v: v > 0, "a positive integer"),
                        help="generator epochs of every run (default: the base config's, 25 in SHIFT_CONFIG)")
    parser.add_argument("--protocol", choices=PROTOCOLS, nargs="+", default=list(PROTOCOLS),
                        help="protocols to run (default: paper val)")
    parser.add_argument("--config", help="YAML file of base config keys instead of SHIFT_CONFIG "
                        "(config/benchmarks/shift.yaml holds SHIFT_CONFIG)")
    parser.add_argument("--set", nargs="+", action="extend", default=[], metavar="KEY=VALUE",
                        help="override base config keys (not those the command varies: " + ", ".join(BENCH_KEYS) + ")")
    parser.add_argument("--threads", type=_number(int, lambda v: v > 0, "a positive integer"), default=1,
                        help="torch threads (default 1; results depend on the count)")
    return parser


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    out = Path(args.out)
    try:
        if out.exists() and not out.is_dir():
            raise UserError(f"--out {out}: expected a folder, found a file")
        values, dropped = base_values(Path(args.config) if args.config else None, args.set)
        shifts = [args.shift] + ([] if args.no_control else [0.0])
        nepoch = args.nepoch or values.get("nepoch") or SHIFT_CONFIG["nepoch"]
        log = lambda line: print(line, file=sys.stderr, flush=True)
        if dropped:
            log(f"domain shift: {args.config}: keys {dropped} left out: the command sets them")
        log(f"domain shift: {len(shifts) * len(args.seed) * len(args.protocol) * len(ROWS)} runs of "
            f"{nepoch} epochs into {out}\n{format_row({key: key for key in COLUMNS})}")
        table = measure(out, shifts, args.seed, nepoch, args.protocol, values, args.data_seed,
                        threads=args.threads, progress=log)
    except UserError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    atomic_write_text(out / "domain_shift.csv", to_csv(table))
    print(format_table(table))
    print(f"\nwritten: {out / 'domain_shift.csv'}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
