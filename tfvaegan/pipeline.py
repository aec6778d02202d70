"""The stages `train`, `synthesize`, `classify` and the one-shot `run`, under both protocols.

- paper (the official behaviour): evaluate on the test set after every generator epoch and report
  the best ZSL accuracy and the best GZSL H, each from its own epoch; the classifiers keep their
  best epoch on the test set too.
- val (honest): train on a validation split built from training data only, choose the number of
  generator epochs and of classifier epochs there, retrain on trainval with those counts, and
  evaluate once on the test set.
"""
from __future__ import annotations

import csv
import dataclasses
import hashlib
import io
import json
import random
import sys
import time
from pathlib import Path

import torch

from tfvaegan import config as config_module
from tfvaegan import data as data_module
from tfvaegan import protocols
from tfvaegan.classify import evaluate
from tfvaegan.cli import UserError, exception_first_line
from tfvaegan.config import Config
from tfvaegan.models import TFVAEGAN
from tfvaegan.synthesize import synthesize
from tfvaegan.fileio import atomic_path, atomic_torch_save, atomic_write_text
from tfvaegan.train import prepare_device, resolve_device, train

MODEL_FORMAT = "tfvaegan-model/1"
SYNTHETIC_FORMAT = "tfvaegan-synthetic/1"
LOG_COLUMNS = ("epoch", "seconds", "loss_d", "loss_g", "wasserstein", "vae_loss", "lambda1",
               "zsl_acc", "gzsl_seen", "gzsl_unseen", "gzsl_h", "eval_split")
SAVED_MODULES = ("generator", "decoder", "feedback")  # what synthesis and classification need
# model.pt keys the later stages read, and the type each must have
MODEL_KEYS = {"config": dict, "state": dict, "selection": dict, "data": dict, "data_root": str,
              "epochs_trained": int, "seconds_per_epoch": (int, float)}
VAL_SELECTION_KEYS = ("generator_epochs", "zsl_classifier_epochs", "gzsl_classifier_epochs", "validation")


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


# --------------------------------------------------------------------------- files
def train_log_text(history: list[dict]) -> str:
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=LOG_COLUMNS, extrasaction="ignore", lineterminator="\n")
    writer.writeheader()
    for row in history:
        writer.writerow({k: ("" if row.get(k) is None else row.get(k)) for k in LOG_COLUMNS})
    return buffer.getvalue()


def _describe(value) -> str:
    if isinstance(value, torch.Tensor):
        return f"a {str(value.dtype).removeprefix('torch.')} tensor of shape {tuple(value.shape)}"
    return f"a {type(value).__name__}"


def load_checkpoint(path: Path, expected_format: str = MODEL_FORMAT) -> dict:
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


def fingerprint(cfg: Config, raw: "data_module.RawDataset", extra: str = "") -> str:
    """Identifies a training run: its config and the exact data files (size and mtime)."""
    parts = [json.dumps(cfg.to_dict(), sort_keys=True), extra]
    for path in (raw.feature_file, raw.split_file):
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
    for name in SAVED_MODULES:
        for key in sorted(saved["state"][name]):
            tensor = saved["state"][name][key].detach().cpu().contiguous()
            digest.update(f"\n{name}.{key}:{tensor.dtype}:{tuple(tensor.shape)}\n".encode())
            digest.update(tensor.reshape(-1).view(torch.uint8).numpy().data)
    return digest.hexdigest()


# --------------------------------------------------------------------------- helpers
def with_seed(cfg: Config) -> Config:
    """The official scripts draw a seed when none is given; we do too, and record it."""
    if cfg.manualSeed is not None:
        return cfg
    return dataclasses.replace(cfg, manualSeed=random.SystemRandom().randint(1, 10000))


def test_split(raw, cfg: Config):
    return data_module.make_split(raw, raw.locs["trainval"], raw.locs["test_seen"], raw.locs["test_unseen"], cfg)


def resolve(cfg: Config, zdata, raw) -> Config:
    return cfg.resolved(zdata.res_size, zdata.att_size, zdata.n_classes, source=str(raw.split_file))


def _evaluator(zdata, cfg: Config, split_name: str):
    def run_evaluation(trainer, epoch, generator):
        return {**evaluate(trainer.model, zdata, cfg, generator, select="best"), "eval_split": split_name}
    return run_evaluation


