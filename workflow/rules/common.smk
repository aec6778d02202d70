# Configuration checks, the benchmark x protocol x variant x seed product, and input helpers.
# Everything a rule needs to know about a run is derived here from config/config.yaml.
import functools
import json
import re
import shlex
from pathlib import Path

from snakemake.exceptions import WorkflowError
from snakemake.utils import validate

from tfvaegan.config import ConfigError, from_mapping
from tfvaegan.config import read_file as read_config_file

validate(config, schema="../schemas/config.schema.yaml", set_default=True)

PROJECT_ROOT = Path(workflow.basedir).parent
DATA = config["data_root"].rstrip("/")
RESULTS = config["results_root"].rstrip("/")
DATASETS_README = PROJECT_ROOT / "datasets" / "README.md"
# Jobs run `python -m tfvaegan` from this checkout, whatever the working directory or environment
# (e.g. a conda environment from workflow/envs, which holds only the dependencies).
# (Snakemake formats the prefix like a command, hence the doubled braces.)
shell.prefix("export PYTHONPATH={}${{{{PYTHONPATH:+:$PYTHONPATH}}}}; ".format(shlex.quote(str(PROJECT_ROOT))))
# Software of every rule when run with --sdm conda.
CONDA_ENV = "../envs/tfvaegan.yaml"


def _fail(message):
    raise WorkflowError(message)


for _name in config["benchmarks"]:
    if _name not in config["catalog"]:
        _fail(f"config key 'benchmarks': {_name!r} has no entry under 'catalog' "
              f"(known: {sorted(config['catalog'])})")
# Variant and benchmark names become folders of results/: letters, digits and _.+-, not starting with
# a dot ('.', '..' and hidden folders would leave or hide the run folder); a benchmark must not take
# the name of results/tables or results/plots, nor contain a '/', which would shift every wildcard.
NAME_REGEX = r"[A-Za-z0-9_+-][A-Za-z0-9_.+-]*"
for _name in config["variants"]:
    if not re.fullmatch(NAME_REGEX, str(_name)):
        _fail(f"config key 'variants': name {_name!r} must be letters, digits or _.+-, not starting with "
              f"a dot (it becomes a folder)")
for _name in config["catalog"]:
    if not re.fullmatch(NAME_REGEX, str(_name)) or _name in ("tables", "plots"):
        _fail(f"config key 'catalog': name {_name!r} must be letters, digits or _.+-, not starting with "
              f"a dot, and not 'tables' or 'plots' (it becomes a folder next to results/tables)")


def benchmark_file(benchmark):
    """The benchmark's hyperparameter file; relative paths are relative to the project root."""
    path = Path(config["catalog"][benchmark]["config"])
    return path if path.is_absolute() else PROJECT_ROOT / path


def _load_file_values(benchmark):
    path = benchmark_file(benchmark)
    if not path.is_file():
        _fail(f"config key 'catalog.{benchmark}.config': file {path} not found")
    try:
        return read_config_file(path)  # as the jobs read it: 1e-5 a float, a key given twice refused
    except ConfigError as exc:
        _fail(str(exc))


def _download_benchmarks():
    return [b for b in config["download"]["benchmarks"]
            if b in config["catalog"] and config["catalog"][b].get("features", "provided") == "provided"]


# The selected benchmarks, and those of the download archive (whose files the download rule names).
# FILE_VALUES: the hyperparameter file as written; BENCHMARK_VALUES: with the catalog entry's
# `settings` on top (a custom benchmark inherits a named benchmark's file and overrides its
# dataset, file stems or hyperparameters there). Jobs get the file plus --set for the rest.
FILE_VALUES = {b: _load_file_values(b) for b in dict.fromkeys(config["benchmarks"] + _download_benchmarks())}
BENCHMARK_VALUES = {b: {**values, **(config["catalog"][b].get("settings") or {})} for b, values in FILE_VALUES.items()}


def splits(benchmark):
    """The splits a benchmark runs over ([] for one fixed split, like the image benchmarks)."""
    return list(config["catalog"][benchmark].get("splits") or [])


