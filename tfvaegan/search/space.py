"""The search section: its keys checked, the space it describes, and the trials drawn from it.

Torch-free: the workflow reads it when Snakemake parses the config, so that a bad section stops
everything with one message before any job starts.

```yaml
search:
  benchmark: demo          # a catalog entry
  metric: gzsl_h           # or zsl_acc
  trials: 4                # grid: every combination (trials ignored); ranges: this many draws
  seed: 0
  space:                   # config keys; a list = grid values, {low, high, log} = a range
    lr: [0.0001, 0.0005]
    syn_num: [50, 100]
```

A key that moves the validation split or reads test labels (`REFUSED_KEYS`, each with its reason)
is refused in the space, and a value that reads test labels in the searched run too.

A space of lists only is a grid: every combination is one trial. A space with a range is a random
search: `trials` draws, each key drawn on its own seeded stream (seed, draw number, key), so that
raising `trials` keeps the earlier draws (and their cached results) and adding a key keeps the
other keys' values. A list key of a random search is drawn uniformly from its list. A trial is
named by its settings (`trial_id`), not by its position, so that a grid that gains a value keeps
the names of the combinations it had.
"""
from __future__ import annotations

import hashlib
import itertools
import json
import math
import random
import typing
from dataclasses import dataclass, fields
from typing import Any, Mapping

from tfvaegan.config import Config, from_mapping
from tfvaegan.errors import ConfigError

# The validation metrics a search can rank trials by (fractions, as in metrics.json).
METRICS = ("gzsl_h", "zsl_acc")
# Defaults of the optional keys; workflow/schemas/config.schema.yaml states the same (a test checks).
DEFAULTS = {"variant": "tfvaegan", "metric": "gzsl_h", "trials": 8, "seed": 0}
SECTION_KEYS = ("benchmark", *DEFAULTS, "space")
RANGE_KEYS = ("low", "high", "log")


class Refusal(typing.NamedTuple):
    """Why a search refuses a config key: every value (`values` None), or only the values listed."""

    reason: str
    values: tuple | None = None


_OTHER_SPLIT = "trials scored on different validation splits are not comparable"
# The config keys a search refuses, each with its reason: the one list the checks, their messages,
# config/README.md ("Refused keys") and README.md use (tests/test_search.py checks that they name them).
# A key refused for every value cannot be searched (space, or `search trial --trial`); a fixed value
# of it in the searched run (benchmark file, catalog settings, variant, overrides) is one split for
# all trials, and the search sets protocol and manualSeed itself. A value that reads test labels is
# refused in the space and in the searched run alike: the final run would read them.
REFUSED_KEYS: dict[str, Refusal] = {
    "protocol": Refusal("a search scores every trial on the validation split (the val protocol's "
                        "selection run) and sets protocol: val itself"),
    "manualSeed": Refusal("the section's `seed` is every trial's manualSeed, which draws the validation split; "
                          f"{_OTHER_SPLIT}"),
    "val_seen_fraction": Refusal("it moves the validation split (the training images held out as "
                                 f"validation-seen); {_OTHER_SPLIT}"),
    "val_unseen_fraction": Refusal("it moves the validation split (the training classes held out as "
                                   f"validation-unseen); {_OTHER_SPLIT}"),
    "dataset": Refusal(f"it names other data files, hence another validation split; {_OTHER_SPLIT} "
                       "(search one catalog entry)"),
    "class_embedding": Refusal("it names another split file, whose trainval_loc and val_loc the validation "
                               f"split is drawn from; {_OTHER_SPLIT}"),
    "image_embedding": Refusal("it names another feature file, whose labels the validation split is drawn "
                               f"from; {_OTHER_SPLIT}"),
    "image_embedding_path": Refusal("it names another feature file, whose labels the validation split is "
                                    f"drawn from; {_OTHER_SPLIT}"),
    "transductive_prior": Refusal("it reads test labels: the final run's D2 fakes take the true labels of its "
                                  "unlabelled test rows (use uniform)", ("labels",)),
    "transductive_unlabelled": Refusal("it reads test labels: the final run's D2 learns from the test_unseen rows "
                                       "only, a set the test labels choose (use test)", ("test_unseen",)),
}
DRAW_DIGITS = 4  # a drawn float keeps 4 significant digits: readable in trials.csv and best.yaml
MAX_DRAWS_PER_TRIAL = 100  # a small range cannot give `trials` distinct draws: stop, with a note

