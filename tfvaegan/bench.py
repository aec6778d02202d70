"""`python -m tfvaegan.bench`: speed of training and evaluation on a CUB-sized problem.

Official CUB settings (7057 training features of 2048-d, 312-d attributes, 200 classes, 50 of them
unseen, ngh = ndh = 4096, batch 64, critic_iter 5, feedback_loop 2, syn_num 300) on random data
of those shapes. Prints and optionally writes (--json):

- epoch_s: seconds per training epoch (median time of a generator step of each pass type, x steps
  per epoch);
- eval_s: seconds for one per-epoch evaluation as the official loop does it (synthesis with
  feedback + GZSL and ZSL classifiers, 25 epochs each), in steady state (eval_first_s: the first);
- steps_per_s: generator steps (each with its critic steps) per second;
- step_flop: FLOPs of one generator step, summed over the matrix products it runs (recorded
  from the shapes of every GEMM the step dispatches: forward, backward, double backward);
- gemm_ratio: FLOP/s of the training step / FLOP/s of the same GEMMs run back to back (outputs
  preallocated); each step is timed right before its GEMMs, so that the pair sees the same
  machine, and the median pair ratio of each pass type is weighted by its median step time;
- projected_run_s: a whole CUB run with the official settings, nepoch (300) x (epoch_s + eval_s);
- official_*: the same measured for literal transcriptions of the official training iteration and
  per-epoch evaluation (tfvaegan.reference) in the same process, and the speed-ups over them.

--write-data DIR writes this problem as an xlsa17 dataset instead, for timing a whole
`python -m tfvaegan run` end to end (the real CUB features are not needed for that).
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import math
import platform
import time
from pathlib import Path

import torch
from torch.utils._python_dispatch import TorchDispatchMode

from tfvaegan.classify import evaluate
from tfvaegan.config import Config
from tfvaegan.data import ZSLData, write_mat
from tfvaegan.fileio import atomic_write_text
from tfvaegan.reference import official_evaluation, official_generator_step, official_optimizers
from tfvaegan.train import Trainer, prepare_device, resolve_device

CUB = dict(n_train=7057, n_test_seen=1764, n_test_unseen=2967, n_seen=150, n_unseen=50, res=2048, att=312)
CUB_CONFIG = dict(gammaD=10, gammaG=10, encoded_noise=True, nepoch=300, ngh=4096, ndh=4096, lr=1e-4,
                  classifier_lr=1e-3, lambda1=10, critic_iter=5, batch_size=64, syn_num=300,
                  recons_weight=0.01, a1=1, a2=1, feed_lr=1e-5, dec_lr=1e-4, feedback_loop=2, manualSeed=3483)


def cub_sized_samples(seed: int = 0) -> dict[str, torch.Tensor]:
    """Random features and class embeddings of CUB's shapes (classes 0-149 seen, 150-199 unseen)."""
    g = torch.Generator().manual_seed(seed)
    n_classes = CUB["n_seen"] + CUB["n_unseen"]
    attribute = torch.rand(n_classes, CUB["att"], generator=g)
    attribute /= attribute.norm(dim=1, keepdim=True)
    seen, unseen = torch.arange(CUB["n_seen"]), torch.arange(CUB["n_seen"], n_classes)
    arrays = {"attribute": attribute, "seen": seen, "unseen": unseen}
    for name, n, classes in (("train", CUB["n_train"], seen), ("test_seen", CUB["n_test_seen"], seen),
                             ("test_unseen", CUB["n_test_unseen"], unseen)):
        arrays[f"{name}_y"] = classes[torch.randint(len(classes), (n,), generator=g)]
        arrays[f"{name}_x"] = torch.rand(n, CUB["res"], generator=g)
    return arrays


