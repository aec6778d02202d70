"""The run configuration: one frozen dataclass under the official option names.

Keys keep the names of the official scripts' command-line options (`--nepoch`, `--ngh`,
`--gammaD`, ...) so that an official run script carries over one to one into a YAML file.
Sizes that the data determines (resSize, attSize, nclass_all) may be given — the official
scripts pass them — but are checked against the data rather than trusted.
"""
from __future__ import annotations

import dataclasses
import math
import re
import typing
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any, Mapping

import yaml

from tfvaegan.errors import ConfigError


@dataclass(frozen=True)
class Config:
    # ---------------------------------------------------------------- data
    dataset: str = "CUB"  # folder under the data root holding <class_embedding>_splits.mat
    image_embedding: str = "res101"  # stem of the feature file: <image_embedding>.mat
    class_embedding: str = "att"  # stem of the split file: <class_embedding>_splits.mat
    features: str = "plain"  # what the feature file holds: plain (ImageNet backbone) | finetuned (on the seen classes)
    image_embedding_path: str | None = None  # action layout: features live in this folder, not in `dataset`
    manual_att: bool = False  # action layout: replace `att` by the manual attribute file (UCF101)
    manual_att_file: str = "ucf101_manual_att.npy"  # classes x attributes, next to the feature file
    bce_att: bool = False  # action code: decoder regresses min-max scaled attributes with a sigmoid + BCE
    preprocessing: bool = False  # MinMax-scale features on the training split, then divide by its max (official scripts: on)
    standardization: bool = False  # StandardScaler instead of MinMaxScaler (with preprocessing)
    resSize: int | None = None  # feature width; from the data (checked if given)
    attSize: int | None = None  # class-embedding width; from the data (checked if given)
    nclass_all: int | None = None  # number of classes; from the data (checked if given)

    # ---------------------------------------------------------------- the method (docs/methods.md)
    # tfvaegan | fclswgan (f-CLSWGAN) | fvaegan (f-VAEGAN; f-VAEGAN-D2 with transductive) | free (FREE).
    # Keys only some methods read are listed in METHOD_KEYS; another method refuses them unless at their default.
    method: str = "tfvaegan"
    cls_weight: float = 1.0  # fclswgan: weight of the pre-trained seen-class classifier's loss on fakes (clswgan.py default)
    center_weight: float = 0.5  # free: weight of the self-adaptive margin center loss (FREE config.py default)
    center_margin: float = 150.0  # free: the center loss's margin (FREE config.py default)
    incenter_weight: float = 0.5  # free: the center loss's weight of the own-class distance (FREE config.py default)
    center_loss: str = "margin"  # free: margin (a random other class: CUB, FLO, SUN) | min_margin (the nearest: AWA)

    # ---------------------------------------------------------------- model widths
    nz: int | None = None  # noise width; = attSize when unset, as in every official script
    latent_size: int | None = None  # VAE latent width; = attSize when unset
    encoder_hidden: int = 4096  # official encoder_layer_sizes[-1]
    generator_hidden: int = 4096  # official decoder_layer_sizes[0]; must equal ngh (feedback is added to it)
    ngh: int = 4096  # semantic decoder and feedback module width (free: the refinement module's; fclswgan: the generator's)
    ndh: int = 1024  # critic hidden width

    # ---------------------------------------------------------------- generative training
    nepoch: int = 2000
    batch_size: int = 64
    critic_iter: int = 5
    lambda1: float = 10.0  # initial gradient-penalty weight, adapted during training
    adaptive_lambda: bool = True  # official: x1.1 if mean penalty > 1.05, /1.1 if < 1.001
    lr: float = 0.001
    feed_lr: float = 0.0001
    dec_lr: float = 0.0001
    beta1: float = 0.5
    gammaD: float = 1000.0
    gammaG: float = 1000.0
    a1: float = 1.0  # feedback weight during training
    a2: float = 1.0  # feedback weight at synthesis
    recons_weight: float = 1.0  # weight of the semantic decoder's reconstruction loss
    feedback_loop: int = 2  # passes per epoch; in tfvaegan pass 2 applies feedback (1 = no feedback); free: --loop
    freeze_dec: bool = False  # decoder not updated by the generator step
    encoded_noise: bool = False  # critic/generator fed with the encoder's z instead of N(0, I)
    manualSeed: int | None = None  # None: drawn at random and recorded

    # ---------------------------------------------------------------- transductive training (docs/transductive.md)
    transductive: bool = False  # a second, unconditional critic D2 on unlabelled test features
    # What D2 learns from: test (every test row, seen and unseen together, unlabelled: nothing derived
    # from a test label) | test_unseen (the authors' and f-VAEGAN-D2's: the test_unseen rows, whose
    # partition from the seen rows is decided by test labels).
    transductive_unlabelled: str = "test"
    # The unseen classes of D2's fakes: uniform (no test label is read) | labels (official: the true
    # labels of the unlabelled batch, the "known class prior" setting: it uses test labels).
    transductive_prior: str = "uniform"
    gammaD2: float | None = None  # weight of D2's loss and penalty; None: = gammaD (as every authors' script)
    gammaG_D2: float | None = None  # weight of the generator's D2 term; None: = gammaG (as every authors' script)

    # ---------------------------------------------------------------- synthesis and classification
    syn_num: int = 100  # synthetic features per unseen class
    gzsl: bool = False  # evaluate GZSL too (every official image script: on)
    gzsl_od: bool = False  # action code: out-of-distribution detector based GZSL
    classifier_lr: float = 0.001
    classifier_beta1: float = 0.5
    classifier_nepoch: int = 25  # hard-coded in the official code
    classifier_batch_size: int | None = None  # None: syn_num, as the official code passes it
    disc_features: bool = True  # classify [x, decoder output, decoder hidden] rather than x
    od_entropy_threshold: float | None = None  # OD-GZSL: None = chosen as the official code does
    od_sampler: str = "official"  # OD-GZSL detector batches: official (in order, then random) | random

    # ---------------------------------------------------------------- evaluation protocol
    protocol: str = "paper"  # paper: select epochs on the test set (official); val: on a validation split
    eval_every: int = 1  # evaluate every N generator epochs: the paper run, the val selection run (official: 1)
    val_seen_fraction: float = 0.2  # val protocol: share of training images held out as validation-seen
    val_unseen_fraction: float | None = None  # val protocol without val_loc: share of training classes

    # ---------------------------------------------------------------- execution
    device: str = "auto"  # auto | cpu | cuda | cuda:N
    amp: bool = False  # opt-in, CUDA: bf16 autocast of the step's products and TF32 (default float32, as official; ignored on CPU)
    compile: bool = False  # torch.compile the step's forward passes (for GPUs; works on CPU too)
    checkpoint_every: int = 10  # epochs between resumable checkpoints (0: none, the run cannot resume)

    # ------------------------------------------------------------------ derived
    def resolved(self, res_size: int, att_size: int, n_classes: int,
                 source: str | Mapping[str, str] = "data") -> "Config":
        """Fill the data-determined sizes, refusing values that disagree with the data. `source` names
        where the sizes come from: one text, or one per key (resSize, attSize, nclass_all)."""
        for key, found in (("resSize", res_size), ("attSize", att_size), ("nclass_all", n_classes)):
            given = getattr(self, key)
            if given is not None and given != found:
                where = source.get(key, "data") if isinstance(source, Mapping) else source
                raise ConfigError(
                    f"config key '{key}': expected {found} (from {where}), found {given}"
                )
        resolved = dataclasses.replace(
            self,
            resSize=res_size,
            attSize=att_size,
            nclass_all=n_classes,
            nz=self.nz if self.nz is not None else att_size,
            latent_size=self.latent_size if self.latent_size is not None else att_size,
        )
        if resolved.nz != resolved.latent_size:
            raise ConfigError(
                f"config keys 'nz' and 'latent_size': the encoder's latent code is the generator's noise "
                f"input, so they must agree (unset, both are attSize = {att_size}); "
                f"found nz={resolved.nz}, latent_size={resolved.latent_size}"
            )
        return resolved

    @property
    def reports_gzsl(self) -> bool:
        """GZSL is evaluated: softmax over all classes, or (action code) through the OD detector."""
        return self.gzsl or self.gzsl_od

    @property
    def gamma_d2(self) -> float:
        return self.gammaD if self.gammaD2 is None else self.gammaD2

    @property
    def gamma_g_d2(self) -> float:
        return self.gammaG if self.gammaG_D2 is None else self.gammaG_D2

    @property
    def setting(self) -> str:
        """inductive | transductive: what metrics.json and the tables report (beside the prior)."""
        return "transductive" if self.transductive else "inductive"

    @property
    def cls_batch_size(self) -> int:
        return self.classifier_batch_size or self.syn_num

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


