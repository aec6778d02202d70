"""`python -m tfvaegan tables`: per-run metrics.json files → zsl.csv, gzsl.csv, ablation.csv, methods.csv
(percent).

One row per (benchmark, features, setting, prior, unlabelled, protocol, variant, method): mean and sample standard
deviation over seeds (ddof=1; empty for a single seed, where no spread can be measured) and n_seeds.
`features` is plain (ImageNet backbone) or finetuned (backbone fine-tuned on the seen classes);
`setting` inductive or transductive, with the transductive `prior` (uniform: no test label read;
labels: the authors' "known class prior", which reads test labels); all from metrics.json (files
written before a key existed are plain / inductive / tfvaegan). `method` is the lineage member the run
trained (tfvaegan, fclswgan, fvaegan, free: tfvaegan.config.METHODS). Every row carries the paper's number
for its benchmark, features, setting, method and variant from config/paper_results.csv, whatever our protocol and
prior (the paper's transductive numbers are known-prior ones), and the difference
ours − paper, so that the gap between the test-selected `paper` protocol, the honest `val` protocol
and the published number is visible side by side. docs/protocols.md says how to read
them. methods.csv sets the methods' complete models side by side, each ranked among the methods of its
benchmark, features, setting, prior and unlabelled set under each protocol.
"""
from __future__ import annotations

import csv
import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Sequence

import numpy as np
import pandas as pd

from tfvaegan.config import METHODS, TRANSDUCTIVE_PRIORS, TRANSDUCTIVE_UNLABELLED, Config
from tfvaegan.errors import UserError
from tfvaegan.fileio import atomic_write_text, write_atomic
from tfvaegan.record import GZSL_METRICS

FULL_MODEL_VARIANT = "tfvaegan"  # the complete model; other variants are ablations (a variant name, not a method)
# The lineage in the order its papers appeared (f-CLSWGAN CVPR 2018, f-VAEGAN(-D2) CVPR 2019, TF-VAEGAN ECCV
# 2020, FREE ICCV 2021): the rows of one benchmark and protocol list the methods in this order. The order of
# tfvaegan.config.METHODS (TF-VAEGAN first, the package's own method) is not chronological.
METHOD_ORDER = ("fclswgan", "fvaegan", "tfvaegan", "free")
assert sorted(METHOD_ORDER) == sorted(METHODS), "METHOD_ORDER must list every method of tfvaegan.config.METHODS"
DEFAULT_METHOD = Config.method  # metrics.json and paper files written before `method` existed: TF-VAEGAN's
# The methods as their papers name them; f-VAEGAN's transductive form is f-VAEGAN-D2.
METHOD_NAMES = {"fclswgan": "f-CLSWGAN", "fvaegan": "f-VAEGAN", "tfvaegan": "TF-VAEGAN", "free": "FREE"}
# The paper's ablation, component by component (the variant names of config/config.yaml); the
# ablation table lists them in this cumulative order, unknown variants before the complete model.
ABLATION_ORDER = ("baseline", "+decoder", "+feedback")
PROTOCOLS = ("paper", "val")
FEATURES = ("plain", "finetuned")  # metrics.json `features`; the rows of one benchmark in this order
SETTINGS = ("inductive", "transductive")  # metrics.json `setting`, in this order
PRIORS = ("", *TRANSDUCTIVE_PRIORS)  # metrics.json `transductive_prior` ("": inductive), in this order
UNLABELLED = ("", *TRANSDUCTIVE_UNLABELLED)  # metrics.json `transductive_unlabelled` ("": inductive), in order
BENCHMARK_ORDER = ("cub", "awa2", "flo", "sun", "hmdb51", "ucf101", "demo")
DEFAULT_PAPER_RESULTS = Path(__file__).resolve().parents[2] / "config" / "paper_results.csv"
PAPER_COLUMNS = ("benchmark", "features", "setting", "method", "metric", "value", "source")
# Older files: without `method` (all TF-VAEGAN's), without `setting` either (all inductive), without `features`
# either (all plain, inductive).
OLDER_PAPER_COLUMNS = (("benchmark", "features", "setting", "metric", "value", "source"),
                       ("benchmark", "features", "metric", "value", "source"),
                       ("benchmark", "metric", "value", "source"))
PAPER_METRICS = ("zsl_top1", "gzsl_u", "gzsl_s", "gzsl_h")

ZSL_COLUMNS = ["benchmark", "protocol", "variant", "n_seeds", "top1_mean", "top1_std",
               "paper_top1", "diff_top1", "features", "setting", "prior", "unlabelled", "method"]
GZSL_COLUMNS = ["benchmark", "protocol", "variant", "n_seeds", "u_mean", "u_std", "s_mean", "s_std",
                "h_mean", "h_std", "paper_u", "paper_s", "paper_h", "diff_h", "features", "setting", "prior",
                "unlabelled", "method"]
ABLATION_COLUMNS = ["benchmark", "protocol", "variant", "n_seeds", "top1_mean", "top1_std",
                    "h_mean", "h_std", "paper_top1", "paper_h", "diff_top1", "diff_h", "features", "setting",
                    "prior", "unlabelled", "method"]
# The leading columns are fixed (issue 3); later ones are appended: diff_*, then features (plain or
# finetuned), setting (inductive or transductive), prior and unlabelled (transductive only: the prior
# and the unlabelled set, test or test_unseen), then method (the lineage member: tfvaegan, fclswgan,
# fvaegan, free), which tell apart the rows of one benchmark run on both kinds of features, in both
# settings, with either prior and unlabelled set, by each method.
# methods.csv: the complete model (variant FULL_MODEL_VARIANT) of every method side by side; rank_* is the
# method's rank (1: the best mean; ties share the lower rank; no mean, no rank) among the methods of its
# benchmark, features, setting, prior and unlabelled set under its protocol.
METHODS_COLUMNS = ["benchmark", "method", "protocol", "n_seeds", "top1_mean", "top1_std", "u_mean", "u_std",
                   "s_mean", "s_std", "h_mean", "h_std", "paper_top1", "paper_h", "rank_top1", "rank_h",
                   "features", "setting", "prior", "unlabelled"]
