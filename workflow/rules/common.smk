# The configuration checked, the runs it asks for, and the rules' input functions.
# A run is one benchmark x protocol x variant x seed; its folder, RUN, is the results layout:
#   results/{benchmark}/{protocol}/{variant}/seed{seed}/            one run (image benchmarks)
#   results/{benchmark}/{protocol}/{variant}/seed{seed}/split_{split}/   one split of it (actions)
import json
import os
import re
import shlex
import sys
from pathlib import Path

import yaml
from snakemake.exceptions import WorkflowError
from snakemake.utils import validate

# The workflow reads the package of this checkout, as its jobs do (PYTHONPATH below), not whichever
# copy happens to be installed.
sys.path.insert(0, str(Path(workflow.basedir).parent))

from tfvaegan.catalog import SELECTION_STEM, Catalog, from_command_line  # noqa: E402
from tfvaegan.errors import ConfigError  # noqa: E402

SCHEMA = Path(workflow.basedir) / "schemas" / "config.schema.yaml"
SCHEMA_TEXT = yaml.safe_load(SCHEMA.read_text())
# `--config` hands list and mapping items over as text; read them (and a config file's text where the schema
# wants a number) as the schema's types, from the merged config alone (no Snakemake internals).
config.update(from_command_line(dict(config), SCHEMA_TEXT))
validate(config, schema=str(SCHEMA), set_default=True)

PROJECT_ROOT = Path(workflow.basedir).parent
DATA = config["data_root"].rstrip("/")
RESULTS = config["results_root"].rstrip("/")
DATASETS_README = PROJECT_ROOT / "datasets" / "README.md"
# Jobs run `python -m tfvaegan` from this checkout, whatever the working directory or environment
# (e.g. a conda environment from workflow/envs, which holds only the dependencies), and find the local GPU
# pool's size (`gpus`, `jobs_per_gpu`: tfvaegan.gpu_slots) in the environment, so that changing it reruns
# nothing. (Snakemake formats the prefix like a command, hence the doubled braces.)
shell.prefix("export PYTHONPATH={}${{{{PYTHONPATH:+:$PYTHONPATH}}}} TFVAEGAN_GPUS={} TFVAEGAN_JOBS_PER_GPU={}; ".format(
    shlex.quote(str(PROJECT_ROOT)), "auto" if config["gpus"] is None else config["gpus"], config["jobs_per_gpu"]))
# Software of every rule when run with --sdm conda.
CONDA_ENV = "../envs/tfvaegan.yaml"
# Benchmark and variant names become folders; the schema holds the rule (one source for both).
NAME_REGEX = SCHEMA_TEXT["definitions"]["name"]["pattern"].strip("^$")


def _fail(message):
    raise WorkflowError(message)


# The catalog read as runs (tfvaegan.catalog, which the tests call directly): its cross-references, every
# run's config, the feature files' and the tables' agreement are checked now, so that a bad entry, variant
# or override stops Snakemake with one message before the DAG is built, for any target.
try:
    CATALOG = Catalog(config, PROJECT_ROOT)
    CATALOG.check()
except ConfigError as exc:
    _fail(str(exc))
SEARCH_BENCHMARKS = CATALOG.search_benchmarks


def run_of(wildcards):
    """(benchmark, protocol, variant, seed, split) of the run (or split) a job belongs to, as CATALOG's
    run_settings and run_device take it."""
    return (wildcards.benchmark, wildcards.protocol, wildcards.variant, int(wildcards.seed),
            int(wildcards.split) if hasattr(wildcards, "split") else None)


# --------------------------------------------------------------------------- the results layout
RUN = f"{RESULTS}/{{benchmark}}/{{protocol}}/{{variant}}/seed{{seed}}"
SPLIT_RUN = f"{RUN}/split_{{split}}"
RUN_NAME = "{benchmark}/{protocol}/{variant}/seed{seed}"  # of the logs and benchmarks folders
SPLIT_RUN_NAME = f"{RUN_NAME}/split_{{split}}"


def _alternatives(names):
    return "|".join(re.escape(n) for n in names) or "(?!)"  # (?!) matches nothing


BENCHMARK_REGEX = _alternatives(config["catalog"])
SPLIT_BENCHMARK_REGEX = _alternatives([b for b in config["catalog"] if CATALOG.splits(b)])
PLAIN_BENCHMARK_REGEX = _alternatives([b for b in config["catalog"] if not CATALOG.splits(b)])


wildcard_constraints:
    protocol="paper|val",
    variant=NAME_REGEX,
    seed=r"\d+",
    split=r"\d+",


def run_dirs(benchmarks=None):
    """Every results/<benchmark>/<protocol>/<variant>/seed<N> folder the config asks for."""
    return [RUN.format(benchmark=b, protocol=p, variant=v, seed=s)
            for b in (benchmarks or config["benchmarks"]) for p in config["protocols"]
            for v in config["variants"] for s in config["seeds"]]


def all_metrics():
    return [f"{d}/metrics.json" for d in run_dirs()]


def all_train_logs():
    """train_log.csv next to each run's metrics.json (split benchmarks have theirs per split)."""
    return [f"{d}/train_log.csv" for d in run_dirs([b for b in config["benchmarks"] if not CATALOG.splits(b)])]


def split_metrics(wildcards):
    return [f"{SPLIT_RUN}/metrics.json".format(split=k, **wildcards) for k in CATALOG.splits(wildcards.benchmark)]


# --------------------------------------------------------------------------- data files
def checked_data_files(wildcards):
    """data_files, refusing early (with a pointer to datasets/README.md) when a provided file is
    missing and no rule of this workflow can make it."""
    missing = CATALOG.missing_files(wildcards.benchmark)
    if missing:
        _fail(f"benchmark {wildcards.benchmark!r}: {missing[0]} not found"
              f"{f' (and {len(missing) - 1} more)' if len(missing) > 1 else ''}; "
              f"{DATASETS_README} says which files go where and where to get them")
    return CATALOG.data_files(wildcards.benchmark)


# --------------------------------------------------------------------------- resources
def threads_of(group):
    return config["resources"][group]["threads"]


def resources_of(group, gpu=False):
    """A rule's resources from config/config.yaml's `resources` group; GPU rules also request
    `gpus_per_job` GPUs (the `gpu` resource)."""
    settings = config["resources"][group]
    return {"mem_mb": settings["mem_mb"], "runtime": settings["runtime"],
            **({"gpu": config["gpus_per_job"]} if gpu else {})}


# --------------------------------------------------------------------------- feature extraction
FEATURE_FOLDER_REGEX = _alternatives(CATALOG.feature_folders())
FEATURE_EMBEDDING_REGEX = _alternatives(CATALOG.feature_embeddings())
FINETUNE_FOLDER_REGEX = _alternatives(CATALOG.feature_folders(["finetune"]))
FINETUNE_EMBEDDING_REGEX = _alternatives(CATALOG.feature_embeddings(["finetune"]))
DEMO_FOLDER_REGEX = _alternatives(CATALOG.demo_folders())
FINETUNED_BACKBONE = f"{DATA}/{{folder}}/{{embedding}}_backbone.pt"  # finetune_backbone's output


def finetuned_backbone(wildcards):
    """The fine-tuned weights a `features: finetune` extraction uses ([] for the other modes)."""
    if not CATALOG.is_finetuned(wildcards.folder, wildcards.embedding):
        return []
    return FINETUNED_BACKBONE.format(folder=wildcards.folder, embedding=wildcards.embedding)