_POSITIVE_INTS = (
    "nepoch", "batch_size", "critic_iter", "syn_num", "feedback_loop", "classifier_nepoch",
    "encoder_hidden", "generator_hidden", "ngh", "ndh", "eval_every",
)
# The transductive priors (docs/transductive.md), named once: the trainer and the tables read them here.
TRANSDUCTIVE_PRIORS = ("uniform", "labels")
TRANSDUCTIVE_UNLABELLED = ("test", "test_unseen")  # the unlabelled sets, honest one first
METHODS = ("tfvaegan", "fclswgan", "fvaegan", "free")  # the lineage, in the `method` key (docs/methods.md)
VAE_METHODS = ("tfvaegan", "fvaegan", "free")  # an encoder: encoded_noise, VAE loss
TRANSDUCTIVE_METHODS = ("tfvaegan", "fvaegan")  # a transductive form (fvaegan's: f-VAEGAN-D2)
# The keys only some methods read -> (those methods, what the key sets). Another method refuses a key away from
# its default, so that a setting never reaches a run that would silently ignore it.
METHOD_KEYS: dict[str, tuple[tuple[str, ...], str]] = {
    "a1": (("tfvaegan",), "the feedback's weight in training"),
    "a2": (("tfvaegan",), "the feedback's weight at synthesis"),
    "feed_lr": (("tfvaegan",), "the feedback module's learning rate"),
    "bce_att": (("tfvaegan",), "the semantic decoder's BCE targets (action code)"),
    "recons_weight": (("tfvaegan", "free"), "the semantic decoder's (free: refinement module's) loss weight"),
    "dec_lr": (("tfvaegan", "free"), "the semantic decoder's (free: refinement module's) learning rate"),
    "freeze_dec": (("tfvaegan", "free"), "the decoder (free: refinement module) left out of the generator step"),
    "disc_features": (("tfvaegan", "free"), "classification on the decoder's (free: refined) features"),
    "encoded_noise": (VAE_METHODS, "the encoder's z for the critic's fakes"),
    "ngh": (("tfvaegan", "fclswgan", "free"), "the decoder's and feedback's (free: refinement module's; fclswgan: "
            "generator's) width"),
    "amp": (("tfvaegan", "fvaegan"), "bf16 autocast, written for the VAE-GAN step"),
    "encoder_hidden": (VAE_METHODS, "the encoder's width"),
    "generator_hidden": (VAE_METHODS, "the VAE generator's width (fclswgan's generator is ngh wide)"),
    "cls_weight": (("fclswgan",), "the pre-trained classifier's loss weight"),
    "center_weight": (("free",), "the center loss's weight"),
    "center_margin": (("free",), "the center loss's margin"),
    "incenter_weight": (("free",), "the center loss's own-class weight"),
    "center_loss": (("free",), "the center loss's form"),
    "transductive": (TRANSDUCTIVE_METHODS, "transductive training (a second critic on unlabelled features)"),
    "transductive_unlabelled": (TRANSDUCTIVE_METHODS, "the transductive critic's unlabelled set"),
    "transductive_prior": (TRANSDUCTIVE_METHODS, "the transductive fakes' classes"),
    "gammaD2": (TRANSDUCTIVE_METHODS, "the transductive critic's weight"),
    "gammaG_D2": (TRANSDUCTIVE_METHODS, "the generator's transductive term's weight"),
}
_CHOICES = {"method": METHODS, "center_loss": ("margin", "min_margin"), "protocol": ("paper", "val"), "od_sampler": ("official", "random"),
            "features": ("plain", "finetuned"), "transductive_prior": TRANSDUCTIVE_PRIORS,
            "transductive_unlabelled": TRANSDUCTIVE_UNLABELLED}


