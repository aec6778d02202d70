"""The device a run asks for, and the process-wide settings that make work on it fast."""
from __future__ import annotations

import ctypes
import sys

import torch

from tfvaegan.errors import ConfigError

M_TRIM_THRESHOLD, M_MMAP_MAX = -1, -4  # glibc mallopt parameters (malloc.h)


def resolve_device(name: str) -> torch.device:
    """'auto' picks CUDA when present; asking for CUDA where there is none is a config error."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name.startswith("cuda"):
        if not torch.cuda.is_available():
            raise ConfigError(
                f"config key 'device': expected a device that exists, found {name!r} but CUDA is not "
                f"available here (no GPU, or a CPU-only PyTorch); use device=auto or device=cpu"
            )
        index = torch.device(name).index
        if index is not None and index >= torch.cuda.device_count():
            raise ConfigError(
                f"config key 'device': expected cuda:0..cuda:{torch.cuda.device_count() - 1}, found {name!r}"
            )
    return torch.device(name)


def prepare_device(device: torch.device, tf32: bool = True) -> None:
    """Process-wide settings for fast work on `device`; idempotent.

    CUDA: TF32 matrix products unless `tf32` is off (callers pass the config's `amp`, so that
    `amp: false` is float32 throughout, as the official code ran). CPU with glibc: keep freed memory
    in the heap. Every weight-sized tensor here (33-39 MB at the official widths) is above glibc's
    largest mmap threshold (32 MB), so by default each new gradient is a fresh mmap whose pages the
    kernel faults in and zeroes, and each freed one an munmap: on a CUB-size step about 86 000 page
    faults and 0.3 CPU-seconds in the kernel, all gone once the heap recycles the blocks.
    """
    if device.type == "cuda":
        torch.backends.cuda.matmul.allow_tf32 = tf32
        torch.backends.cudnn.allow_tf32 = tf32
    elif device.type == "cpu" and sys.platform.startswith("linux"):
        mallopt = getattr(ctypes.CDLL(None), "mallopt", None)  # glibc only (not musl)
        if mallopt is not None:
            mallopt(M_MMAP_MAX, 0)
            mallopt(M_TRIM_THRESHOLD, 1 << 30)


def device_for(name: str, amp: bool) -> torch.device:
    """The device a config names (`device`, `amp`), prepared for work."""
    device = resolve_device(name)
    prepare_device(device, tf32=amp)
    return device
