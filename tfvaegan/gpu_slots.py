"""The local GPU pool: which GPUs a machine's jobs may use, and one slot of one of them held by a job.

Snakemake leaves the `gpu` resource unlimited unless `--resources gpu=N` caps it, so a local run starts as
many GPU jobs at once as it has cores. Every GPU job of the workflow therefore runs its command under

    python -m tfvaegan.gpu_slots --device <the job's device> --gpus-requested <its gpu resource> -- <command>

which claims one of `gpus` x `jobs_per_gpu` slots (an exclusive `flock` on a file of a folder every run of
this user on this machine shares: two runs in two checkouts share the cards too), sets CUDA_VISIBLE_DEVICES to
the slot's GPU and replaces itself with the command, which holds the slot until its process ends. So at most
`jobs_per_gpu` jobs share a card, jobs spread over the cards, and a job that finds every slot taken waits.
No slot is claimed by a job on the `cpu` device that requested no GPU (`gpus_per_job` 0), where the pool
has no GPU, or inside a SLURM job (SLURM assigned its GPUs) unless the pool's size is given. Torch-free: the
workflow's check before the first job (catalog.Catalog.gpu_problem) uses `pool_devices` too. docs/slurm.md,
"One machine, its GPUs", has the whole story.
"""
from __future__ import annotations

import argparse
import fcntl
import os
import re
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

NVIDIA_SMI_TIMEOUT = 20  # seconds; a hung driver query counts as no GPU, never a hung job
POLL_SECONDS = 0.5  # how often a waiting job tries the slots again
# Values of CUDA_VISIBLE_DEVICES that hide every GPU ("NoDevFiles": SLURM's, in a job given none).
HIDDEN = re.compile(r"^(-.*|NoDevFiles)$")


def parse_visible(value: str) -> list[str]:
    """The devices CUDA_VISIBLE_DEVICES names, as CUDA reads it: indices or UUIDs, up to the first empty or
    invalid entry ('' and '-1' hide every GPU)."""
    devices = []
    for entry in (part.strip() for part in value.split(",")):
        if not entry or HIDDEN.match(entry):
            break
        devices.append(entry)
    return devices


def parse_nvidia_smi(listing: str) -> list[str]:
    """The GPU indices of `nvidia-smi -L` ('GPU 0: NVIDIA H100 ... (UUID: GPU-...)' lines; MIG lines skipped)."""
    return re.findall(r"^GPU (\d+):", listing, flags=re.MULTILINE)


def visible_gpus(env: Mapping[str, str] = os.environ, run: Callable = subprocess.run) -> list[str]:
    """The GPUs this process may use, without importing torch: CUDA_VISIBLE_DEVICES's when it is set, else
    those `nvidia-smi -L` lists ([] without the tool, or when it fails)."""
    if "CUDA_VISIBLE_DEVICES" in env:
        return parse_visible(env["CUDA_VISIBLE_DEVICES"])
    try:
        done = run(["nvidia-smi", "-L"], capture_output=True, text=True, timeout=NVIDIA_SMI_TIMEOUT, check=False)
    except (OSError, subprocess.SubprocessError):
        return []
    return parse_nvidia_smi(done.stdout) if done.returncode == 0 else []


def how_found(env: Mapping[str, str] = os.environ) -> str:
    """Where `visible_gpus` looked, for messages."""
    if "CUDA_VISIBLE_DEVICES" in env:
        return f"CUDA_VISIBLE_DEVICES={env['CUDA_VISIBLE_DEVICES']!r}"
    return "CUDA_VISIBLE_DEVICES unset, `nvidia-smi -L` lists none"


def pool_devices(gpus: int | None, env: Mapping[str, str] = os.environ, run: Callable = subprocess.run) -> list[str]:
    """The pool's GPUs: those visible (gpus None), or the first `gpus` of them; a count beyond those found
    (a machine whose GPUs were not found, a test's faked ones) gives indices 0..gpus-1."""
    found = visible_gpus(env, run)
    if gpus is None:
        return found
    return found[:gpus] if len(found) >= gpus else [str(i) for i in range(gpus)]


