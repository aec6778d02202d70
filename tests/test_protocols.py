"""The val protocol's split never touches test data; selection in `val` mode never sees a test metric."""
from __future__ import annotations

import dataclasses
import math
from pathlib import Path

import numpy as np
import pytest
from conftest import XLSA17_ROOT, require_shared

from tfvaegan.config import Config
from tfvaegan.data.validate import RawDataset
from tfvaegan.errors import DataError, LeakError
from tfvaegan.method.selection import best_index, best_row, paper_selection, row_epoch, val_selection
from tfvaegan.protocols import (
    SOURCE_GENERATED,
    SOURCE_VAL_LOC,
    XLSA17_VAL_CLASS_FRACTION,
    XLSA17_VAL_CLASSES,
    ValidationSplit,
    assert_no_test_leak,
    validation_split,
)

XLSA17 = XLSA17_ROOT
# Without ../shared the one absent path keeps the test collected: `shared` skips it, or fails it under CI.
REAL_SPLIT_FILES = (sorted(XLSA17.glob("*/*_splits.mat")) if XLSA17.is_dir()
                    else [XLSA17 / "CUB" / "att_splits.mat"])


def make_raw(labels, locs, split_file="generated_splits.mat"):
    """A RawDataset-shaped object (0-based labels and locs, tiny fake features)."""
    labels = np.asarray(labels, dtype=np.int64)
    return RawDataset(
        features=np.zeros((labels.size, 2), dtype=np.float32),
        labels=labels,
        attributes=np.ones((int(labels.max()) + 1, 3), dtype=np.float32),
        locs={k: np.asarray(v, dtype=np.int64) for k, v in locs.items()},
        class_names=None, image_files=None,
        feature_file=Path("res101.mat"), split_file=Path(split_file),
    )


def load_real_raw(split_file: Path):
    from scipy.io import loadmat

    mat = loadmat(split_file)
    labels = np.load(split_file.parent / "labels.npy").ravel().astype(np.int64) - 1
    keys = {"trainval": "trainval_loc", "test_seen": "test_seen_loc", "test_unseen": "test_unseen_loc",
            "train": "train_loc", "val": "val_loc"}
    locs = {k: mat[v].ravel().astype(np.int64) - 1 for k, v in keys.items() if v in mat}
    return make_raw(labels, locs, str(split_file))


def generated_raw(rng, n_classes=30, n_unseen=8, per_class=12, with_train_val=True):
    """xlsa17-like: trainval/test_seen from seen classes; train/val overlap test_seen as in the real files."""
    labels = np.repeat(np.arange(n_classes), per_class)
    rng.shuffle(labels)
    index = np.arange(labels.size)
    seen = labels < n_classes - n_unseen
    test_seen = np.concatenate([index[seen & (labels == c)][:3] for c in range(n_classes - n_unseen)])
    trainval = np.setdiff1d(index[seen], test_seen)
    locs = {"trainval": trainval, "test_seen": test_seen, "test_unseen": index[~seen]}
    if with_train_val:
        val_classes = labels < 6
        locs["val"] = index[seen & val_classes]  # includes test_seen images, as the real val_loc does
        locs["train"] = index[seen & ~val_classes]
    return make_raw(labels, locs)


CFG = Config()


@pytest.mark.shared(XLSA17)
@pytest.mark.parametrize("split_file", REAL_SPLIT_FILES, ids=lambda p: f"{p.parent.name}/{p.name}")
def test_real_xlsa17_split_never_contains_a_test_image(split_file):
    raw = load_real_raw(split_file)
    split = validation_split(raw, CFG, seed=0)
    test = np.concatenate([raw.locs["test_seen"], raw.locs["test_unseen"]])
    for part in (split.train, split.val_seen, split.val_unseen):
        assert part.size > 0
        assert np.intersect1d(part, test).size == 0
        assert np.isin(part, raw.locs["trainval"]).all()
    assert_no_test_leak(split, raw)
    if "val" in raw.locs:
        assert split.source == SOURCE_VAL_LOC
        # Validation classes are the val_loc classes; their images the val_loc ∩ trainval_loc ones.
        np.testing.assert_array_equal(split.val_unseen, np.intersect1d(raw.locs["val"], raw.locs["trainval"]))
        assert any("not in trainval_loc" in note for note in split.notes)  # the xlsa17 quirk is reported
    else:
        assert split.source == SOURCE_GENERATED
    # Together the three parts are exactly trainval: nothing lost, nothing added.
    everything = np.concatenate([split.train, split.val_seen, split.val_unseen])
    assert everything.size == np.unique(everything).size == raw.locs["trainval"].size