# --------------------------------------------------------------------------- train
def train_stage(cfg: Config, data_root: Path, model_path: Path, log_path: Path) -> dict:
    cfg = with_seed(cfg)
    device = resolve_device(cfg.device)
    prepare_device(device, tf32=cfg.amp)
    raw = data_module.load_raw(data_root, cfg)
    model_path = Path(model_path)
    log(f"{cfg.dataset}: protocol {cfg.protocol}, seed {cfg.manualSeed}, device {device}")
    if cfg.protocol == "paper":
        zdata = test_split(raw, cfg).to(device)
        cfg = resolve(cfg, zdata, raw)
        result = train(cfg, zdata, device, evaluate=_evaluator(zdata, cfg, "test"),
                       checkpoint=model_path.with_suffix(".ckpt"), fingerprint=fingerprint(cfg, raw), log=log)
        history = result.history
        selection = paper_selection(history, cfg)
    else:
        selection, select_history = choose_on_validation(cfg, raw, device, model_path)
        zdata = test_split(raw, cfg).to(device)
        cfg = resolve(cfg, zdata, raw)
        final_cfg = dataclasses.replace(cfg, nepoch=selection["generator_epochs"])
        log(f"retraining on trainval for the {final_cfg.nepoch} epochs chosen on the validation split")
        result = train(final_cfg, zdata, device, checkpoint=model_path.with_suffix(".ckpt"),
                       fingerprint=fingerprint(final_cfg, raw, "final"), log=log)
        history = select_history + [{**row, "eval_split": "trainval"} for row in result.history]
    saved = {
        "format": MODEL_FORMAT,
        "config": cfg.to_dict(),
        "state": {name: getattr(result.trainer.model, name).state_dict() for name in SAVED_MODULES},
        "history": history,
        "selection": selection,
        "seconds_per_epoch": result.seconds_per_epoch,
        "epochs_trained": len(result.history),
        "data_root": str(data_root),
        "data": zdata.info,
        "device": str(device),
        "torch_threads": torch.get_num_threads(),  # CPU results are reproducible for a given count
    }
    # model.pt is the run's "done" marker (the workflow and `synthesize` go by it), so the pair is
    # written so that a model.pt beside a train_log.csv always comes from the same training: both
    # are written in full to temporary files first; then the old model.pt is removed, the log moved
    # into place and the model moved in last. A crash in between leaves a log and no model (an
    # unfinished run, redone in full), never a new log beside an old model.
    with atomic_path(model_path) as model_temp:
        torch.save(saved, model_temp)
        with atomic_path(log_path) as log_temp:
            log_temp.write_text(train_log_text(history))
            model_path.unlink(missing_ok=True)
    for leftover in (model_path.with_suffix(".ckpt"), model_path.with_suffix(".select.ckpt")):
        leftover.unlink(missing_ok=True)
    return saved


def paper_selection(history: list[dict], cfg: Config) -> dict:
    """The official report: best ZSL accuracy and best GZSL H over the epochs evaluated on test."""
    zsl_row = protocols.best_row(history, "zsl_acc", eval_split="test")
    selection = {"protocol": "paper", "selected_on": "test",
                 "best_epoch_zsl": zsl_row["epoch"], "zsl_acc": zsl_row["zsl_acc"]}
    if cfg.reports_gzsl:
        gzsl_row = protocols.best_row(history, "gzsl_h", eval_split="test")
        selection.update(best_epoch_gzsl=gzsl_row["epoch"], gzsl_seen=gzsl_row["gzsl_seen"],
                         gzsl_unseen=gzsl_row["gzsl_unseen"], gzsl_h=gzsl_row["gzsl_h"])
    return selection


def choose_on_validation(cfg: Config, raw, device, model_path: Path) -> tuple[dict, list[dict]]:
    """Run the selection training on the validation split (cached in <model>.selection.json)."""
    split = protocols.validation_split(raw, cfg, cfg.manualSeed)
    protocols.assert_no_test_leak(split, raw)
    vdata = data_module.make_split(raw, split.train, split.val_seen, split.val_unseen, cfg).to(device)
    vcfg = resolve(cfg, vdata, raw)
    key = fingerprint(vcfg, raw, "selection")
    cache = model_path.with_name(model_path.stem + ".selection.json")
    if cache.is_file():
        cached = _read_selection_cache(cache)  # None, logged, when damaged: it is only a cache
        if cached is not None and cached.get("fingerprint") == key:
            log(f"reusing the epoch selection in {cache}")
            return cached["selection"], cached["history"]
    log(f"selection run on the validation split ({split.source}): {len(split.train)} train, "
        f"{len(split.val_seen)} val-seen, {len(split.val_unseen)} val-unseen images")
    result = train(vcfg, vdata, device, evaluate=_evaluator(vdata, vcfg, "val"),
                   checkpoint=model_path.with_suffix(".select.ckpt"), fingerprint=key, log=log)
    metric = "gzsl_h" if cfg.reports_gzsl else "zsl_acc"
    row = protocols.best_row(result.history, metric, eval_split="val")  # raises if a test number got in
    chosen_epoch = row["epoch"]
    selection = {
        "protocol": "val", "selected_on": "validation", "metric": metric,
        "generator_epochs": chosen_epoch,
        "zsl_classifier_epochs": row.get("zsl_classifier_epoch"),
        "gzsl_classifier_epochs": row.get("gzsl_classifier_epoch"),
        "validation": {"source": split.source, "notes": list(split.notes),
                       "n_train": len(split.train), "n_val_seen": len(split.val_seen),
                       "n_val_unseen": len(split.val_unseen),
                       **{k: row.get(k) for k in ("zsl_acc", "gzsl_seen", "gzsl_unseen", "gzsl_h")}},
    }
    atomic_write_text(cache, json.dumps({"fingerprint": key, "selection": selection,
                                         "history": result.history}, indent=1))
    return selection, result.history


