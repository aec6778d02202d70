"""The workflow's configuration read as runs: what each catalog entry makes and how, checked in full before
Snakemake builds its DAG. Torch-free: workflow/rules/common.smk builds a `Catalog` every time Snakemake
parses the workflow, and the tests call it directly.

A run is one benchmark x protocol x variant x seed (x split for the action benchmarks). Its config values
are layered as the jobs' own `--config <benchmark file> --set ...` are: the benchmark's file < the catalog
entry's `settings` < the variant < `overrides` < protocol, seed and split (tfvaegan.config.layered).
Every message is one line naming the config key; the workflow shows it as a WorkflowError.
"""
from __future__ import annotations

import fnmatch
import functools
import json
import shlex
from pathlib import Path

from tfvaegan import gpu_slots
from tfvaegan.config import Config, from_mapping, layered, parse_override
from tfvaegan.config import read_file as read_config_file
from tfvaegan.data import layout
from tfvaegan.errors import ConfigError

MADE_FEATURES = ("demo", "extract", "finetune")  # the feature modes whose file a rule of data.smk makes
# Mappings of tfvaegan Config keys in the workflow's configuration, read as `--set` reads its values.
RUN_KEY_MAPPINGS = ("overrides", "variants.*", "catalog.*.settings")
FINETUNING_OPTIONS = ("epochs", "lr", "batch_size", "image_size", "momentum", "weight_decay", "lr_step", "lr_gamma",
                      "crop_scale", "device")  # `finetune`'s options with a value, as the `finetuning` keys name them
# The features a val-protocol fine-tuned run's selection run reads, beside <embedding>.mat: from a backbone fine-tuned
# on the run's validation split's training part only, which the seed draws (one backbone per feature file and seed).
SELECTION_STEM = "{embedding}_selection_seed{seed}"


def from_command_line(value, schema: dict, where: str = "", definitions: dict | None = None):
    """A `snakemake --config` value as the workflow's schema (or, for run keys, tfvaegan.config) reads it:
    Snakemake's parser hands list and mapping items over as text ('seeds=[0,1]' gives ['0', '1']).
    SCHEMA is the schema's part for WHERE (the whole schema at the top, whose `definitions` `$ref`s name)."""
    definitions = schema.get("definitions", {}) if definitions is None else definitions
    if "$ref" in schema:
        schema = definitions[schema["$ref"].removeprefix("#/definitions/")]
    if any(fnmatch.fnmatch(where, pattern) for pattern in RUN_KEY_MAPPINGS) and isinstance(value, dict):
        return {k: parse_override(f"{k}={v}")[1] if isinstance(v, str) else v for k, v in value.items()}
    if isinstance(value, list):
        return [from_command_line(item, schema.get("items", {}), f"{where}[]", definitions) for item in value]
    if isinstance(value, dict):
        extra = schema.get("additionalProperties", {})
        return {k: from_command_line(v, schema.get("properties", {}).get(k, extra if isinstance(extra, dict) else {}),
                                     f"{where}.{k}" if where else k, definitions) for k, v in value.items()}
    kinds = schema.get("type", [])
    kinds = kinds if isinstance(kinds, list) else [kinds]
    if isinstance(value, str) and not {"string"} & set(kinds):
        parsed = parse_override(f"x={value}")[1]  # YAML 1.2: '3' an int, '1e-5' a float, 'true', 'null'
        if isinstance(parsed, (bool, int, float)) or parsed is None:
            return parsed
    return value


def _start_args(settings: dict) -> list[str]:
    """The backbone and where its weights come from, as `extract` and `finetune` both take them."""
    args = [f"--backbone {settings['backbone']}", f"--seed {settings['seed']}"]
    if settings.get("weights"):
        args.append(f"--weights {shlex.quote(str(settings['weights']))}")
    if settings.get("allow_random_init"):
        args.append("--allow-random-init")
    if settings.get("strip_prefix"):
        args.append(f"--strip-prefix {shlex.quote(settings['strip_prefix'])}")
    return args