@pytest.mark.parametrize("name", sorted(XLSA17_VAL_CLASSES))
def test_recorded_xlsa17_val_class_shares_match_the_real_files(name):
    split_file = XLSA17 / name / "att_splits.mat"
    require_shared(split_file)
    raw = load_real_raw(split_file)
    labels = raw.labels
    n_val = np.unique(labels[np.intersect1d(raw.locs["val"], raw.locs["trainval"])]).size
    n_trainval = np.unique(labels[raw.locs["trainval"]]).size
    assert XLSA17_VAL_CLASSES[name] == (n_val, n_trainval)


@pytest.mark.shared(XLSA17 / "CUB" / "att_splits.mat")
def test_real_cub_without_val_loc_generates_the_xlsa17_share_of_classes():
    raw = load_real_raw(XLSA17 / "CUB" / "att_splits.mat")
    del raw.locs["train"], raw.locs["val"]
    split = validation_split(raw, CFG, seed=3)
    assert split.source == SOURCE_GENERATED
    n_val_classes = np.unique(raw.labels[split.val_unseen]).size
    assert n_val_classes == round(XLSA17_VAL_CLASS_FRACTION * 150)
    assert any("no usable train/val" in note for note in split.notes)
    assert_no_test_leak(split, raw)


@pytest.mark.parametrize("with_train_val", [True, False])
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_generated_split_is_clean_stratified_and_seeded(with_train_val, seed):
    raw = generated_raw(np.random.default_rng(seed), with_train_val=with_train_val)
    split = validation_split(raw, CFG, seed=seed)
    assert_no_test_leak(split, raw)
    labels = raw.labels
    if with_train_val:
        assert split.source == SOURCE_VAL_LOC
        assert set(np.unique(labels[split.val_unseen])) == set(range(6))
    else:
        assert split.source == SOURCE_GENERATED
        assert np.unique(labels[split.val_unseen]).size == round(XLSA17_VAL_CLASS_FRACTION * 22)
    # 9 trainval images per training class: round(0.2 * 9) = 2 held out of each as validation-seen.
    _, held_per_class = np.unique(labels[split.val_seen], return_counts=True)
    assert (held_per_class == 2).all()
    assert np.array_equal(np.unique(labels[split.val_seen]), np.unique(labels[split.train]))
    again = validation_split(raw, CFG, seed=seed)
    for a, b in zip((split.train, split.val_seen, split.val_unseen), (again.train, again.val_seen, again.val_unseen)):
        np.testing.assert_array_equal(a, b)
    other = validation_split(raw, CFG, seed=seed + 100)
    assert not np.array_equal(split.val_seen, other.val_seen)


def test_val_unseen_fraction_from_config_is_used():
    raw = generated_raw(np.random.default_rng(0), with_train_val=False)
    split = validation_split(raw, dataclasses.replace(CFG, val_unseen_fraction=0.5), seed=0)
    assert np.unique(raw.labels[split.val_unseen]).size == 11
    assert "val_unseen_fraction=0.5" in split.notes[0]


def test_split_summary_for_metrics_json():
    raw = generated_raw(np.random.default_rng(0))
    info = validation_split(raw, CFG, seed=0).to_info(raw.labels)
    assert info["source"] == SOURCE_VAL_LOC
    assert info["val_unseen_classes"] == list(range(6))
    assert info["n_train"] + info["n_val_seen"] + info["n_val_unseen"] == raw.locs["trainval"].size


def test_single_training_class_is_a_clear_data_error():
    labels = np.array([0, 0, 0, 1, 1])
    raw = make_raw(labels, {"trainval": [0, 1], "test_seen": [2], "test_unseen": [3, 4]}, "mine_splits.mat")
    with pytest.raises(DataError, match=r"mine_splits\.mat: key 'trainval_loc'.*found 1"):
        validation_split(raw, CFG, seed=0)


