"""The files the stages hand each other: their formats, identities and the checks made on reading.

- model.pt (`train` → `synthesize`, `classify`): a plain dict of tensors and JSON-able values,
  loaded with weights_only=True: format, resolved config, state dicts of the generator, decoder and
  feedback module, per-epoch history, selection, timing, data record;
- synthetic.pt (`synthesize` → `classify`): features, labels, classes and the identity of the model
  that made them (`model_identity`), so that features of another model are refused;
- train_log.csv: one row per epoch (LOG_COLUMNS);
- per_class.csv (`classify`, beside metrics.json): the final evaluation's per-class accuracies (PER_CLASS_COLUMNS);
- <model>.selection.json: the val protocol's cached selection run, reused when its fingerprint
  (`run_fingerprint`: config and data files) matches.

docs/architecture.md lists every key.
"""
from __future__ import annotations

import csv
import hashlib
import io
import json
from pathlib import Path

import torch

from tfvaegan import config as config_module
from tfvaegan.config import Config
from tfvaegan.errors import UserError, exception_first_line
from tfvaegan.fileio import atomic_path
from tfvaegan.record import HEADLINE_METRICS, provenance
from tfvaegan.method.metrics import PerClass
from tfvaegan.method.lineage import model_for
from tfvaegan.method.models import FeatureGenerator

MODEL_FORMAT = "tfvaegan-model/1"
SYNTHETIC_FORMAT = "tfvaegan-synthetic/1"
LOG_COLUMNS = ("epoch", "seconds", "loss_d", "loss_g", "wasserstein", "vae_loss", "lambda1",
               *HEADLINE_METRICS, "eval_split",
               "loss_d2", "wasserstein2")  # transductive training only (empty otherwise)
# model.pt keys the later stages read, and the type each must have
MODEL_KEYS = {"config": dict, "state": dict, "selection": dict, "data": dict, "data_root": str,
              "epochs_trained": int, "seconds_per_epoch": (int, float)}
VAL_SELECTION_KEYS = ("generator_epochs", "zsl_classifier_epochs", "gzsl_classifier_epochs", "validation")


def describe(value) -> str:
    """A value of a model or feature file as an error message names it."""
    if isinstance(value, torch.Tensor):
        return f"a {str(value.dtype).removeprefix('torch.')} tensor of shape {tuple(value.shape)}"
    return f"a {type(value).__name__}"


# --------------------------------------------------------------------------- identities
def run_fingerprint(cfg: Config, feature_file: Path, split_file: Path, extra: str = "") -> str:
    """Identifies a training run: its config and the exact data files (size and mtime)."""
    parts = [json.dumps(cfg.to_dict(), sort_keys=True), extra]
    for path in (feature_file, split_file):
        stat = Path(path).stat()
        parts.append(f"{Path(path).resolve()}:{stat.st_size}:{stat.st_mtime_ns}")
    return hashlib.sha256("\n".join(parts).encode()).hexdigest()


def model_identity(saved: dict) -> str:
    """The identity of a model file's contents: sha256 over its config, selection and weights.

    Derived from what classification uses rather than from the file's bytes, so it needs no extra
    key in model.pt (older model files have one too), costs one pass over the weights already in
    memory (no second read of the file), and survives a copy or a re-save of the same model.
    """
    digest = hashlib.sha256()
    digest.update(json.dumps({"config": saved["config"], "selection": saved["selection"]},
                             sort_keys=True, default=str).encode())
    for name in saved["state"]:  # the model's saved_modules, in its order (TF-VAEGAN: generator, decoder, feedback)
        for key in sorted(saved["state"][name]):
            tensor = saved["state"][name][key].detach().cpu().contiguous()
            digest.update(f"\n{name}.{key}:{tensor.dtype}:{tuple(tensor.shape)}\n".encode())
            digest.update(tensor.reshape(-1).view(torch.uint8).numpy().data)
    return digest.hexdigest()


# --------------------------------------------------------------------------- model.pt and train_log.csv
def model_record(cfg: Config, model: FeatureGenerator, history: list[dict], selection: dict, *,
                 seconds_per_epoch: float, epochs_trained: int, data_root: Path, data: dict,
                 device: torch.device) -> dict:
    """What model.pt holds."""
    return {
        "format": MODEL_FORMAT,
        "config": cfg.to_dict(),
        "state": {name: getattr(model, name).state_dict() for name in model.saved_modules},
        "history": history,
        "selection": selection,
        "seconds_per_epoch": seconds_per_epoch,
        "epochs_trained": epochs_trained,
        "data_root": str(data_root),
        "data": data,
        "device": str(device),
        "torch_threads": torch.get_num_threads(),  # CPU results are reproducible for a given count
        "provenance": provenance(device),  # the training's: versions, commit, device name (record.py)
    }


def train_log_text(history: list[dict]) -> str:
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=LOG_COLUMNS, extrasaction="ignore", lineterminator="\n")
    writer.writeheader()
    for row in history:
        writer.writerow({k: ("" if row.get(k) is None else row.get(k)) for k in LOG_COLUMNS})
    return buffer.getvalue()