class Catalog:
    """The runs a (schema-validated) workflow configuration asks for. Building one checks the catalog's
    cross-references and loads the hyperparameter file of every benchmark it prepares; `check` checks
    every run's config, the feature files' agreement and the tables' rows."""

    def __init__(self, config: dict, project_root: Path):
        self.config = config
        self.project_root = Path(project_root)
        self.data_root = config["data_root"].rstrip("/")
        for name in config["benchmarks"]:  # a cross-reference, which the schema cannot check
            self._known(name, "benchmarks")
        self.search_benchmarks = [config["search"]["benchmark"]] if "search" in config else []
        for name in self.search_benchmarks:
            self._known(name, "search.benchmark")
        # The benchmarks whose data the workflow prepares: those it runs, and the one the search tunes.
        self.prepared = list(dict.fromkeys(config["benchmarks"] + self.search_benchmarks))
        # The hyperparameter file of each prepared benchmark, and of those of the download archive (whose
        # files the download rule names), as written.
        self.file_values = {b: self._load_file_values(b) for b in dict.fromkeys(self.prepared + self.downloaded())}
        self._run_settings: dict[tuple, tuple[str, str]] = {}
        self._configs: dict[tuple, object] = {}

    def _known(self, name: str, key: str) -> None:
        if name not in self.config["catalog"]:
            raise ConfigError(f"config key {key!r}: {name!r} has no entry under 'catalog' "
                              f"(known: {sorted(self.config['catalog'])})")

    # ----------------------------------------------------------------------- an entry
    def entry(self, benchmark: str) -> dict:
        return self.config["catalog"][benchmark]

    def benchmark_file(self, benchmark: str) -> Path:
        """The benchmark's hyperparameter file; relative paths are relative to the project root."""
        path = Path(self.entry(benchmark)["config"])
        return path if path.is_absolute() else self.project_root / path

    def _load_file_values(self, benchmark: str) -> dict:
        path = self.benchmark_file(benchmark)
        if not path.is_file():
            raise ConfigError(f"config key 'catalog.{benchmark}.config': file {path} not found")
        return read_config_file(path)  # as the jobs read it: 1e-5 a float, a key given twice refused

    def downloaded(self) -> list[str]:
        """The `download.benchmarks` whose features are provided: the xlsa17 archive's."""
        return [b for b in self.config["download"]["benchmarks"]
                if b in self.config["catalog"] and self.features_mode(b) == "provided"]

    def features_mode(self, benchmark: str) -> str:
        return self.entry(benchmark).get("features", "provided")

    def settings(self, benchmark: str) -> dict:
        """The catalog entry's settings; a `features: finetune` entry's runs are labelled `features: finetuned`
        (metrics.json, the tables)."""
        settings = dict(self.entry(benchmark).get("settings") or {})
        if self.features_mode(benchmark) == "finetune":
            found = settings.get("features", self.file_values[benchmark].get("features", "finetuned"))
            if found != "finetuned":
                raise ConfigError(f"catalog entry {benchmark!r}: features: finetune makes fine-tuned features, but "
                                  f"its config says features: {found!r} (expected finetuned, or no `features` key)")
            settings["features"] = "finetuned"
        return settings

    def label_of(self, benchmark: str) -> str:
        """The benchmark's name in metrics.json and the tables (under which the paper's numbers are found)."""
        return self.entry(benchmark).get("label") or benchmark

    def splits(self, benchmark: str) -> list:
        """The splits a benchmark runs over ([] for one fixed split, like the image benchmarks)."""
        return list(self.entry(benchmark).get("splits") or [])

    def split_dataset(self, benchmark: str, split) -> str:
        return self.entry(benchmark)["split_dataset"].format(split=split)

    def config_for(self, benchmark: str, split=None):
        """A Config of the benchmark file and its settings (with the split's dataset), for file locations; made
        once per benchmark and split (every made feature file's questions and every check ask for it)."""
        if (benchmark, split) not in self._configs:
            on_top = self.settings(benchmark)
            if split is not None:
                on_top["dataset"] = self.split_dataset(benchmark, split)
            self._configs[benchmark, split] = from_mapping(layered(self.file_values[benchmark], on_top)[0],
                                                           self._source(benchmark))
        return self._configs[benchmark, split]

    def split_configs(self, benchmark: str) -> list:
        """config_for of each of the benchmark's splits, or of the benchmark file's own dataset."""
        return [self.config_for(benchmark, k) for k in self.splits(benchmark)] or [self.config_for(benchmark)]

    def _source(self, benchmark: str) -> str:
        """How a message names an entry's values: the entry (its settings) and its file, e.g. "catalog entry
        'cub_fvaegan_transductive' (config/benchmarks/cub_fvaegan.yaml and its settings)"."""
        settings = " and its settings" if self.entry(benchmark).get("settings") else ""
        return f"catalog entry {benchmark!r} ({self.benchmark_file(benchmark)}{settings})"

    def settings_args(self, benchmark: str) -> str:
        """The entry's settings as `--set` arguments (but its dataset, which --dataset gives per split)."""
        return " ".join(shlex.quote(f"--set={k}={json.dumps(v)}") for k, v in sorted(self.settings(benchmark).items())
                        if k != "dataset")

    # ----------------------------------------------------------------------- a run
    def run_values(self, benchmark: str, protocol: str, variant: str, seed: int, split=None) -> dict:
        """The run's Config values: benchmark file < settings < variant < overrides < protocol, seed and split."""
        on_top = self.settings(benchmark)
        on_top.update(self.config["variants"][variant] or {})
        on_top.update(self.config["overrides"] or {})
        on_top.update(protocol=protocol, manualSeed=int(seed))
        if split is not None:
            on_top["dataset"] = self.split_dataset(benchmark, split)
        return layered(self.file_values[benchmark], on_top)[0]

    def run_settings(self, benchmark: str, protocol: str, variant: str, seed: int, split=None) -> tuple[str, str]:
        """`--set k=v` arguments (on top of --config <benchmark file>) and the resolved values as JSON; unknown
        keys or bad values are a ConfigError. Computed once per run (asked again by each of its jobs)."""
        key = (benchmark, protocol, variant, int(seed), split)
        if key not in self._run_settings:
            values = self.run_values(*key)
            from_mapping(values, f"{self._source(benchmark)} with variant {variant!r}")
            on_top = {k: v for k, v in values.items() if self.file_values[benchmark].get(k, object()) != v
                      or k in ("protocol", "manualSeed")}
            sets = " ".join(shlex.quote(f"--set={k}={json.dumps(v)}") for k, v in sorted(on_top.items()))
            self._run_settings[key] = (sets, json.dumps(values, sort_keys=True))
        return self._run_settings[key]

    def datasets(self, benchmark: str) -> list[str]:
        """The dataset folders the benchmark reads (one per split, or the benchmark file's own)."""
        return [cfg.dataset for cfg in self.split_configs(benchmark)]

    @functools.cached_property
    def archive_files(self) -> tuple[str, ...]:
        """The files the xlsa17 download gives: those of the `download.benchmarks`. Another provided entry
        reading only these (cub_transductive reads cub's) is fetched with them."""
        return tuple(sorted({f for b in self.downloaded() for f in self.data_files(b)}))

    def missing_files(self, benchmark: str) -> list[str]:
        """The benchmark's provided files that are absent and that no rule of the workflow can make (neither
        made features nor the download's files)."""
        files = self.data_files(benchmark)
        if self.features_mode(benchmark) != "provided" or set(files) <= set(self.archive_files):
            return []
        return [f for f in files if not Path(f).exists()]

    def data_files(self, benchmark: str) -> list[str]:
        """The feature file, the split files (one per split) and the manual-attribute file (if used) the
        benchmark reads, where tfvaegan.data.layout puts them."""
        configs = self.split_configs(benchmark)
        first = configs[0]
        files = [layout.feature_path(self.data_root, first)] + [layout.split_path(self.data_root, c) for c in configs]
        if first.manual_att:
            files.append(layout.manual_attribute_path(self.data_root, first))
        return [str(f) for f in files]

    # ----------------------------------------------------------------------- how features are made
    def with_made_features(self, modes=MADE_FEATURES) -> list[str]:
        """The prepared benchmarks whose features are of the given modes (made by a rule, by default)."""
        return [b for b in self.prepared if self.features_mode(b) in modes]

    def feature_folders(self, modes=MADE_FEATURES) -> list[str]:
        return sorted({self.config_for(b).dataset for b in self.with_made_features(modes)})

    def feature_embeddings(self, modes=MADE_FEATURES) -> list[str]:
        return sorted({self.config_for(b).image_embedding for b in self.with_made_features(modes)})

    def demo_folders(self) -> list[str]:
        """The dataset folders the demo generator fills: of `features: demo` entries and of `images: demo` ones."""
        return sorted({self.config_for(b).dataset for b in self.prepared
                       if self.features_mode(b) == "demo" or self.entry(b).get("images") == "demo"})

    def feature_maker(self, folder: str, embedding: str) -> str:
        """The benchmark whose feature file <folder>/<embedding>.mat a job makes (the first listed, when several
        share it: they agree on how it is made, as `check` makes sure)."""
        return next(b for b in self.with_made_features()
                    if (self.config_for(b).dataset, self.config_for(b).image_embedding) == (folder, embedding))

    def image_path(self, folder: str, embedding: str, key: str) -> str:
        """The `image_root` or `image_list` of <folder>/<embedding>.mat's maker: absolute, or relative to the
        dataset's folder in the data root (default: the folder itself, and its image_list.txt)."""
        default = {"image_root": ".", "image_list": "image_list.txt"}[key]
        path = Path(self.entry(self.feature_maker(folder, embedding)).get(key) or default)
        return str(path if path.is_absolute() else Path(self.data_root) / folder / path)

    def extraction_settings(self, benchmark: str) -> dict:
        return {**self.config["extraction"], **(self.entry(benchmark).get("extraction") or {})}

    def finetuning_settings(self, benchmark: str) -> dict:
        return {**self.config["finetuning"], **(self.entry(benchmark).get("finetuning") or {})}

    def extraction_args(self, folder: str, embedding: str, finetuned_weights: str | None = None) -> str:
        """`extract`'s options for <folder>/<embedding>.mat; a fine-tuned extraction starts from the fine-tuned
        weights instead."""
        settings = self.extraction_settings(self.feature_maker(folder, embedding))
        if finetuned_weights:
            settings = {**settings, "weights": finetuned_weights, "allow_random_init": False}
        args = _start_args(settings)
        args[1:1] = [f"--image-size {settings['image_size']}", f"--batch-size {settings['batch_size']}",
                     f"--device {settings['device']}"]
        return " ".join(args)

    def finetuning_args(self, folder: str, embedding: str) -> str:
        """`finetune`'s options for <folder>/<embedding>.mat's backbone: the starting backbone of `extraction`,
        the recipe of `finetuning`."""
        benchmark = self.feature_maker(folder, embedding)
        recipe = self.finetuning_settings(benchmark)
        args = _start_args(self.extraction_settings(benchmark))
        args += [f"--{key.replace('_', '-')} {recipe[key]}" for key in FINETUNING_OPTIONS]
        args += ["--flip" if recipe["flip"] else "--no-flip"] + (["--amp"] if recipe["amp"] else [])
        return " ".join(args)

    def is_finetuned(self, folder: str, embedding: str) -> bool:
        """Whether <folder>/<embedding>.mat is extracted with a backbone `finetune` makes first."""
        return self.features_mode(self.feature_maker(folder, embedding)) == "finetune"

    def split_file(self, folder: str, embedding: str) -> str:
        """The split file of <folder>/<embedding>.mat's maker: its trainval_loc names the images fine-tuning
        may open."""
        return str(layout.split_path(self.data_root, self.config_for(self.feature_maker(folder, embedding))))

    # ----------------------------------------------------------------------- the selection backbone (val protocol)
    def selection_features(self, benchmark: str, protocol: str, seed: int) -> list[str]:
        """The feature file a run's selection run reads instead of its own: [] but for a val-protocol run of
        `features: finetune`, whose trainval backbone has learnt the validation classes; its selection run reads
        the features of a backbone fine-tuned on its validation split's training part only (SELECTION_STEM)."""
        if protocol != "val" or self.features_mode(benchmark) != "finetune":
            return []
        return [self._selection_file(self.config_for(benchmark), seed)]

    def _selection_file(self, cfg, seed: int) -> str:
        stem = SELECTION_STEM.format(embedding=cfg.image_embedding, seed=int(seed))
        return str(layout.feature_path(self.data_root, cfg).with_name(f"{stem}.mat"))

    def selection_args(self, benchmark: str, protocol: str, seed: int) -> str:
        """`train`'s (and `search trial`'s) --selection-features for the run, or nothing."""
        return " ".join(f"--selection-features {shlex.quote(f)}" for f in self.selection_features(benchmark, protocol,
                                                                                                   seed))

    def selection_runs(self) -> list[tuple[str, str, int]]:
        """(benchmark, variant, seed) of each run whose selection run reads a selection backbone's features: the
        val-protocol runs of fine-tuned entries, and the search's trials of one."""
        runs = [(b, v, int(s)) for b in self.config["benchmarks"] if "val" in self.config["protocols"]
                for v in self.config["variants"] for s in self.config["seeds"]]
        if "search" in self.config:
            search = self.config["search"]  # the schema's defaults, where a test's config has not been through it
            runs.append((search["benchmark"], search.get("variant", "tfvaegan"), int(search.get("seed", 0))))
        return [run for run in dict.fromkeys(runs) if self.selection_features(run[0], "val", run[2])]

    @functools.cached_property
    def _selection_splits(self) -> dict[str, dict[tuple, str]]:
        """Each selection feature file -> {(val_seen_fraction, val_unseen_fraction): the first run reading it}."""
        found: dict[str, dict[tuple, str]] = {}
        for benchmark, variant, seed in self.selection_runs():
            cfg = from_mapping(self.run_values(benchmark, "val", variant, seed), self._source(benchmark))
            file = self.selection_features(benchmark, "val", seed)[0]
            found.setdefault(file, {}).setdefault((cfg.val_seen_fraction, cfg.val_unseen_fraction),
                                                  f"{benchmark!r} (variant {variant!r}, seed {seed})")
        return found

    def selection_files(self) -> list[str]:
        """Every selection feature file the runs (and the search) read: one per fine-tuned feature file and seed."""
        return sorted(self._selection_splits)

    def selection_finetuning_args(self, folder: str, embedding: str, seed: int) -> str:
        """`finetune`'s options for the selection backbone of <folder>/<embedding>.mat and a seed: those of its
        trainval backbone, and the validation split of the runs reading it (their seed and val fractions)."""
        cfg = self.config_for(self.feature_maker(folder, embedding))
        asked = self._selection_splits.get(self._selection_file(cfg, seed))  # None: no run reads it (a target)
        seen, unseen = next(iter(asked)) if asked else (cfg.val_seen_fraction, cfg.val_unseen_fraction)
        args = [self.finetuning_args(folder, embedding), f"--train-part selection --val-seed {int(seed)}",
                f"--val-seen-fraction {seen}"] + ([f"--val-unseen-fraction {unseen}"] if unseen is not None else [])
        return " ".join(args)

    def how_features_are_made(self, benchmark: str) -> tuple:
        """What a made feature file depends on: the mode, the images, the extraction (and the fine-tuning)."""
        mode = self.features_mode(benchmark)
        if mode not in MADE_FEATURES:
            return (mode,)
        entry = self.entry(benchmark)
        made = (mode, entry.get("images", "provided"), entry.get("image_root"), entry.get("image_list"),
                self.extraction_settings(benchmark))
        return made + ((self.finetuning_settings(benchmark),) if mode == "finetune" else ())

    # ----------------------------------------------------------------------- GPUs (tfvaegan.gpu_slots)
    def run_device(self, benchmark: str, protocol: str, variant: str, seed: int, split=None) -> str:
        """The device a run's train, synthesize and classify jobs ask for: auto, cpu, cuda or cuda:N."""
        return str(self.run_values(benchmark, protocol, variant, seed, split).get("device", Config.device))

    def feature_device(self, folder: str, embedding: str, step: str) -> str:
        """The device of <folder>/<embedding>.mat's `finetuning` or `extraction` (STEP)."""
        benchmark = self.feature_maker(folder, embedding)
        return str(getattr(self, f"{step}_settings")(benchmark)["device"])

    def gpu_requests(self) -> list[str]:
        """What in the configuration asks for a GPU, each as its config key and value: `gpus_per_job` above 0,
        and every `device` of cuda or cuda:N of a run (the search's included), a fine-tuning or an extraction."""
        asked = [f"'gpus_per_job': {self.config['gpus_per_job']}"] if self.config["gpus_per_job"] > 0 else []
        runs = [(b, v) for b in self.config["benchmarks"] for v in self.config["variants"]]
        if "search" in self.config:
            runs.append((self.config["search"]["benchmark"], self.config["search"].get("variant", "tfvaegan")))
        for benchmark, variant in dict.fromkeys(runs):
            device = self.run_device(benchmark, "val", variant, 0)
            if device.startswith("cuda"):
                asked.append(f"{self._device_key(benchmark, variant)}: {device} (benchmark {benchmark!r})")
        for benchmark in self.with_made_features():
            steps = ("finetuning", "extraction") if self.features_mode(benchmark) == "finetune" else ("extraction",)
            for step in steps:
                device = str(getattr(self, f"{step}_settings")(benchmark)["device"])
                where = f"catalog.{benchmark}.{step}" if "device" in (self.entry(benchmark).get(step) or {}) else step
                if device.startswith("cuda"):
                    asked.append(f"'{where}.device': {device}")
        return list(dict.fromkeys(asked))

    def _device_key(self, benchmark: str, variant: str) -> str:
        """Where a run's device is set: the first of overrides, the variant, the entry's settings, the file."""
        for where, values in (("overrides", self.config["overrides"]), (f"variants.{variant}",
                              self.config["variants"][variant]), (f"catalog.{benchmark}.settings",
                              self.entry(benchmark).get("settings"))):
            if "device" in (values or {}):
                return f"'{where}.device'"
        return f"'device' in {self.benchmark_file(benchmark)}"

    def gpu_problem(self, env) -> str | None:
        """One line when the configuration asks for a GPU and the local pool has none (config key `gpus`, or the
        GPUs found): checked before a local run's first job. TFVAEGAN_GPU_CHECK=off in ENV skips it where the
        jobs run on other machines (a cluster's login node)."""
        asked = self.gpu_requests()
        gpus = self.config["gpus"]
        if not asked or env.get("TFVAEGAN_GPU_CHECK") == "off" or gpu_slots.pool_devices(gpus, env):
            return None
        none = "config key 'gpus' is 0" if gpus == 0 else f"this machine has none ({gpu_slots.how_found(env)})"
        more = f" (and {len(asked) - 1} more: {'; '.join(asked[1:3])}{' ...' if len(asked) > 3 else ''})" \
            if len(asked) > 1 else ""
        return (f"config key {asked[0]} asks for a GPU{more}, but {none}: to run on the CPU set gpus_per_job: 0 and "
                f"no device cuda; if the machine has GPUs that were not found, set gpus: N; if the jobs run on other "
                f"machines (a cluster's login node), set TFVAEGAN_GPU_CHECK=off")

    # ----------------------------------------------------------------------- the whole configuration
    def check(self) -> None:
        """Every run's config, then the feature files' and the tables' agreement: a bad variant or override
        (an unknown key, a value of the wrong type) stops Snakemake with one message before the DAG is
        built, for any target."""
        for benchmark in self.config["benchmarks"]:
            for variant in self.config["variants"]:
                for protocol in self.config["protocols"]:
                    for seed in self.config["seeds"]:
                        for split in self.splits(benchmark) or [None]:
                            self.run_settings(benchmark, protocol, variant, seed, split)
        self._check_feature_files()
        self._check_selection_splits()
        self._check_table_rows()

    def _check_feature_files(self) -> None:
        """Benchmarks sharing a feature file must agree on how it is made: a fine-tuned file and a plain one
        under one name would overwrite each other. Entries that agree share one file and one job of each
        rule making it (cub_finetuned and cub_finetuned_transductive: one fine-tuning, one extraction)."""
        makers: dict[Path, str] = {}
        for benchmark in self.prepared:
            file = layout.feature_path(self.data_root, self.config_for(benchmark))
            first = makers.setdefault(file, benchmark)
            if self.how_features_are_made(first) != self.how_features_are_made(benchmark):
                raise ConfigError(
                    f"catalog entries {first!r} and {benchmark!r}: both read {file}, but it would be made in two "
                    f"ways (features: {self.features_mode(first)} and {self.features_mode(benchmark)}, or other "
                    f"images, extraction or fine-tuning settings); make them agree (one file, made once) or give "
                    f"one of them its own image_embedding under `settings`")

    def _check_selection_splits(self) -> None:
        """Runs reading one selection backbone's features must draw one validation split: one backbone is fine-tuned
        per feature file and seed, on the split's training part."""
        for file, splits in self._selection_splits.items():
            if len(splits) > 1:
                (first, a), (second, b) = list(splits.items())[:2]
                raise ConfigError(
                    f"runs {a} and {b}: both read the selection features {file}, but draw other validation splits "
                    f"(val_seen_fraction, val_unseen_fraction: {first} and {second}); one selection backbone is "
                    f"fine-tuned per feature file and seed: give them the same fractions, or one entry its own "
                    f"image_embedding under `settings`")

    def _check_table_rows(self) -> None:
        """Two benchmarks of one label, features kind, setting, prior, unlabelled set and method would be one row
        of the tables (entries differing only by method are rows of their own)."""
        rows: dict[tuple, str] = {}
        for benchmark in self.config["benchmarks"]:
            cfg = self.config_for(benchmark)
            setting = (f"{cfg.setting} ({cfg.transductive_prior} prior, unlabelled {cfg.transductive_unlabelled})"
                       if cfg.transductive else cfg.setting)
            row = (self.label_of(benchmark), cfg.features, setting, cfg.method)
            if rows.setdefault(row, benchmark) != benchmark:
                raise ConfigError(f"catalog entries {rows[row]!r} and {benchmark!r}: both are benchmark {row[0]!r} "
                                  f"with {row[1]} features, {row[2]}, in the tables (both method {row[3]!r}); give "
                                  f"one of them another `label`")