DECIMALS = 2
# One table row: (benchmark, features, setting, prior, unlabelled, protocol, variant, method).
GROUP_KEYS = ("benchmark", "features", "setting", "prior", "unlabelled", "protocol", "variant", "method")
Group = tuple[str, str, str, str, str, str, str, str]


@dataclass(frozen=True)
class Run:
    """One metrics.json: the protocol's headline numbers as fractions (GZSL ones may be None)."""

    path: Path
    benchmark: str
    protocol: str
    variant: str
    seed: int
    zsl_acc: float
    gzsl_seen: float | None
    gzsl_unseen: float | None
    gzsl_h: float | None
    features: str = "plain"
    setting: str = "inductive"
    prior: str = ""  # the transductive prior; "" for inductive runs
    unlabelled: str = ""  # what D2 learned from (test | test_unseen); "" for inductive runs
    method: str = DEFAULT_METHOD  # the lineage member trained (tfvaegan.config.METHODS)

    @property
    def group(self) -> Group:
        return (self.benchmark, self.features, self.setting, self.prior, self.unlabelled, self.protocol,
                self.variant, self.method)

    @property
    def label(self) -> str:
        return bench_label(self.benchmark, self.features, self.setting, self.prior, self.unlabelled, self.method)


def method_name(method: str, setting: str = "inductive") -> str:
    """A method as its paper names it: 'f-CLSWGAN', 'TF-VAEGAN'; f-VAEGAN transductive is 'f-VAEGAN-D2'."""
    name = METHOD_NAMES.get(method, method)
    return name + ("-D2" if method == "fvaegan" and setting == "transductive" else "")


def bench_label(benchmark: str, features: str, setting: str = "inductive", prior: str = "",
                unlabelled: str = "", method: str = DEFAULT_METHOD) -> str:
    """A benchmark as figures name it: 'CUB', 'CUB fine-tuned', 'CUB transductive (uniform, test)'; another
    method than TF-VAEGAN is named after the benchmark: 'CUB f-CLSWGAN', 'CUB FREE fine-tuned'."""
    label = benchmark.upper() + (f" {method_name(method)}" if method != DEFAULT_METHOD else "")
    label += " fine-tuned" if features == "finetuned" else ""
    return label + (f" transductive ({prior}, {unlabelled})" if setting == "transductive" else "")


def _fraction(path: Path, data: dict, key: str, optional: bool) -> float | None:
    value = data.get(key)
    if value is None and optional:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0.0 <= value <= 1.0:
        expected = "a fraction in [0, 1]" + (" or null" if optional else "")
        raise UserError(f"{path}: key '{key}': expected {expected}, found {value!r}")
    return float(value)


def _text(path: Path, data: dict, key: str) -> str:
    value = data.get(key)
    if not isinstance(value, str) or not value.strip():
        raise UserError(f"{path}: key '{key}': expected a non-empty string, found {value!r}")
    return value.strip()


def read_metrics_json(path: str | Path) -> dict:
    """The JSON object of one metrics.json; an unreadable file or a non-object is one clear error."""
    path = Path(path)
    try:
        data = json.loads(path.read_text())
    except FileNotFoundError:
        raise UserError(f"{path}: metrics file not found") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise UserError(f"{path}: not valid JSON ({exc})") from None
    except OSError as exc:
        raise UserError(f"{path}: cannot read the metrics file ({exc.strerror or exc})") from None
    if not isinstance(data, dict):
        raise UserError(f"{path}: expected a JSON object, found {type(data).__name__}")
    return data


def _check_protocol(path: Path, data: dict, protocol: str) -> None:
    """The top-level `protocol` must agree with `config.protocol` and `selection.protocol` where present."""
    found = {"protocol": protocol}
    for key in ("config", "selection"):
        section = data.get(key)
        if section is None:
            continue
        if not isinstance(section, dict):
            raise UserError(f"{path}: key '{key}': expected an object or null, found {type(section).__name__}")
        if "protocol" in section:
            found[f"{key}.protocol"] = section["protocol"]
    if any(value != protocol for value in found.values()):
        keys = ", ".join(f"'{key}'" for key in found)
        values = ", ".join(f"{key}={value!r}" for key, value in found.items())
        raise UserError(f"{path}: keys {keys}: expected one protocol, found {values}")


def _setting_and_prior(path: Path, data: dict) -> tuple[str, str]:
    """`setting` (absent or null: inductive, as in metrics.json written before transductive training) and
    `transductive_prior` ("" for an inductive run), checked against each other and against `config`."""
    setting = data.get("setting")
    setting = "inductive" if setting is None else setting
    if setting not in SETTINGS:
        raise UserError(f"{path}: key 'setting': expected one of {SETTINGS} or absent, found {setting!r}")
    found = data.get("transductive_prior")
    prior = "" if found is None else found
    if prior not in (("",) if setting == "inductive" else PRIORS[1:]):
        raise UserError(f"{path}: key 'transductive_prior': expected one of {PRIORS[1:]} for a transductive run "
                        f"and null for an inductive one, found {found!r} (setting {setting!r})")
    config = data.get("config")
    if isinstance(config, dict) and isinstance(config.get("transductive"), bool):
        stated = {"setting": setting, "config.transductive": config["transductive"]}
        agree = config["transductive"] == (setting == "transductive")
        if setting == "transductive" and "transductive_prior" in config:
            stated.update({"transductive_prior": prior, "config.transductive_prior": config["transductive_prior"]})
            agree = agree and config["transductive_prior"] == prior
        if not agree:
            keys = ", ".join(f"'{key}'" for key in stated)
            values = ", ".join(f"{key}={value!r}" for key, value in stated.items())
            raise UserError(f"{path}: keys {keys}: expected one setting and prior, found {values}")
    return setting, prior


