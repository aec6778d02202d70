"""The run record's vocabulary: the headline metrics every run reports (metrics.json, train_log.csv, the
tables, the split means, the search's validation scores), how a fraction is shown to a person, the
one-line progress messages the stages print, and the provenance every record carries (where it was
computed). Torch-free at import (`provenance` imports torch when called), on the ground floor: every room
may use it.
"""
from __future__ import annotations

import os
import platform
import re
import subprocess
import sys
from pathlib import Path

# A run's headline numbers, as fractions in metrics.json: ZSL per-class top-1, then GZSL's seen and
# unseen per-class top-1 and their harmonic mean (GZSL ones are null for a ZSL-only benchmark).
HEADLINE_METRICS = ("zsl_acc", "gzsl_seen", "gzsl_unseen", "gzsl_h")
GZSL_METRICS = HEADLINE_METRICS[1:]


def percent(value: float | None, unit: str = "") -> str:
    """A fraction as a percentage with one decimal ("12.3", or "12.3%" with unit="%"); "-" for None."""
    return "-" if value is None else f"{100 * value:.1f}{unit}"


def log(message: str, stage: str = "") -> None:
    """A progress line on stderr (the workflow's logs/<rule>/... files), flushed at once."""
    print(f"{stage}: {message}" if stage else message, file=sys.stderr, flush=True)


# --------------------------------------------------------------------------- provenance
PROVENANCE_KEYS = ("tfvaegan_version", "git_commit", "git_dirty", "python", "torch", "cuda", "cudnn", "device",
                   "cuda_visible_devices", "torch_threads", "platform")
GIT_TIMEOUT = 10  # seconds; a git that hangs (a network file system) gives a null commit, never an error


def provenance(device=None) -> dict:
    """Where a result was computed (metrics.json and model.pt's `provenance`): the package's version and,
    run from a git checkout, its commit and whether tracked files differ from it (null otherwise); Python,
    torch, CUDA and cuDNN versions (null without them); the device's name (the GPU's for a CUDA `device`,
    else the CPU's model) and which of the machine's GPUs the process saw (CUDA_VISIBLE_DEVICES, as the local
    GPU pool or SLURM set it; null when unset); torch's thread count (CPU results are reproducible for a given
    count); the operating system. No host name. Reads nothing a result depends on, so it changes no number."""
    import torch

    from tfvaegan import __version__

    commit, dirty = git_state()
    return {"tfvaegan_version": __version__, "git_commit": commit, "git_dirty": dirty,
            # plain str: torch.__version__ is a TorchVersion, which model.pt's weights-only loading refuses
            "python": platform.python_version(), "torch": str(torch.__version__), "cuda": _text(torch.version.cuda),
            "cudnn": _cudnn_version(torch), "device": device_name(device),
            "cuda_visible_devices": os.environ.get("CUDA_VISIBLE_DEVICES"),
            "torch_threads": torch.get_num_threads(), "platform": platform.platform()}


def git_state(folder: Path = Path(__file__).parent) -> tuple[str | None, bool | None]:
    """(commit, dirty) of the git checkout `folder`'s package files are tracked in; (None, None) when git is
    absent, fails, hangs, or the package is not tracked there (installed elsewhere, inside another repo)."""
    if _git(folder, "ls-files", "--error-unmatch", "__init__.py") is None:
        return None, None
    commit = _git(folder, "rev-parse", "HEAD")
    if commit is None or not re.fullmatch(r"[0-9a-f]{40}", commit):
        return None, None
    status = _git(folder, "status", "--porcelain", "--untracked-files=no")
    return commit, None if status is None else bool(status)


def _git(folder: Path, *args: str) -> str | None:
    """git's output in `folder`, or None. No lock is taken (GIT_OPTIONAL_LOCKS=0: `status` does not refresh
    the index), so a run never disturbs someone's git command in the same checkout."""
    try:
        done = subprocess.run(["git", *args], cwd=folder, capture_output=True, text=True, timeout=GIT_TIMEOUT,
                              env={**os.environ, "GIT_OPTIONAL_LOCKS": "0"}, check=False)
    except (OSError, subprocess.SubprocessError):
        return None
    return done.stdout.strip() if done.returncode == 0 else None


def _text(value) -> str | None:
    return None if value is None else str(value)


def _cudnn_version(torch) -> int | None:
    try:
        version = torch.backends.cudnn.version() if torch.backends.cudnn.is_available() else None
        return None if version is None else int(version)
    except Exception:  # noqa: BLE001 - a broken cuDNN install is recorded as absent, not a failed run
        return None


def device_name(device=None) -> str | None:
    """The GPU's name for a CUDA `device` (torch.device or "cuda:N"), else the CPU's model."""
    import torch

    device = torch.device(device) if device is not None else torch.device("cpu")
    if device.type == "cuda" and torch.cuda.is_available():
        return torch.cuda.get_device_name(device)
    return cpu_model()


def cpu_model() -> str | None:
    """The CPU's model name (/proc/cpuinfo on Linux), else what `platform` knows; None when nothing does."""
    try:
        for line in Path("/proc/cpuinfo").read_text(errors="replace").splitlines():
            key, _, value = line.partition(":")
            if key.strip() in ("model name", "Model", "cpu model") and value.strip():
                return value.strip()
    except OSError:
        pass
    return platform.processor() or platform.machine() or None
