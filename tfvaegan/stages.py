"""The stages the workflow runs, as functions of paths: verify-features, train, synthesize, classify,
and `run`, which chains the last three in one process (data loaded and validated once, the model
handed on in memory; the files written are those of the three stages).

Both protocols (protocols.py) are carried out here:
- paper (the official behaviour): evaluate on the test set after every generator epoch and report
  the best ZSL accuracy and the best GZSL H, each from its own epoch; the classifiers keep their
  best epoch on the test set too.
- val (honest): train on a validation split built from training data only, choose the number of
  generator epochs and of classifier epochs there, retrain on trainval with those counts, and
  evaluate once on the test set.
"""
from __future__ import annotations

import dataclasses
import json
import random
import time
from dataclasses import dataclass
from pathlib import Path

import torch

from tfvaegan import artifacts, protocols
from tfvaegan.config import Config
from tfvaegan.data.layout import data_files
from tfvaegan.data.load import Benchmark, load_benchmark
from tfvaegan.data.preprocess import ZSLData
from tfvaegan.device import device_for
from tfvaegan.errors import UserError
from tfvaegan.fileio import atomic_torch_save, atomic_write_text, sha256_of
from tfvaegan.method.evaluate import classifier_steps_per_epoch, evaluate
from tfvaegan.method.models import TFVAEGAN
from tfvaegan.method.synthesize import synthesize
from tfvaegan.method.train import train
from tfvaegan.method.transductive import trainer_for
from tfvaegan.record import HEADLINE_METRICS, log, percent

@dataclass
class Trained:
    """A model as `synthesize` and `classify` use it: from model.pt, or straight from `train` in `run`."""

    model: TFVAEGAN
    cfg: Config
    saved: dict  # model.pt's contents
    path: Path  # model.pt
    device: torch.device

    @classmethod
    def load(cls, path: Path) -> "Trained":
        saved, cfg = artifacts.read_model(Path(path))
        model = artifacts.restore_model(saved, cfg, Path(path))
        device = device_for(cfg.device, cfg.amp)
        return cls(model.to(device), cfg, saved, Path(path), device)

    def benchmark(self, data_root: Path | None) -> Benchmark:
        """The data the model was trained on (or the same benchmark under another root); sizes that
        differ from the model's are refused."""
        return load_benchmark(Path(data_root or self.saved["data_root"]), self.cfg)


# --------------------------------------------------------------------------- verify-features
def verify_features(data_root: Path, configs: list[Config], config_file: Path | None = None) -> dict:
    """Load each dataset (one Config per split) as training would, checking the sizes the config
    states, and record every file's sha256 and the split sizes (data.json)."""
    checksums: dict[str, str] = {}
    records = []
    for cfg in configs:
        raw = load_benchmark(data_root, cfg).raw
        n_classes, att_size = raw.attributes.shape
        files = data_files(data_root, cfg)
        for path in map(str, files):
            checksums.setdefault(path, sha256_of(path))
        records.append({
            "dataset": cfg.dataset,
            "files": {str(path): checksums[str(path)] for path in files},
            "images": int(raw.features.shape[0]), "feature_dim": int(raw.features.shape[1]),
            "classes": int(n_classes), "attribute_dim": int(att_size),
            "split_sizes": {name: int(len(rows)) for name, rows in raw.locs.items()},
        })
        log(f"verify-features: {cfg.dataset}: {records[-1]['images']} images, {n_classes} classes, "
            f"features {raw.features.shape[1]}-d: ok")
    return {"data_root": str(data_root), "config": str(config_file) if config_file else None,
            "datasets": records}


# --------------------------------------------------------------------------- train
def with_seed(cfg: Config) -> Config:
    """The official scripts draw a seed when none is given; we do too, and record it."""
    if cfg.manualSeed is not None:
        return cfg
    return dataclasses.replace(cfg, manualSeed=random.SystemRandom().randint(1, 10000))


