# The configuration checked, the runs it asks for, and the rules' input functions.
# A run is one benchmark x protocol x variant x seed; its folder, RUN, is the results layout:
#   results/{benchmark}/{protocol}/{variant}/seed{seed}/            one run (image benchmarks)
#   results/{benchmark}/{protocol}/{variant}/seed{seed}/split_{split}/   one split of it (actions)
import fnmatch
import functools
import json
import re
import shlex
import sys
from pathlib import Path

import yaml
from snakemake.exceptions import WorkflowError
from snakemake.utils import update_config, validate

# The workflow reads the package of this checkout, as its jobs do (PYTHONPATH below), not whichever
# copy happens to be installed.
sys.path.insert(0, str(Path(workflow.basedir).parent))

from tfvaegan.config import from_mapping, layered, parse_override  # noqa: E402
from tfvaegan.config import read_file as read_config_file  # noqa: E402
from tfvaegan.data import layout  # noqa: E402
from tfvaegan.errors import ConfigError  # noqa: E402

SCHEMA = Path(workflow.basedir) / "schemas" / "config.schema.yaml"
SCHEMA_TEXT = yaml.safe_load(SCHEMA.read_text())
# Mappings of tfvaegan Config keys, read as `--set` reads its values.
RUN_KEY_MAPPINGS = ("overrides", "variants.*", "catalog.*.settings")


def _from_command_line(value, schema, where):
    """A `--config` value as the schema (or, for run keys, tfvaegan.config) reads it: Snakemake's
    parser hands list and mapping items over as text ('seeds=[0,1]' gives ['0', '1'])."""
    schema = SCHEMA_TEXT["definitions"][schema["$ref"].removeprefix("#/definitions/")] if "$ref" in schema else schema
    if any(fnmatch.fnmatch(where, pattern) for pattern in RUN_KEY_MAPPINGS) and isinstance(value, dict):
        return {k: parse_override(f"{k}={v}")[1] if isinstance(v, str) else v for k, v in value.items()}
    if isinstance(value, list):
        return [_from_command_line(item, schema.get("items", {}), f"{where}[]") for item in value]
    if isinstance(value, dict):
        extra = schema.get("additionalProperties", {})
        return {k: _from_command_line(v, schema.get("properties", {}).get(k, extra if isinstance(extra, dict) else {}),
                                      f"{where}.{k}" if where else k) for k, v in value.items()}
    kinds = schema.get("type", [])
    kinds = kinds if isinstance(kinds, list) else [kinds]
    if isinstance(value, str) and not {"string"} & set(kinds):
        parsed = parse_override(f"x={value}")[1]  # YAML 1.2: '3' an int, '1e-5' a float, 'true', 'null'
        if isinstance(parsed, (bool, int, float)) or parsed is None:
            return parsed
    return value


update_config(config, _from_command_line(dict(workflow.config_settings.config), SCHEMA_TEXT, ""))
validate(config, schema=str(SCHEMA), set_default=True)

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
# Benchmark and variant names become folders; the schema holds the rule (one source for both).
NAME_REGEX = SCHEMA_TEXT["definitions"]["name"]["pattern"].strip("^$")


def _fail(message):
    raise WorkflowError(message)


for _name in config["benchmarks"]:  # a cross-reference, which the schema cannot check
    if _name not in config["catalog"]:
        _fail(f"config key 'benchmarks': {_name!r} has no entry under 'catalog' "
              f"(known: {sorted(config['catalog'])})")

# A `search` section (rules/search.smk) tunes one catalog entry, whose data is prepared as well.
SEARCH_BENCHMARKS = [config["search"]["benchmark"]] if "search" in config else []
for _name in SEARCH_BENCHMARKS:
    if _name not in config["catalog"]:
        _fail(f"config key 'search.benchmark': {_name!r} has no entry under 'catalog' "
              f"(known: {sorted(config['catalog'])})")
PREPARED_BENCHMARKS = list(dict.fromkeys(config["benchmarks"] + SEARCH_BENCHMARKS))


# --------------------------------------------------------------------------- each run's config
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


# The hyperparameter file of each selected (or searched) benchmark, and of those of the download archive (whose
# files the download rule names), as written. A run's values are layered on it (tfvaegan.config.layered,
# as the jobs' own `--config <file> --set ...` are): the catalog entry's `settings` (a custom
# benchmark inherits a named benchmark's file and overrides its dataset, file stems or
# hyperparameters there), the variant, `overrides`, then protocol, seed and split.
FILE_VALUES = {b: _load_file_values(b) for b in dict.fromkeys(PREPARED_BENCHMARKS + _download_benchmarks())}


