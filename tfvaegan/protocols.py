"""Evaluation protocols: which split chooses the epochs, and the validation split of the `val` protocol.

The official code evaluates on the test set after every epoch and reports the best epoch; that is
the `paper` protocol, kept as the labelled reproduction of the published numbers. The `val`
protocol chooses the generator and classifier epoch counts on a validation split carved out of the
training data only (`validation_split`), so that the test set is touched once. docs/protocols.md
explains both and how to read the tables.

Selection rules are pure functions over per-epoch history rows (the `train_log.csv` columns):
`paper_selection` and `val_selection`, both built on `best_row`. In the `val` protocol they receive
validation metrics only; `best_row(..., eval_split="val")` refuses a row evaluated on any other
split rather than silently ignoring it.
"""
from __future__ import annotations

import math
import statistics
from dataclasses import dataclass, field
from typing import Any, Iterable, Mapping, Sequence

import numpy as np

from tfvaegan.errors import DataError, LeakError
from tfvaegan.record import GZSL_METRICS, HEADLINE_METRICS

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


# ---------------------------------------------------------------------------------- selection
def metric_value(row: Mapping[str, Any], metric: str) -> float | None:
    """The row's metric as a float, or None where the epoch was not evaluated ('' / None / NaN)."""
    value = row.get(metric)
    if value is None or (isinstance(value, str) and value.strip() == ""):
        return None
    try:
        value = float(value)
    except (TypeError, ValueError):
        raise ValueError(f"history row of epoch {row.get('epoch')!r}: key '{metric}': expected a number "
                         f"or empty, found {value!r}") from None
    return None if math.isnan(value) else value


def best_index(values: Sequence[float | None]) -> int:
    """argmax over the present values, the earliest on ties (the official `>` comparison)."""
    best, best_value = -1, -math.inf
    for i, value in enumerate(values):
        if value is not None and not math.isnan(value) and value > best_value:
            best, best_value = i, value
    if best < 0:
        raise ValueError("no evaluated value to select from")
    return best


def best_row(history_rows: Iterable[Mapping[str, Any]], metric: str,
             eval_split: str | None = None) -> Mapping[str, Any]:
    """The evaluated row with the highest `metric` (earliest on ties).

    With `eval_split`, every evaluated row must carry that `eval_split`; a row evaluated on another
    split raises LeakError, so that a `val` selection can never see a test number.
    """
    evaluated = []
    for row in history_rows:
        if metric_value(row, metric) is None:
            continue
        if eval_split is not None and row.get("eval_split") != eval_split:
            raise LeakError(
                f"selection on '{eval_split}' received '{metric}' evaluated on "
                f"{row.get('eval_split')!r} at epoch {row.get('epoch')}"
            )
        evaluated.append(row)
    if not evaluated:
        raise ValueError(f"no epoch evaluated '{metric}'" + (f" on '{eval_split}'" if eval_split else ""))
    return evaluated[best_index([metric_value(r, metric) for r in evaluated])]


def row_epoch(row: Mapping[str, Any]) -> int:
    """The row's `epoch` as an int; '3' and '3.0' (a CSV round trip) are both 3."""
    value = row.get("epoch")
    try:
        number = float(value)
    except (TypeError, ValueError):
        number = math.nan
    if not number.is_integer():
        raise ValueError(f"history row: key 'epoch': expected an integer epoch, found {value!r}")
    return int(number)


def paper_selection(history_rows: Iterable[Mapping[str, Any]], reports_gzsl: bool) -> dict[str, Any]:
    """The official report: the best ZSL accuracy and the best GZSL H over the epochs evaluated on
    the test set, each from its own epoch (the earliest on ties)."""
    history_rows = list(history_rows)  # read once per metric: an iterator (csv.DictReader) would be spent
    zsl_row = best_row(history_rows, "zsl_acc", eval_split="test")
    selection = {"protocol": "paper", "selected_on": "test",
                 "best_epoch_zsl": row_epoch(zsl_row), "zsl_acc": metric_value(zsl_row, "zsl_acc")}
    if reports_gzsl:
        gzsl_row = best_row(history_rows, "gzsl_h", eval_split="test")
        selection.update(best_epoch_gzsl=row_epoch(gzsl_row),
                         **{key: metric_value(gzsl_row, key) for key in GZSL_METRICS})
    return selection


def val_selection(history_rows: Iterable[Mapping[str, Any]], reports_gzsl: bool,
                  split: ValidationSplit) -> dict[str, Any]:
    """The val protocol's choice on its validation run: the generator epoch with the best GZSL H
    (ZSL accuracy without GZSL), and the classifier epochs that evaluation kept, for the retraining
    on trainval. A row evaluated on anything but the validation split is a LeakError."""
    metric = "gzsl_h" if reports_gzsl else "zsl_acc"
    row = best_row(history_rows, metric, eval_split="val")
    steps = lambda kind: (row[f"{kind}_classifier_epoch"] * row[f"{kind}_classifier_steps_per_epoch"]
                          if row.get(f"{kind}_classifier_epoch") is not None
                          and row.get(f"{kind}_classifier_steps_per_epoch") is not None else None)
    return {
        "protocol": "val", "selected_on": "validation", "metric": metric,
        "generator_epochs": row_epoch(row),
        "zsl_classifier_epochs": row.get("zsl_classifier_epoch"),
        "gzsl_classifier_epochs": row.get("gzsl_classifier_epoch"),
        "zsl_classifier_steps": steps("zsl"),
        "gzsl_classifier_steps": steps("gzsl"),
        "validation": {"source": split.source, "notes": list(split.notes),
                       "n_train": len(split.train), "n_val_seen": len(split.val_seen),
                       "n_val_unseen": len(split.val_unseen),
                       **{k: row.get(k) for k in HEADLINE_METRICS}},
    }


def final_classifier_epochs(selection: Mapping[str, Any], steps_per_epoch: Mapping[str, int]) -> dict[str, Any]:
    """The classifier epochs of the val protocol's final evaluation.

    GZSL: as many optimisation steps as the epochs chosen on the validation split took there. The
    final classifier trains on more data (trainval's images, the synthetic features of more unseen
    classes), so the same epoch count would train it longer, and its unseen accuracy falls as the
    softmax turns to the seen classes with every further step (on the demo about 1.5x the steps:
    test H 4.8 % instead of 11.4 %, docs/protocols.md). ZSL, which has no seen classes to turn to and
    whose accuracy still grows at the end of the 25 epochs, keeps its epoch count (in steps it would
    lose 3 points there). A selection without step counts (an older model file) keeps its epochs.
    """
    epochs = {"zsl": selection.get("zsl_classifier_epochs")}
    chosen, steps = selection.get("gzsl_classifier_epochs"), selection.get("gzsl_classifier_steps")
    epochs["gzsl"] = chosen if chosen is None or steps is None else max(1, round(steps / steps_per_epoch["gzsl"]))
    return epochs
