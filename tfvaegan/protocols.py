"""The two evaluation protocols, end to end: which split chooses the epochs, the validation split of the
`val` protocol, each protocol's training run, its final evaluation and metrics.json's notes on it.

- paper (the official behaviour, kept as the labelled reproduction of the published numbers): evaluate
  on the test set after every generator epoch and report the best ZSL accuracy and the best GZSL H,
  each from its own epoch; the classifiers keep their best epoch on the test set too.
- val (honest): train on a validation split carved out of the training data only (`validation_split`),
  choose the number of generator epochs and of classifier epochs there (`choose_on_validation`), retrain
  on trainval with those counts, and evaluate once on the test set (how the classifiers' length carries
  over: method/selection.py `TRANSFER`; the ZSL classifier trains the configured classifier_nepoch).

The selection arithmetic over a training history is tfvaegan/method/selection.py's. docs/protocols.md
explains both protocols and how to read the tables.
"""
from __future__ import annotations

import dataclasses
import json
import statistics
from dataclasses import dataclass, field
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import numpy as np

from tfvaegan import artifacts
from tfvaegan.config import Config
from tfvaegan.data.load import Benchmark, load_benchmark
from tfvaegan.data.preprocess import ZSLData
from tfvaegan.errors import DataError, LeakError, UserError
from tfvaegan.fileio import atomic_write_text
from tfvaegan.method.evaluate import classifier_steps_per_epoch, evaluate
from tfvaegan.method.selection import TRANSFER, final_classifier_epochs, paper_selection, val_selection
from tfvaegan.method.train import train
from tfvaegan.method.lineage import trainer_for
from tfvaegan.record import HEADLINE_METRICS, log

SOURCE_VAL_LOC = "xlsa17 val_loc"
SOURCE_GENERATED = "generated from training classes"

# Validation classes / training (trainval) classes of the xlsa17 "proposed splits", counted from the
# real att_splits.mat files (tests/test_protocols.py recounts them when ../shared/xlsa17 is present).
XLSA17_VAL_CLASSES = {
    "APY": (5, 20),
    "AWA2": (13, 40),
    "CUB": (50, 150),
    "FLO": (20, 82),
    "SUN": (65, 645),
}
# The median of the five shares (APY's 5/20 = 0.25; CUB 0.33, AWA2 0.33, FLO 0.24, SUN 0.10): a split
# without val_loc gets a quarter of its training classes as validation-unseen classes.
XLSA17_VAL_CLASS_FRACTION = statistics.median(v / n for v, n in XLSA17_VAL_CLASSES.values())


@dataclass(frozen=True)
class ValidationSplit:
    """0-based image indices, all inside trainval_loc, for the selection run of the `val` protocol."""

    train: np.ndarray  # training-class images the selection run trains on
    val_seen: np.ndarray  # held-out images of the training classes (GZSL validation-seen)
    val_unseen: np.ndarray  # images of the validation classes (unseen during the selection run)
    notes: list[str] = field(default_factory=list)
    source: str = SOURCE_VAL_LOC  # SOURCE_VAL_LOC or SOURCE_GENERATED

    def to_info(self, labels: np.ndarray) -> dict[str, Any]:
        """A JSON-able summary for metrics.json: where the split came from, its sizes and notes."""
        labels = np.asarray(labels)
        return {
            "source": self.source,
            "n_train": int(self.train.size),
            "n_val_seen": int(self.val_seen.size),
            "n_val_unseen": int(self.val_unseen.size),
            "train_classes": int(np.unique(labels[self.train]).size),
            "val_unseen_classes": sorted(int(c) for c in np.unique(labels[self.val_unseen])),
            "notes": list(self.notes),
        }


def _loc(raw: Any, key: str) -> np.ndarray | None:
    value = raw.locs.get(key)
    return None if value is None else np.asarray(value, dtype=np.int64).ravel()