def features_mode(benchmark):
    return config["catalog"][benchmark].get("features", "provided")


def _settings(benchmark):
    """The catalog entry's settings; a `features: finetune` entry's runs are labelled `features: finetuned`
    (metrics.json, the tables)."""
    settings = dict(config["catalog"][benchmark].get("settings") or {})
    if features_mode(benchmark) == "finetune":
        found = settings.get("features", FILE_VALUES[benchmark].get("features", "finetuned"))
        if found != "finetuned":
            _fail(f"catalog entry {benchmark!r}: features: finetune makes fine-tuned features, but its config "
                  f"says features: {found!r} (expected finetuned, or no `features` key)")
        settings["features"] = "finetuned"
    return settings


def label_of(benchmark):
    """The benchmark's name in metrics.json and the tables (under which the paper's numbers are found)."""
    return config["catalog"][benchmark].get("label") or benchmark


def splits(benchmark):
    """The splits a benchmark runs over ([] for one fixed split, like the image benchmarks)."""
    return list(config["catalog"][benchmark].get("splits") or [])


def split_dataset(benchmark, split):
    return config["catalog"][benchmark]["split_dataset"].format(split=split)


def run_values(benchmark, protocol, variant, seed, split=None):
    """The run's Config values: benchmark file < settings < variant < overrides < protocol, seed and split."""
    on_top = _settings(benchmark)
    on_top.update(config["variants"][variant] or {})
    on_top.update(config["overrides"] or {})
    on_top.update(protocol=protocol, manualSeed=int(seed))
    if split is not None:
        on_top["dataset"] = split_dataset(benchmark, split)
    return layered(FILE_VALUES[benchmark], on_top)[0]


def checked_config(values, source):
    """The Config of a job's values; unknown keys or bad values stop the DAG before any job runs."""
    try:
        return from_mapping(values, source)
    except ConfigError as exc:
        _fail(str(exc))


@functools.lru_cache(maxsize=None)  # checked for every run at start-up, then asked again per job
def run_settings(benchmark, protocol, variant, seed, split=None):
    """`--set k=v` arguments (on top of --config <benchmark file>) and the resolved values."""
    values = run_values(benchmark, protocol, variant, seed, split)
    checked_config(values, f"{benchmark_file(benchmark)} with variant {variant!r}")
    on_top = {k: v for k, v in values.items() if FILE_VALUES[benchmark].get(k, object()) != v
              or k in ("protocol", "manualSeed")}
    sets = " ".join(shlex.quote(f"--set={k}={json.dumps(v)}") for k, v in sorted(on_top.items()))
    return sets, json.dumps(values, sort_keys=True)


def settings_of(wildcards):
    """run_settings of the run (or split) a job belongs to."""
    return run_settings(wildcards.benchmark, wildcards.protocol, wildcards.variant, int(wildcards.seed),
                        int(wildcards.split) if hasattr(wildcards, "split") else None)


def config_for(benchmark, split=None):
    """A Config of the benchmark file and its settings (with the split's dataset), for file locations."""
    on_top = _settings(benchmark)
    if split is not None:
        on_top["dataset"] = split_dataset(benchmark, split)
    return from_mapping(layered(FILE_VALUES[benchmark], on_top)[0], str(benchmark_file(benchmark)))


def settings_args(benchmark):
    """The catalog entry's settings as `--set` arguments (but its dataset, which --dataset gives per split)."""
    return " ".join(shlex.quote(f"--set={k}={json.dumps(v)}") for k, v in sorted(_settings(benchmark).items())
                    if k != "dataset")


# Every run's Config is checked now, so that a bad variant or override (an unknown key, a value of the
# wrong type) stops Snakemake with one message before the DAG is built, for any target.
for _benchmark in config["benchmarks"]:
    for _variant in config["variants"]:
        for _protocol in config["protocols"]:
            for _seed in config["seeds"]:
                for _split in splits(_benchmark) or [None]:
                    run_settings(_benchmark, _protocol, _variant, _seed, _split)


# --------------------------------------------------------------------------- the results layout
RUN = f"{RESULTS}/{{benchmark}}/{{protocol}}/{{variant}}/seed{{seed}}"
SPLIT_RUN = f"{RUN}/split_{{split}}"
RUN_NAME = "{benchmark}/{protocol}/{variant}/seed{seed}"  # of the logs and benchmarks folders
SPLIT_RUN_NAME = f"{RUN_NAME}/split_{{split}}"