def _read_selection_cache(cache: Path) -> dict | None:
    """The cached selection run, or None (logged) when the file is not a usable cache; it is then
    recomputed and overwritten."""
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


# --------------------------------------------------------------------------- synthesize
def load_model(path: Path) -> tuple[TFVAEGAN, Config, dict, torch.device]:
    """The model file's generator, decoder and feedback module, on the device its config asks for."""
    saved = load_checkpoint(path)
    for key, kind in MODEL_KEYS.items():
        if key not in saved:
            raise UserError(f"{path}: key {key!r} missing: expected a {MODEL_FORMAT} file as `train` writes it "
                            f"(keys {', '.join(MODEL_KEYS)}), found keys {sorted(map(str, saved))}")
        if not isinstance(saved[key], kind) or isinstance(saved[key], bool):
            names = " or ".join(k.__name__ for k in (kind if isinstance(kind, tuple) else (kind,)))
            raise UserError(f"{path}: key {key!r}: expected a {names}, found {_describe(saved[key])}")
    cfg = config_module.from_mapping(saved["config"], source=f"{path} (config)")
    if cfg.protocol == "val":
        missing = [key for key in VAL_SELECTION_KEYS if key not in saved["selection"]]
        if not missing and not isinstance(saved["selection"]["validation"], dict):
            missing = ["validation (an object)"]
        if missing:
            raise UserError(f"{path}: key 'selection': expected the val protocol's {', '.join(VAL_SELECTION_KEYS)}, "
                            f"found no {', '.join(missing)}")
    model = TFVAEGAN(cfg)
    for name in SAVED_MODULES:
        _load_state(getattr(model, name), saved["state"].get(name), f"{path}: key 'state.{name}")
    device = resolve_device(cfg.device)
    prepare_device(device, tf32=cfg.amp)
    model = model.to(device)
    model.eval()
    return model, cfg, saved, device


def _load_state(module: torch.nn.Module, found, where: str) -> None:
    """load_state_dict, with one error naming the parameter when the saved one does not fit.

    `where` is "<file>: key 'state.<module>", without the closing quote."""
    expected = module.state_dict()
    if not isinstance(found, dict):
        raise UserError(f"{where}': expected a state dict of {len(expected)} tensors, found {_describe(found)}")
    missing, extra = sorted(set(expected) - set(found)), sorted(set(found) - set(expected))
    if missing or extra:
        raise UserError(f"{where}': expected the parameters of the model its config describes; "
                        f"missing {missing[:4]}, unexpected {extra[:4]}")
    for key, tensor in expected.items():
        value = found[key]
        if (not isinstance(value, torch.Tensor) or value.shape != tensor.shape
                or value.is_floating_point() != tensor.is_floating_point()):
            raise UserError(f"{where}.{key}': expected a {str(tensor.dtype).removeprefix('torch.')} tensor of shape "
                            f"{tuple(tensor.shape)} (from its config), found {_describe(value)}")
    module.load_state_dict(found)


def load_test_data(cfg: Config, data_root: Path, device):
    raw = data_module.load_raw(data_root, cfg)
    zdata = test_split(raw, cfg).to(device)
    resolve(cfg, zdata, raw)  # refuses data whose sizes differ from those the model was trained on
    return zdata