def _unlabelled(path: Path, data: dict, setting: str) -> str:
    """`transductive_unlabelled` ("" for an inductive run); a transductive metrics.json written before the key
    existed trained on test_unseen, the only set there was."""
    found = data.get("transductive_unlabelled")
    if setting == "inductive":
        if found is not None:
            raise UserError(f"{path}: key 'transductive_unlabelled': expected null for an inductive run, "
                            f"found {found!r}")
        return ""
    unlabelled = "test_unseen" if found is None else found
    if unlabelled not in UNLABELLED[1:]:
        raise UserError(f"{path}: key 'transductive_unlabelled': expected one of {UNLABELLED[1:]} for a transductive "
                        f"run, found {found!r}")
    config = data.get("config")
    if isinstance(config, dict) and config.get("transductive_unlabelled", unlabelled) != unlabelled:
        raise UserError(f"{path}: keys 'transductive_unlabelled', 'config.transductive_unlabelled': expected the "
                        f"same set, found {unlabelled!r} and {config['transductive_unlabelled']!r}")
    return unlabelled


def _method(path: Path, data: dict) -> str:
    """`method` (absent or null: tfvaegan, as in metrics.json written before the lineage existed), checked
    against `config.method` where both are present."""
    found = data.get("method")
    method = DEFAULT_METHOD if found is None else found
    if method not in METHODS:
        raise UserError(f"{path}: key 'method': expected one of {METHODS} or absent, found {found!r}")
    config = data.get("config")
    if found is not None and isinstance(config, dict) and "method" in config and config["method"] != method:
        raise UserError(f"{path}: keys 'method', 'config.method': expected the same method, found {method!r} "
                        f"and {config['method']!r}")
    return method


def check_run(path: str | Path, data: dict) -> Run:
    """Check one metrics.json's object; a bad one is one error naming the file, key, expected, found."""
    path = Path(path)
    protocol = _text(path, data, "protocol")
    if protocol not in PROTOCOLS:
        raise UserError(f"{path}: key 'protocol': expected one of {PROTOCOLS}, found {protocol!r}")
    _check_protocol(path, data, protocol)
    seed = data.get("seed")
    if isinstance(seed, bool) or not isinstance(seed, int):
        raise UserError(f"{path}: key 'seed': expected an integer, found {seed!r}")
    gzsl = {key: _fraction(path, data, key, optional=True) for key in GZSL_METRICS}
    if len({value is None for value in gzsl.values()}) > 1:
        raise UserError(f"{path}: keys {', '.join(map(repr, GZSL_METRICS))}: expected all three numbers "
                        f"or all null, found {gzsl}")
    features = data.get("features") or "plain"  # metrics.json written before fine-tuning existed
    if features not in FEATURES:
        raise UserError(f"{path}: key 'features': expected one of {FEATURES} or absent, found {features!r}")
    setting, prior = _setting_and_prior(path, data)
    unlabelled = _unlabelled(path, data, setting)
    return Run(path=path, benchmark=_text(path, data, "benchmark"), protocol=protocol,
               variant=_text(path, data, "variant"), seed=seed,
               zsl_acc=_fraction(path, data, "zsl_acc", optional=False), features=features, setting=setting,
               prior=prior, unlabelled=unlabelled, method=_method(path, data), **gzsl)


def load_run(path: str | Path) -> Run:
    """Read and check one metrics.json; a bad file is one error naming the file, key, expected, found."""
    return check_run(path, read_metrics_json(path))


def load_runs(paths: Iterable[str | Path]) -> list[Run]:
    """Load every metrics.json, refusing two files that claim the same run."""
    runs: list[Run] = []
    seen: dict[tuple, Path] = {}
    for path in paths:
        run = load_run(path)
        key = (*run.group, run.seed)
        if key in seen:
            raise UserError(
                f"{run.path}: keys 'benchmark', 'features', 'setting', 'transductive_prior', "
                f"'transductive_unlabelled', 'protocol', 'variant', 'method', 'seed': expected one file per run, "
                f"found {key} also in {seen[key]}"
            )
        seen[key] = run.path
        runs.append(run)
    if not runs:
        raise UserError("--metrics: expected at least one metrics.json, found none")
    return runs


def _paper_metric_ok(metric: str) -> bool:
    """`zsl_top1`, `gzsl_u`, `gzsl_s`, `gzsl_h`, or `ablation:<variant>:<one of those>`."""
    if metric in PAPER_METRICS:
        return True
    parts = metric.split(":")
    return (len(parts) == 3 and parts[0] == "ablation" and parts[1] == parts[1].strip() != ""
            and parts[2] in PAPER_METRICS)


PaperKey = tuple[str, str, str, str, str]  # (benchmark in lower case, features, setting, method, metric)


def load_paper(path: str | Path | None) -> dict[PaperKey, float]:
    """config/paper_results.csv → {(benchmark in lower case, features, setting, method, metric): value in percent}.

    Columns benchmark, features (plain | finetuned), setting (inductive | transductive), method (one of
    tfvaegan.config.METHODS), metric, value, source; an older file without `method` holds TF-VAEGAN's
    values, one without `setting` either inductive ones, one without `features` either plain inductive
    ones. Every row must have all its columns, a benchmark name, a known method and metric, a percentage
    and a source; anything else is one error naming the file, the line and the column.
    """
    if path is None:
        return {}
    path = Path(path)
    if not path.is_file():
        raise UserError(f"{path}: paper results file not found")
    values: dict[PaperKey, float] = {}
    try:
        with path.open(newline="", encoding="utf-8") as handle:
            reader = csv.DictReader(handle)
            columns = tuple(reader.fieldnames or ())
            if columns not in (PAPER_COLUMNS, *OLDER_PAPER_COLUMNS):
                raise UserError(f"{path}: header: expected columns {list(PAPER_COLUMNS)} (or, all {DEFAULT_METHOD}, "
                                f"{list(OLDER_PAPER_COLUMNS[0])}, or, all {DEFAULT_METHOD} and inductive, "
                                f"{list(OLDER_PAPER_COLUMNS[1])}, or, all {DEFAULT_METHOD}, plain and inductive, "
                                f"{list(OLDER_PAPER_COLUMNS[2])}), found {reader.fieldnames}")
            for row in reader:
                key, value = _paper_row(path, reader.line_num, row, columns)
                if key in values:
                    raise UserError(f"{path}: line {reader.line_num}: expected one value per (benchmark, "
                                    f"features, setting, method, metric), found {key} twice")
                values[key] = value
    except UnicodeDecodeError as exc:
        raise UserError(f"{path}: expected a UTF-8 CSV file ({exc})") from None
    except csv.Error as exc:
        raise UserError(f"{path}: line {reader.line_num}: not valid CSV ({exc})") from None
    return values