def _alternatives(names):
    return "|".join(re.escape(n) for n in names) or "(?!)"  # (?!) matches nothing


BENCHMARK_REGEX = _alternatives(config["catalog"])
SPLIT_BENCHMARK_REGEX = _alternatives([b for b in config["catalog"] if splits(b)])
PLAIN_BENCHMARK_REGEX = _alternatives([b for b in config["catalog"] if not splits(b)])


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
    return [f"{d}/train_log.csv" for d in run_dirs([b for b in config["benchmarks"] if not splits(b)])]


def split_metrics(wildcards):
    return [f"{SPLIT_RUN}/metrics.json".format(split=k, **wildcards) for k in splits(wildcards.benchmark)]


# --------------------------------------------------------------------------- data files
def data_files(benchmark):
    """The feature file, the split files (one per split) and the manual-attribute file (if used) the
    benchmark reads, where tfvaegan.data.layout puts them."""
    configs = [config_for(benchmark, k) for k in splits(benchmark)] or [config_for(benchmark)]
    first = configs[0]
    files = [layout.feature_path(DATA, first)] + [layout.split_path(DATA, c) for c in configs]
    if first.manual_att:
        files.append(layout.manual_attribute_path(DATA, first))
    return [str(f) for f in files]


@functools.lru_cache(maxsize=None)  # asked once per verify job
def archive_files():
    """The files the xlsa17 download gives: those of the `download.benchmarks`. Another provided entry
    reading only these (cub_transductive reads cub's) is fetched with them."""
    return tuple(sorted({f for b in _download_benchmarks() for f in data_files(b)}))


def checked_data_files(wildcards):
    """data_files, refusing early (with a pointer to datasets/README.md) when a provided file is
    missing and no rule of this workflow can make it."""
    benchmark = wildcards.benchmark
    files = data_files(benchmark)
    mode = config["catalog"][benchmark].get("features", "provided")
    if mode == "provided" and not set(files) <= set(archive_files()):
        missing = [f for f in files if not Path(f).exists()]
        if missing:
            _fail(f"benchmark {benchmark!r}: {missing[0]} not found"
                  f"{f' (and {len(missing) - 1} more)' if len(missing) > 1 else ''}; "
                  f"{DATASETS_README} says which files go where and where to get them")
    return files


def data_datasets(benchmark):
    """The dataset folders to verify ('--dataset' per split, or the benchmark file's own)."""
    return [config_for(benchmark, k).dataset for k in splits(benchmark)] or [config_for(benchmark).dataset]


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
MADE_FEATURES = ("demo", "extract", "finetune")  # the modes whose feature file a rule of data.smk makes


def _benchmarks_with_features(modes):
    return [b for b in PREPARED_BENCHMARKS if features_mode(b) in modes]


def _folder_regex(modes):
    return _alternatives(sorted({config_for(b).dataset for b in _benchmarks_with_features(modes)}))


def _embedding_regex(modes):
    return _alternatives(sorted({config_for(b).image_embedding for b in _benchmarks_with_features(modes)}))


def _demo_folder_regex():
    """The dataset folders the demo generator fills: of `features: demo` entries and of `images: demo` ones."""
    demo = [b for b in PREPARED_BENCHMARKS
            if features_mode(b) == "demo" or config["catalog"][b].get("images") == "demo"]
    return _alternatives(sorted({config_for(b).dataset for b in demo}))


def _feature_benchmark(wildcards):
    """The benchmark whose feature file <folder>/<embedding>.mat a job makes (the first listed, when
    several share it: they agree on how it is made, as checked below)."""
    return next(b for b in _benchmarks_with_features(MADE_FEATURES)
                if (config_for(b).dataset, config_for(b).image_embedding) == (wildcards.folder, wildcards.embedding))


def extraction_settings(benchmark):
    merged = dict(config["extraction"])
    merged.update(config["catalog"][benchmark].get("extraction") or {})
    return merged


def finetuning_settings(benchmark):
    merged = dict(config["finetuning"])
    merged.update(config["catalog"][benchmark].get("finetuning") or {})
    return merged


def _how_features_are_made(benchmark):
    """What a made feature file depends on: the mode, the images, the extraction (and the fine-tuning)."""
    mode = features_mode(benchmark)
    if mode not in MADE_FEATURES:
        return (mode,)
    entry = config["catalog"][benchmark]
    made = (mode, entry.get("images", "provided"), entry.get("image_root"), entry.get("image_list"),
            extraction_settings(benchmark))
    return made + ((finetuning_settings(benchmark),) if mode == "finetune" else ())


