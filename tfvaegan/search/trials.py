"""One search trial, and the search's results collected from all of them.

A trial is the val protocol's selection run for one configuration (`protocols.choose_on_validation`):
training on the validation split's train part, evaluated on the validation split after every
epoch, the epoch count chosen there. Its score is the validation row of the chosen epoch, i.e. what
the val protocol will carry into the final run. No trial learns from a test row: the files are
read and validated whole (`load_benchmark`), then the trial works on `validation_only`, a copy in
which every row outside trainval_loc has NaN features (and a label of -1 unless it lies in val_loc,
whose classes the validation split's notes count), whose `split` refuses a row outside trainval_loc
and whose `test_split` refuses to be built; the split is built from trainval_loc only and
leak-checked (protocols.validation_split), and the selection refuses any row evaluated on another
split (method.selection.best_row).

`collect` ranks the trials by the search's metric (the earliest trial on ties, as the official
code compares epochs) and writes trials.csv, best.yaml (the best trial's config, a file `run
--config` accepts as it is), the search's figure, and optionally the final run's selection cache:
the best trial's selection run is the final run's (same config, seed and data), so the final run
reuses it and only retrains on trainval and evaluates once on the test set.
"""
from __future__ import annotations

import csv
import dataclasses
import io
import json
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np

from tfvaegan import artifacts, protocols, stages
from tfvaegan import config as config_module
from tfvaegan.config import Config
from tfvaegan.data.load import Benchmark, load_benchmark
from tfvaegan.device import device_for
from tfvaegan.errors import ConfigError, LeakError, UserError
from tfvaegan.fileio import atomic_path, atomic_write_text
from tfvaegan.method.selection import best_index
from tfvaegan.record import HEADLINE_METRICS, percent
from tfvaegan.report.trials import trials_png
from tfvaegan.search.space import METRICS, refuse_run_values, refuse_searched, trial_id

TRIAL_FORMAT = "tfvaegan-search-trial/1"
VALIDATION_METRICS = HEADLINE_METRICS  # at the chosen epoch
# trial.json keys collect reads, and the type each must have
TRIAL_KEYS = {"trial": str, "settings": dict, "validation": dict, "generator_epochs": int,
              "seconds": (int, float), "config": dict, "data_root": str, "selection_cache": dict}
FIGURE = "trials.png"


# --------------------------------------------------------------------------- the fence
@dataclass(frozen=True)
class ValidationOnly(Benchmark):
    """The benchmark a trial reads (`validation_only`): no split may hold a row outside trainval_loc."""

    def split(self, train, test_seen, test_unseen, device="cpu"):
        trainval = np.asarray(self.raw.locs["trainval"]).ravel()
        for name, part in (("train", train), ("seen evaluation", test_seen), ("unseen evaluation", test_unseen)):
            outside = np.setdiff1d(np.asarray(part, dtype=np.int64).ravel(), trainval)
            if outside.size:
                raise LeakError(f"search trial: the {name} part of a split holds {outside.size} images outside "
                                f"trainval_loc (first indices {outside[:5].tolist()}); a trial reads training "
                                "images only")
        return super().split(train, test_seen, test_unseen, device)

    def test_split(self, device="cpu"):
        raise LeakError("search trial: the test split was asked for; a trial reads training images only")


def validation_only(benchmark: Benchmark) -> ValidationOnly:
    """`benchmark` as a trial may read it: every row outside trainval_loc gets NaN features, and a
    label of -1 unless it lies in val_loc (the validation split's notes count val_loc's classes);
    its splits refuse such rows and its test split refuses to be built."""
    raw = benchmark.raw
    n_rows = len(raw.labels)
    training = np.zeros(n_rows, dtype=bool)
    training[np.asarray(raw.locs["trainval"], dtype=np.int64).ravel()] = True
    labelled = training.copy()
    if raw.locs.get("val") is not None:
        labelled[np.asarray(raw.locs["val"], dtype=np.int64).ravel()] = True
    features = np.where(training[:, None], raw.features, np.array(np.nan, dtype=raw.features.dtype))
    labels = np.where(labelled, raw.labels, np.array(-1, dtype=raw.labels.dtype))
    return ValidationOnly(dataclasses.replace(raw, features=features, labels=labels), benchmark.cfg,
                          benchmark.data_root)