# Adam raises for a beta outside [0, 1); every beta/momentum key belongs here.
_BETAS = ("beta1", "classifier_beta1")
# train and synthesis seed torch generators with manualSeed + 1..3, and torch takes at most 2**64 - 1.
_MAX_SEED = 2**64 - 4


def validate(cfg: Config, source: str = "config") -> Config:
    """Refuse values that cannot run; every message names the key, the expected and the found value."""
    # First, so that NaN (which passes every `<=` test) and Inf get their own message.
    for key in _FLOAT_KEYS:
        value = getattr(cfg, key)
        if value is not None and not math.isfinite(value):
            raise ConfigError(f"{source}: key '{key}': expected a finite number, found {value}")
    for key in _BETAS:
        if not 0 <= getattr(cfg, key) < 1:
            raise ConfigError(f"{source}: key '{key}': expected a number in [0, 1), found {getattr(cfg, key)}")
    if cfg.manualSeed is not None and not 0 <= cfg.manualSeed <= _MAX_SEED:
        raise ConfigError(
            f"{source}: key 'manualSeed': expected null or an integer in [0, 2**64 - 4], found {cfg.manualSeed}"
        )
    for key in _POSITIVE_INTS:
        value = getattr(cfg, key)
        if value <= 0:
            raise ConfigError(f"{source}: key '{key}': expected a positive integer, found {value}")
    for key, allowed in _CHOICES.items():
        if getattr(cfg, key) not in allowed:
            raise ConfigError(f"{source}: key '{key}': expected one of {allowed}, found {getattr(cfg, key)!r}")
    for key in ("nz", "latent_size", "classifier_batch_size", "resSize", "attSize", "nclass_all"):
        value = getattr(cfg, key)
        if value is not None and value <= 0:
            raise ConfigError(f"{source}: key '{key}': expected a positive integer or null, found {value}")
    for key in ("lr", "feed_lr", "dec_lr", "classifier_lr", "lambda1"):
        if getattr(cfg, key) <= 0:
            raise ConfigError(f"{source}: key '{key}': expected a positive number, found {getattr(cfg, key)}")
    if cfg.checkpoint_every < 0:
        raise ConfigError(f"{source}: key 'checkpoint_every': expected >= 0, found {cfg.checkpoint_every}")
    if not 0 < cfg.val_seen_fraction < 1:
        raise ConfigError(f"{source}: key 'val_seen_fraction': expected in (0, 1), found {cfg.val_seen_fraction}")
    if cfg.val_unseen_fraction is not None and not 0 < cfg.val_unseen_fraction < 1:
        raise ConfigError(
            f"{source}: key 'val_unseen_fraction': expected in (0, 1) or null, found {cfg.val_unseen_fraction}"
        )
    _check_method_keys(cfg, source)
    if cfg.method == "tfvaegan" and cfg.feedback_loop > 1 and cfg.generator_hidden != cfg.ngh:
        raise ConfigError(
            f"{source}: keys 'generator_hidden' and 'ngh': the feedback module's output (ngh wide) is added "
            f"to the generator's hidden layer (generator_hidden wide), so they must agree; "
            f"found generator_hidden={cfg.generator_hidden}, ngh={cfg.ngh}"
        )
    # torch.device() would raise a bare RuntimeError later for anything else ("cuda0", "cuda:x").
    if not re.fullmatch(r"auto|cpu|cuda(:[0-9]+)?", cfg.device):
        raise ConfigError(f"{source}: key 'device': expected auto, cpu, cuda or cuda:N, found {cfg.device!r}")
    return cfg