_FIELD_TYPES = typing.get_type_hints(Config)
_CONFIG_KEYS = tuple(f.name for f in fields(Config))


def _fail(where: str, message: str):
    raise ConfigError(f"config key '{where}': {message}")


def key_type(key: str) -> type:
    """The Python type of a Config key (int, float, bool or str), None stripped from Optional."""
    hint = _FIELD_TYPES[key]
    args = [a for a in typing.get_args(hint) if a is not type(None)]
    return args[0] if args else hint


@dataclass(frozen=True)
class Range:
    """A numeric range of one key: uniform, or log-uniform with `log`; integers for an int key."""

    low: float
    high: float
    log: bool = False
    integer: bool = False

    def draw(self, rng: random.Random) -> float | int:
        if self.log:
            value = math.exp(rng.uniform(math.log(self.low), math.log(self.high)))
        else:
            value = rng.uniform(self.low, self.high)
        if self.integer:
            return int(min(max(round(value), self.low), self.high))
        return min(max(float(f"{value:.{DRAW_DIGITS}g}"), self.low), self.high)


@dataclass(frozen=True)
class SearchSpec:
    benchmark: str
    variant: str
    metric: str
    trials: int
    seed: int
    space: dict[str, tuple | Range]  # in the order the section gives them

    @property
    def is_grid(self) -> bool:
        return all(isinstance(values, tuple) for values in self.space.values())

    def describe(self) -> str:
        keys = ", ".join(self.space)
        if self.is_grid:
            return f"a grid over {keys} on {self.benchmark}, ranked by validation {self.metric}"
        return f"{self.trials} random draws over {keys} on {self.benchmark}, ranked by validation {self.metric}"


def trial_id(settings: Mapping[str, Any]) -> str:
    """A trial's folder name: a digest of its settings (the same settings, the same trial)."""
    return hashlib.sha256(json.dumps(dict(settings), sort_keys=True).encode()).hexdigest()[:10]


def trial_settings(spec: SearchSpec) -> list[dict[str, Any]]:
    """The trials' settings, distinct, in order: every grid combination, or the first `trials`
    distinct draws (fewer when the ranges hold fewer distinct points)."""
    keys = list(spec.space)
    if spec.is_grid:
        return [dict(zip(keys, values)) for values in itertools.product(*spec.space.values())]
    found: dict[str, dict[str, Any]] = {}
    for draw in range(spec.trials * MAX_DRAWS_PER_TRIAL):
        if len(found) == spec.trials:
            break
        settings = {key: _draw(spec.space[key], random.Random(f"tfvaegan-search/{spec.seed}/{draw}/{key}"))
                    for key in keys}
        found.setdefault(trial_id(settings), settings)
    return list(found.values())


def plan_trials(spec: SearchSpec, base_values: Mapping[str, Any]) -> dict[str, dict[str, Any]]:
    """Trial name -> settings, each trial's whole config (`base_values` with its settings) checked.

    Settings are given as the config reads them (1 and 1.0 of a float key are one trial); a metric
    that needs GZSL is refused for a trial that does not evaluate it."""
    planned: dict[str, dict[str, Any]] = {}
    for settings in trial_settings(spec):
        cfg = from_mapping({**base_values, **settings}, f"config key 'search.space' (trial {settings})")
        if spec.metric != "zsl_acc" and not cfg.reports_gzsl:
            _fail("search.metric", f"{spec.metric} needs GZSL, but trial {settings} runs with gzsl: false and "
                                   "gzsl_od: false; rank by zsl_acc, or search with GZSL on")
        canonical = {key: getattr(cfg, key) for key in settings}
        planned.setdefault(trial_id(canonical), canonical)
    return planned


