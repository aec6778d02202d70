"""Choosing epochs from a training history: pure functions over per-epoch rows (the `train_log.csv`
columns), for both protocols (tfvaegan/protocols.py carries the protocols out).

`paper_selection` and `val_selection` are both built on `best_row`. In the `val` protocol they receive
validation metrics only; `best_row(..., eval_split="val")` refuses a row evaluated on any other split
rather than silently ignoring it. `final_classifier_epochs` carries the classifiers' length from the
validation run over to the final one.
"""
from __future__ import annotations

import math
from typing import Any, Iterable, Mapping, Sequence

from tfvaegan.errors import LeakError
from tfvaegan.record import GZSL_METRICS, HEADLINE_METRICS


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


def val_selection(history_rows: Iterable[Mapping[str, Any]], reports_gzsl: bool, split: Any) -> dict[str, Any]:
    """The val protocol's choice on its validation run: the generator epoch with the best GZSL H
    (ZSL accuracy without GZSL), and the classifier epochs that evaluation kept, for the retraining
    on trainval. A row evaluated on anything but the validation split is a LeakError. `split` is the
    validation split the rows come from (tfvaegan.protocols.ValidationSplit: its source, notes and sizes)."""
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