def _paper_row(path: Path, line: int, row: dict, columns: tuple[str, ...]) -> tuple[PaperKey, float]:
    """One checked row of the paper file: its key and its value."""
    cells = [value for key, value in row.items() if key is not None and value is not None]
    cells += row.get(None) or []
    if len(cells) != len(columns):
        raise UserError(f"{path}: line {line}: expected {len(columns)} columns {list(columns)}, "
                        f"found {len(cells)}: {cells}")
    for column in ("benchmark", "source"):
        if not row[column].strip():
            raise UserError(f"{path}: line {line}, column '{column}': expected a non-empty value, "
                            f"found {row[column]!r}")
    features = row.get("features", "plain").strip()
    if features not in FEATURES:
        raise UserError(f"{path}: line {line}, column 'features': expected one of {list(FEATURES)}, "
                        f"found {features!r}")
    setting = row.get("setting", "inductive").strip()
    if setting not in SETTINGS:
        raise UserError(f"{path}: line {line}, column 'setting': expected one of {list(SETTINGS)}, "
                        f"found {setting!r}")
    method = row.get("method", DEFAULT_METHOD).strip()
    if method not in METHODS:
        raise UserError(f"{path}: line {line}, column 'method': expected one of {list(METHODS)}, found {method!r}")
    metric = row["metric"].strip()
    if not _paper_metric_ok(metric):
        raise UserError(f"{path}: line {line}, column 'metric': expected one of {list(PAPER_METRICS)} "
                        f"or ablation:<variant>:<one of those>, found {metric!r}")
    try:
        value = float(row["value"])
    except (TypeError, ValueError):
        value = math.nan
    if not 0.0 <= value <= 100.0:
        raise UserError(f"{path}: line {line}, column 'value': expected a percentage in [0, 100], "
                        f"found {row['value']!r}")
    return (row["benchmark"].strip().lower(), features, setting, method, metric), value


def paper_value(paper: dict[PaperKey, float], benchmark: str, features: str, variant: str, metric: str,
                prefer_ablation: bool = False, setting: str = "inductive", method: str = DEFAULT_METHOD) -> float:
    """The published number for this benchmark, features, setting, method and variant; NaN where the paper
    reports none.

    The complete model takes the main table's number; an ablation variant its ablation row
    (`ablation:<variant>:<metric>`). The ablation table prefers its own row for the complete model too.
    Plain and fine-tuned numbers never stand in for each other, nor inductive and transductive ones, nor
    one method's for another's.
    """
    bench = benchmark.lower()
    keys = [f"ablation:{variant}:{metric}"]
    if variant == FULL_MODEL_VARIANT:
        keys = keys + [metric] if prefer_ablation else [metric] + keys
    for key in keys:
        if (bench, features, setting, method, key) in paper:
            return paper[(bench, features, setting, method, key)]
    return math.nan


def mean_std(values: Sequence[float]) -> tuple[float, float]:
    """Mean and sample standard deviation (ddof=1); the std is NaN for a single value."""
    array = np.asarray(values, dtype=np.float64)
    if array.size == 0:
        return math.nan, math.nan
    std = float(array.std(ddof=1)) if array.size > 1 else math.nan
    return float(array.mean()), std


def benchmark_sort_key(benchmark: str) -> tuple[int, str]:
    """The paper's benchmarks in a fixed order, then any others alphabetically."""
    b = benchmark.lower()
    return (BENCHMARK_ORDER.index(b) if b in BENCHMARK_ORDER else len(BENCHMARK_ORDER), b)


def _order(group: Group) -> tuple:
    """Benchmarks in paper order, plain before fine-tuned, inductive before transductive (uniform, then
    labels), `paper` before `val`, the methods in METHOD_ORDER, the complete model first."""
    benchmark, features, setting, prior, unlabelled, protocol, variant, method = group
    return (*benchmark_sort_key(benchmark), FEATURES.index(features), SETTINGS.index(setting), PRIORS.index(prior),
            UNLABELLED.index(unlabelled), PROTOCOLS.index(protocol), METHOD_ORDER.index(method),
            variant != FULL_MODEL_VARIANT, variant)


def _ablation_order(group: Group) -> tuple:
    """As _order, but variants cumulatively as in the paper's ablation, the complete model last."""
    variant = group[GROUP_KEYS.index("variant")]
    rank = (ABLATION_ORDER.index(variant) if variant in ABLATION_ORDER
            else len(ABLATION_ORDER) + (variant == FULL_MODEL_VARIANT))
    return (*_order(group)[:-2], rank, variant)