def test_val_loc_covering_all_training_classes_is_a_clear_data_error():
    labels = np.array([0, 0, 1, 1, 2])
    raw = make_raw(labels, {"trainval": [0, 2], "test_seen": [1, 3], "test_unseen": [4], "val": [0, 2]})
    with pytest.raises(DataError, match=r"key 'val_loc'.*strict subset"):
        validation_split(raw, CFG, seed=0)


def test_leak_guard_catches_a_test_image():
    raw = generated_raw(np.random.default_rng(0))
    split = validation_split(raw, CFG, seed=0)
    poisoned = ValidationSplit(train=np.append(split.train, raw.locs["test_seen"][0]),
                               val_seen=split.val_seen, val_unseen=split.val_unseen)
    with pytest.raises(LeakError, match="test images"):
        assert_no_test_leak(poisoned, raw)
    # val_loc taken raw (without ∩ trainval) would contain test_seen images: the guard must see it.
    raw_val = ValidationSplit(train=split.train, val_seen=split.val_seen, val_unseen=raw.locs["val"])
    with pytest.raises(LeakError):
        assert_no_test_leak(raw_val, raw)


# ------------------------------------------------------------------------------------ selection
def history(eval_split, zsl, h):
    return [{"epoch": e, "zsl_acc": z, "gzsl_seen": 0.5, "gzsl_unseen": 0.5, "gzsl_h": g, "eval_split": eval_split}
            for e, (z, g) in enumerate(zip(zsl, h))]


def test_best_row_is_argmax_earliest_on_ties_and_skips_unevaluated():
    rows = history("val", ["", 0.2, 0.5, None, 0.5, float("nan")], [0.1] * 6)
    assert row_epoch(best_row(rows, "zsl_acc")) == 2
    assert best_index([None, 0.3, 0.7, 0.7]) == 2
    with pytest.raises(ValueError):
        best_row(history("val", ["", None], ["", ""]), "zsl_acc")


SPLIT = ValidationSplit(train=np.arange(4), val_seen=np.arange(4, 6), val_unseen=np.arange(6, 9))


def test_val_selection_uses_validation_metrics_only():
    val_rows = history("val", zsl=[0.1, 0.6, 0.3, 0.2], h=[0.2, 0.1, 0.5, 0.3])
    test_rows = history("test", zsl=[0.9, 0.1, 0.1, 0.1], h=[0.1, 0.1, 0.1, 0.9])
    assert val_selection(val_rows, reports_gzsl=False, split=SPLIT)["generator_epochs"] == 1
    chosen = val_selection(val_rows, reports_gzsl=True, split=SPLIT)
    assert chosen["generator_epochs"] == 2 and chosen["metric"] == "gzsl_h" and chosen["selected_on"] == "validation"
    assert chosen["validation"]["gzsl_h"] == 0.5 and chosen["validation"]["n_val_unseen"] == 3
    # The test columns would pick epochs 0 and 3; a val selection that sees them must refuse, not pick.
    paper = paper_selection(test_rows, reports_gzsl=True)
    assert (paper["best_epoch_zsl"], paper["best_epoch_gzsl"]) == (0, 3)
    with pytest.raises(LeakError, match="evaluated on 'test'"):
        val_selection(val_rows + test_rows, reports_gzsl=True, split=SPLIT)
    with pytest.raises(LeakError):
        val_selection(test_rows, reports_gzsl=False, split=SPLIT)
    with pytest.raises(LeakError):
        paper_selection(val_rows, reports_gzsl=True)  # and the paper report reads test rows only


def test_paper_selection_takes_zsl_and_gzsl_from_different_epochs():
    rows = history("test", zsl=[0.3, 0.8, 0.4], h=[0.2, 0.3, 0.6])
    chosen = paper_selection(rows, reports_gzsl=True)
    assert chosen["best_epoch_zsl"] == 1 and math.isclose(chosen["zsl_acc"], 0.8)
    assert chosen["best_epoch_gzsl"] == 2 and math.isclose(chosen["gzsl_h"], 0.6)


def test_selection_without_gzsl_reports_none():
    rows = history("test", zsl=[0.3, 0.8], h=["", ""])
    chosen = paper_selection(rows, reports_gzsl=False)
    assert chosen.get("best_epoch_gzsl") is None and chosen.get("gzsl_h") is None
    with pytest.raises(ValueError, match="no epoch evaluated 'gzsl_h' on 'test'"):
        paper_selection(rows, reports_gzsl=True)