def _draw(values: tuple | Range, rng: random.Random):
    return values.draw(rng) if isinstance(values, Range) else values[rng.randrange(len(values))]


# --------------------------------------------------------------------------- parsing
def parse_search(section: Any, where: str = "search") -> SearchSpec:
    """The section as a SearchSpec; one ConfigError naming the key for the first problem."""
    if not isinstance(section, Mapping):
        _fail(where, f"expected a mapping with {', '.join(SECTION_KEYS)}, found {type(section).__name__}")
    unknown = sorted(set(map(str, section)) - set(SECTION_KEYS))
    if unknown:
        _fail(f"{where}.{unknown[0]}", f"unknown key; expected one of {', '.join(SECTION_KEYS)}")
    values = {**DEFAULTS, **section}
    if not isinstance(values.get("benchmark"), str) or not values["benchmark"]:
        _fail(f"{where}.benchmark", f"expected the name of a catalog entry, found {values.get('benchmark')!r}")
    if not isinstance(values["variant"], str):
        _fail(f"{where}.variant", f"expected the name of a variant, found {values['variant']!r}")
    if values["metric"] not in METRICS:
        _fail(f"{where}.metric", f"expected one of {', '.join(METRICS)}, found {values['metric']!r}")
    for key, minimum in (("trials", 1), ("seed", 0)):
        number = values[key]
        if isinstance(number, bool) or not isinstance(number, int) or number < minimum:
            _fail(f"{where}.{key}", f"expected an integer >= {minimum}, found {number!r}")
    space = values.get("space")
    if not isinstance(space, Mapping) or not space:
        found = "an empty mapping" if isinstance(space, Mapping) else repr(space)
        _fail(f"{where}.space", f"expected at least one config key to search (key: [values] or "
                                f"key: {{low, high, log}}), found {found}")
    parsed = {str(key): _parse_key(key, value, f"{where}.space.{key}") for key, value in space.items()}
    return SearchSpec(values["benchmark"], values["variant"], values["metric"], values["trials"],
                      values["seed"], parsed)


def refuse_searched(key: str, values: Any, where: str) -> None:
    """One ConfigError naming `where` if a search may not vary `key` over `values` (a list of values,
    a range, or one trial's value): REFUSED_KEYS, the one check of the section and of `search trial`."""
    refusal = REFUSED_KEYS.get(key)
    if refusal is None:
        return
    if refusal.values is None:
        _fail(where, f"cannot be searched: {refusal.reason}")
    for value in values if isinstance(values, list) else [values]:
        if isinstance(value, typing.Hashable) and value in refusal.values:
            _fail(where, f"the value {value!r} cannot be searched: {refusal.reason}")


def refuse_run_values(values: Mapping[str, Any], where_of, run: str) -> None:
    """One ConfigError if the searched run's own values (apart from the space) hold a value that
    REFUSED_KEYS refuses (one that reads test labels); `where_of(key)` names where it is set, `run` the run."""
    for key, refusal in REFUSED_KEYS.items():
        value = values.get(key)
        if refusal.values is not None and isinstance(value, typing.Hashable) and value in refusal.values:
            raise ConfigError(f"{where_of(key)}: {run} sets {value!r}, which a search refuses: {refusal.reason}")


def _parse_key(key: Any, value: Any, where: str) -> tuple | Range:
    refuse_searched(str(key), value, where)  # first: the reason, rather than another problem of the value
    if key not in _CONFIG_KEYS:
        _fail(where, "unknown config key; the run keys are listed in config/README.md")
    if isinstance(value, list):
        return _parse_values(key, value, where)
    if isinstance(value, Mapping):
        return _parse_range(key, value, where)
    _fail(where, f"expected a list of values (a grid) or {{low, high, log}} (a range), found {value!r}")