def build_tables(runs: Sequence[Run], paper: dict[PaperKey, float]) -> dict[str, pd.DataFrame]:
    """Aggregate runs into the three tables, in percent, rounded to DECIMALS."""
    groups: dict[Group, list[Run]] = {}
    for run in runs:
        groups.setdefault(run.group, []).append(run)
    zsl_rows, gzsl_rows, ablation_rows = [], [], []
    for group in sorted(groups, key=_order):
        members = groups[group]
        key = dict(zip(GROUP_KEYS, group))

        def published(metric: str, prefer_ablation: bool = False, key=key) -> float:
            return paper_value(paper, key["benchmark"], key["features"], key["variant"], metric, prefer_ablation,
                               key["setting"], key["method"])

        top1_mean, top1_std = mean_std([100 * r.zsl_acc for r in members])
        zsl_rows.append({**key, "n_seeds": len(members), "top1_mean": top1_mean, "top1_std": top1_std,
                         "paper_top1": published("zsl_top1"), "diff_top1": top1_mean - published("zsl_top1")})
        with_gzsl = [r for r in members if r.gzsl_h is not None]
        u_mean, u_std = mean_std([100 * r.gzsl_unseen for r in with_gzsl])
        s_mean, s_std = mean_std([100 * r.gzsl_seen for r in with_gzsl])
        h_mean, h_std = mean_std([100 * r.gzsl_h for r in with_gzsl])
        if with_gzsl:
            gzsl_rows.append({**key, "n_seeds": len(with_gzsl), "u_mean": u_mean, "u_std": u_std,
                              "s_mean": s_mean, "s_std": s_std, "h_mean": h_mean, "h_std": h_std,
                              "paper_u": published("gzsl_u"), "paper_s": published("gzsl_s"),
                              "paper_h": published("gzsl_h"), "diff_h": h_mean - published("gzsl_h")})
        ab_top1, ab_h = published("zsl_top1", prefer_ablation=True), published("gzsl_h", prefer_ablation=True)
        ablation_rows.append({**key, "n_seeds": len(members), "top1_mean": top1_mean, "top1_std": top1_std,
                              "h_mean": h_mean, "h_std": h_std, "paper_top1": ab_top1, "paper_h": ab_h,
                              "diff_top1": top1_mean - ab_top1, "diff_h": h_mean - ab_h})
    ablation_rows.sort(key=lambda row: _ablation_order(tuple(row[k] for k in GROUP_KEYS)))
    tables = {
        "zsl": pd.DataFrame(zsl_rows, columns=ZSL_COLUMNS).round(DECIMALS),
        "gzsl": pd.DataFrame(gzsl_rows, columns=GZSL_COLUMNS).round(DECIMALS),
        "ablation": pd.DataFrame(ablation_rows, columns=ABLATION_COLUMNS).round(DECIMALS),
    }
    tables["methods"] = build_methods_table(tables["zsl"], tables["gzsl"], paper)
    return tables


# --------------------------------------------------------------------------- the methods compared
# One row per benchmark, features, setting, prior, unlabelled set, protocol and method: each method's complete
# model (variant FULL_MODEL_VARIANT), its numbers and published ones as zsl.csv and gzsl.csv hold them (nothing
# aggregated again), ranked among the methods of its block (the row without method and variant).
RANK_BLOCK = ("benchmark", "features", "setting", "prior", "unlabelled", "protocol")


def build_methods_table(zsl: pd.DataFrame, gzsl: pd.DataFrame, paper: dict[PaperKey, float]) -> pd.DataFrame:
    """methods.csv from build_tables' zsl and gzsl tables: the complete model of each method, ranked by top-1
    and by H within its block (1 = the best mean; ties share the lower rank; a missing mean has no rank). The
    published H is the paper's even where our runs report no GZSL."""
    keys = [*RANK_BLOCK, "method"]  # one row of each (variant fixed); a left merge keeps zsl's row order
    full_zsl = zsl[zsl.variant == FULL_MODEL_VARIANT]
    full_gzsl = gzsl[gzsl.variant == FULL_MODEL_VARIANT][[*keys, "u_mean", "u_std", "s_mean", "s_std", "h_mean",
                                                           "h_std"]]
    frame = full_zsl[[*keys, "n_seeds", "top1_mean", "top1_std", "paper_top1"]].merge(full_gzsl, on=keys,
                                                                                       how="left")
    frame["paper_h"] = [paper_value(paper, r.benchmark, r.features, FULL_MODEL_VARIANT, "gzsl_h", setting=r.setting,
                                    method=r.method) for r in frame.itertuples()]
    for metric in ("top1", "h"):
        ranks = frame.groupby(list(RANK_BLOCK), sort=False)[f"{metric}_mean"].rank(ascending=False, method="min")
        frame[f"rank_{metric}"] = ranks.astype("Int64")  # integers, empty where no mean
    return frame[METHODS_COLUMNS].reset_index(drop=True)  # in zsl's order: the block, then METHOD_ORDER


def write_tables(tables: dict[str, pd.DataFrame], out_dir: str | Path) -> list[Path]:
    out_dir = Path(out_dir)
    written = []
    for name, frame in tables.items():
        path = out_dir / f"{name}.csv"
        write_atomic(path, lambda temp, frame=frame: frame.to_csv(temp, index=False))
        written.append(path)
    return written


def load_paper_or_default(path: str | Path) -> dict[PaperKey, float]:
    """The --paper file; the built-in default may be absent (a non-editable install): then no paper column."""
    if str(path) == str(DEFAULT_PAPER_RESULTS) and not DEFAULT_PAPER_RESULTS.is_file():
        print(f"note: {DEFAULT_PAPER_RESULTS} not found; paper columns left empty (pass --paper)")
        return {}
    return load_paper(path)


def make_tables(metrics: Sequence[str | Path], paper: str | Path, out_dir: str | Path) -> list[Path]:
    """`tables`: every metrics.json → zsl.csv, gzsl.csv, ablation.csv, methods.csv and the main table
    (main_table.md, main_table.tex) in out_dir; everything is built before anything is written."""
    runs = load_runs(metrics)
    tables = build_tables(runs, load_paper_or_default(paper))
    main_table = build_main_table(tables)
    written = write_tables(tables, out_dir)
    for path in written:
        print(f"wrote {path} ({len(tables[path.stem])} rows from {len(runs)} runs)")
    for path in write_main_table(main_table, out_dir):
        print(f"wrote {path} ({len(main_table.rows)} rows" + (f"; {main_table.note})" if main_table.note else ")"))
        written.append(path)
    return written


