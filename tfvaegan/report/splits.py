"""Average the metrics of a benchmark's splits into one run's metrics.json.

The action benchmarks are evaluated over several class splits (the official scripts: UCF101
splits 1-29, HMDB51 split 1) and reported as the mean. The seed folder's metrics.json holds that
mean under the usual keys, so the tables treat a split benchmark like any other; the per-split
numbers stay in `splits`.

    python -m tfvaegan average-splits --metrics .../split_1/metrics.json ... --out .../seed0/metrics.json
"""
from __future__ import annotations

import json
import math
import sys
from pathlib import Path

from tfvaegan.errors import UserError
from tfvaegan.fileio import atomic_write_text
from tfvaegan.record import HEADLINE_METRICS
from tfvaegan.report.tables import check_run, read_metrics_json

AVERAGED = (*HEADLINE_METRICS, "seconds_per_epoch")
SAME_FOR_ALL = ("benchmark", "protocol", "variant", "method", "features", "setting", "transductive_prior",
                "transductive_unlabelled", "seed")  # `method` absent in splits written before it: TF-VAEGAN's


def average_metrics(runs: list[dict], sources: list[str] | None = None) -> dict:
    """One metrics mapping whose headline numbers are the mean over `runs` (the splits)."""
    if not runs:
        raise UserError("average over splits: expected at least one metrics.json, found none")
    sources = sources or [f"split {i + 1}" for i in range(len(runs))]
    runs = [{**run, "method": run.get("method") or "tfvaegan"} for run in runs]  # older files: TF-VAEGAN's
    for key in SAME_FOR_ALL:
        values = {json.dumps(r.get(key)) for r in runs}
        if len(values) > 1:
            raise UserError(f"average over splits: key '{key}': expected one value for all splits, "
                            f"found {sorted(values)} in {sources}")
    merged = {key: runs[0].get(key) for key in SAME_FOR_ALL}
    for key in AVERAGED:
        values = [r.get(key) for r in runs]
        present = [float(v) for v in values if v is not None]
        if present and len(present) != len(values):
            missing = [s for s, v in zip(sources, values) if v is None]
            raise UserError(f"average over splits: key '{key}': expected a number in every split, "
                            f"found none in {missing}")
        merged[key] = math.fsum(present) / len(present) if present else None
    merged["n_splits"] = len(runs)
    merged["splits"] = [{"source": s, **{k: r.get(k) for k in AVERAGED + ("best_epoch_zsl", "best_epoch_gzsl")},
                         "dataset": (r.get("config") or {}).get("dataset")} for s, r in zip(sources, runs)]
    merged["config"] = runs[0].get("config")
    merged["provenance"] = runs[0].get("provenance")  # the first split's, as `config`; null from older files
    merged["data"] = {"splits": [r.get("data") for r in runs]}
    merged["notes"] = [f"mean over {len(runs)} split(s), as the official action scripts report"] + \
        sorted({note for r in runs for note in (r.get("notes") or [])})
    return merged


def _check_split(path: str, data: dict) -> None:
    """The keys averaging reads beyond those the tables check (tables.check_run does the rest)."""
    seconds = data.get("seconds_per_epoch")
    if seconds is not None and (isinstance(seconds, bool) or not isinstance(seconds, (int, float))
                                or not 0.0 <= seconds < math.inf):
        raise UserError(f"{path}: key 'seconds_per_epoch': expected a non-negative number or null, "
                        f"found {seconds!r}")
    notes = data.get("notes")
    if notes is not None and (not isinstance(notes, list) or not all(isinstance(n, str) for n in notes)):
        raise UserError(f"{path}: key 'notes': expected a list of strings or null, found {notes!r}")


def read_split_metrics(paths: list[str]) -> list[dict]:
    """Every split's metrics.json, each checked as the tables check one; one clear error for a bad file."""
    runs = []
    for path in paths:
        data = read_metrics_json(path)
        check_run(path, data)
        _check_split(path, data)
        runs.append(data)
    return runs


def average_splits(metrics: list[str | Path], out: str | Path) -> dict:
    """`average-splits`: the splits' metrics.json files → the seed folder's metrics.json."""
    runs = read_split_metrics([str(m) for m in metrics])
    merged = average_metrics(runs, [str(m) for m in metrics])
    out = Path(out)
    atomic_write_text(out, json.dumps(merged, indent=2) + "\n")
    print(f"average over {len(runs)} split(s): ZSL {merged['zsl_acc']}, H {merged['gzsl_h']} -> {out}",
          file=sys.stderr)
    return merged