def synthesize_stage(model_path: Path, out_path: Path, data_root: Path | None = None,
                     classes: str = "unseen", per_class: int | None = None) -> dict:
    if per_class is not None and (isinstance(per_class, bool) or not isinstance(per_class, int) or per_class < 1):
        raise UserError(f"synthesize --num: expected a positive number of features per class, found {per_class!r}")
    model, cfg, saved, device = load_model(Path(model_path))
    zdata = load_test_data(cfg, Path(data_root or saved["data_root"]), device)
    chosen = {"unseen": zdata.unseenclasses, "seen": zdata.seenclasses,
              "all": torch.arange(zdata.n_classes, device=device)}[classes]
    generator = torch.Generator(device=device).manual_seed(cfg.manualSeed + 2)
    count = cfg.syn_num if per_class is None else per_class
    log(f"synthesising {count} features for each of {len(chosen)} {classes} classes")
    features, labels = synthesize(model, zdata.attribute, chosen, count, cfg.nz, generator)
    out = {"format": SYNTHETIC_FORMAT, "features": features.float().cpu(), "labels": labels.cpu(),
           "classes": chosen.cpu(), "per_class": count, "feedback_weight": cfg.a2,
           # which model made these features: `classify` refuses them with any other model
           "model_id": model_identity(saved), "model_file": str(model_path), "dataset": cfg.dataset}
    atomic_torch_save(out, Path(out_path))
    return out


# --------------------------------------------------------------------------- classify
def classify_stage(model_path: Path, synthetic_path: Path, out_path: Path, data_root: Path | None = None,
                   benchmark: str | None = None, variant: str = "tfvaegan") -> dict:
    model, cfg, saved, device = load_model(Path(model_path))
    synthetic = load_checkpoint(Path(synthetic_path), SYNTHETIC_FORMAT)
    check_synthetic(synthetic, Path(synthetic_path), Path(model_path), model_identity(saved), cfg)
    zdata = load_test_data(cfg, Path(data_root or saved["data_root"]), device)
    if not torch.equal(synthetic["classes"].long().to(device), zdata.unseenclasses.long()):
        raise UserError(f"{synthetic_path}: key 'classes': expected the unseen classes of {cfg.dataset} "
                        f"{zdata.unseenclasses.tolist()[:10]}, found {synthetic['classes'].tolist()[:10]}")
    generator = torch.Generator(device=device).manual_seed(cfg.manualSeed + 3)
    selection = saved["selection"]
    began = time.perf_counter()
    pair = (synthetic["features"].float().to(device), synthetic["labels"].long().to(device))
    if cfg.protocol == "paper":
        final = evaluate(model, zdata, cfg, generator, select="best", synthetic=pair)
        headline = {k: selection.get(k) for k in ("zsl_acc", "gzsl_seen", "gzsl_unseen", "gzsl_h")}
        epochs = {"best_epoch_zsl": selection.get("best_epoch_zsl"),
                  "best_epoch_gzsl": selection.get("best_epoch_gzsl")}
        notes = ["paper protocol: generator and classifier epochs chosen by test accuracy, as the "
                 "official code does; ZSL and GZSL may come from different epochs"]
    else:
        final = evaluate(model, zdata, cfg, generator, select="last", synthetic=pair,
                         zsl_epochs=selection["zsl_classifier_epochs"],
                         gzsl_epochs=selection["gzsl_classifier_epochs"])
        headline = {k: final.get(k) for k in ("zsl_acc", "gzsl_seen", "gzsl_unseen", "gzsl_h")}
        epochs = {"best_epoch_zsl": selection["generator_epochs"],
                  "best_epoch_gzsl": selection["generator_epochs"] if cfg.reports_gzsl else None}
        notes = ["val protocol: epochs chosen on a validation split of the training data, "
                 "then one evaluation on the test set"] + list(selection["validation"].get("notes", []))
    metrics = {
        "benchmark": benchmark or cfg.dataset, "protocol": cfg.protocol, "variant": variant,
        "seed": cfg.manualSeed, **headline, **epochs,
        "epochs_trained": saved["epochs_trained"], "seconds_per_epoch": saved["seconds_per_epoch"],
        "classify_seconds": time.perf_counter() - began,
        "train_device": saved.get("device"), "train_torch_threads": saved.get("torch_threads"),
        "selection": selection, "final_model": final, "data": saved["data"], "config": saved["config"],
        "notes": notes,
    }
    atomic_write_text(Path(out_path), json.dumps(metrics, indent=2, default=float) + "\n")
    log(f"{metrics['benchmark']} [{cfg.protocol}] ZSL {fmt(headline['zsl_acc'])}  GZSL u {fmt(headline['gzsl_unseen'])} "
        f"s {fmt(headline['gzsl_seen'])} H {fmt(headline['gzsl_h'])}")
    return metrics


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
                        f"(resSize of {model_path}), found {_describe(features)}")
    if not bool(torch.isfinite(features).all()):
        raise UserError(f"{path}: key 'features': expected finite values, found NaN or infinity")
    if not (integer(labels) and labels.dim() == 1 and len(labels) == len(features)):
        raise UserError(f"{path}: key 'labels': expected an integer tensor of shape ({len(features)},) "
                        f"(one per feature), found {_describe(labels)}")
    if not (integer(classes) and classes.dim() == 1):
        raise UserError(f"{path}: key 'classes': expected a 1-D integer tensor of class ids, found {_describe(classes)}")
    outside = labels[~torch.isin(labels, classes)]
    if len(outside):
        raise UserError(f"{path}: key 'labels': expected ids among 'classes', found {outside.unique().tolist()[:10]}")