@pytest.mark.shared(XLSA17 / "CUB" / "att_splits.mat")
def test_split_from_the_real_loader_on_real_cub(tmp_path):
    """Through tfvaegan.data.load_raw: the real CUB split file with tiny generated features."""
    import shutil

    from tfvaegan.data.matfile import write_mat
    from tfvaegan.data.validate import load_raw

    labels = np.load(XLSA17 / "CUB" / "labels.npy").ravel()
    folder = tmp_path / "CUB"
    folder.mkdir()
    shutil.copy(XLSA17 / "CUB" / "att_splits.mat", folder / "att_splits.mat")  # tmp only, never the repo
    rng = np.random.default_rng(0)
    write_mat(folder / "res101.mat", {"features": rng.random((4, labels.size)).astype(np.float32),
                                      "labels": labels.reshape(-1, 1).astype(np.float64)})
    raw = load_raw(tmp_path, CFG)
    split = validation_split(raw, CFG, seed=0)
    assert_no_test_leak(split, raw)
    assert split.source == SOURCE_VAL_LOC
    assert np.unique(raw.labels[split.val_unseen]).size == 50
    assert split.val_unseen.size == 2355  # val_loc ∩ trainval_loc; the other 591 val_loc images are test images


def test_split_needs_an_integer_seed():
    raw = generated_raw(np.random.default_rng(0))
    with pytest.raises(ValueError, match="integer seed"):
        validation_split(raw, CFG, seed=None)


# ------------------------------------------------------------------ edge cases
def _no_val_loc(counts, n_unseen_images=4):
    """Training classes 0..k-1 with counts[c] images each, one unseen test class k, no val_loc."""
    labels = np.concatenate([np.repeat(np.arange(len(counts)), counts),
                             np.full(n_unseen_images, len(counts))])
    index = np.arange(labels.size)
    return make_raw(labels, {"trainval": index[labels < len(counts)], "test_seen": np.array([], dtype=np.int64),
                             "test_unseen": index[labels == len(counts)]}), labels


def test_training_classes_with_one_image_each_are_a_clear_data_error():
    raw, _ = _no_val_loc([1, 1, 1, 1, 1])
    with pytest.raises(DataError, match="key 'trainval_loc'.*at least 2 images.*4 training classes with 1 image"):
        validation_split(raw, CFG, seed=0)


@pytest.mark.parametrize("fraction", [0.01, 0.99])
def test_val_seen_fraction_extremes_keep_every_class_trained_and_validated(fraction):
    raw, labels = _no_val_loc([1, 2, 3, 2, 9])
    cfg = dataclasses.replace(CFG, val_seen_fraction=fraction, val_unseen_fraction=0.2)
    split = validation_split(raw, cfg, seed=3)
    trained = np.unique(labels[split.train])
    assert np.array_equal(np.unique(labels[split.val_seen]), trained[np.bincount(labels[split.train]
                          .tolist() + labels[split.val_seen].tolist())[trained] >= 2])
    assert np.intersect1d(trained, np.unique(labels[split.val_unseen])).size == 0


@pytest.mark.parametrize("n_classes", [2, 3])
@pytest.mark.parametrize("fraction", [0.01, 0.5, 0.99, None])
def test_few_training_classes_leave_both_validation_and_training_classes(n_classes, fraction):
    raw, labels = _no_val_loc([4] * n_classes)
    split = validation_split(raw, dataclasses.replace(CFG, val_unseen_fraction=fraction), seed=0)
    assert split.train.size and split.val_seen.size and split.val_unseen.size
    again = validation_split(raw, dataclasses.replace(CFG, val_unseen_fraction=fraction), seed=0)
    assert all(np.array_equal(a, b) for a, b in zip((split.train, split.val_seen, split.val_unseen),
                                                    (again.train, again.val_seen, again.val_unseen)))


def test_repeated_val_loc_indices_are_not_counted_as_test_images():
    raw = generated_raw(np.random.default_rng(0))
    clean = validation_split(raw, CFG, seed=0).notes[0]
    raw.locs["val"] = np.concatenate([raw.locs["val"], raw.locs["val"][:3]])
    assert validation_split(raw, CFG, seed=0).notes[0] == clean


