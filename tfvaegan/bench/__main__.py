"""`python -m tfvaegan.bench`: speed of training and evaluation on a CUB-sized problem (bench/timing.py)."""
from __future__ import annotations

import argparse
import json
from pathlib import Path

from tfvaegan.bench import timing
from tfvaegan.bench.problem import write_cub_sized_dataset
from tfvaegan.device import prepare_device, resolve_device
from tfvaegan.fileio import atomic_write_text


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tfvaegan.bench", description=timing.__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--json", help="also write the numbers to this JSON file")
    parser.add_argument("--device", default="auto", help="auto (CUDA when present), cpu, cuda, cuda:N")
    parser.add_argument("--steps", type=int, help="generator steps timed per pass type, each followed by "
                        "its GEMMs alone and by the official step; medians are reported "
                        "(default: 7 on CPU, 50 on CUDA)")
    parser.add_argument("--no-eval", action="store_true", help="skip the evaluation timing (eval_s)")
    parser.add_argument("--no-official", action="store_true", help="skip the official-transcription baseline")
    parser.add_argument("--write-data", metavar="DIR", help="only write the CUB-sized problem as an xlsa17 "
                        "dataset DIR/CUB (random features) and print the command that times a whole run on it")
    parser.add_argument("--compile", action="store_true", help="time our step with the config's compile: true "
                        "(torch.compile of the step's forward passes; compiling happens in the warm-up step)")
    args = parser.parse_args(argv)
    if args.write_data:
        folder = write_cub_sized_dataset(Path(args.write_data))
        print(f"wrote {folder}; time a whole CUB-sized run (official settings, evaluated every epoch) with:\n"
              f"  time python -m tfvaegan run --data-root {args.write_data} --dataset CUB "
              f"--config config/benchmarks/cub.yaml --out results/bench_run")
        return 0
    device = resolve_device(args.device)
    prepare_device(device)
    steps = args.steps or (50 if device.type == "cuda" else 7)
    report = timing.bench(steps, not args.no_eval, not args.no_official, device, args.compile)
    for key, value in report.items():
        print(f"{key:>22}: {value:.4g}" if isinstance(value, float) else f"{key:>22}: {value}")
    if args.json:
        atomic_write_text(args.json, json.dumps(report, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