# per_class.csv: one row per class and split of the final evaluation (docs/architecture.md, results layout)
PER_CLASS_COLUMNS = ("class", "class_name", "split", "n_images", "correct", "accuracy", "to_seen", "to_unseen")
# each split's column filled with PerClass.to_other: where its images went when they were wrong way round
PER_CLASS_SPLITS = {"zsl_unseen": None, "gzsl_unseen": "to_seen", "gzsl_seen": "to_unseen"}


def per_class_text(per_class: dict[str, PerClass], class_names: list[str] | None) -> str:
    """per_class.csv: per split (zsl_unseen; gzsl_unseen, gzsl_seen when GZSL is reported), each class with a test
    image: its 0-based index, its name (the split file's allclasses_names, else the index), images, correct
    ones, accuracy (written exactly: the split's mean is the evaluation's number) and, for GZSL, how many went
    to the other group of classes (empty where it does not apply, or when no classifier epoch was kept)."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(PER_CLASS_COLUMNS)
    for split, counts in per_class.items():
        other_column = PER_CLASS_SPLITS[split]  # KeyError: a split this file does not know
        other = [None] * len(counts.classes) if counts.to_other is None else counts.to_other.tolist()
        for cls, n, correct, accuracy, went in zip(counts.classes.tolist(), counts.n_images.tolist(),
                                                   counts.correct.tolist(), counts.accuracy.tolist(), other):
            to = {"to_seen": "", "to_unseen": ""}
            if other_column is not None and went is not None:
                to[other_column] = int(went)
            writer.writerow([cls, class_names[cls] if class_names else str(cls), split, int(n), int(correct),
                             repr(float(accuracy)), to["to_seen"], to["to_unseen"]])
    return buffer.getvalue()


def write_model_and_log(saved: dict, model_path: Path, log_path: Path) -> None:
    """model.pt and its train_log.csv, so that a model.pt beside a log always comes from the same training.

    model.pt is the run's "done" marker (the workflow and `synthesize` go by it). Both are written
    in full to temporary files first; then the old model.pt is removed, the log moved into place
    and the model moved in last. A crash in between leaves a log and no model (an unfinished run,
    redone in full), never a new log beside an old model.
    """
    model_path = Path(model_path)
    with atomic_path(model_path) as model_temp:
        torch.save(saved, model_temp)
        with atomic_path(log_path) as log_temp:
            log_temp.write_text(train_log_text(saved["history"]))
            model_path.unlink(missing_ok=True)


def load_artifact(path: Path, expected_format: str = MODEL_FORMAT) -> dict:
    """Load a model or synthetic-feature file with weights-only unpickling; refuse anything else."""
    path = Path(path)
    if not path.is_file():
        raise UserError(f"{path}: file not found")
    try:
        content = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # noqa: BLE001 - truncated (OSError, RuntimeError), text (KeyError), pickles, ...
        raise UserError(
            f"{path}: expected a {expected_format} file (a plain dict of tensors, loaded with "
            f"weights_only=True); refused, damaged or not such a file: {exception_first_line(exc)}"
        ) from None
    if not isinstance(content, dict) or content.get("format") != expected_format:
        found = content.get("format") if isinstance(content, dict) else type(content).__name__
        raise UserError(f"{path}: key 'format': expected {expected_format!r}, found {found!r}")
    return content


def read_model(path: Path) -> tuple[dict, Config]:
    """model.pt's contents and its resolved config, every key the later stages read checked."""
    saved = load_artifact(path)
    for key, kind in MODEL_KEYS.items():
        if key not in saved:
            raise UserError(f"{path}: key {key!r} missing: expected a {MODEL_FORMAT} file as `train` writes it "
                            f"(keys {', '.join(MODEL_KEYS)}), found keys {sorted(map(str, saved))}")
        if not isinstance(saved[key], kind) or isinstance(saved[key], bool):
            names = " or ".join(k.__name__ for k in (kind if isinstance(kind, tuple) else (kind,)))
            raise UserError(f"{path}: key {key!r}: expected a {names}, found {describe(saved[key])}")
    cfg = config_module.from_mapping(saved["config"], source=f"{path} (config)")
    if cfg.protocol == "val":
        missing = [key for key in VAL_SELECTION_KEYS if key not in saved["selection"]]
        if not missing and not isinstance(saved["selection"]["validation"], dict):
            missing = ["validation (an object)"]
        if missing:
            raise UserError(f"{path}: key 'selection': expected the val protocol's {', '.join(VAL_SELECTION_KEYS)}, "
                            f"found no {', '.join(missing)}")
    return saved, cfg


def restore_model(saved: dict, cfg: Config, path: Path) -> FeatureGenerator:
    """The model file's modules (its method's saved_modules: TF-VAEGAN's generator, decoder and feedback
    module) in an untrained model of its config (on the CPU)."""
    model = model_for(cfg)
    for name in model.saved_modules:
        _load_state(getattr(model, name), saved["state"].get(name), f"{path}: key 'state.{name}")
    return model.eval()


