"""Average the metrics of a benchmark's splits into one run's metrics.json.

The action benchmarks are evaluated over several class splits (the official scripts: UCF101
splits 1-29, HMDB51 split 1) and reported as the mean. The seed folder's metrics.json holds that
mean under the usual keys, so the tables treat a split benchmark like any other; the per-split
numbers stay in `splits`.

    python -m tfvaegan.splits --metrics .../split_1/metrics.json ... --out .../seed0/metrics.json
"""
from __future__ import annotations

import argparse
import json
import math
import sys
from pathlib import Path

AVERAGED = ("zsl_acc", "gzsl_seen", "gzsl_unseen", "gzsl_h", "seconds_per_epoch")
SAME_FOR_ALL = ("benchmark", "protocol", "variant", "seed")


def average_metrics(runs: list[dict], sources: list[str] | None = None) -> dict:
    """One metrics mapping whose headline numbers are the mean over `runs` (the splits)."""
    from tfvaegan.cli import UserError

    if not runs:
        raise UserError("average over splits: expected at least one metrics.json, found none")
    sources = sources or [f"split {i + 1}" for i in range(len(runs))]
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
    merged["data"] = {"splits": [r.get("data") for r in runs]}
    merged["notes"] = [f"mean over {len(runs)} split(s), as the official action scripts report"] + \
        sorted({note for r in runs for note in (r.get("notes") or [])})
    return merged


def _run(args: argparse.Namespace) -> int:
    from tfvaegan.cli import UserError

    runs = []
    for path in args.metrics:
        try:
            runs.append(json.loads(Path(path).read_text()))
        except (OSError, json.JSONDecodeError) as exc:
            raise UserError(f"{path}: expected a readable metrics.json ({exc})") from None
    from tfvaegan.fileio import atomic_write_text

    merged = average_metrics(runs, list(args.metrics))
    out = Path(args.out)
    atomic_write_text(out, json.dumps(merged, indent=2) + "\n")
    print(f"average over {len(runs)} split(s): ZSL {merged['zsl_acc']}, H {merged['gzsl_h']} -> {out}",
          file=sys.stderr)
    return 0


def add_cli(subparsers) -> None:
    p = subparsers.add_parser("average-splits", help="average the metrics.json of a benchmark's splits",
                              description=__doc__.split("\n\n")[0])
    p.add_argument("--metrics", nargs="+", required=True, help="metrics.json of each split")
    p.add_argument("--out", required=True, help="metrics.json to write (the seed folder's)")
    p.set_defaults(func=_run)


def main(argv: list[str] | None = None) -> int:
    from tfvaegan.cli import UserError

    parser = argparse.ArgumentParser(prog="python -m tfvaegan.splits")
    add_cli(parser.add_subparsers(dest="command"))
    args = parser.parse_args(["average-splits", *(sys.argv[1:] if argv is None else argv)])
    try:
        return args.func(args)
    except UserError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    raise SystemExit(main())