# --------------------------------------------------------------------------- the main table, in the paper's layout
# Benchmarks as column groups (ZSL T1 | GZSL u, s, H), one section of rows per features and setting (the
# transductive prior and unlabelled set named where not Config's default), in each the published row and,
# per protocol, ours (mean ± std over seeds) and Δ = ours − published. The complete model only; every
# number is one of zsl.csv's or gzsl.csv's (ours, the published value, the difference): nothing is
# aggregated again here.
MAIN_TABLE_FILES = ("main_table.md", "main_table.tex")
MAIN_TABLE_METRICS = ("T1", "u", "s", "H")
# each metric: (table, ours' mean, its std, the published value, ours − published; None: the table has
# no such column, the difference of its two columns is shown)
MAIN_TABLE_CELLS = {"T1": ("zsl", "top1_mean", "top1_std", "paper_top1", "diff_top1"),
                    "u": ("gzsl", "u_mean", "u_std", "paper_u", None),
                    "s": ("gzsl", "s_mean", "s_std", "paper_s", None),
                    "H": ("gzsl", "h_mean", "h_std", "paper_h", "diff_h")}
SECTION_KEYS = ("features", "setting", "prior", "unlabelled")
DEFAULT_PRIOR, DEFAULT_UNLABELLED = Config.transductive_prior, Config.transductive_unlabelled
PUBLISHED_LABEL = "TF-VAEGAN (paper, published)"
DELTA_LABEL = "Δ (ours − published)"
MAIN_TABLE_NOTE = (
    f"TF-VAEGAN, the complete model (variant `{FULL_MODEL_VARIANT}`), beside the published numbers "
    "(config/paper_results.csv; the paper's transductive numbers are known-prior ones). T1: ZSL per-class "
    "top-1 accuracy; u, s, H: GZSL per-class top-1 on the unseen and the seen classes and their harmonic "
    "mean; all in %. Ours: mean ± sample std over seeds (the mean alone for one seed; n_seeds in zsl.csv and "
    "gzsl.csv); protocols as in docs/protocols.md. Δ: ours − published. –: no number. Written by "
    "`python -m tfvaegan tables` from the numbers of zsl.csv and gzsl.csv.")
Cell = tuple[float, float]  # (value, std over seeds: NaN where none)


@dataclass(frozen=True)
class MainRow:
    """One row: its section (features and setting), its method label, its kind (published, ours or
    delta) and a cell per benchmark and metric (MAIN_TABLE_METRICS)."""

    section: str
    method: str
    kind: str
    cells: tuple[Cell, ...]


@dataclass(frozen=True)
class MainTable:
    benchmarks: tuple[str, ...]
    rows: tuple[MainRow, ...]
    note: str = ""  # why there are no rows
    compared: tuple[ComparedRow, ...] = ()  # "Methods compared": empty unless methods.csv holds two methods
    protocols: tuple[str, ...] = ()  # the protocols of `compared`'s columns


def section_name(features: str, setting: str, prior: str, unlabelled: str) -> str:
    """'Plain features, inductive', 'Fine-tuned features, transductive (prior labels, unlabelled test_unseen)'."""
    named = [f"{key} {value}" for key, value, default in (("prior", prior, DEFAULT_PRIOR),
                                                          ("unlabelled", unlabelled, DEFAULT_UNLABELLED))
             if setting == "transductive" and value != default]
    kind = "Fine-tuned" if features == "finetuned" else "Plain"
    return f"{kind} features, {setting}" + (f" ({', '.join(named)})" if named else "")


def _key_text(value) -> str:
    """A key column's value as build_tables writes it ("" where a CSV read gives NaN)."""
    return value if isinstance(value, str) else ""


def _main_frames(tables: dict[str, pd.DataFrame]) -> dict[str, pd.DataFrame]:
    """The zsl and gzsl tables of build_tables, checked: a missing table or column, or no row, is one error."""
    frames = {}
    for name, columns in (("zsl", ZSL_COLUMNS), ("gzsl", GZSL_COLUMNS)):
        frame = tables.get(name)
        if not isinstance(frame, pd.DataFrame):
            raise UserError(f"main table: expected the {name} table of build_tables, found {type(frame).__name__}")
        lacking = [column for column in columns if column not in frame.columns]
        if lacking:
            raise UserError(f"main table: the {name} table: expected the columns {columns}, found none of {lacking}")
        frames[name] = frame
    if frames["zsl"].empty:
        raise UserError("main table: expected at least one row in the zsl table (one per benchmark, features, "
                        "setting, prior, unlabelled set, protocol and variant), found none")
    return frames


def _metric_cells(index: dict, benchmark: str, section: tuple, protocol: str, metric: str) -> tuple[float, ...]:
    """(ours' mean, std, the published value, ours − published) of one cell; NaN where the tables have none."""
    name, mean, std, paper, diff = MAIN_TABLE_CELLS[metric]
    row = index.get((name, benchmark, section, protocol))
    if row is None:
        return (math.nan,) * 4
    values = [float(row[column]) for column in (mean, std, paper)]
    return (*values, float(row[diff]) if diff else values[0] - values[2])


