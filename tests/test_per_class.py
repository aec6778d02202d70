"""per_class.csv's numbers on hand-made predictions: metrics.per_class_counts (the one per-class computation),
the GZSL and OD-GZSL counts of the reported epoch (evaluate.gzsl_per_class) and the file's text
(artifacts.per_class_text). tests/test_pipeline.py checks the file a run writes against its metrics.json."""
from __future__ import annotations

import csv
import io

import pytest
import torch

from tfvaegan.artifacts import PER_CLASS_COLUMNS, per_class_text
from tfvaegan.method.evaluate import EvalSet, GZSLResult, ODResult, gzsl_per_class, routed_accuracy
from tfvaegan.method.metrics import class_mean, per_class_accuracy, per_class_counts

SEEN, UNSEEN = torch.tensor([0, 1]), torch.tensor([2, 3, 5])  # class 4: no test image at all


def _rows(text: str) -> list[dict]:
    return list(csv.DictReader(io.StringIO(text)))


def test_per_class_counts_by_hand_and_their_mean_is_the_accuracy():
    label = torch.tensor([2, 2, 2, 3, 3, 5, 0])  # class 0 is not a target: ignored
    predicted = torch.tensor([2, 0, 3, 3, 1, 5, 0])
    to_seen = torch.isin(predicted, SEEN)
    counts = per_class_counts(predicted, label, UNSEEN, to_seen)
    assert counts.classes.tolist() == [2, 3, 5]
    assert counts.n_images.tolist() == [3, 2, 1] and counts.correct.tolist() == [1, 1, 1]
    assert counts.to_other.tolist() == [1, 1, 0]  # class 2's image predicted 0, class 3's predicted 1
    assert counts.accuracy.tolist() == [1 / 3, 1 / 2, 1.0]
    assert counts.mean() == per_class_accuracy(predicted, label, UNSEEN)  # the same float
    assert counts.mean() == class_mean(torch.tensor(counts.accuracy.tolist(), dtype=torch.float64))
    # a target class without a sample has no row (it is left out of the mean too)
    assert per_class_counts(predicted, label, torch.tensor([2, 4])).classes.tolist() == [2]
    assert per_class_counts(predicted, label, UNSEEN).to_other is None
    with pytest.raises(ValueError, match="to_other flag per label"):
        per_class_counts(predicted, label, UNSEEN, to_seen[:-1])


def _evaluation() -> EvalSet:
    return EvalSet(seen_x=torch.zeros(5, 2), seen_y=torch.tensor([0, 0, 1, 1, 1]),
                   unseen_x=torch.zeros(6, 2), unseen_y=torch.tensor([2, 2, 3, 3, 5, 5]))


def test_gzsl_counts_where_the_wrong_images_went():
    evaluation = _evaluation()
    seen_predicted = torch.tensor([0, 3, 1, 0, 1])  # class 0: 1 right, 1 to unseen; class 1: 2 right, 1 to seen 0
    unseen_predicted = torch.tensor([2, 1, 5, 3, 0, 1])  # 2: 1 right, 1 to seen; 3: 1 right, 1 to 5; 5: 2 to seen
    result = GZSLResult(seen=per_class_accuracy(seen_predicted, evaluation.seen_y, SEEN),
                        unseen=per_class_accuracy(unseen_predicted, evaluation.unseen_y, UNSEEN), h=0.5, epoch=3,
                        seen_predicted=seen_predicted, unseen_predicted=unseen_predicted)
    counts = gzsl_per_class(result, evaluation, SEEN, UNSEEN)
    unseen, seen = counts["gzsl_unseen"], counts["gzsl_seen"]
    assert unseen.correct.tolist() == [1, 1, 0] and unseen.to_other.tolist() == [1, 0, 2]
    assert seen.correct.tolist() == [1, 2] and seen.to_other.tolist() == [1, 0]
    # an image is right, or went to the other group, or to another class of its own group
    wrong_within = torch.tensor([0, 1, 0])  # class 3's image predicted 5
    assert (unseen.n_images - unseen.correct - unseen.to_other).tolist() == wrong_within.tolist()
    assert unseen.mean() == result.unseen and seen.mean() == result.seen


