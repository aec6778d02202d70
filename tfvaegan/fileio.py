"""Atomic file writes (an output appears complete or not at all, never half-written) and checksums."""
from __future__ import annotations

import contextlib
import hashlib
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any, Callable, Iterator


def current_umask() -> int:
    """The process umask, read without changing it where Linux allows."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("Umask:"):
                return int(line.split()[1], 8)
    except (OSError, ValueError):
        pass
    # Elsewhere only set-and-restore can read it: process-global and racy with other threads, which
    # this single-threaded CLI does not have.
    mask = os.umask(0)
    os.umask(mask)
    return mask


@contextlib.contextmanager
def atomic_path(path: str | Path) -> Iterator[Path]:
    """Yield a temporary path beside `path`; move it into place if the block succeeds, else remove it."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, temp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    try:
        yield Path(temp)
        # mkstemp creates 0600; outputs are shared, so give them what a plain open() would.
        os.chmod(temp, 0o666 & ~current_umask())
        os.replace(temp, path)
    except BaseException:
        Path(temp).unlink(missing_ok=True)
        raise


def write_atomic(path: str | Path, write: Callable[[str], object]) -> None:
    """Call write(temp_path) on a temporary file beside `path`, then move it into place."""
    with atomic_path(path) as temp:
        write(str(temp))


@contextlib.contextmanager
def staging_folder(parent: str | Path, prefix: str) -> Iterator[Path]:
    """Yield a new folder in `parent` to build an output in, then move it (or its contents) into
    place; whatever is still in it when the block ends, successfully or not, is removed."""
    staging = Path(tempfile.mkdtemp(prefix=prefix, dir=parent))
    try:
        staging.chmod(0o777 & ~current_umask())  # mkdtemp's 0700 would hide a moved-in folder from its users
        yield staging
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def atomic_write_text(path: str | Path, text: str) -> None:
    with atomic_path(path) as temp:
        temp.write_text(text)


def atomic_torch_save(obj: Any, path: str | Path) -> None:
    """torch.save, atomically and byte-reproducibly."""
    import torch

    with atomic_path(path) as temp, open(temp, "wb") as handle:
        # through a handle, the archive's inner folder is "archive", not the random temporary name:
        # the same object gives the same bytes
        torch.save(obj, handle)


def sha256_of(path: str | Path, chunk: int = 1 << 20) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(chunk), b""):
            digest.update(block)
    return digest.hexdigest()
