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
- ops_per_step / ops_per_epoch / ops_per_eval: operators dispatched (what a GPU launches as one
  or more kernels each; at batch 64 a step is bound by launches, which no CPU timing shows), and
  host_reads_per_step / _per_epoch / _per_eval: reads of a device value on the host (item, float,
  bool, tolist), each a synchronisation on a GPU; counted with a dispatch mode, the same on any machine;
- official_*: the same measured for literal transcriptions of the official training iteration and
  per-epoch evaluation (tfvaegan/bench/official.py, its own networks with the same weights and
  host-side batches) in the same process, and the speed-ups over them.

--write-data DIR writes this problem as an xlsa17 dataset instead, for timing a whole
`python -m tfvaegan run` end to end (the real CUB features are not needed for that).
"""
from __future__ import annotations

import dataclasses
import math
import platform
import time
import traceback

import torch
from torch.utils._python_dispatch import TorchDispatchMode

from tfvaegan.bench.official import official_evaluation, official_generator_step, official_nets, official_optimizers
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


class DispatchCounter(TorchDispatchMode):
    """Counts the operators dispatched inside the `with` block (what a GPU launches as kernels, one or
    more each) and, among them and the tensors' tolist(), the host reads of a device value (item,
    float, bool, tolist): each is a synchronisation on a GPU. Machine-independent figures."""

    def __init__(self):
        super().__init__()
        self.ops = 0
        self.host_reads = 0

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        self.ops += 1
        if func is torch.ops.aten._local_scalar_dense.default and not _in_optimizer():
            self.host_reads += 1
        return func(*args, **(kwargs or {}))

    def __enter__(self):
        self._tolist = torch.Tensor.tolist
        counter = self

        def counted_tolist(tensor):
            counter.host_reads += 1
            return counter._tolist(tensor)

        torch.Tensor.tolist = counted_tolist
        return super().__enter__()

    def __exit__(self, *exc):
        torch.Tensor.tolist = self._tolist
        return super().__exit__(*exc)


def _in_optimizer() -> bool:
    """Called from torch.optim: the default Adam reads its step counters, host tensors (no
    synchronisation on a GPU either)."""
    return any("/torch/optim/" in frame.filename for frame in traceback.extract_stack())


def counted(fn) -> DispatchCounter:
    with DispatchCounter() as counter:
        fn()
    return counter


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
    model = trainer.model
    # The official code on the same problem: its own networks (the same weights), optimisers and
    # host-side batches, as train_images.py keeps its data on the host.
    nets = official_nets(cfg, {name: getattr(model, name).state_dict() for name in official_nets(cfg).modules()},
                         device) if with_official else None
    official_opts = official_optimizers(nets, cfg) if with_official else None
    host_data = data.to("cpu")
    report.update(_time_steps(trainer, nets, official_opts, host_data, steps, with_official))
    report["epoch_s"] = report.pop("mean_step_s") * steps_per_epoch
    report["ops_per_epoch"] = report["ops_per_step"] * steps_per_epoch
    # per epoch beyond its steps: ours reads the mean losses and λ once (epoch()); the official loop
    # prints four losses (`.data[0]` each)
    report["host_reads_per_epoch"] = report["host_reads_per_step"] * steps_per_epoch + 2
    if with_official:
        report["official_epoch_s"] = report.pop("official_mean_step_s") * steps_per_epoch
        report["official_ops_per_epoch"] = report["official_ops_per_step"] * steps_per_epoch
        report["official_host_reads_per_epoch"] = report["official_host_reads_per_step"] * steps_per_epoch + 4
        report["speedup_vs_official"] = report["official_epoch_s"] / report["epoch_s"]
    report["epoch_tflop"] = report["step_flop"] * steps_per_epoch / 1e12
    if with_official:
        report["official_epoch_tflop"] = report.pop("official_step_flop") * steps_per_epoch / 1e12
    if with_eval:
        report.update(_time_evaluation(model, nets, cfg, data, with_official))
        report["projected_run_s"] = cfg.nepoch * (report["epoch_s"] + report["eval_s"])
        if with_official:
            report["eval_speedup_vs_official"] = report["official_eval_s"] / report["eval_s"]
            report["official_projected_run_s"] = cfg.nepoch * (report["official_epoch_s"] + report["official_eval_s"])
    return report


def _time_steps(trainer, nets, official_opts, host_data, steps: int, with_official: bool) -> dict:
    """Medians of interleaved timings, `steps` rounds per pass type: our step, its GEMMs alone, and
    the official step, so that all three see the same machine (a shared host drifts by tens of
    percent within minutes); the products and operators of one step of each, counted."""
    cfg, device = trainer.cfg, trainer.device
    step_seconds, step_flop, gemm_s, official, official_flop = [], [], [], [], []
    ops, reads, official_ops, official_reads = [], [], [], []
    for feedback_pass in (False, True):
        ours = lambda: trainer.step(feedback_pass)
        theirs = lambda: official_generator_step(nets, official_opts, cfg, host_data, int(feedback_pass), cfg.lambda1)
        ours()  # warm-up (and compiling, with --compile)
        with GemmRecorder() as recorder, torch.compiler.set_stance("force_eager"):
            ours()  # products recorded from the eager step: compiling fuses elementwise work, not GEMMs
        step_flop.append(sum(2 * m * k * n for m, k, n, _ in recorder.shapes))
        count = counted(ours)
        ops.append(count.ops)
        reads.append(count.host_reads)
        run_gemms = gemm_runner(recorder.shapes, device)
        if with_official:
            with GemmRecorder() as recorder:
                theirs()
            official_flop.append(sum(2 * m * k * n for m, k, n, _ in recorder.shapes))
            count = counted(theirs)
            official_ops.append(count.ops)
            official_reads.append(count.host_reads)
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
    out = {"mean_step_s": sum(step_seconds) / 2, "steps_per_s": 2 / sum(step_seconds),
           "step_flop": sum(step_flop) / 2, "step_tflops_per_s": sum(step_flop) / sum(step_seconds) / 1e12,
           "gemm_ratio": sum(gemm_s) / sum(step_seconds), "ops_per_step": sum(ops) / 2,
           "host_reads_per_step": sum(reads) / 2}
    if with_official:
        out.update(official_mean_step_s=sum(official) / 2, official_steps_per_s=2 / sum(official),
                   official_step_flop=sum(official_flop) / 2, official_ops_per_step=sum(official_ops) / 2,
                   official_host_reads_per_step=sum(official_reads) / 2)
    return out


def _time_evaluation(model, nets, cfg, data, with_official: bool) -> dict:
    """A run evaluates after every epoch, so the steady state (buffers already allocated) is what an
    epoch costs; the first call is reported beside it. The official evaluation runs between the two,
    so that drift of the machine does not favour either side. Then one counted evaluation of each."""
    device = data.attribute.device
    generator = torch.Generator(device=device).manual_seed(1)
    out = {"eval_first_s": timed(lambda: evaluate(model, data, cfg, generator), device)}
    if with_official:
        out["official_eval_s"] = timed(lambda: official_evaluation(nets, cfg, data), device)
    out["eval_s"] = timed(lambda: evaluate(model, data, cfg, generator), device)
    count = counted(lambda: evaluate(model, data, cfg, generator))
    out.update(ops_per_eval=count.ops, host_reads_per_eval=count.host_reads)
    if with_official:
        count = counted(lambda: official_evaluation(nets, cfg, data))
        out.update(official_ops_per_eval=count.ops, official_host_reads_per_eval=count.host_reads)
    return out