def run_values(benchmark, protocol, variant, seed, split=None):
    """The run's Config values: benchmark file < variant < overrides < protocol, seed and split."""
    values = dict(BENCHMARK_VALUES[benchmark])
    values.update(config["variants"][variant] or {})
    values.update(config["overrides"] or {})
    values.update(protocol=protocol, manualSeed=int(seed))
    if split is not None:
        values["dataset"] = config["catalog"][benchmark]["split_dataset"].format(split=split)
    return values


@functools.lru_cache(maxsize=None)  # checked for every run at start-up, then asked again per job
def run_settings(benchmark, protocol, variant, seed, split=None):
    """`--set k=v` arguments (on top of --config <benchmark file>) and the resolved values."""
    values = run_values(benchmark, protocol, variant, seed, split)
    source = f"{benchmark_file(benchmark)} with variant {variant!r}"
    try:
        from_mapping(values, source)  # unknown keys or bad values stop the DAG before any job runs
    except ConfigError as exc:
        _fail(str(exc))
    on_top = {k: v for k, v in values.items() if FILE_VALUES[benchmark].get(k, object()) != v
              or k in ("protocol", "manualSeed")}
    sets = " ".join(shlex.quote(f"--set={k}={json.dumps(v)}") for k, v in sorted(on_top.items()))
    return sets, json.dumps(values, sort_keys=True)


def config_for(benchmark, split=None):
    """A Config of the benchmark file (with the split's dataset), for file locations."""
    values = dict(BENCHMARK_VALUES[benchmark])
    if split is not None:
        values["dataset"] = config["catalog"][benchmark]["split_dataset"].format(split=split)
    return from_mapping(values, str(benchmark_file(benchmark)))


# --------------------------------------------------------------------------- runs and paths
def seed_dirs(benchmarks=None):
    """Every results/<benchmark>/<protocol>/<variant>/seed<N> folder the config asks for."""
    return [f"{RESULTS}/{b}/{p}/{v}/seed{s}"
            for b in (benchmarks or config["benchmarks"]) for p in config["protocols"]
            for v in config["variants"] for s in config["seeds"]]


def all_metrics():
    return [f"{d}/metrics.json" for d in seed_dirs()]


def all_train_logs():
    """train_log.csv next to each seed's metrics.json (split benchmarks have theirs per split)."""
    return [f"{d}/train_log.csv" for d in seed_dirs([b for b in config["benchmarks"] if not splits(b)])]


def _alternatives(names):
    return "|".join(re.escape(n) for n in names) or "(?!)"  # (?!) matches nothing


_SPLIT_BENCHMARKS = [b for b in config["catalog"] if config["catalog"][b].get("splits")]
_PLAIN_BENCHMARKS = [b for b in config["catalog"] if b not in _SPLIT_BENCHMARKS]
_SEED_PART = rf"(?:paper|val)/{NAME_REGEX}/seed\d+"
# A run folder: the seed folder of a benchmark with one split, or a split folder below the seed
# folder of a benchmark with several (whose seed folder holds only the averaged metrics.json).
RUN_REGEX = (f"(?:{_alternatives(_PLAIN_BENCHMARKS)})/{_SEED_PART}"
             f"|(?:{_alternatives(_SPLIT_BENCHMARKS)})/{_SEED_PART}/split_\\d+")
SPLIT_BENCHMARK_REGEX = _alternatives(_SPLIT_BENCHMARKS)
BENCHMARK_REGEX = _alternatives(config["catalog"])


def parse_run(run):
    """'cub/paper/tfvaegan/seed0' or 'hmdb51/val/tfvaegan/seed1/split_1' -> its parts."""
    parts = run.split("/")
    split = int(parts[4][len("split_"):]) if len(parts) == 5 else None
    return dict(benchmark=parts[0], protocol=parts[1], variant=parts[2], seed=int(parts[3][len("seed"):]),
                split=split)


# Every run's Config is checked now, so that a bad variant or override (an unknown key, a value of the
# wrong type) stops Snakemake with one message before the DAG is built, for any target.
for _benchmark in config["benchmarks"]:
    for _variant in config["variants"]:
        for _protocol in config["protocols"]:
            for _seed in config["seeds"]:
                for _split in splits(_benchmark) or [None]:
                    run_settings(_benchmark, _protocol, _variant, _seed, _split)


def train_settings(wildcards):
    run = parse_run(wildcards.run)
    return run_settings(**run)


def dataset_of(wildcards):
    run = parse_run(wildcards.run)
    return run_values(**run)["dataset"]