def test_paper_selection_reads_an_iterator_of_rows_once_for_both_metrics():
    rows = [{"epoch": "1", "zsl_acc": "0.5", "gzsl_seen": "0.5", "gzsl_unseen": "0.4", "gzsl_h": "0.4", "eval_split": "test"},
            {"epoch": "2", "zsl_acc": "0.6", "gzsl_seen": "0.3", "gzsl_unseen": "0.3", "gzsl_h": "0.3", "eval_split": "test"}]
    chosen = paper_selection(iter(rows), reports_gzsl=True)  # e.g. a csv.DictReader over train_log.csv
    assert chosen["best_epoch_zsl"] == 2 and chosen["best_epoch_gzsl"] == 1 and chosen["gzsl_h"] == 0.4


def test_selection_errors_name_the_key():
    assert row_epoch(best_row([{"epoch": "3.0", "zsl_acc": "0.5"}], "zsl_acc")) == 3
    with pytest.raises(ValueError, match="key 'epoch': expected an integer epoch, found None"):
        row_epoch(best_row([{"zsl_acc": "0.5"}], "zsl_acc"))
    with pytest.raises(ValueError, match="key 'zsl_acc': expected a number or empty, found 'abc'"):
        best_row([{"epoch": "2", "zsl_acc": "abc"}], "zsl_acc")
    # all-NaN history: no evaluated row
    with pytest.raises(ValueError, match="no epoch evaluated 'zsl_acc' on 'val'"):
        best_row([{"epoch": 1, "zsl_acc": "nan", "eval_split": "val"}], "zsl_acc", "val")


def test_the_final_classifiers_lengths_follow_the_transfer_rule():
    from tfvaegan.method.selection import TRANSFER, TRANSFER_RULES, final_classifier_epochs

    # the package's rule (chosen on development benchmarks, docs/protocols.md): GZSL steps, ZSL the configured
    # length (None: evaluate() reads classifier_nepoch)
    assert TRANSFER == {"gzsl": "steps", "zsl": "full"} and set(TRANSFER.values()) <= set(TRANSFER_RULES)
    selection = {"zsl_classifier_epochs": 21, "zsl_classifier_steps": 21 * 8,
                 "gzsl_classifier_epochs": 21, "gzsl_classifier_steps": 21 * 14}
    # GZSL 14 -> 21 steps per epoch (trainval and more unseen classes than validation classes)
    assert final_classifier_epochs(selection, {"zsl": 12, "gzsl": 21}) == {"zsl": None, "gzsl": 14}
    assert final_classifier_epochs(selection, {"zsl": 500, "gzsl": 500})["gzsl"] == 1  # at least one
    every = lambda rule: {"zsl": rule, "gzsl": rule}
    assert final_classifier_epochs(selection, {"zsl": 12, "gzsl": 21}, every("steps")) == {"zsl": 14, "gzsl": 14}
    assert final_classifier_epochs(selection, {"zsl": 12, "gzsl": 21}, every("epochs")) == {"zsl": 21, "gzsl": 21}
    assert final_classifier_epochs(selection, {"zsl": 12, "gzsl": 21}, every("full")) == {"zsl": None, "gzsl": None}
    older = {"zsl_classifier_epochs": 5, "gzsl_classifier_epochs": 9}  # a model file without step counts
    assert final_classifier_epochs(older, {"zsl": 12, "gzsl": 21}) == {"zsl": None, "gzsl": 9}
    assert final_classifier_epochs(older, {"zsl": 12, "gzsl": 21}, every("steps")) == {"zsl": 5, "gzsl": 9}
    with pytest.raises(ValueError, match="transfer rule of the zsl classifier: expected one of"):
        final_classifier_epochs(selection, {"zsl": 12, "gzsl": 21}, {"zsl": "samples", "gzsl": "steps"})