def _number(value: Any, where: str, integer: bool) -> float | int:
    """A bound or grid value of a numeric key. YAML 1.1 (Snakemake's loader) reads '1e-5' as a
    string, so a decimal string counts as the number it spells."""
    if isinstance(value, str):
        try:
            value = float(value)
        except ValueError:
            pass
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        _fail(where, f"expected a {'whole' if integer else 'finite'} number, found {value!r}")
    if integer:
        if float(value) != int(value):
            _fail(where, f"expected a whole number (the key is an integer), found {value!r}")
        return int(value)
    return float(value)


def _parse_values(key: str, values: list, where: str) -> tuple:
    if not values:
        _fail(where, "expected at least one value, found an empty list")
    kind = key_type(key)
    canonical = []
    for value in values:
        if isinstance(value, (list, dict)):
            _fail(where, f"expected single values, found {value!r}")
        if kind in (int, float) and value is not None:
            value = _number(value, where, integer=kind is int)
        if json.dumps(value) in map(json.dumps, canonical):  # 1 and true differ; 1 and 1.0 of a float key do not
            _fail(where, f"expected distinct values, found {value!r} twice")
        canonical.append(value)
    return tuple(canonical)


def _parse_range(key: str, spec: Mapping, where: str) -> Range:
    unknown = sorted(set(map(str, spec)) - set(RANGE_KEYS))
    if unknown:
        _fail(f"{where}.{unknown[0]}", "unknown range key; expected low, high and optionally log")
    missing = [name for name in ("low", "high") if name not in spec]
    if missing:
        _fail(f"{where}.{missing[0]}", "missing: a range needs low and high")
    kind = key_type(key)
    if kind not in (int, float):
        _fail(where, f"a range needs a numeric key, found a {kind.__name__} key: give a list of values")
    integer = kind is int
    low, high = (_number(spec[name], f"{where}.{name}", integer) for name in ("low", "high"))
    log = spec.get("log", False)
    if not isinstance(log, bool):
        _fail(f"{where}.log", f"expected true or false, found {log!r}")
    if low > high:
        _fail(where, f"expected low <= high, found low {low} > high {high}")
    if log and low <= 0:
        _fail(f"{where}.low", f"expected low > 0 for a log range, found {low}")
    return Range(low, high, log, integer)


def plan_workflow_search(catalog) -> tuple[SearchSpec | None, dict[str, Any], dict[str, dict[str, Any]]]:
    """The workflow's `search` section (of a tfvaegan.catalog.Catalog's config) checked against its catalog
    and drawn: (the SearchSpec, the searched run's base values, trial name -> its settings in the draws'
    order); (None, {}, {}) without a section. workflow/rules/search.smk asks this when it is parsed."""
    config = catalog.config
    if "search" not in config:
        return None, {}, {}
    spec = parse_search(config["search"])
    if spec.variant not in config["variants"]:
        raise ConfigError(f"config key 'search.variant': {spec.variant!r} is not under 'variants' "
                          f"(known: {sorted(config['variants'])})")
    if catalog.splits(spec.benchmark):
        raise ConfigError(f"config key 'search.benchmark': {spec.benchmark!r} runs over splits "
                          f"{catalog.splits(spec.benchmark)}; a search tunes one dataset: add a catalog entry for "
                          "one split's dataset (settings: {dataset: ...}) and search that")
    base = catalog.run_values(spec.benchmark, "val", spec.variant, spec.seed)
    refuse_run_values(base, lambda key: _where_set(catalog, spec, key),
                      f"the searched run (benchmark {spec.benchmark!r}, variant {spec.variant!r})")
    return spec, base, plan_trials(spec, base)


def _where_set(catalog, spec: SearchSpec, key: str) -> str:
    """Where the searched run's value of `key` comes from (the layer on top that sets it)."""
    layers = (("overrides", catalog.config.get("overrides")),
              (f"variants.{spec.variant}", catalog.config["variants"][spec.variant]),
              (f"catalog.{spec.benchmark}.settings", catalog.settings(spec.benchmark)))
    for where, values in layers:
        if key in (values or {}):
            return f"config key '{where}.{key}'"
    return f"{catalog.benchmark_file(spec.benchmark)}: key '{key}'"