def fmt(value) -> str:
    return "-" if value is None else f"{100 * value:.1f}"


def run(cfg: Config, data_root: Path, out_dir: Path, benchmark: str | None = None,
        variant: str = "tfvaegan") -> dict:
    out_dir = Path(out_dir)
    (out_dir / "metrics.json").unlink(missing_ok=True)  # a failed run must leave no metrics
    train_stage(cfg, data_root, out_dir / "model.pt", out_dir / "train_log.csv")
    synthesize_stage(out_dir / "model.pt", out_dir / "synthetic.pt", data_root)
    return classify_stage(out_dir / "model.pt", out_dir / "synthetic.pt", out_dir / "metrics.json",
                          data_root, benchmark, variant)


# --------------------------------------------------------------------------- command line
def _config_args(parser) -> None:
    parser.add_argument("--data-root", required=True, type=Path, help="folder holding the datasets")
    parser.add_argument("--dataset", help="dataset folder under the data root (overrides the config's)")
    parser.add_argument("--config", type=Path, help="YAML file of config keys (see config/README.md)")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                        help="override one config key (repeatable), e.g. --set nepoch=10")


def _config_from(args) -> Config:
    extra = {"dataset": args.dataset} if args.dataset else None
    return config_module.load(args.config, args.set, extra=extra)


def add_cli(subparsers) -> None:
    p = subparsers.add_parser("run", help="load → train → synthesize → classify for one dataset and seed")
    _config_args(p)
    p.add_argument("--out", required=True, type=Path, help="output folder (model.pt, train_log.csv, "
                   "synthetic.pt, metrics.json)")
    p.add_argument("--benchmark", help="benchmark label in metrics.json (default: the dataset)")
    p.add_argument("--variant", default="tfvaegan", help="variant label in metrics.json")
    p.set_defaults(func=lambda a: run(_config_from(a), a.data_root, a.out, a.benchmark, a.variant) and 0)

    p = subparsers.add_parser("train", help="train the generative model (and choose epochs per the protocol)")
    _config_args(p)
    p.add_argument("--model", required=True, type=Path, help="output model file (model.pt)")
    p.add_argument("--log", required=True, type=Path, help="output per-epoch log (train_log.csv)")
    p.set_defaults(func=lambda a: train_stage(_config_from(a), a.data_root, a.model, a.log) and 0)

    p = subparsers.add_parser("synthesize", help="synthesize features of unseen classes with a trained model")
    p.add_argument("--model", required=True, type=Path)
    p.add_argument("--out", required=True, type=Path, help="output file (synthetic.pt)")
    p.add_argument("--data-root", type=Path, help="data root (default: the one the model was trained on)")
    p.add_argument("--classes", choices=("unseen", "seen", "all"), default="unseen")
    p.add_argument("--num", type=int, help="features per class (default: the config's syn_num)")
    p.set_defaults(func=lambda a: synthesize_stage(a.model, a.out, a.data_root, a.classes, a.num) and 0)

    p = subparsers.add_parser("classify", help="train and evaluate the ZSL/GZSL classifiers → metrics.json")
    p.add_argument("--model", required=True, type=Path)
    p.add_argument("--synthetic", required=True, type=Path)
    p.add_argument("--out", required=True, type=Path, help="output metrics.json")
    p.add_argument("--data-root", type=Path, help="data root (default: the one the model was trained on)")
    p.add_argument("--benchmark", help="benchmark label in metrics.json (default: the dataset)")
    p.add_argument("--variant", default="tfvaegan", help="variant label in metrics.json")
    p.set_defaults(func=lambda a: classify_stage(a.model, a.synthetic, a.out, a.data_root, a.benchmark,
                                                 a.variant) and 0)