def test_od_gzsl_counts_follow_the_detector():
    """OD-GZSL: right = routed to its own classifier and classified right; to the other group = routed away."""
    evaluation = _evaluation()
    seen_routed = torch.tensor([True, False, True, True, True])
    unseen_routed = torch.tensor([True, True, False, True, True, False])
    result = ODResult(seen=0.0, unseen=0.0, h=0.0, threshold=0.5, epoch=2, seen_classifier_epoch=1,
                      unseen_classifier_epoch=1, seen_classifier_acc=0.0, unseen_classifier_acc=0.0,
                      seen_routed_to_seen=0.8, unseen_routed_to_unseen=4 / 6,
                      seen_predicted=torch.tensor([0, 0, 1, 1, 0]), unseen_predicted=torch.tensor([2, 3, 3, 3, 5, 5]),
                      seen_routed_mask=seen_routed, unseen_routed_mask=unseen_routed)
    counts = gzsl_per_class(result, evaluation, SEEN, UNSEEN)
    assert counts["gzsl_seen"].correct.tolist() == [1, 2] and counts["gzsl_seen"].to_other.tolist() == [1, 0]
    assert counts["gzsl_unseen"].correct.tolist() == [1, 1, 1] and counts["gzsl_unseen"].to_other.tolist() == [0, 1, 1]
    assert counts["gzsl_unseen"].mean() == routed_accuracy(result.unseen_predicted, unseen_routed,
                                                           evaluation.unseen_y, UNSEEN)


def test_no_epoch_kept_counts_nothing_correct_and_leaves_to_other_unknown():
    """No classifier (or detector) epoch beat H = 0: s = u = 0 are reported, and so are the per-class rows."""
    counts = gzsl_per_class(GZSLResult(seen=0.0, unseen=0.0, h=0.0, epoch=0), _evaluation(), SEEN, UNSEEN)
    for split in ("gzsl_unseen", "gzsl_seen"):
        assert counts[split].mean() == 0.0 and counts[split].to_other is None
    text = per_class_text(counts, None)
    assert {(row["to_seen"], row["to_unseen"]) for row in _rows(text)} == {("", "")}


def test_per_class_text_columns_names_and_exact_accuracies():
    label = torch.tensor([2, 2, 2, 3, 3, 5])
    predicted = torch.tensor([2, 0, 3, 3, 1, 5])
    counts = {"zsl_unseen": per_class_counts(predicted, label, UNSEEN),
              "gzsl_unseen": per_class_counts(predicted, label, UNSEEN, torch.isin(predicted, SEEN)),
              "gzsl_seen": per_class_counts(torch.tensor([0, 2]), torch.tensor([0, 1]), SEEN,
                                            torch.isin(torch.tensor([0, 2]), UNSEEN))}
    names = [f"{i + 1:03d}.name_{i}" for i in range(6)]
    text = per_class_text(counts, names)
    assert text.splitlines()[0] == ",".join(PER_CLASS_COLUMNS)
    rows = _rows(text)
    assert [row["split"] for row in rows] == ["zsl_unseen"] * 3 + ["gzsl_unseen"] * 3 + ["gzsl_seen"] * 2
    first = rows[0]
    assert (first["class"], first["class_name"], first["n_images"], first["correct"]) == ("2", "003.name_2", "3", "1")
    assert float(first["accuracy"]) == 1 / 3  # written exactly (repr), so the means are the reported floats
    assert (first["to_seen"], first["to_unseen"]) == ("", "")
    assert [row["to_seen"] for row in rows[3:6]] == ["1", "1", "0"] and {r["to_unseen"] for r in rows[3:6]} == {""}
    assert [row["to_unseen"] for row in rows[6:]] == ["0", "1"] and {r["to_seen"] for r in rows[6:]} == {""}
    # without the split file's names, the class index stands in
    assert [row["class_name"] for row in _rows(per_class_text(counts, None))][:3] == ["2", "3", "5"]
