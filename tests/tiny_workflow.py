"""One tiny run of the whole workflow, made once per test session and read by every test that checks the
workflow's outputs (tests/test_workflow.py, tests/test_search_workflow.py, the SLURM cluster test).

Its catalog covers each kind of run the workflow makes, on the demo's generated images:
  demo               plain features, inductive: tests/tiny_workflow.yaml's run, which the cluster test
                     submits through the slurm profile and compares with this one
  demo_b             plain features from the same feature file, its own hyperparameter file (a changed
                     value there reruns only demo_b); the search's benchmark
  demo_finetuned     fine-tuned features (the `finetune` rule, one epoch)
  demo_transductive  the transductive setting on demo's feature file
and `snakemake search` runs a two-trial search on demo_b after the main DAG.

Under pytest-xdist each worker is its own process: the first to ask makes the run under a file lock,
the others read it (the session's temporary root is shared by the workers).
"""
from __future__ import annotations

import json
import subprocess
from dataclasses import dataclass
from pathlib import Path

import yaml
from conftest import PROJECT_ROOT
from filelock import FileLock
from snakemake_cli import snakemake

DEFAULT_CONFIG = yaml.safe_load((PROJECT_ROOT / "config" / "config.yaml").read_text())
TINY_SETTINGS = PROJECT_ROOT / "tests" / "tiny_workflow.yaml"
BENCHMARKS = ["demo", "demo_b", "demo_finetuned", "demo_transductive"]

TINY = {  # Config keys of a demo run that takes seconds: demo_b's hyperparameter file
    "dataset": "demo", "encoder_hidden": 64, "generator_hidden": 64, "ngh": 64, "ndh": 64,
    "nepoch": 2, "syn_num": 10, "classifier_nepoch": 3, "lr": 0.001, "gammaD": 10.0, "gammaG": 10.0,
    "recons_weight": 0.01, "encoded_noise": True, "device": "cpu", "checkpoint_every": 1,
    "gzsl": True, "preprocessing": True,
}
TINY_SEARCH = {"benchmark": "demo_b", "metric": "gzsl_h", "seed": 0, "trials": 2,
               "space": {"lr": {"low": 1e-4, "high": 1e-2, "log": True}}}


def write_config(path: Path, **changes) -> Path:
    """A complete configuration (the default one with `changes`), so nothing else is merged in."""
    config = json.loads(json.dumps(DEFAULT_CONFIG))
    config.update(changes)
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    return path


def tiny_config(workdir: Path) -> dict:
    """The shared run's complete configuration (written to WORKDIR/config.yaml)."""
    (workdir / "demo_b.yaml").write_text(yaml.safe_dump(TINY))
    catalog = DEFAULT_CONFIG["catalog"]
    return {
        **yaml.safe_load(TINY_SETTINGS.read_text()),
        "benchmarks": BENCHMARKS,
        "catalog": {**catalog,
                    "demo_b": {**catalog["demo"], "config": str(workdir / "demo_b.yaml")},
                    "demo_finetuned": {**catalog["demo_finetuned"], "finetuning": {
                        "epochs": 1, "image_size": 32, "batch_size": 16, "device": "cpu"}}},
        "search": TINY_SEARCH,
    }


@dataclass(frozen=True)
class TinyRun:
    workdir: Path
    config: Path               # the complete configuration both commands ran with
    main: str                  # `snakemake --cores 2`: its stdout and stderr
    search: str                # then `snakemake --cores 2 search`



def _failed(what: str, result: subprocess.CompletedProcess) -> str:
    return f"the tiny workflow's {what} failed:\n{result.stdout[-3000:]}\n{result.stderr[-3000:]}"


def tiny_config_file(root: Path) -> Path:
    """The shared run's configuration file, ROOT/tiny_workflow/config.yaml, written by the first caller (across
    xdist workers) without running anything: the cluster test starts its SLURM run from it at once."""
    workdir = root / "tiny_workflow"
    config = workdir / "config.yaml"
    with FileLock(str(root / "tiny_workflow.config.lock")):
        if not config.is_file():
            workdir.mkdir(exist_ok=True)
            staged = write_config(workdir / "config.yaml.part", **tiny_config(workdir))
            staged.replace(config)
    return config


def make_tiny_run(root: Path) -> TinyRun:
    """The shared run under ROOT/tiny_workflow, made by the first caller (across xdist workers)."""
    config = tiny_config_file(root)
    workdir = config.parent
    done = root / "tiny_workflow.json"
    with FileLock(str(root / "tiny_workflow.lock")):
        if not done.is_file():
            main = snakemake(workdir, "--configfile", config, "--cores", "2")
            assert main.returncode == 0, _failed("main DAG", main)
            search = snakemake(workdir, "--configfile", config, "--cores", "2", "search")
            assert search.returncode == 0, _failed("search", search)
            done.write_text(json.dumps({"main": main.stdout + main.stderr, "search": search.stdout + search.stderr}))
    made = json.loads(done.read_text())
    return TinyRun(workdir, config, made["main"], made["search"])