def _check_method_keys(cfg: Config, source: str) -> None:
    """A key of another method, away from its default, is refused: the run would ignore it."""
    if cfg.transductive and cfg.method not in TRANSDUCTIVE_METHODS:
        raise ConfigError(
            f"{source}: key 'transductive': method {cfg.method!r} has no transductive form (those with one: "
            f"{', '.join(TRANSDUCTIVE_METHODS)}; fvaegan's is f-VAEGAN-D2); expected false, found true")
    for key, (owners, meaning) in METHOD_KEYS.items():
        value = getattr(cfg, key)
        if cfg.method not in owners and value != getattr(Config, key):
            raise ConfigError(
                f"{source}: key {key!r} ({meaning}) is read by method {' and '.join(owners)} only; method "
                f"{cfg.method!r} would ignore it: expected it unset (default {getattr(Config, key)!r}), "
                f"found {value!r}")
    if cfg.method == "fclswgan" and (cfg.gammaD, cfg.gammaG, cfg.adaptive_lambda) != (1.0, 1.0, False):
        raise ConfigError(
            f"{source}: keys 'gammaD', 'gammaG', 'adaptive_lambda': f-CLSWGAN's losses carry no weights and its "
            f"gradient-penalty weight is fixed: expected 1, 1, false (as config/benchmarks/*_fclswgan.yaml set "
            f"them), found {cfg.gammaD:g}, {cfg.gammaG:g}, {str(cfg.adaptive_lambda).lower()}")
    for key in ("cls_weight", "center_weight", "center_margin"):
        if getattr(cfg, key) < 0:
            raise ConfigError(f"{source}: key '{key}': expected a number >= 0, found {getattr(cfg, key)}")
    if not 0 <= cfg.incenter_weight <= 1:
        raise ConfigError(f"{source}: key 'incenter_weight': expected a number in [0, 1], found {cfg.incenter_weight}")


