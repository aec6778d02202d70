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

import dataclasses
import math
import platform
import time

import torch
from torch.utils._python_dispatch import TorchDispatchMode

from tfvaegan.bench.official import official_evaluation, official_generator_step, official_optimizers
from tfvaegan.bench.problem import CUB, cub_sized_problem
from tfvaegan.method.evaluate import evaluate
from tfvaegan.method.train import Trainer


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