def build_main_table(tables: dict[str, pd.DataFrame]) -> MainTable:
    """The paper's main table from build_tables' zsl and gzsl tables (the complete model's rows)."""
    frames = _main_frames(tables)
    index = {}
    for name, frame in frames.items():
        ours = (frame.variant == FULL_MODEL_VARIANT) & (frame.method == DEFAULT_METHOD)  # TF-VAEGAN's rows only
        for row in frame[ours].to_dict("records"):
            section = tuple(_key_text(row[key]) for key in SECTION_KEYS)
            index[(name, row["benchmark"], section, row["protocol"])] = row
    compared, protocols = compared_rows(tables.get("methods"))
    if not index:
        return MainTable((), (), note=f"no run of the complete model (variant '{FULL_MODEL_VARIANT}') of "
                                      f"TF-VAEGAN (method '{DEFAULT_METHOD}'), found variants "
                                      f"{sorted(set(frames['zsl'].variant))} of methods "
                                      f"{sorted(set(frames['zsl'].method))}", compared=compared, protocols=protocols)
    benchmarks = tuple(sorted({key[1] for key in index}, key=benchmark_sort_key))
    orders = (FEATURES, SETTINGS, PRIORS, UNLABELLED)
    sections = sorted({key[2] for key in index}, key=lambda s: [order.index(v) for order, v in zip(orders, s)])
    rows = []
    for section in sections:
        label = section_name(*section)
        protocols = sorted({key[3] for key in index if key[2] == section}, key=PROTOCOLS.index)
        cells = {p: [_metric_cells(index, b, section, p, m) for b in benchmarks for m in MAIN_TABLE_METRICS]
                 for p in protocols}
        # the published value is the same whatever our protocol: the first protocol's row that has it
        published = tuple((next((c[i][2] for c in cells.values() if not math.isnan(c[i][2])), math.nan), math.nan)
                          for i in range(len(benchmarks) * len(MAIN_TABLE_METRICS)))
        has_published = any(not math.isnan(value) for value, _ in published)
        if has_published:
            rows.append(MainRow(label, PUBLISHED_LABEL, "published", published))
        for protocol in protocols:
            rows.append(MainRow(label, f"TF-VAEGAN (ours, {protocol} protocol)", "ours",
                                tuple((mean, std) for mean, std, _, _ in cells[protocol])))
            if has_published:
                rows.append(MainRow(label, DELTA_LABEL, "delta", tuple((d, math.nan) for *_, d in cells[protocol])))
    return MainTable(benchmarks, tuple(rows), compared=compared, protocols=protocols)


# --------------------------------------------------------------------------- "Methods compared", below the main table
# Per benchmark (with its features, setting, prior and unlabelled set), each method's complete model: the
# published number, then ours under each protocol with its rank among the methods; T1 and H. The numbers are
# methods.csv's. Shown only when methods.csv holds two methods or more (a lineage run): with TF-VAEGAN alone the
# main table says it all.
COMPARED_METRICS = (("T1", "top1_mean", "top1_std", "rank_top1", "paper_top1"),
                    ("H", "h_mean", "h_std", "rank_h", "paper_h"))
COMPARED_NOTE = (
    f"Each method's complete model (variant `{FULL_MODEL_VARIANT}`) on each benchmark: published (config/paper_results.csv, "
    "the method's own paper or the comparison that quotes it; –: none), then ours per protocol: mean ± sample "
    "std over seeds (n_seeds in methods.csv) and, in brackets, the method's rank among the methods of that "
    "benchmark under that protocol (1: the best mean; ties share the lower rank). T1: ZSL per-class top-1; H: "
    "GZSL harmonic mean; in %. Written by `python -m tfvaegan tables` from results/tables/methods.csv.")


@dataclass(frozen=True)
class ComparedRow:
    """One method on one benchmark: per COMPARED_METRICS, the published value, then per protocol (mean, std,
    rank) with NaN where there is none."""

    block: str
    method: str
    cells: tuple[tuple[float, tuple[tuple[float, float, float], ...]], ...]


def compared_rows(methods: pd.DataFrame | None) -> tuple[tuple[ComparedRow, ...], tuple[str, ...]]:
    """The "Methods compared" rows of methods.csv (build_methods_table's frame) and their protocols; none when
    it is absent or holds fewer than two methods."""
    if not isinstance(methods, pd.DataFrame) or methods.empty or methods.method.nunique() < 2:
        return (), ()
    protocols = tuple(p for p in PROTOCOLS if p in set(methods.protocol))
    index = {}
    for row in methods.to_dict("records"):
        block = bench_label(row["benchmark"], *(_key_text(row[k]) for k in SECTION_KEYS))
        index.setdefault((block, method_name(row["method"], row["setting"])), {})[row["protocol"]] = row
    rows = []
    for (block, method), by_protocol in index.items():  # methods.csv's order: the block, then METHOD_ORDER
        cells = []
        for _, mean, std, rank, paper in COMPARED_METRICS:
            published = next(iter(by_protocol.values()))[paper]  # one published value whatever our protocol
            ours = tuple((float(by_protocol[p][mean]), float(by_protocol[p][std]),
                          math.nan if pd.isna(by_protocol[p][rank]) else float(by_protocol[p][rank]))
                         if p in by_protocol else (math.nan,) * 3 for p in protocols)
            cells.append((float(published), ours))
        rows.append(ComparedRow(block, method, tuple(cells)))
    return tuple(rows), protocols


def _compared_text(value: float, std: float = math.nan, rank: float = math.nan, tex: bool = False) -> str:
    """'62.0 ± 2.8 (1)' (ours: mean, std, rank), '64.9' (published); '–' where no number."""
    text = _cell_text("ours", value, std, tex)
    return text + (f" ({int(rank)})" if not math.isnan(value) and not math.isnan(rank) else "")


def _compared_cells(row: ComparedRow, tex: bool) -> list[str]:
    return [text for published, ours in row.cells
            for text in [_compared_text(published, tex=tex)] + [_compared_text(*cell, tex=tex) for cell in ours]]


def compared_markdown(table: MainTable) -> list[str]:
    """The "## Methods compared" section's lines (none without a comparison)."""
    if not table.compared:
        return []
    header = ["Benchmark", "Method"] + [f"{m} {c}" for m, *_ in COMPARED_METRICS
                                        for c in ("published", *table.protocols)]
    lines = ["## Methods compared", "", _md_line(header),
             "|" + "|".join([":---"] * 2 + ["---:"] * (len(header) - 2)) + "|"]
    lines += [_md_line([row.block, row.method] + _compared_cells(row, tex=False)) for row in table.compared]
    return lines + ["", COMPARED_NOTE, ""]