def refuse_refused_keys(cfg: Config, keys: Sequence[str]) -> None:
    """The search section's refusals (search.space.REFUSED_KEYS) for one trial: its searched keys, and
    its whole config for a value that reads test labels; one UserError naming the key."""
    try:
        for key in keys:
            refuse_searched(key, getattr(cfg, key), key)
        refuse_run_values(cfg.to_dict(), lambda key: f"config key '{key}'", "the trial's config")
    except ConfigError as exc:
        raise ConfigError(f"search trial: {exc}") from None


# --------------------------------------------------------------------------- one trial
def run_trial(cfg: Config, data_root: Path, keys: Sequence[str], out_path: Path,
              selection_features: Path | None = None) -> dict:
    """The selection run of `cfg` on the validation split; writes trial.json (`out_path`).

    `keys` are the searched keys, whose values in `cfg` are the trial's settings. The selection
    cache and the resumable checkpoint live beside trial.json, so an interrupted trial resumes.
    `selection_features`: the feature file the selection run reads (a fine-tuned benchmark's selection
    backbone's, as the val protocol's selection run reads it: protocols.selection_benchmark).
    """
    if cfg.manualSeed is None:
        raise UserError("search trial: config key 'manualSeed': expected the search's seed, found null "
                        "(every trial of a search must see the same validation split)")
    refuse_refused_keys(cfg, keys)
    cfg = dataclasses.replace(cfg, protocol="val")
    out_path = Path(out_path)
    settings = {key: getattr(cfg, key) for key in keys}
    began = time.perf_counter()
    device = device_for(cfg.device, cfg.amp)
    stages.log(f"search trial {trial_id(settings)}: {_settings_text(settings)}")
    loaded = load_benchmark(data_root, cfg)
    selection_data = (None if selection_features is None else
                      validation_only(protocols.selection_benchmark(loaded, selection_features)))
    benchmark = validation_only(loaded)  # no test row past this line
    model_path = out_path.with_name("model.pt")  # never written: it names the cache and the checkpoint
    selection, _ = protocols.choose_on_validation(benchmark, device, model_path, selection_data)
    cache = artifacts.selection_cache_path(model_path)
    record = {
        "format": TRIAL_FORMAT, "trial": trial_id(settings), "settings": settings,
        "validation": {key: selection["validation"].get(key) for key in VALIDATION_METRICS},
        "generator_epochs": selection["generator_epochs"], "seconds": time.perf_counter() - began,
        "config": cfg.to_dict(), "data_root": str(data_root),
        "selection_cache": json.loads(cache.read_text()),  # what the final run reuses
    }
    atomic_write_text(out_path, json.dumps(record, indent=1, default=float) + "\n")
    model_path.with_suffix(".select.ckpt").unlink(missing_ok=True)
    scores = "  ".join(f"{key} {percent(record['validation'][key], '%')}" for key in VALIDATION_METRICS)
    stages.log(f"trial {record['trial']} on validation, epoch {record['generator_epochs']}: {scores}")
    return record


def _settings_text(settings: dict) -> str:
    return ", ".join(f"{key}={value}" for key, value in settings.items())


# --------------------------------------------------------------------------- collecting
def read_trial(path: Path) -> dict:
    """A trial.json as `run_trial` writes it; one error naming the file and the key otherwise."""
    path = Path(path)
    try:
        record = json.loads(path.read_text())
    except FileNotFoundError:
        raise UserError(f"{path}: file not found") from None
    except ValueError as exc:  # JSONDecodeError, UnicodeDecodeError
        raise UserError(f"{path}: expected a {TRIAL_FORMAT} JSON file, found unreadable text ({exc})") from None
    if not isinstance(record, dict) or record.get("format") != TRIAL_FORMAT:
        found = record.get("format") if isinstance(record, dict) else type(record).__name__
        raise UserError(f"{path}: key 'format': expected {TRIAL_FORMAT!r}, found {found!r}")
    for key, kind in TRIAL_KEYS.items():
        if not isinstance(record.get(key), kind) or isinstance(record.get(key), bool):
            names = " or ".join(k.__name__ for k in (kind if isinstance(kind, tuple) else (kind,)))
            raise UserError(f"{path}: key {key!r}: expected a {names}, found {record.get(key)!r}")
    return record