def slot_folder(env: Mapping[str, str] = os.environ) -> Path:
    """The lock files' folder: $TFVAEGAN_GPU_SLOT_DIR, else one per user in the temporary folder (local to
    the machine, as its GPUs are)."""
    given = env.get("TFVAEGAN_GPU_SLOT_DIR")
    return Path(given) if given else Path(tempfile.gettempdir()) / f"tfvaegan-gpu-slots-{os.getuid()}"


@dataclass
class Slot:
    device: str        # the GPU's entry: an index (or a UUID) as CUDA_VISIBLE_DEVICES names it
    number: int        # which of the GPU's jobs_per_gpu slots
    fd: int            # the locked file, open until the process (or the command it becomes) ends
    waited: float      # seconds spent waiting for it
    claimed_at: float  # time.time() when it was claimed

    def release(self) -> None:
        os.close(self.fd)


def _lock_file(folder: Path, device: str, number: int) -> Path:
    return folder / f"gpu-{re.sub(r'[^A-Za-z0-9._-]', '_', device)}.slot{number}.lock"


def try_claim(devices: Sequence[str], jobs_per_gpu: int, folder: Path) -> tuple[str, int, int] | None:
    """The first free slot, the cards' first slots before any card's second (jobs spread over the cards):
    (device, slot number, locked fd), or None when every slot is taken."""
    folder.mkdir(parents=True, exist_ok=True, mode=0o700)
    for number in range(jobs_per_gpu):
        for device in devices:
            fd = os.open(_lock_file(folder, device, number), os.O_RDWR | os.O_CREAT, 0o600)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                os.close(fd)
                continue
            return device, number, fd
    return None


def claim(devices: Sequence[str], jobs_per_gpu: int, folder: Path, poll: float = POLL_SECONDS,
          on_wait: Callable[[], None] | None = None) -> Slot:
    """A slot of one of `devices`, waiting (trying again every `poll` seconds) while all are taken; `on_wait`
    is called once, when the first try finds none free."""
    if not devices or jobs_per_gpu < 1:
        raise ValueError(f"a GPU pool needs at least one GPU and one job per GPU, found {list(devices)} and "
                         f"{jobs_per_gpu}")
    began = time.monotonic()
    while (found := try_claim(devices, jobs_per_gpu, folder)) is None:
        if on_wait is not None:
            on_wait()
            on_wait = None
        time.sleep(poll)
    device, number, fd = found
    return Slot(device, number, fd, time.monotonic() - began, time.time())


# --------------------------------------------------------------------------- the command wrapper
@dataclass(frozen=True)
class Plan:
    devices: tuple[str, ...]  # the GPUs to claim a slot of; () claims none
    pinned: bool              # the device names one GPU (cuda:N): CUDA_VISIBLE_DEVICES is left as it is
    why: str                  # what the log says


def plan(device: str, gpus: int | None, env: Mapping[str, str] = os.environ,
         run: Callable = subprocess.run, requested: int = 0) -> Plan:
    """Which slots a job on `device` (cpu, auto, cuda, cuda:N) that `requested` GPUs (Snakemake's `gpu`
    resource) competes for, given the pool's size (`gpus`, None: the GPUs visible). A job that requested a GPU
    holds a slot whatever its device, as Snakemake would count it under `--resources gpu=N`."""
    if device == "cpu" and requested < 1:
        return Plan((), False, "device cpu, no GPU requested: no GPU slot")
    if gpus is None and env.get("SLURM_JOB_ID"):
        return Plan((), False, f"SLURM job {env['SLURM_JOB_ID']}: SLURM assigned its GPUs ({how_found(env)})")
    devices = pool_devices(gpus, env, run)
    if not devices:
        why = "config key 'gpus' is 0" if gpus == 0 else f"no GPU found ({how_found(env)})"
        return Plan((), False, f"{why}: no GPU slot (device {device})")
    pinned = re.fullmatch(r"cuda:(\d+)", device)
    if pinned:
        index = int(pinned.group(1))
        if index >= len(devices):
            return Plan((), False, f"device {device} is outside the pool's {len(devices)} GPU(s): no GPU slot")
        return Plan((devices[index],), True, f"device {device}: a slot of that GPU")
    return Plan(tuple(devices), False, f"a slot of {len(devices)} GPU(s)")