def compared_latex(table: MainTable) -> list[str]:
    """The methods compared as a second booktabs `tabular` (none without a comparison)."""
    if not table.compared:
        return []
    group = 1 + len(table.protocols)
    lines = ["", (r"% Methods compared: each method's complete model; published, then ours per protocol: mean "
                  r"$\pm$ std (rank among the methods, 1 = best)."),
             r"\begin{tabular}{ll" + (" " + "c" * group) * len(COMPARED_METRICS) + "}", r"\toprule",
             " & ".join(["", ""] + [rf"\multicolumn{{{group}}}{{c}}{{{m}}}" for m, *_ in COMPARED_METRICS]) + r" \\",
             " ".join(rf"\cmidrule(lr){{{3 + group * i}-{2 + group * (i + 1)}}}" for i in range(len(COMPARED_METRICS))),
             " & ".join(["Benchmark", "Method"] + ["published", *table.protocols] * len(COMPARED_METRICS)) + r" \\"]
    block = None
    for row in table.compared:
        if row.block != block:
            block = row.block
            lines.append(r"\midrule")
        lines.append(" & ".join([tex_escape(row.block), tex_escape(row.method)] + _compared_cells(row, tex=True))
                     + r" \\")
    return lines + [r"\bottomrule", r"\end{tabular}"]


def _cell_text(kind: str, value: float, std: float, tex: bool) -> str:
    """One cell: '62.0 ± 2.0' (ours), '62.0' (one seed, or published), '-2.9' (Δ); '–' where no number."""
    if math.isnan(value):
        return "--" if tex else "–"
    if kind == "delta":
        text = f"{round(value, 1) + 0.0:+.1f}"  # + 0.0: never '-0.0'
        return f"${text}$" if tex else text
    text = f"{value:.1f}"
    if kind == "ours" and not math.isnan(std):
        text += (r" $\pm$ " if tex else " ± ") + f"{std:.1f}"
    return text


def main_table_markdown(table: MainTable) -> str:
    """A GitHub table: the two-level header flattened ('CUB T1', 'CUB u', ...), a Setting column."""
    lines = [f"<!-- {MAIN_TABLE_FILES[0]}: written by `python -m tfvaegan tables` -->", ""]
    if not table.rows:
        return "\n".join(lines + [f"No main table: {table.note}.", ""] + compared_markdown(table))
    header = ["Setting", "Method"] + [f"{b.upper()} {m}" for b in table.benchmarks for m in MAIN_TABLE_METRICS]
    lines += [_md_line(header), "|" + "|".join([":---"] * 2 + ["---:"] * (len(header) - 2)) + "|"]
    lines += [_md_line([row.section, row.method] + [_cell_text(row.kind, v, s, tex=False) for v, s in row.cells])
              for row in table.rows]
    return "\n".join(lines + ["", MAIN_TABLE_NOTE, ""] + compared_markdown(table))


def _md_line(cells: Sequence[str]) -> str:
    return "| " + " | ".join(cell.replace("|", r"\|") for cell in cells) + " |"


TEX_SPECIALS = {"\\": r"\textbackslash{}", "&": r"\&", "%": r"\%", "$": r"\$", "#": r"\#", "_": r"\_",
                "{": r"\{", "}": r"\}", "~": r"\textasciitilde{}", "^": r"\textasciicircum{}"}


def tex_escape(text: str) -> str:
    return "".join(TEX_SPECIALS.get(char, char) for char in text)


def main_table_latex(table: MainTable) -> str:
    r"""A booktabs `tabular`: a \multicolumn group per benchmark, a \multicolumn row per section."""
    lines = [r"% TF-VAEGAN main table, written by `python -m tfvaegan tables`; needs \usepackage{booktabs} only.",
             r"% T1: ZSL per-class top-1; u, s, H: GZSL unseen, seen, harmonic mean (%).",
             r"% Ours: mean $\pm$ sample std over seeds; Delta: ours - published; --: no number."]
    if not table.rows:
        return "\n".join(lines + [f"% No main table: {table.note}."] + compared_latex(table) + [""])
    width = 1 + len(MAIN_TABLE_METRICS) * len(table.benchmarks)
    group = len(MAIN_TABLE_METRICS)
    lines += [r"\begin{tabular}{l" + (" " + "c" * group) * len(table.benchmarks) + "}", r"\toprule",
              " & ".join([""] + [rf"\multicolumn{{{group}}}{{c}}{{{tex_escape(b.upper())}}}"
                                 for b in table.benchmarks]) + r" \\",
              " ".join(rf"\cmidrule(lr){{{2 + group * i}-{1 + group * (i + 1)}}}"
                       for i in range(len(table.benchmarks))),
              " & ".join(["Method", *MAIN_TABLE_METRICS * len(table.benchmarks)]) + r" \\"]
    section = None
    for row in table.rows:
        if row.section != section:
            section = row.section
            lines += [r"\midrule", rf"\multicolumn{{{width}}}{{l}}{{\textit{{{tex_escape(section)}}}}} \\"]
        method = r"$\Delta$ (ours $-$ published)" if row.kind == "delta" else tex_escape(row.method)
        lines.append(" & ".join([method] + [_cell_text(row.kind, v, s, tex=True) for v, s in row.cells]) + r" \\")
    return "\n".join(lines + [r"\bottomrule", r"\end{tabular}"] + compared_latex(table) + [""])


def write_main_table(table: MainTable, out_dir: str | Path) -> list[Path]:
    """main_table.md and main_table.tex in out_dir, each written atomically."""
    paths = [Path(out_dir) / name for name in MAIN_TABLE_FILES]
    for path, text in zip(paths, (main_table_markdown(table), main_table_latex(table))):
        atomic_write_text(path, text)
    return paths