def _stratified_holdout(indices: np.ndarray, labels: np.ndarray, fraction: float,
                        rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Split `indices` into (kept, held): per class, round(fraction * count) images held out.

    A class keeps at least one image for training, and a class with two or more images gives at
    least one to validation, so every training class is both trained on and validated.
    """
    shuffled = rng.permutation(indices)
    order = np.argsort(labels[shuffled], kind="stable")
    shuffled = shuffled[order]
    _, first, counts = np.unique(labels[shuffled], return_index=True, return_counts=True)
    n_held = np.floor(fraction * counts + 0.5).astype(np.int64)
    n_held = np.minimum(np.maximum(n_held, (counts >= 2).astype(np.int64)), counts - 1)
    rank_in_class = np.arange(shuffled.size) - np.repeat(first, counts)
    held = rank_in_class < np.repeat(n_held, counts)
    return np.sort(shuffled[~held]), np.sort(shuffled[held])


def _classes_from_val_loc(raw: Any, trainval: np.ndarray, labels: np.ndarray,
                          notes: list[str]) -> tuple[np.ndarray, np.ndarray] | None:
    """(validation classes, their images) from val_loc ∩ trainval_loc, or None when unusable."""
    val_loc = _loc(raw, "val")
    if val_loc is None or val_loc.size == 0:
        return None
    val_loc = np.unique(val_loc)  # a repeated index must not count as an image outside trainval_loc
    # xlsa17: train_loc ∪ val_loc = trainval_loc ∪ test_seen_loc, so the raw val_loc holds test images.
    pool = np.intersect1d(val_loc, trainval)
    if pool.size < val_loc.size:
        notes.append(
            f"{val_loc.size - pool.size} of {val_loc.size} val_loc images are not in trainval_loc "
            "(test images in the xlsa17 files) and are left out of validation"
        )
    if pool.size == 0:
        notes.append("val_loc has no image inside trainval_loc: validation classes generated instead")
        return None
    classes = np.unique(labels[pool])
    raw_classes = np.unique(labels[val_loc])
    if raw_classes.size > classes.size:
        notes.append(
            f"{raw_classes.size - classes.size} val_loc classes have no trainval image and are not validated"
        )
    outside = np.setdiff1d(trainval[np.isin(labels[trainval], classes)], pool)
    if outside.size:
        notes.append(
            f"{outside.size} trainval images of validation classes lie outside val_loc: used neither "
            "for training nor for validation"
        )
    return classes, pool


def _generated_classes(trainval: np.ndarray, labels: np.ndarray, fraction: float | None,
                       rng: np.random.Generator, notes: list[str], split_file: str
                       ) -> tuple[np.ndarray, np.ndarray]:
    classes = np.unique(labels[trainval])
    if classes.size < 2:
        raise DataError(
            f"{split_file}: key 'trainval_loc': the val protocol needs at least 2 training classes "
            f"to draw validation classes from, found {classes.size}"
        )
    share = XLSA17_VAL_CLASS_FRACTION if fraction is None else fraction
    n_val = int(min(max(round(share * classes.size), 1), classes.size - 1))
    chosen = np.sort(rng.choice(classes, size=n_val, replace=False))
    why = (f"val_unseen_fraction={fraction}" if fraction is not None
           else f"the xlsa17 median share {XLSA17_VAL_CLASS_FRACTION:.2f}")
    notes.append(
        f"split file has no usable train/val locations: {n_val} of {classes.size} training classes "
        f"drawn (seeded) as validation-unseen classes ({why})"
    )
    return chosen, trainval[np.isin(labels[trainval], chosen)]


def validation_split(raw: Any, cfg: Any, seed: int) -> ValidationSplit:
    """The `val` protocol's split, built from trainval_loc only; the same seed gives the same split.

    Validation-unseen classes are the classes of val_loc ∩ trainval_loc (or, without val_loc, a
    seeded `cfg.val_unseen_fraction` of the training classes, the xlsa17 share when that is null);
    train holds the other training classes' trainval images minus a seeded, per-class
    `cfg.val_seen_fraction` held out as validation-seen.
    """
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)):
        raise ValueError(f"validation_split: expected an integer seed (the run's manualSeed), found {seed!r}")
    labels = np.asarray(raw.labels, dtype=np.int64).ravel()
    trainval = np.unique(_loc(raw, "trainval"))
    split_file = str(getattr(raw, "split_file", "split file"))
    rng = np.random.default_rng(seed)
    notes: list[str] = []

    from_val_loc = _classes_from_val_loc(raw, trainval, labels, notes)
    if from_val_loc is not None:
        val_classes, val_unseen = from_val_loc
        source = SOURCE_VAL_LOC
    else:
        val_classes, val_unseen = _generated_classes(
            trainval, labels, cfg.val_unseen_fraction, rng, notes, split_file)
        source = SOURCE_GENERATED

    train_pool = trainval[~np.isin(labels[trainval], val_classes)]
    if train_pool.size == 0:
        raise DataError(
            f"{split_file}: key 'val_loc': expected validation classes to be a strict subset of the "
            f"training classes, found all {val_classes.size} training classes in val_loc"
        )
    train, val_seen = _stratified_holdout(train_pool, labels, cfg.val_seen_fraction, rng)
    if val_seen.size == 0:
        raise DataError(
            f"{split_file}: key 'trainval_loc': the val protocol holds out validation-seen images from "
            f"training classes with at least 2 images, found {np.unique(labels[train_pool]).size} training "
            f"classes with 1 image each (after {val_classes.size} validation-unseen classes)"
        )
    split = ValidationSplit(train=train, val_seen=val_seen, val_unseen=np.sort(val_unseen),
                            notes=notes, source=source)
    assert_no_test_leak(split, raw)
    return split


def selection_train_rows(labels: np.ndarray, locs: dict[str, np.ndarray], split_file: str | Path, cfg: Any,
                         seed: int) -> np.ndarray:
    """The rows the val protocol's selection run trains on (`validation_split(...).train`), from an image
    list's 0-based labels and its split file's 0-based locations alone, without a feature file: what the
    selection backbone of a fine-tuned run is trained on (`finetune --train-part selection`). `cfg` gives
    val_seen_fraction and val_unseen_fraction, `seed` is the run's manualSeed."""
    return validation_split(SimpleNamespace(labels=labels, locs=locs, split_file=split_file), cfg, seed).train


def assert_no_test_leak(split: ValidationSplit, raw: Any) -> None:
    """Raise LeakError unless the split is a clean partition of training data.

    Checks: no index in test_seen_loc or test_unseen_loc; everything inside trainval_loc; the three
    parts disjoint; validation-unseen classes disjoint from the classes trained on; validation-seen
    classes among them.
    """
    labels = np.asarray(raw.labels).ravel()
    test = np.concatenate([_loc(raw, "test_seen"), _loc(raw, "test_unseen")])
    trainval = _loc(raw, "trainval")
    parts = {"train": split.train, "val_seen": split.val_seen, "val_unseen": split.val_unseen}
    for name, idx in parts.items():
        leaked = np.intersect1d(idx, test)
        if leaked.size:
            raise LeakError(f"validation split part '{name}' holds {leaked.size} test images "
                            f"(first indices {leaked[:5].tolist()})")
        outside = np.setdiff1d(idx, trainval)
        if outside.size:
            raise LeakError(f"validation split part '{name}' holds {outside.size} images outside trainval_loc")
    names = list(parts)
    for i, a in enumerate(names):
        for b in names[i + 1:]:
            if np.intersect1d(parts[a], parts[b]).size:
                raise LeakError(f"validation split parts '{a}' and '{b}' overlap")
    trained = np.unique(labels[split.train])
    if np.intersect1d(np.unique(labels[split.val_unseen]), trained).size:
        raise LeakError("validation-unseen classes are also trained on")
    if np.setdiff1d(np.unique(labels[split.val_seen]), trained).size:
        raise LeakError("validation-seen images belong to classes that are not trained on")


# ---------------------------------------------------------------------------------- the protocols' runs
def train_under_protocol(benchmark: Benchmark, device, model_path: Path, selection_data: Benchmark | None = None):
    """The training of a run, as its protocol says: (the final training's result, the history written to
    train_log.csv, the selection, the test split it was made for). `selection_data` (val only): the features
    the selection run reads instead (`selection_benchmark`)."""
    if benchmark.cfg.protocol == "paper":
        if selection_data is not None:
            raise UserError("--selection-features: the paper protocol has no selection run (it chooses on the "
                            "test set); selection features are for protocol val")
        return _train_paper(benchmark, device, model_path)
    return _train_val(benchmark, device, model_path, selection_data)


def _train_paper(benchmark: Benchmark, device, model_path: Path):
    """Train on trainval, evaluated on the test set after every epoch; report the best epochs."""
    cfg, raw = benchmark.cfg, benchmark.raw
    zdata = benchmark.test_split(device)
    result = train(cfg, zdata.for_training(cfg), device, make_trainer=trainer_for(cfg),
                   evaluate=_evaluator(zdata, cfg, "test"),
                   checkpoint=model_path.with_suffix(".ckpt"),
                   fingerprint=artifacts.run_fingerprint(cfg, raw.feature_file, raw.split_file), log=log)
    return result, result.history, paper_selection(result.history, cfg.reports_gzsl), zdata


def _train_val(benchmark: Benchmark, device, model_path: Path, selection_data: Benchmark | None = None):
    """Choose the epochs on the validation split, then retrain on trainval for that many epochs."""
    cfg, raw = benchmark.cfg, benchmark.raw
    selection, select_history = choose_on_validation(benchmark, device, model_path, selection_data)
    zdata = benchmark.test_split(device)
    final_cfg = dataclasses.replace(cfg, nepoch=selection["generator_epochs"])
    log(f"retraining on trainval for the {final_cfg.nepoch} epochs chosen on the validation split")
    result = train(final_cfg, zdata.for_training(cfg), device, make_trainer=trainer_for(cfg),
                   checkpoint=model_path.with_suffix(".ckpt"),
                   fingerprint=artifacts.run_fingerprint(final_cfg, raw.feature_file, raw.split_file, "final"),
                   log=log)
    history = select_history + [{**row, "eval_split": "trainval"} for row in result.history]
    return result, history, selection, zdata


def choose_on_validation(benchmark: Benchmark, device, model_path: Path,
                         selection_data: Benchmark | None = None) -> tuple[dict, list[dict]]:
    """The val protocol's selection run on the validation split (cached in <model>.selection.json). It reads
    the features of `selection_data` when given (a fine-tuned run's: `selection_benchmark`), else the run's
    own; the selection record says which (`features`)."""
    cfg, raw = benchmark.cfg, benchmark.raw
    data = benchmark if selection_data is None else selection_data
    split = validation_split(raw, cfg, cfg.manualSeed)
    assert_no_test_leak(split, raw)
    vdata = data.split(split.train, split.val_seen, split.val_unseen, device)
    key = artifacts.run_fingerprint(cfg, data.raw.feature_file, raw.split_file, "selection")
    cache = artifacts.selection_cache_path(model_path)
    if cache.is_file():
        cached = artifacts.read_selection_cache(cache, log)  # None, logged, when damaged: it is only a cache
        if cached is not None and cached.get("fingerprint") == key:
            log(f"reusing the epoch selection in {cache}")
            selection = cached["selection"]  # a cache written before `features` existed gets it now
            return (selection if "features" in selection else _with_features(selection, benchmark, data),
                    cached["history"])
    if data is not benchmark:
        log(f"the selection run reads {data.raw.feature_file} (a backbone fine-tuned on the validation split's "
            f"training images only); the final run {raw.feature_file}")
    log(f"selection run on the validation split ({split.source}): {len(split.train)} train, "
        f"{len(split.val_seen)} val-seen, {len(split.val_unseen)} val-unseen images")
    result = train(cfg, vdata.for_training(cfg), device, make_trainer=trainer_for(cfg),
                   evaluate=_evaluator(vdata, cfg, "val"),
                   checkpoint=model_path.with_suffix(".select.ckpt"), fingerprint=key, log=log)
    selection = val_selection(result.history, cfg.reports_gzsl, split)  # LeakError on a test number
    selection = _with_features(selection, benchmark, data)
    atomic_write_text(cache, json.dumps({"fingerprint": key, "selection": selection,
                                         "history": result.history}, indent=1))
    return selection, result.history


def selection_benchmark(benchmark: Benchmark, features: str | Path) -> Benchmark:
    """`benchmark` with the features of `features` instead: a feature file beside the run's own, extracted with
    the backbone fine-tuned on the validation split's training images only (`finetune --train-part
    selection`), which a fine-tuned run's selection run reads (`choose_on_validation`). The same images,
    labels, split file and config; anything else is refused."""
    features, own = Path(features), Path(benchmark.raw.feature_file)
    if features.suffix != ".mat" or features.resolve().parent != own.resolve().parent or features.resolve() == \
            own.resolve():
        raise UserError(f"--selection-features: expected another .mat feature file beside {own} (the selection "
                        f"backbone's features of the same images), found {features}")
    data = load_benchmark(benchmark.data_root, dataclasses.replace(benchmark.cfg, image_embedding=features.stem))
    shape, found = benchmark.raw.features.shape, data.raw.features.shape
    if found != shape or not np.array_equal(data.raw.labels, benchmark.raw.labels):
        raise DataError(f"{features}: keys 'features' and 'labels': expected the {shape[0]} images ({shape[1]}-d) "
                        f"and labels of {own}, found {found[0]} images ({found[1]}-d)"
                        f"{' with other labels' if found == shape else ''}")
    return dataclasses.replace(data, cfg=benchmark.cfg)


def _with_features(selection: dict, benchmark: Benchmark, data: Benchmark) -> dict:
    """The selection record with the feature file its run read (`features`: `file`, `same_as_final`), and a
    note in its validation record on what that means for a fine-tuned run."""
    file, final = Path(data.raw.feature_file), Path(benchmark.raw.feature_file)
    same = file.resolve() == final.resolve()
    if not same:
        note = (f"the selection run read {file}: a backbone fine-tuned on the validation split's training images "
                f"only (no validation-unseen, validation-seen or test image); the final run read {final}")
    elif benchmark.cfg.features == "finetuned":
        note = (f"the selection run read the final run's fine-tuned features {final}, whose backbone was trained on "
                "the validation classes' images with their labels: the validation numbers, and the epochs chosen "
                "on them, are optimistic (train --selection-features gives it a selection backbone's features)")
    else:
        note = None
    validation = dict(selection["validation"])
    if note is not None:
        validation["notes"] = [*validation.get("notes", []), note]
    return {**selection, "validation": validation, "features": {"file": str(file), "same_as_final": same}}


def _evaluator(zdata: ZSLData, cfg: Config, split_name: str):
    def run_evaluation(trainer, epoch, generator):
        return {**evaluate(trainer.model, zdata, cfg, generator, select="best"), "eval_split": split_name}
    return run_evaluation


def final_evaluation(model, zdata: ZSLData, cfg: Config, selection: dict, synthetic: tuple, generator):
    """The final classifiers on the synthetic features, as the protocol says: (the evaluation, the headline
    numbers, the epochs reported, metrics.json's notes, the evaluation's per-class counts: {split: PerClass},
    per_class.csv's rows, whose means are the evaluation's zsl_acc, gzsl_unseen and gzsl_seen). paper: the
    classifiers keep their best epoch on the test set, the headline numbers are the training run's best test
    epochs (an earlier generator, evaluated during training: the per-class counts are the final model's); val:
    the classifiers train the length the transfer rule gives (method/selection.py `TRANSFER`: GZSL as many
    steps as on the validation split, ZSL the configured classifier_nepoch), evaluated once, which is the
    headline."""
    if cfg.protocol == "paper":
        final = evaluate(model, zdata, cfg, generator, select="best", synthetic=synthetic, per_class=True)
        headline = {k: selection.get(k) for k in HEADLINE_METRICS}
        epochs = {"best_epoch_zsl": selection.get("best_epoch_zsl"),
                  "best_epoch_gzsl": selection.get("best_epoch_gzsl")}
        notes = [("paper protocol: generator and classifier epochs chosen by test accuracy, as the "
                  "official code does; ZSL and GZSL may come from different epochs"),
                 ("paper protocol: per_class.csv is the final model's evaluation (final_model), not the "
                  "earlier generator epochs of the headline numbers")]
    else:
        steps_per_epoch = classifier_steps_per_epoch(cfg, len(zdata.train_label), len(synthetic[1]))
        classifier_epochs = final_classifier_epochs(selection, steps_per_epoch)
        final = evaluate(model, zdata, cfg, generator, select="last", synthetic=synthetic,
                         zsl_epochs=classifier_epochs["zsl"], gzsl_epochs=classifier_epochs["gzsl"], per_class=True)
        headline = {k: final.get(k) for k in HEADLINE_METRICS}
        epochs = {"best_epoch_zsl": selection["generator_epochs"],
                  "best_epoch_gzsl": selection["generator_epochs"] if cfg.reports_gzsl else None}
        notes = ["val protocol: epochs chosen on a validation split of the training data, "
                 "then one evaluation on the test set",
                 _transfer_note(selection, classifier_epochs, steps_per_epoch, cfg)]
        notes += list(selection["validation"].get("notes", []))
    per_class = final.pop("per_class")
    return final, headline, epochs, notes + setting_notes(cfg), per_class


def setting_notes(cfg: Config) -> list[str]:
    """What a transductive run trained on, and whether it read test labels."""
    if not cfg.transductive:
        return []
    every_row = cfg.transductive_unlabelled == "test"
    rows = ("every test row, seen and unseen together" if every_row else
            "the test_unseen rows (the authors' setting: which rows are unseen is decided by test labels)")
    if cfg.protocol == "val":
        rows = ("every validation row (seen and unseen together) while choosing the epochs, then " if every_row else
                "the validation-unseen rows while choosing the epochs, then ") + rows
    unlabelled = f"transductive_unlabelled '{cfg.transductive_unlabelled}': D2 trains on {rows}, unlabelled"
    classes = "every class" if every_row else "the unseen classes"
    prior = (f"transductive prior 'uniform': the classes of D2's fakes drawn uniformly from {classes}"
             if cfg.transductive_prior == "uniform" else
             "transductive prior 'labels' (the authors' code, 'known class prior'): D2's fakes take the class "
             "embeddings of the unlabelled batch's TRUE labels, so training uses test labels")
    reads = ("no test label is read in training" if every_row and cfg.transductive_prior == "uniform" else
             "training reads test labels")
    return [unlabelled, prior, reads]


def _transfer_note(selection: dict, classifier_epochs: dict, steps_per_epoch: dict, cfg: Config) -> str:
    """metrics.json's note: how long each final classifier trained, and what of the selection run that
    length came from (the rule of method/selection.py `TRANSFER`)."""
    parts = []
    for kind in ("gzsl", "zsl") if cfg.reports_gzsl else ("zsl",):
        rule, final = TRANSFER[kind], classifier_epochs[kind]
        chosen, steps = selection.get(f"{kind}_classifier_epochs"), selection.get(f"{kind}_classifier_steps")
        od = kind == "gzsl" and cfg.gzsl_od
        name = "the GZSL detector" if od else f"the {kind.upper()} classifier"
        if final is None:
            length = ("its configured length" if od else
                      f"the configured classifier_nepoch ({cfg.classifier_nepoch} epochs)")
            parts.append(f"{name} trains {length}, "
                         + ("not a length chosen on validation" if rule == "full" else "the selection chose none"))
        elif rule == "steps" and steps is not None:
            parts.append(f"{name} trains as many steps as its chosen epochs took on the validation split "
                         f"({chosen} epochs, {steps} steps -> {final} epochs of {steps_per_epoch[kind]} steps)")
        else:
            parts.append(f"{name} trains its chosen epochs ({chosen} -> {final}"
                         + ("; a selection without step counts" if rule == "steps" else "") + ")")
        if chosen == 0 and final is not None:
            parts[-1] += "; a best validation epoch of 0 counts as one epoch"
    return "val protocol: " + "; ".join(parts) + " (transfer rule: method/selection.py TRANSFER)"