_FIELD_TYPES = typing.get_type_hints(Config)
_FLOAT_KEYS = tuple(key for key, hint in _FIELD_TYPES.items() if float in (hint, *typing.get_args(hint)))

# A decimal float literal, as JSON and Python write one ('1e-05', '.5', '+1.5E3', '3'); no NaN/Inf.
# YAML 1.1 loaders (snakemake's, PyYAML's safe_load) leave '1e-5' a string, and json.dumps(0.00001)
# is '1e-05', so a float key must accept it whichever path the value took.
_DECIMAL_FLOAT = re.compile(r"[-+]?([0-9]+(\.[0-9]*)?|\.[0-9]+)([eE][-+]?[0-9]+)?")


def _coerce(key: str, value: Any, source: str) -> Any:
    """Check `value` against the field's annotation; ints are accepted where floats are expected."""
    hint = _FIELD_TYPES[key]
    args = typing.get_args(hint)
    optional = type(None) in args
    base = next((a for a in args if a is not type(None)), hint) if args else hint
    if value is None:
        if optional:
            return None
        raise ConfigError(f"{source}: key '{key}': expected {base.__name__}, found null")
    if base is bool:
        if isinstance(value, bool):
            return value
    elif base is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
    elif base is float:
        if isinstance(value, str) and _DECIMAL_FLOAT.fullmatch(value):
            return float(value)
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            try:
                return float(value)
            except OverflowError:  # an int beyond float's range
                raise ConfigError(f"{source}: key '{key}': expected a finite number, "
                                  f"found an integer of {len(str(value))} digits") from None
    elif base is str:
        if isinstance(value, str):
            return value
    raise ConfigError(
        f"{source}: key '{key}': expected {base.__name__}{' or null' if optional else ''}, "
        f"found {type(value).__name__} {value!r}"
    )


def from_mapping(values: Mapping[str, Any], source: str = "config", base: Config | None = None) -> Config:
    """Build a Config from a mapping, refusing unknown keys and wrongly typed values."""
    known = {f.name for f in fields(Config)}
    unknown = sorted(set(values) - known, key=str)  # keys of a YAML file need not all be strings
    if unknown:
        raise ConfigError(
            f"{source}: unknown key(s) {unknown}; known keys are listed in config/README.md"
        )
    coerced = {key: _coerce(key, value, source) for key, value in values.items()}
    cfg = dataclasses.replace(base or Config(), **coerced)
    return validate(cfg, source)


class _DuplicateKey(yaml.YAMLError):
    def __init__(self, key: Any, first_line: int, line: int):
        super().__init__(key, first_line, line)
        self.key, self.first_line, self.line = key, first_line, line


class _Loader(yaml.SafeLoader):
    """SafeLoader reading YAML 1.2 floats and refusing duplicate keys.

    YAML 1.1 (PyYAML's default) reads '1e-5' and '1.0e5' as strings: an exponent needs a dot and
    a sign there. A duplicate key silently keeps the last value, hiding an edit of the first one.
    """

    def construct_mapping(self, node, deep=False):
        seen: dict[Any, Any] = {}
        for key_node, _ in node.value:
            if key_node.tag == "tag:yaml.org,2002:merge":  # '<<' may legitimately repeat keys
                continue
            key = self.construct_object(key_node, deep=True)
            try:
                first = seen.setdefault(key, key_node)
            except TypeError:  # unhashable: SafeLoader reports it itself
                continue
            if first is not key_node:
                raise _DuplicateKey(key, first.start_mark.line + 1, key_node.start_mark.line + 1)
        return super().construct_mapping(node, deep=deep)


_Loader.add_implicit_resolver(
    "tag:yaml.org,2002:float",
    re.compile(r"^[-+]?([0-9]+(\.[0-9]*)?|\.[0-9]+)[eE][-+]?[0-9]+$"),
    list("-+0123456789."),
)