def train_stage(cfg: Config, data_root: Path, model_path: Path, log_path: Path,
                benchmark: Benchmark | None = None) -> Trained:
    """Train under the config's protocol; writes model.pt and train_log.csv."""
    cfg = with_seed(cfg)
    device = device_for(cfg.device, cfg.amp)
    benchmark = benchmark or load_benchmark(data_root, cfg)
    benchmark = dataclasses.replace(benchmark, cfg=dataclasses.replace(benchmark.cfg, manualSeed=cfg.manualSeed))
    model_path = Path(model_path)
    log(f"{cfg.dataset}: protocol {cfg.protocol}, seed {cfg.manualSeed}, device {device}")
    if cfg.protocol == "paper":
        result, history, selection, zdata = _train_paper(benchmark, device, model_path)
    else:
        result, history, selection, zdata = _train_val(benchmark, device, model_path)
    saved = artifacts.model_record(benchmark.cfg, result.trainer.model, history, selection,
                                   seconds_per_epoch=result.seconds_per_epoch, epochs_trained=len(result.history),
                                   data_root=data_root, data=zdata.info, device=device)
    artifacts.write_model_and_log(saved, model_path, log_path)
    for leftover in (model_path.with_suffix(".ckpt"), model_path.with_suffix(".select.ckpt")):
        leftover.unlink(missing_ok=True)
    return Trained(result.trainer.model.eval(), benchmark.cfg, saved, model_path, device)


def _train_paper(benchmark: Benchmark, device, model_path: Path):
    """Train on trainval, evaluated on the test set after every epoch; report the best epochs."""
    cfg, raw = benchmark.cfg, benchmark.raw
    zdata = benchmark.test_split(device)
    result = train(cfg, zdata, device, make_trainer=trainer_for(cfg), evaluate=_evaluator(zdata, cfg, "test"),
                   checkpoint=model_path.with_suffix(".ckpt"),
                   fingerprint=artifacts.run_fingerprint(cfg, raw.feature_file, raw.split_file), log=log)
    return result, result.history, protocols.paper_selection(result.history, cfg.reports_gzsl), zdata


def _train_val(benchmark: Benchmark, device, model_path: Path):
    """Choose the epochs on the validation split, then retrain on trainval for that many epochs."""
    cfg, raw = benchmark.cfg, benchmark.raw
    selection, select_history = choose_on_validation(benchmark, device, model_path)
    zdata = benchmark.test_split(device)
    final_cfg = dataclasses.replace(cfg, nepoch=selection["generator_epochs"])
    log(f"retraining on trainval for the {final_cfg.nepoch} epochs chosen on the validation split")
    result = train(final_cfg, zdata, device, make_trainer=trainer_for(cfg), checkpoint=model_path.with_suffix(".ckpt"),
                   fingerprint=artifacts.run_fingerprint(final_cfg, raw.feature_file, raw.split_file, "final"),
                   log=log)
    history = select_history + [{**row, "eval_split": "trainval"} for row in result.history]
    return result, history, selection, zdata


def choose_on_validation(benchmark: Benchmark, device, model_path: Path) -> tuple[dict, list[dict]]:
    """The val protocol's selection run on the validation split (cached in <model>.selection.json)."""
    cfg, raw = benchmark.cfg, benchmark.raw
    split = protocols.validation_split(raw, cfg, cfg.manualSeed)
    protocols.assert_no_test_leak(split, raw)
    vdata = benchmark.split(split.train, split.val_seen, split.val_unseen, device)
    key = artifacts.run_fingerprint(cfg, raw.feature_file, raw.split_file, "selection")
    cache = artifacts.selection_cache_path(model_path)
    if cache.is_file():
        cached = artifacts.read_selection_cache(cache, log)  # None, logged, when damaged: it is only a cache
        if cached is not None and cached.get("fingerprint") == key:
            log(f"reusing the epoch selection in {cache}")
            return cached["selection"], cached["history"]
    log(f"selection run on the validation split ({split.source}): {len(split.train)} train, "
        f"{len(split.val_seen)} val-seen, {len(split.val_unseen)} val-unseen images")
    result = train(cfg, vdata, device, make_trainer=trainer_for(cfg), evaluate=_evaluator(vdata, cfg, "val"),
                   checkpoint=model_path.with_suffix(".select.ckpt"), fingerprint=key, log=log)
    selection = protocols.val_selection(result.history, cfg.reports_gzsl, split)  # LeakError on a test number
    atomic_write_text(cache, json.dumps({"fingerprint": key, "selection": selection,
                                         "history": result.history}, indent=1))
    return selection, result.history


