"""Snakemake as the tests run it: the interpreter running the tests, never whatever `snakemake` is on PATH.

- `python -m snakemake` of `sys.executable`, so that a venv's interpreter called by its path (an IDE,
  a CI runner) runs the same Snakemake as an activated venv does;
- the job shells' `python` is that interpreter too: its folder leads PATH, as activating a venv does
  (the workflow's rules call `python -m tfvaegan <stage>`);
- without the SLURM executor plugin unless the test uses the slurm profile (`slurm=True`). Snakemake
  imports every installed executor plugin to build its command line, and the SLURM plugin asks
  `scontrol show config` for its help text while it is imported: where Slurm's tools are installed
  but no slurmctld answers, that waits 10 s, in every snakemake call. The launcher below lists
  installed modules without it, so Snakemake never imports it.
"""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from conftest import PROJECT_ROOT

SNAKEFILE = PROJECT_ROOT / "workflow" / "Snakefile"

# `python -c LAUNCHER ARGS`: Snakemake's own command line, its plugin discovery (pkgutil.iter_modules,
# snakemake_interface_common.plugin_registry) blind to the SLURM executor plugins.
LAUNCHER = """\
import pkgutil, sys
_iter_modules = pkgutil.iter_modules
def _without_slurm(*args, **kwargs):
    return (m for m in _iter_modules(*args, **kwargs) if not m.name.startswith("snakemake_executor_plugin_slurm"))
pkgutil.iter_modules = _without_slurm
sys.argv[0] = "snakemake"
from snakemake.cli import main
main()
"""


def command(*args, slurm: bool = False) -> list[str]:
    """The argument list running `snakemake ARGS` with this interpreter."""
    start = [sys.executable, "-m", "snakemake"] if slurm else [sys.executable, "-c", LAUNCHER]
    return [*start, *map(str, args)]


def environment(base: dict | None = None, **extra: str) -> dict[str, str]:
    """BASE (default os.environ) with this interpreter's folder first on PATH, plus EXTRA. The one thread
    conftest.py gives each xdist worker is not passed on: Snakemake runs as a user's would (its rules
    set each job's OMP_NUM_THREADS)."""
    env = dict(os.environ if base is None else base)
    if env.get("PYTEST_XDIST_WORKER"):
        env.pop("OMP_NUM_THREADS", None)
    env["PATH"] = os.pathsep.join(filter(None, [str(Path(sys.executable).parent), env.get("PATH")]))
    env.update(extra)
    return env


def run(*args, cwd: Path | None = None, env: dict | None = None, timeout: float = 900,
        slurm: bool = False) -> subprocess.CompletedProcess:
    """`snakemake ARGS` (in CWD), its output captured."""
    return subprocess.run(command(*args, slurm=slurm), capture_output=True, text=True, cwd=cwd,
                          env=environment(env), timeout=timeout)


def snakemake(workdir: Path, *args, timeout: float = 900, env: dict | None = None,
              slurm: bool = False) -> subprocess.CompletedProcess:
    """The repository's workflow run in WORKDIR: `snakemake -s workflow/Snakefile -d WORKDIR ARGS`."""
    return run("-s", SNAKEFILE, "-d", workdir, *args, env=env, timeout=timeout, slurm=slurm)