def cub_sized_problem(device: torch.device, seed: int = 0) -> tuple[Config, ZSLData]:
    a = cub_sized_samples(seed)
    data = ZSLData(a["train_x"], a["train_y"], a["test_seen_x"], a["test_seen_y"], a["test_unseen_x"],
                   a["test_unseen_y"], a["attribute"], a["seen"], a["unseen"]).to(device)
    cfg = Config(**CUB_CONFIG, device=str(device)).resolved(CUB["res"], CUB["att"], len(a["attribute"]))
    return cfg, data


def write_cub_sized_dataset(root: Path, seed: int = 0) -> Path:
    """The bench's problem as an xlsa17 dataset <root>/CUB (res101.mat, att_splits.mat), so that a
    whole `python -m tfvaegan run` with config/benchmarks/cub.yaml can be timed where CUB is absent.
    Random features: the accuracies mean nothing, the time is a CUB run's."""
    a = cub_sized_samples(seed)
    parts = ("train", "test_seen", "test_unseen")
    features = torch.cat([a[f"{part}_x"] for part in parts])
    labels = torch.cat([a[f"{part}_y"] for part in parts]) + 1
    bounds = torch.tensor([0] + [len(a[f"{part}_y"]) for part in parts]).cumsum(0).tolist()
    loc = lambda start, stop: torch.arange(start + 1, stop + 1, dtype=torch.float64).numpy()[:, None]
    folder = Path(root) / "CUB"
    folder.mkdir(parents=True, exist_ok=True)
    write_mat(folder / "res101.mat", {"features": features.t().numpy(),
                                      "labels": labels.double().numpy()[:, None]})
    write_mat(folder / "att_splits.mat", {"att": a["attribute"].t().double().numpy(),
                                          "trainval_loc": loc(bounds[0], bounds[1]),
                                          "test_seen_loc": loc(bounds[1], bounds[2]),
                                          "test_unseen_loc": loc(bounds[2], bounds[3])})
    return folder


class GemmRecorder(TorchDispatchMode):
    """Records (m, k, n) of every matrix product dispatched inside the `with` block."""

    def __init__(self):
        super().__init__()
        self.shapes: list[tuple[int, int, int, torch.dtype]] = []

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        name = func.overloadpacket.__name__
        if name in ("mm", "addmm"):
            a, b = (args[0], args[1]) if name == "mm" else (args[1], args[2])
            self.shapes.append((a.shape[0], a.shape[1], b.shape[1], a.dtype))
        return func(*args, **(kwargs or {}))


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def timed(fn, device: torch.device) -> float:
    sync(device)
    began = time.perf_counter()
    fn()
    sync(device)
    return time.perf_counter() - began


def median(values: list[float]) -> float:
    ordered = sorted(values)
    middle = len(ordered) // 2
    return ordered[middle] if len(ordered) % 2 else (ordered[middle - 1] + ordered[middle]) / 2


def gemm_runner(shapes, device: torch.device):
    """A function running the recorded GEMMs back to back (same shapes and dtype, outputs preallocated)."""
    operands = [(torch.rand(m, k, device=device, dtype=dtype), torch.rand(k, n, device=device, dtype=dtype),
                 torch.empty(m, n, device=device, dtype=dtype)) for m, k, n, dtype in shapes]

    def run_all():
        for a, b, out in operands:
            torch.mm(a, b, out=out)

    run_all()
    return run_all