def _load_state(module: torch.nn.Module, found, where: str) -> None:
    """load_state_dict, with one error naming the parameter when the saved one does not fit.

    `where` is "<file>: key 'state.<module>", without the closing quote."""
    expected = module.state_dict()
    if not isinstance(found, dict):
        raise UserError(f"{where}': expected a state dict of {len(expected)} tensors, found {describe(found)}")
    missing, extra = sorted(set(expected) - set(found)), sorted(set(found) - set(expected))
    if missing or extra:
        raise UserError(f"{where}': expected the parameters of the model its config describes; "
                        f"missing {missing[:4]}, unexpected {extra[:4]}")
    for key, tensor in expected.items():
        value = found[key]
        if (not isinstance(value, torch.Tensor) or value.shape != tensor.shape
                or value.is_floating_point() != tensor.is_floating_point()):
            raise UserError(f"{where}.{key}': expected a {str(tensor.dtype).removeprefix('torch.')} tensor of shape "
                            f"{tuple(tensor.shape)} (from its config), found {describe(value)}")
    module.load_state_dict(found)


# --------------------------------------------------------------------------- synthetic.pt
def synthetic_record(features: torch.Tensor, labels: torch.Tensor, classes: torch.Tensor, per_class: int,
                     feedback_weight: float | None, saved_model: dict, model_file: Path, dataset: str) -> dict:
    """What synthetic.pt holds; `model_id` says which model made the features."""
    return {"format": SYNTHETIC_FORMAT, "features": features.float().cpu(), "labels": labels.cpu(),
            "classes": classes.cpu(), "per_class": per_class, "feedback_weight": feedback_weight,
            "model_id": model_identity(saved_model), "model_file": str(model_file), "dataset": dataset}


def check_synthetic(synthetic: dict, path: Path, model_path: Path, model_id: str, cfg: Config) -> None:
    """One clear error for a synthetic-feature file that `classify` cannot use with this model."""
    for key in ("model_id", "features", "labels", "classes"):
        if key not in synthetic:
            hint = f"; synthesize it again from {model_path}" if key == "model_id" else ""
            raise UserError(f"{path}: key {key!r} missing: expected a {SYNTHETIC_FORMAT} file as `synthesize` "
                            f"writes it, found keys {sorted(map(str, synthetic))}{hint}")
    if not isinstance(synthetic["model_id"], str) or synthetic["model_id"] != model_id:
        source = synthetic.get("model_file")
        raise UserError(
            f"{path}: key 'model_id': synthesized from another model than {model_path} (expected "
            f"{model_id[:12]}, found {str(synthetic['model_id'])[:12]}"
            f"{f', made from {source}' if isinstance(source, str) else ''}); run synthesize with --model {model_path}")
    features, labels, classes = synthetic["features"], synthetic["labels"], synthetic["classes"]
    integer = lambda t: isinstance(t, torch.Tensor) and not t.is_floating_point() and not t.is_complex() \
        and t.dtype != torch.bool
    if not (isinstance(features, torch.Tensor) and features.is_floating_point() and features.dim() == 2
            and features.shape[0] >= 1 and features.shape[1] == cfg.resSize):
        raise UserError(f"{path}: key 'features': expected a float tensor of shape (N, {cfg.resSize}) "
                        f"(resSize of {model_path}), found {describe(features)}")
    if not bool(torch.isfinite(features).all()):
        raise UserError(f"{path}: key 'features': expected finite values, found NaN or infinity")
    if not (integer(labels) and labels.dim() == 1 and len(labels) == len(features)):
        raise UserError(f"{path}: key 'labels': expected an integer tensor of shape ({len(features)},) "
                        f"(one per feature), found {describe(labels)}")
    if not (integer(classes) and classes.dim() == 1):
        raise UserError(f"{path}: key 'classes': expected a 1-D integer tensor of class ids, found {describe(classes)}")
    outside = labels[~torch.isin(labels, classes)]
    if len(outside):
        raise UserError(f"{path}: key 'labels': expected ids among 'classes', found {outside.unique().tolist()[:10]}")


# --------------------------------------------------------------------------- <model>.selection.json
def selection_cache_path(model_path: Path) -> Path:
    return Path(model_path).with_name(Path(model_path).stem + ".selection.json")


def read_selection_cache(cache: Path, log) -> dict | None:
    """The cached selection run ({fingerprint, selection, history}), or None (logged) when the file is
    not a usable cache; it is then recomputed and overwritten."""
    try:
        cached = json.loads(cache.read_text())
        if not isinstance(cached, dict):
            raise TypeError(f"expected a JSON object, found {type(cached).__name__}")
        selection, history = cached.get("selection"), cached.get("history")
        if not isinstance(selection, dict) or not all(key in selection for key in VAL_SELECTION_KEYS):
            raise ValueError(f"key 'selection': expected an object with {', '.join(VAL_SELECTION_KEYS)}")
        if not isinstance(history, list) or not all(isinstance(row, dict) for row in history):
            raise ValueError("key 'history': expected a list of per-epoch objects")
        return cached
    except (OSError, ValueError, TypeError) as exc:  # JSONDecodeError, UnicodeDecodeError: ValueErrors
        log(f"ignoring {cache}: not a usable selection cache ({exception_first_line(exc)}); running the selection again")
        return None