def _check_one_search(trials: list[dict], paths: Sequence[Path]) -> None:
    """Every trial searched the same keys on the same config (apart from those keys)."""
    keys = list(trials[0]["settings"])
    base = {k: v for k, v in trials[0]["config"].items() if k not in keys}
    for record, path in zip(trials[1:], paths[1:]):
        if list(record["settings"]) != keys:
            raise UserError(f"{path}: key 'settings': expected the keys {keys} of {paths[0]}, "
                            f"found {list(record['settings'])} (a trial of another search?)")
        differing = sorted(k for k, v in record["config"].items() if k not in keys and base.get(k) != v)
        if differing:
            raise UserError(f"{path}: key 'config.{differing[0]}': expected {base.get(differing[0])!r} as in "
                            f"{paths[0]} (only the searched keys may differ), found {record['config'][differing[0]]!r}")


def _scores(trials: list[dict], paths: Sequence[Path], metric: str) -> list[float]:
    if metric not in METRICS:
        raise UserError(f"search collect --metric: expected one of {', '.join(METRICS)}, found {metric!r}")
    scores = []
    for record, path in zip(trials, paths):
        value = record["validation"].get(metric)
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            hint = " (the trial ran without GZSL: rank by zsl_acc, or search with gzsl: true)" \
                if metric != "zsl_acc" and value is None else ""
            raise UserError(f"{path}: key 'validation.{metric}': expected a number, found {value!r}{hint}")
        scores.append(float(value))
    return scores


def trials_table(trials: list[dict], ranks: list[int]) -> str:
    """trials.csv: trial, the searched keys, the validation metrics, generator_epochs, seconds, rank."""
    keys = list(trials[0]["settings"])
    columns = ["trial", *keys, *(f"val_{m}" for m in VALIDATION_METRICS), "generator_epochs", "seconds", "rank"]
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(columns)
    for record, rank in zip(trials, ranks):
        values = [record["trial"], *(record["settings"][k] for k in keys),
                  *(record["validation"].get(m) for m in VALIDATION_METRICS),
                  record["generator_epochs"], round(record["seconds"], 1), rank]
        writer.writerow(["" if value is None else value for value in values])
    return buffer.getvalue()


def best_yaml(best: dict, metric: str, score: float, n_trials: int) -> str:
    """The best trial's config as a flat config file, with a header saying where it comes from."""
    header = (
        f"tfvaegan search: the best of {n_trials} trials by validation {metric} ({score:.4f}): trial "
        f"{best['trial']}\n({_settings_text(best['settings'])}). Every trial was scored on the val "
        "protocol's validation split\n(training data only); the test set was not read. Retrain on trainval "
        "and evaluate once on the test set:\n"
        "  python -m tfvaegan run --data-root <data root> --config best.yaml --out <folder>"
    )
    return config_module.to_yaml(config_module.from_mapping(best["config"], f"trial {best['trial']}"), header)


def collect(trial_paths: Sequence[str | Path], metric: str, out_dir: str | Path,
            final_model: str | Path | None = None) -> dict:
    """Rank the trials; write trials.csv, best.yaml and trials.png into out_dir and, with
    `final_model`, the best trial's selection run as that model's selection cache. Every trial is
    read and checked, and every output made, before anything is written."""
    paths = [Path(p) for p in trial_paths]
    if not paths:
        raise UserError("search collect --trials: expected at least one trial.json, found none")
    trials = [read_trial(p) for p in paths]
    _check_one_search(trials, paths)
    scores = _scores(trials, paths, metric)
    order = sorted(range(len(trials)), key=lambda i: (-scores[i], i))  # the earliest trial on ties
    ranks = [order.index(i) + 1 for i in range(len(trials))]
    best = trials[best_index(scores)]
    out_dir = Path(out_dir)
    outputs = {
        out_dir / "trials.csv": trials_table(trials, ranks).encode(),
        out_dir / "best.yaml": best_yaml(best, metric, max(scores), len(trials)).encode(),
        out_dir / FIGURE: trials_png(trials, scores, metric, best["trial"]),
    }
    if final_model is not None:
        cache = artifacts.selection_cache_path(Path(final_model))
        outputs[cache] = json.dumps(best["selection_cache"], indent=1).encode()
    for path, content in outputs.items():
        with atomic_path(path) as temp:
            temp.write_bytes(content)
    stages.log(f"best of {len(trials)} trials by validation {metric}: {best['trial']} "
               f"({_settings_text(best['settings'])}) {percent(max(scores), '%')}; wrote {out_dir}/best.yaml")
    return best