def _evaluator(zdata: ZSLData, cfg: Config, split_name: str):
    def run_evaluation(trainer, epoch, generator):
        return {**evaluate(trainer.model, zdata, cfg, generator, select="best"), "eval_split": split_name}
    return run_evaluation


# --------------------------------------------------------------------------- synthesize
def synthesize_stage(model: Path | Trained, out_path: Path, data_root: Path | None = None, classes: str = "unseen",
                     per_class: int | None = None, benchmark: Benchmark | None = None) -> dict:
    """Features of the unseen (or seen, or all) classes from model.pt (or a model `train` just made);
    writes synthetic.pt."""
    if per_class is not None and (isinstance(per_class, bool) or not isinstance(per_class, int) or per_class < 1):
        raise UserError(f"synthesize --num: expected a positive number of features per class, found {per_class!r}")
    trained = model if isinstance(model, Trained) else Trained.load(model)
    cfg, device = trained.cfg, trained.device
    zdata = (benchmark or trained.benchmark(data_root)).test_split(device)
    chosen = {"unseen": zdata.unseenclasses, "seen": zdata.seenclasses,
              "all": torch.arange(zdata.n_classes, device=device)}[classes]
    generator = torch.Generator(device=device).manual_seed(cfg.manualSeed + 2)
    count = cfg.syn_num if per_class is None else per_class
    log(f"synthesising {count} features for each of {len(chosen)} {classes} classes")
    features, labels = synthesize(trained.model, zdata.attribute, chosen, count, cfg.nz, generator)
    feedback_weight = cfg.a2 if trained.model.uses_feedback else None  # None: generated without feedback
    out = artifacts.synthetic_record(features, labels, chosen, count, feedback_weight, trained.saved, trained.path,
                                     cfg.dataset)
    atomic_torch_save(out, Path(out_path))
    return out


# --------------------------------------------------------------------------- classify
def classify_stage(model: Path | Trained, synthetic_path: Path, out_path: Path, data_root: Path | None = None,
                   benchmark_name: str | None = None, variant: str = "tfvaegan", *,
                   synthetic: dict | None = None, benchmark: Benchmark | None = None) -> dict:
    """The final ZSL/GZSL classifiers on the synthetic features of synthetic.pt (or those `synthesize`
    just made, `synthetic`); writes metrics.json."""
    trained = model if isinstance(model, Trained) else Trained.load(model)
    if synthetic is None:
        synthetic = artifacts.load_artifact(Path(synthetic_path), artifacts.SYNTHETIC_FORMAT)
    cfg, device = trained.cfg, trained.device
    artifacts.check_synthetic(synthetic, Path(synthetic_path), trained.path, artifacts.model_identity(trained.saved), cfg)
    zdata = (benchmark or trained.benchmark(data_root)).test_split(device)
    if not torch.equal(synthetic["classes"].long().to(device), zdata.unseenclasses.long()):
        raise UserError(f"{synthetic_path}: key 'classes': expected the unseen classes of {cfg.dataset} "
                        f"{zdata.unseenclasses.tolist()[:10]}, found {synthetic['classes'].tolist()[:10]}")
    generator = torch.Generator(device=device).manual_seed(cfg.manualSeed + 3)
    selection = trained.saved["selection"]
    began = time.perf_counter()
    pair = (synthetic["features"].float().to(device), synthetic["labels"].long().to(device))
    if cfg.protocol == "paper":
        final = evaluate(trained.model, zdata, cfg, generator, select="best", synthetic=pair)
        headline = {k: selection.get(k) for k in HEADLINE_METRICS}
        epochs = {"best_epoch_zsl": selection.get("best_epoch_zsl"),
                  "best_epoch_gzsl": selection.get("best_epoch_gzsl")}
        notes = ["paper protocol: generator and classifier epochs chosen by test accuracy, as the "
                 "official code does; ZSL and GZSL may come from different epochs"]
    else:
        steps_per_epoch = classifier_steps_per_epoch(cfg, len(zdata.train_label), len(pair[1]))
        classifier_epochs = protocols.final_classifier_epochs(selection, steps_per_epoch)
        final = evaluate(trained.model, zdata, cfg, generator, select="last", synthetic=pair,
                         zsl_epochs=classifier_epochs["zsl"], gzsl_epochs=classifier_epochs["gzsl"])
        headline = {k: final.get(k) for k in HEADLINE_METRICS}
        epochs = {"best_epoch_zsl": selection["generator_epochs"],
                  "best_epoch_gzsl": selection["generator_epochs"] if cfg.reports_gzsl else None}
        notes = ["val protocol: epochs chosen on a validation split of the training data, "
                 "then one evaluation on the test set",
                 "val protocol: the GZSL classifier trains as many steps as its chosen epochs took on the "
                 f"validation split ({_transfer_note(selection, classifier_epochs, steps_per_epoch)}); the ZSL "
                 "classifier its chosen epochs"]
        notes += list(selection["validation"].get("notes", []))
    notes += setting_notes(cfg)
    saved = trained.saved
    metrics = {
        "benchmark": benchmark_name or cfg.dataset, "protocol": cfg.protocol, "variant": variant,
        "features": cfg.features, "setting": cfg.setting,
        "transductive_prior": cfg.transductive_prior if cfg.transductive else None,
        "seed": cfg.manualSeed, **headline, **epochs,
        "epochs_trained": saved["epochs_trained"], "seconds_per_epoch": saved["seconds_per_epoch"],
        "classify_seconds": time.perf_counter() - began,
        "train_device": saved.get("device"), "train_torch_threads": saved.get("torch_threads"),
        "selection": selection, "final_model": final, "data": saved["data"], "config": saved["config"],
        "notes": notes,
    }
    atomic_write_text(Path(out_path), json.dumps(metrics, indent=2, default=float) + "\n")
    log(f"{metrics['benchmark']} [{cfg.protocol}] ZSL {percent(headline['zsl_acc'])}  GZSL u "
        f"{percent(headline['gzsl_unseen'])} s {percent(headline['gzsl_seen'])} H {percent(headline['gzsl_h'])}")
    return metrics