def bench(steps: int, with_eval: bool, with_official: bool, device: torch.device, compile: bool = False) -> dict:
    cfg, data = cub_sized_problem(device)
    cfg = dataclasses.replace(cfg, compile=compile)
    torch.manual_seed(0)
    trainer = Trainer(cfg, data, device)
    steps_per_epoch = cfg.feedback_loop * math.ceil(CUB["n_train"] / cfg.batch_size)
    report: dict = {"device": str(device), "torch": torch.__version__, "threads": torch.get_num_threads(),
                    "cpu": platform.processor() or platform.machine(), "timed_steps_per_pass": steps,
                    "steps_per_epoch": steps_per_epoch, "compile": compile}
    if device.type == "cuda":
        report["gpu"] = torch.cuda.get_device_name(device)

    # Medians of interleaved timings, `steps` rounds per pass type: our step, its GEMMs alone, and
    # the official step, so that all three see the same machine (a shared host drifts by tens of
    # percent within minutes). The official step trains the same model with its own optimisers.
    model = trainer.model
    official_opts = official_optimizers(model, cfg) if with_official else None
    host = (data.train_feature.cpu(), data.train_label.cpu()) if device.type == "cuda" else (None, None)
    step_seconds, step_flop, gemm_s, official, official_flop = [], [], [], [], []
    for feedback_pass in (False, True):
        ours = lambda: trainer.step(feedback_pass)
        theirs = lambda: official_generator_step(model, official_opts, cfg, data, feedback_pass, cfg.lambda1, *host)
        ours()  # warm-up (and compiling, with --compile)
        with GemmRecorder() as recorder, torch.compiler.set_stance("force_eager"):
            ours()  # products recorded from the eager step: compiling fuses elementwise work, not GEMMs
        step_flop.append(sum(2 * m * k * n for m, k, n, _ in recorder.shapes))
        run_gemms = gemm_runner(recorder.shapes, device)
        if with_official:
            with GemmRecorder() as recorder:
                theirs()
            official_flop.append(sum(2 * m * k * n for m, k, n, _ in recorder.shapes))
        step_times, gemm_times, official_times = [], [], []
        for _ in range(steps):
            step_times.append(timed(ours, device))
            gemm_times.append(timed(run_gemms, device))
            if with_official:
                official_times.append(timed(theirs, device))
        del run_gemms
        step_seconds.append(median(step_times))
        # GEMM time of a step's worth of work: the median ratio of back-to-back pairs times the median step.
        gemm_s.append(median([g / t for g, t in zip(gemm_times, step_times)]) * step_seconds[-1])
        if with_official:
            official.append(median(official_times))
    mean_step = sum(step_seconds) / 2
    report.update(
        epoch_s=mean_step * steps_per_epoch,
        steps_per_s=1 / mean_step,
        step_flop=sum(step_flop) / 2,
        epoch_tflop=sum(step_flop) / 2 * steps_per_epoch / 1e12,
        step_tflops_per_s=sum(step_flop) / sum(step_seconds) / 1e12,
        gemm_ratio=sum(gemm_s) / sum(step_seconds),
    )
    if with_official:
        report.update(official_epoch_s=sum(official) / 2 * steps_per_epoch,
                      official_steps_per_s=2 / sum(official),
                      official_epoch_tflop=sum(official_flop) / 2 * steps_per_epoch / 1e12,
                      speedup_vs_official=sum(official) / sum(step_seconds))
    if with_eval:
        # A run evaluates after every epoch, so the steady state (buffers already allocated) is
        # what an epoch costs; the first call is reported beside it. The official evaluation runs
        # between the two, so that drift of the machine does not favour either side.
        generator = torch.Generator(device=device).manual_seed(1)
        report["eval_first_s"] = timed(lambda: evaluate(model, data, cfg, generator), device)
        if with_official:
            report["official_eval_s"] = timed(lambda: official_evaluation(model, cfg, data), device)
        report["eval_s"] = timed(lambda: evaluate(model, data, cfg, generator), device)
        report["projected_run_s"] = cfg.nepoch * (report["epoch_s"] + report["eval_s"])
        if with_official:
            report["eval_speedup_vs_official"] = report["official_eval_s"] / report["eval_s"]
            report["official_projected_run_s"] = cfg.nepoch * (report["official_epoch_s"] + report["official_eval_s"])
    return report


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tfvaegan.bench", description=__doc__,
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
    report = bench(steps, not args.no_eval, not args.no_official, device, args.compile)
    for key, value in report.items():
        print(f"{key:>22}: {value:.4g}" if isinstance(value, float) else f"{key:>22}: {value}")
    if args.json:
        atomic_write_text(args.json, json.dumps(report, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