def _count(value: str, name: str, least: int) -> int | None:
    if value in ("", "auto", "null", "None"):
        return None
    try:
        number = int(value)
    except ValueError:
        number = None
    if number is None or number < least:
        raise SystemExit(f"error: {name}: expected auto or an integer >= {least}, found {value!r}")
    return number


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m tfvaegan.gpu_slots",
        description="Run COMMAND on a slot of the local GPU pool: claim one of GPUS x JOBS_PER_GPU slots (waiting "
                    "while all are taken), set CUDA_VISIBLE_DEVICES to its GPU and become COMMAND, which holds it "
                    "until it ends.")
    p.add_argument("--device", required=True, help="the job's device: cpu, auto, cuda or cuda:N")
    p.add_argument("--gpus-requested", type=int, default=0, metavar="N",
                   help="GPUs the job requested (the workflow's `gpu` resource, gpus_per_job); a job on device cpu "
                        "holds a slot only when this is above 0 (default 0)")
    p.add_argument("--gpus", default=os.environ.get("TFVAEGAN_GPUS", "auto"),
                   help="GPUs in the pool: auto (those visible) or N (default $TFVAEGAN_GPUS, else auto)")
    p.add_argument("--jobs-per-gpu", default=os.environ.get("TFVAEGAN_JOBS_PER_GPU", "1"),
                   help="jobs sharing one GPU (default $TFVAEGAN_JOBS_PER_GPU, else 1)")
    p.add_argument("command", nargs=argparse.REMAINDER, help="-- and the command to run")
    return p


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    command = args.command[1:] if args.command[:1] == ["--"] else args.command
    if not command:
        print("error: expected a command after --", file=sys.stderr)
        return 2
    gpus = _count(str(args.gpus), "--gpus", 0)
    jobs_per_gpu = _count(str(args.jobs_per_gpu), "--jobs-per-gpu", 1) or 1
    chosen = plan(args.device, gpus, requested=args.gpus_requested)
    if chosen.devices:
        folder = slot_folder()
        slot = claim(chosen.devices, jobs_per_gpu, folder, on_wait=lambda: print(
            f"gpu slot: every slot of the pool is taken ({len(chosen.devices)} GPU(s) x {jobs_per_gpu}); waiting",
            file=sys.stderr, flush=True))
        os.set_inheritable(slot.fd, True)  # held by COMMAND, which this process becomes
        if not chosen.pinned:
            os.environ["CUDA_VISIBLE_DEVICES"] = slot.device
        print(f"gpu slot: GPU {slot.device} (slot {slot.number + 1} of {jobs_per_gpu}; {chosen.why}; "
              f"CUDA_VISIBLE_DEVICES={os.environ.get('CUDA_VISIBLE_DEVICES', '')}) after waiting {slot.waited:.1f} s, "
              f"claimed at {slot.claimed_at:.3f}", file=sys.stderr, flush=True)
    else:
        print(f"gpu slot: none ({chosen.why})", file=sys.stderr, flush=True)
    try:
        os.execvp(command[0], command)
    except OSError as exc:
        print(f"error: {command[0]}: {exc.strerror}", file=sys.stderr)
        return 127
    return 0  # not reached


if __name__ == "__main__":
    sys.exit(main())