def setting_notes(cfg: Config) -> list[str]:
    """What a transductive run trained on, and whether it read test labels."""
    if not cfg.transductive:
        return []
    unlabelled = ("the features of test_unseen, unlabelled" if cfg.protocol == "paper" else
                  "the validation-unseen features while choosing the epochs, then those of test_unseen; "
                  "all unlabelled")
    prior = ("transductive prior 'uniform': the unseen classes of D2's fakes drawn uniformly; no test label "
             "is read in training" if cfg.transductive_prior == "uniform" else
             "transductive prior 'labels' (the authors' code, 'known class prior'): D2's fakes take the class "
             "embeddings of the unlabelled batch's TRUE labels, so training uses test labels")
    return [f"transductive: D2 trains on {unlabelled}", prior]


def _transfer_note(selection: dict, classifier_epochs: dict, steps_per_epoch: dict) -> str:
    if selection.get("gzsl_classifier_steps") is None:
        return "a selection without step counts: its epochs kept"
    return (f"{selection['gzsl_classifier_epochs']} epochs, {selection['gzsl_classifier_steps']} steps -> "
            f"{classifier_epochs['gzsl']} epochs of {steps_per_epoch['gzsl']} steps")


# --------------------------------------------------------------------------- run
def run(cfg: Config, data_root: Path, out_dir: Path, benchmark_name: str | None = None,
        variant: str = "tfvaegan") -> dict:
    """train → synthesize → classify into out_dir, the data loaded once and the model kept in memory."""
    out_dir = Path(out_dir)
    (out_dir / "metrics.json").unlink(missing_ok=True)  # a failed run must leave no metrics
    device_for(cfg.device, cfg.amp)  # a device that does not exist is refused before the data is read
    benchmark = load_benchmark(data_root, cfg)
    trained = train_stage(cfg, data_root, out_dir / "model.pt", out_dir / "train_log.csv", benchmark)
    synthetic = synthesize_stage(trained, out_dir / "synthetic.pt", benchmark=benchmark)
    return classify_stage(trained, out_dir / "synthetic.pt", out_dir / "metrics.json", benchmark_name=benchmark_name,
                          variant=variant, synthetic=synthetic, benchmark=benchmark)