def data_record(wildcards):
    return f"{RESULTS}/{parse_run(wildcards.run)['benchmark']}/data.json"


def split_metrics(wildcards):
    seed_dir = f"{RESULTS}/{wildcards.benchmark}/{wildcards.protocol}/{wildcards.variant}/seed{wildcards.seed}"
    return [f"{seed_dir}/split_{k}/metrics.json" for k in splits(wildcards.benchmark)]


# --------------------------------------------------------------------------- data files
def extraction_settings(benchmark):
    merged = dict(config["extraction"])
    merged.update(config["catalog"][benchmark].get("extraction") or {})
    return merged


def data_files(benchmark):
    """Feature, split (one per split) and manual-attribute files the benchmark reads: the layout of
    tfvaegan.data.feature_path / split_path / manual_attribute_path (not imported here: it
    would load torch each time Snakemake parses the workflow; tests check the two agree)."""
    configs = [config_for(benchmark, k) for k in splits(benchmark)] or [config_for(benchmark)]
    first = configs[0]
    feature = f"{DATA}/{first.image_embedding_path or first.dataset}/{first.image_embedding}.mat"
    files = [feature] + [f"{DATA}/{c.dataset}/{c.class_embedding}_splits.mat" for c in configs]
    if first.manual_att:
        files.append(str(Path(feature).parent / first.manual_att_file))
    return files


def checked_data_files(wildcards):
    """data_files, refusing early (with a pointer to datasets/README.md) when a provided file is
    missing and no rule of this workflow can make it."""
    benchmark = wildcards.benchmark
    files = data_files(benchmark)
    mode = config["catalog"][benchmark].get("features", "provided")
    if mode == "provided" and benchmark not in _download_benchmarks():
        missing = [f for f in files if not Path(f).exists()]
        if missing:
            _fail(f"benchmark {benchmark!r}: {missing[0]} not found"
                  f"{f' (and {len(missing) - 1} more)' if len(missing) > 1 else ''}; "
                  f"{DATASETS_README} says which files go where and where to get them")
    return files


def data_datasets(benchmark):
    """The dataset folders to verify ('--dataset' per split, or the benchmark file's own)."""
    return [config_for(benchmark, k).dataset for k in splits(benchmark)] or [config_for(benchmark).dataset]


def resources_of(rule_name):
    return config["resources"][rule_name]


def gpus(wildcards):
    return config["gpus_per_job"]


# --------------------------------------------------------------------------- data rules' helpers
def _benchmarks_with_features(modes):
    return [b for b in config["benchmarks"] if config["catalog"][b].get("features") in modes]


def _folder_regex(modes):
    return _alternatives(sorted({config_for(b).dataset for b in _benchmarks_with_features(modes)}))


def _embedding_regex(modes):
    return _alternatives(sorted({config_for(b).image_embedding for b in _benchmarks_with_features(modes)}))


def _folder_benchmark(folder):
    return next(b for b in config["benchmarks"] if config_for(b).dataset == folder)


def _in_dataset_folder(folder, path, default):
    """A catalog path: absolute, or relative to the dataset's folder in the data root."""
    path = Path(path or default)
    return str(path if path.is_absolute() else Path(DATA) / folder / path)


def image_root(wildcards):
    entry = config["catalog"][_folder_benchmark(wildcards.folder)]
    return _in_dataset_folder(wildcards.folder, entry.get("image_root"), ".")


def image_list(wildcards):
    entry = config["catalog"][_folder_benchmark(wildcards.folder)]
    return _in_dataset_folder(wildcards.folder, entry.get("image_list"), "image_list.txt")


def extraction_args(wildcards):
    settings = extraction_settings(_folder_benchmark(wildcards.folder))
    args = [f"--backbone {settings['backbone']}", f"--image-size {settings['image_size']}",
            f"--batch-size {settings['batch_size']}", f"--device {settings['device']}",
            f"--seed {settings['seed']}"]
    if settings.get("weights"):
        args.append(f"--weights {shlex.quote(str(settings['weights']))}")
    if settings.get("allow_random_init"):
        args.append("--allow-random-init")
    if settings.get("strip_prefix"):
        args.append(f"--strip-prefix {shlex.quote(settings['strip_prefix'])}")
    return " ".join(args)