def _yaml_error(exc: yaml.YAMLError) -> str:
    """One line, keeping the position: PyYAML's own message spans several lines with a snippet."""
    if isinstance(exc, _DuplicateKey):
        return (f"key {exc.key!r}: expected each key once, found it again on line {exc.line} "
                f"(first on line {exc.first_line})")
    if isinstance(exc, yaml.MarkedYAMLError) and exc.problem_mark is not None:
        what = " ".join(part for part in (exc.context, exc.problem) if part)
        mark = exc.problem_mark
        return f"not valid YAML: {what} (line {mark.line + 1}, column {mark.column + 1})"
    if isinstance(exc, yaml.reader.ReaderError):
        code = exc.character if isinstance(exc.character, int) else ord(exc.character)
        return f"not valid YAML: expected printable text, found character #x{code:04x} (position {exc.position})"
    return "not valid YAML: " + " ".join(str(exc).split())


def read_file(path: str | Path) -> dict[Any, Any]:
    """The flat mapping a YAML config file holds; every failure is one ConfigError naming the file."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"{path}: config file not found")
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        raise ConfigError(f"{path}: expected a UTF-8 text file, found byte 0x{exc.object[exc.start]:02x} "
                          f"at offset {exc.start}") from None
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read the config file ({exc.strerror})") from None
    try:
        loaded = yaml.load(text, Loader=_Loader)
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: {_yaml_error(exc)}") from None
    if loaded is None:
        return {}
    if not isinstance(loaded, dict):
        raise ConfigError(f"{path}: expected a mapping of config keys, found {type(loaded).__name__}")
    return loaded


def parse_override(text: str) -> tuple[str, Any]:
    """`key=value` with the value read as YAML 1.2 (so 1e-4 and 0.5 are floats, 3 an int, true a
    bool, null None); a value that is not valid YAML stays the raw string."""
    if "=" not in text:
        raise ConfigError(f"--set {text!r}: expected key=value")
    key, raw = text.split("=", 1)
    try:
        value = yaml.load(raw, Loader=_Loader) if raw != "" else ""
    except yaml.YAMLError:
        value = raw
    return key.strip(), value


# What the data decides: a file states them for the data it names (the official scripts pass them, nz
# and latent_size equal to attSize); on other data they are left to the data.
DATA_SIZE_KEYS = ("resSize", "attSize", "nclass_all", "nz", "latent_size")


def _data_read(values: Mapping[str, Any]) -> tuple:
    """The data a run reads: its feature file and its class embeddings (a split folder of the action
    layout, which shares the feature file, reads the same data)."""
    get = lambda key: values.get(key, getattr(Config, key))
    return (get("image_embedding_path") or get("dataset"), get("image_embedding"), get("class_embedding"),
            bool(get("manual_att")), get("manual_att_file") if get("manual_att") else None)


def layered(file_values: Mapping[Any, Any], on_top: Mapping[Any, Any]) -> tuple[dict[Any, Any], list[str]]:
    """A benchmark file with values on top (--dataset, a catalog entry's settings, variants, --set).

    A file is a hyperparameter template for other data: when the values on top point the run at
    other data than the file's own (another dataset, feature file or class embedding), the file's
    sizes (DATA_SIZE_KEYS) are dropped, so that the data sets them (nz = latent_size = attSize, as
    in every official script). Sizes given on top are kept and checked against the data like any.
    Returns the merged values and the keys dropped.
    """
    dropped = []
    if _data_read(file_values) != _data_read({**file_values, **on_top}):
        dropped = [key for key in DATA_SIZE_KEYS if key in file_values and key not in on_top]
    kept = {key: value for key, value in file_values.items() if key not in dropped}
    return {**kept, **on_top}, dropped


def load(path: str | Path | None = None, overrides: list[str] | tuple[str, ...] = (),
         extra: Mapping[str, Any] | None = None) -> Config:
    """Load a YAML config file (a flat mapping of keys), then `extra`, then `--set key=value` overrides
    (`layered`: a file's sizes describe its own data only)."""
    file_values: dict[Any, Any] = read_file(path) if path is not None else {}
    on_top: dict[Any, Any] = dict(extra or {})
    for item in overrides:
        key, value = parse_override(item)
        on_top[key] = value
    values, _ = layered(file_values, on_top)
    source = str(path) if path is not None else "config"
    return from_mapping(values, source + (" (with --set overrides)" if overrides else ""))


def to_yaml(cfg: Config, header: str = "") -> str:
    """The config as a YAML file of every key (null for what the data decides), in Config's order;
    `load` reads it back to the same Config."""
    comment = "".join(f"# {line}\n" for line in header.splitlines())
    return comment + yaml.safe_dump(cfg.to_dict(), sort_keys=False, default_flow_style=False)