# Benchmarks sharing a feature file must agree on how it is made: a fine-tuned file and a plain one
# under one name would overwrite each other (give the fine-tuned one its own image_embedding). Entries
# that agree share one file and one job of each rule making it (cub_finetuned and
# cub_finetuned_transductive: one fine-tuning, one extraction).
_makers = {}
for _benchmark in PREPARED_BENCHMARKS:
    _file = layout.feature_path(DATA, config_for(_benchmark))
    _first = _makers.setdefault(_file, _benchmark)
    if _how_features_are_made(_first) != _how_features_are_made(_benchmark):
        _fail(f"catalog entries {_first!r} and {_benchmark!r}: both read {_file}, but it would be made in two "
              f"ways (features: {features_mode(_first)} and {features_mode(_benchmark)}, or other images, "
              f"extraction or fine-tuning settings); make them agree (one file, made once) or give one of them "
              f"its own image_embedding under `settings`")
# Two benchmarks of one label, features kind, setting and prior would be one row of the tables.
_rows = {}
for _benchmark in config["benchmarks"]:
    _cfg = config_for(_benchmark)
    _setting = f"{_cfg.setting} ({_cfg.transductive_prior} prior)" if _cfg.transductive else _cfg.setting
    _row = (label_of(_benchmark), _cfg.features, _setting)
    if _rows.setdefault(_row, _benchmark) != _benchmark:
        _fail(f"catalog entries {_rows[_row]!r} and {_benchmark!r}: both are benchmark {_row[0]!r} with "
              f"{_row[1]} features, {_row[2]}, in the tables; give one of them another `label`")


def _in_dataset_folder(folder, path, default):
    """A catalog path: absolute, or relative to the dataset's folder in the data root."""
    path = Path(path or default)
    return str(path if path.is_absolute() else Path(DATA) / folder / path)


def image_root(wildcards):
    entry = config["catalog"][_feature_benchmark(wildcards)]
    return _in_dataset_folder(wildcards.folder, entry.get("image_root"), ".")


def image_list(wildcards):
    entry = config["catalog"][_feature_benchmark(wildcards)]
    return _in_dataset_folder(wildcards.folder, entry.get("image_list"), "image_list.txt")


FINETUNED_BACKBONE = f"{DATA}/{{folder}}/{{embedding}}_backbone.pt"  # finetune_backbone's output


def finetuned_backbone(wildcards):
    """The fine-tuned weights a `features: finetune` extraction uses ([] for the other modes)."""
    if features_mode(_feature_benchmark(wildcards)) != "finetune":
        return []
    return FINETUNED_BACKBONE.format(folder=wildcards.folder, embedding=wildcards.embedding)


def finetune_split_file(wildcards):
    """The split file whose trainval_loc names the images fine-tuning may open."""
    return str(layout.split_path(DATA, config_for(_feature_benchmark(wildcards))))


def _start_args(settings):
    """The backbone and where its weights come from, as `extract` and `finetune` both take them."""
    args = [f"--backbone {settings['backbone']}", f"--seed {settings['seed']}"]
    if settings.get("weights"):
        args.append(f"--weights {shlex.quote(str(settings['weights']))}")
    if settings.get("allow_random_init"):
        args.append("--allow-random-init")
    if settings.get("strip_prefix"):
        args.append(f"--strip-prefix {shlex.quote(settings['strip_prefix'])}")
    return args


def extraction_args(wildcards):
    """`extract`'s options; a fine-tuned extraction starts from the fine-tuned weights instead."""
    settings = extraction_settings(_feature_benchmark(wildcards))
    if finetuned_backbone(wildcards):
        settings = {**settings, "weights": finetuned_backbone(wildcards), "allow_random_init": False}
    args = _start_args(settings)
    args[1:1] = [f"--image-size {settings['image_size']}", f"--batch-size {settings['batch_size']}",
                 f"--device {settings['device']}"]
    return " ".join(args)


def finetuning_args(wildcards):
    """`finetune`'s options: the starting backbone of `extraction`, the recipe of `finetuning`."""
    benchmark = _feature_benchmark(wildcards)
    recipe = finetuning_settings(benchmark)
    args = _start_args(extraction_settings(benchmark))
    args += [f"--{key.replace('_', '-')} {recipe[key]}" for key in
             ("epochs", "lr", "batch_size", "image_size", "momentum", "weight_decay", "lr_step", "lr_gamma",
              "crop_scale", "device")]
    args += ["--flip" if recipe["flip"] else "--no-flip"] + (["--amp"] if recipe["amp"] else [])
    return " ".join(args)