@pytest.mark.parametrize("rule", ["steps", "epochs"])
def test_a_best_validation_epoch_of_0_trains_one_epoch_for_zsl_and_gzsl_alike(rule):
    """Epoch 0 is the official start (accuracy or H 0, the initial layer), which no epoch beat: every epoch tied
    at 0, and the earliest of tied epochs is the first. Both classifiers then train one epoch; before, ZSL
    trained 25 (`nepoch or classifier_nepoch`) and GZSL 1."""
    from tfvaegan.method.classifier import ClassifierSettings
    from tfvaegan.method.selection import final_classifier_epochs

    zero = {"zsl_classifier_epochs": 0, "zsl_classifier_steps": 0,
            "gzsl_classifier_epochs": 0, "gzsl_classifier_steps": 0}
    assert final_classifier_epochs(zero, {"zsl": 12, "gzsl": 21}, {"zsl": rule, "gzsl": rule}) == {"zsl": 1, "gzsl": 1}
    no_steps = {"zsl_classifier_epochs": 0, "gzsl_classifier_epochs": 0}
    assert final_classifier_epochs(no_steps, {"zsl": 12, "gzsl": 21}, {"zsl": rule, "gzsl": rule}) == {"zsl": 1,
                                                                                                       "gzsl": 1}
    # the classifier no longer reads a count of 0 as "the configured length": None is, and 0 is refused
    cfg = Config(classifier_nepoch=25)
    assert ClassifierSettings.from_config(cfg, "last", None).nepoch == 25
    assert ClassifierSettings.from_config(cfg, "last", 1).nepoch == 1
    for bad in (0, -1, 1.5, True):
        with pytest.raises(ValueError, match="classifier epochs: expected a positive integer or None"):
            ClassifierSettings.from_config(cfg, "last", bad)


def test_the_transfer_note_says_what_each_classifier_trained():
    from tfvaegan.protocols import _transfer_note

    cfg = Config(gzsl=True, classifier_nepoch=25)
    selection = {"zsl_classifier_epochs": 0, "zsl_classifier_steps": 0,
                 "gzsl_classifier_epochs": 21, "gzsl_classifier_steps": 21 * 14}
    note = _transfer_note(selection, {"zsl": None, "gzsl": 14}, {"zsl": 12, "gzsl": 21}, cfg)
    assert "GZSL classifier trains as many steps as its chosen epochs took on the validation split " \
           "(21 epochs, 294 steps -> 14 epochs of 21 steps)" in note
    assert "ZSL classifier trains the configured classifier_nepoch (25 epochs), not a length chosen on validation" \
        in note
    zsl_only = _transfer_note({**selection, "gzsl_classifier_epochs": None}, {"zsl": None, "gzsl": None},
                              {"zsl": 12, "gzsl": 21}, dataclasses.replace(cfg, gzsl=False))
    assert "GZSL" not in zsl_only and "ZSL classifier" in zsl_only


def test_the_transfer_rule_study_reads_each_rule_off_one_test_curve():
    """python -m tfvaegan.bench.transfer_rule: each rule's epochs come from the package's final_classifier_epochs
    and its score from the curve at that epoch; `best` is the curve's earliest maximum."""
    from tfvaegan.bench.transfer_rule import rows_of, summary

    gzsl = [{"u": 0.1 * e, "s": 0.9, "h": 0.05 * e} for e in range(1, 8)] + [{"u": 0.0, "s": 1.0, "h": 0.0}] * 17
    record = {"benchmark": "b", "data_seed": 1, "seed": 1, "classifier_nepoch": 25,
              "selection": {"gzsl_classifier_epochs": 10, "gzsl_classifier_steps": 10 * 14,
                            "zsl_classifier_epochs": 0, "zsl_classifier_steps": 0},
              "steps_per_epoch": {"gzsl": 20, "zsl": 12},
              "gzsl": gzsl, "zsl": [{"acc": 0.01 * e} for e in range(1, 26)]}
    rows = {(r["classifier"], r["rule"]): r for r in rows_of(record)}
    assert [rows[("gzsl", rule)]["epochs"] for rule in ("steps", "epochs", "full", "best")] == [7, 10, 25, 7]
    assert rows[("gzsl", "steps")]["h"] == 35.0 and rows[("gzsl", "epochs")]["h"] == 0.0
    assert [rows[("zsl", rule)]["epochs"] for rule in ("steps", "epochs", "full", "best")] == [1, 1, 25, 25]
    assert rows[("zsl", "full")]["acc"] == 25.0
    table = summary(rows_of(record) + rows_of({**record, "seed": 2}))
    assert "| ZSL | **full** (the package's) | 25.0 ± 0.0 | 25.0 ± 0.0 |" in table
    assert "| GZSL | epochs | 10.0 ± 0.0 | 0.0 ± 0.0 | 0.0 ± 0.0 | 100.0 ± 0.0 | -35.0 ± 0.0 | 0 / 2 |" in table
