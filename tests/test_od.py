"""OD-GZSL (tfvaegan.od) on small generated problems: routing, threshold, accuracy, determinism."""
from __future__ import annotations

import dataclasses
import math

import pytest
import torch

from tfvaegan.config import Config
from tfvaegan.method.classifier import ClassifierSettings, local_labels
from tfvaegan.method.detector import DetectorSettings, entropy, train_detector
from tfvaegan.method.evaluate import EvalSet, od_gzsl, routed_accuracy

N_SEEN, N_UNSEEN, DIM = 6, 4, 24
CLASSIFIER = ClassifierSettings(lr=0.01, beta1=0.5, nepoch=10, batch_size=32)


def clusters(seed: int, per_class: int = 60, spread: float = 0.5, scale: float = 1.0):
    """Well separated Gaussian classes: seen classes 0..5, unseen 6..9, with a stand-in for the
    generator's output (samples of the true unseen distributions)."""
    g = torch.Generator().manual_seed(seed)
    means = torch.randn(N_SEEN + N_UNSEEN, DIM, generator=g) * 3

    def draw(classes, n):
        labels = torch.as_tensor(classes).repeat_interleave(n)
        return scale * (means[labels] + spread * torch.randn(len(labels), DIM, generator=g)), labels

    seen, unseen = list(range(N_SEEN)), list(range(N_SEEN, N_SEEN + N_UNSEEN))
    train_x, train_y = draw(seen, per_class)
    syn_x, syn_y = draw(unseen, per_class)
    test_seen_x, test_seen_y = draw(seen, 20)
    test_unseen_x, test_unseen_y = draw(unseen, 20)
    return dict(
        train_seen_x=train_x, train_seen_y=train_y, syn_unseen_x=syn_x, syn_unseen_y=syn_y,
        evaluation=EvalSet(test_seen_x, test_seen_y, test_unseen_x, test_unseen_y),
        seenclasses=torch.tensor(seen), unseenclasses=torch.tensor(unseen), means=means * scale,
    )


def run(problem, seed=0, classifier=CLASSIFIER, detector=None):
    inputs = {k: v for k, v in problem.items() if k != "means"}
    return od_gzsl(**inputs, classifier=classifier, detector=detector,
                   generator=torch.Generator().manual_seed(seed))


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    # The problems are tiny: a second intra-op thread only adds synchronisation, which costs
    # minutes on a loaded 2-core machine.
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def problem():
    return clusters(seed=1)


@pytest.fixture(scope="module")
def result(problem):
    return run(problem, detector=DetectorSettings(sampler="random"))


def test_entropy_of_uniform_and_confident_predictions():
    values = entropy(torch.tensor([[0.0, 0.0, 0.0, 0.0], [50.0, 0.0, 0.0, 0.0]]))
    assert values[0].item() == pytest.approx(math.log(4))
    assert values[1].item() == pytest.approx(0.0, abs=1e-6)


def test_routed_accuracy_counts_only_routed_correct_samples_per_class():
    label = torch.tensor([0, 0, 1, 1, 1])
    predicted = torch.tensor([0, 1, 1, 1, 0])
    routed = torch.tensor([True, True, False, True, True])
    # class 0: 1 of 2 routed and right; class 1: only sample 3 is both routed and right
    assert routed_accuracy(predicted, routed, label, torch.tensor([0, 1])) == pytest.approx((1 / 2 + 1 / 3) / 2)


def test_local_labels_refuses_a_label_outside_the_classes():
    assert local_labels(torch.tensor([7, 3, 7]), torch.tensor([3, 7])).tolist() == [1, 0, 1]
    with pytest.raises(ValueError, match=r"\[5\]"):
        local_labels(torch.tensor([3, 5]), torch.tensor([3, 7]))


def test_far_above_chance_on_separable_classes(result):
    # chance: 1/6 seen, 1/4 unseen, and only if the detector routes right
    assert result.seen > 0.8 and result.unseen > 0.8 and result.h > 0.8
    assert result.seen_routed_to_seen > 0.8 and result.unseen_routed_to_unseen > 0.8
    assert result.seen <= result.seen_classifier_acc + 1e-9
    assert result.unseen <= result.unseen_classifier_acc + 1e-9
    assert result.h == pytest.approx(2 * result.seen * result.unseen / (result.seen + result.unseen), rel=1e-6)
    assert len(result.curve) == DetectorSettings().nepoch and max(result.curve) == result.h


def test_official_sampler_walks_in_order_until_its_first_wrap_then_draws_random_subsets():
    from tfvaegan.method.detector import HalfBatches

    batches = HalfBatches(10, 3, torch.Generator().manual_seed(0), "cpu", "official")
    assert batches().tolist() == [0, 1, 2] and batches().tolist() == [3, 4, 5]
    # the next half-batch would end past n - half = 7: reshuffled, and it never walks in order again
    later = [batches() for _ in range(50)]
    assert all(len(b) == 3 and len(set(b.tolist())) == 3 for b in later)
    assert len({tuple(b.tolist()) for b in later}) > 25  # fresh random subsets
    drawn = HalfBatches(10, 3, torch.Generator().manual_seed(0), "cpu", "random")
    assert drawn().tolist() != [0, 1, 2] or drawn().tolist() != [3, 4, 5]


def test_official_sampler_gives_single_class_unseen_half_batches_first():
    """The synthetic features are class-major (as synthesis writes them, syn_num per class): the
    official detector sees one unseen class per half-batch until its sampler first wraps; the
    random sampler mixes them from the start."""
    from tfvaegan.method.detector import HalfBatches

    labels = torch.arange(N_UNSEEN).repeat_interleave(300)
    half = DetectorSettings().batch_size // 2
    first = HalfBatches(len(labels), half, torch.Generator().manual_seed(0), "cpu", "official")()
    assert labels[first].unique().numel() == 1
    mixed = HalfBatches(len(labels), half, torch.Generator().manual_seed(0), "cpu", "random")()
    assert labels[mixed].unique().numel() > 1


def test_od_gzsl_with_the_official_sampler_is_far_above_chance_too(problem):
    official = run(problem)  # the default: DetectorSettings(sampler="official")
    assert official.h > 0.8 and official.unseen > 0.8 and official.seen > 0.75


def test_detector_routes_clearly_seen_to_seen_and_clearly_unseen_to_unseen():
    # Overlapping classes, as real features are: the official threshold (about half the mean
    # training entropy) sits above the entropy of the confident class centres. On perfectly
    # separable classes every seen entropy is about equal and half the mean is below all of them.
    problem = clusters(seed=1, spread=3.0)
    kept = {}
    train_detector(problem["train_seen_x"], problem["train_seen_y"], N_SEEN, problem["syn_unseen_x"],
                   DetectorSettings(select="last"), torch.Generator().manual_seed(0),
                   lambda epoch, model, threshold: kept.update(model=model, threshold=threshold))
    seen_centres = problem["means"][:N_SEEN]
    unseen_centres = problem["means"][N_SEEN:]
    assert bool((kept["model"].entropy(seen_centres) < kept["threshold"]).all())
    assert bool((kept["model"].entropy(unseen_centres) >= kept["threshold"]).all())


def test_fixed_threshold_routes_everything_one_way(problem, result):
    # H is 0 when everything goes one way, which select="best" never reports (an epoch must beat
    # H = 0, as officially): the last epoch shows the routing.
    to_seen = run(problem, detector=DetectorSettings(nepoch=1, entropy_threshold=math.inf, select="last"))
    assert to_seen.threshold == math.inf
    assert to_seen.seen == pytest.approx(to_seen.seen_classifier_acc) and to_seen.unseen == 0.0
    best = run(problem, detector=DetectorSettings(nepoch=1, entropy_threshold=math.inf))
    assert (best.seen, best.unseen, best.h, best.threshold) == (0.0, 0.0, 0.0, None)
    to_unseen = run(problem, detector=DetectorSettings(nepoch=1, entropy_threshold=-1.0, select="last"))
    assert to_unseen.unseen == pytest.approx(to_unseen.unseen_classifier_acc) and to_unseen.seen == 0.0
    # the classifiers are trained before the detector, from the same seed: same as in the full run
    assert to_unseen.seen_classifier_acc == result.seen_classifier_acc


def test_threshold_is_the_official_sum_of_seen_entropies_over_the_training_size():
    # Tiny inputs and a frozen detector give uniform predictions: every entropy is log(6). Each of
    # ceil(300/128) = 3 steps draws 64 seen samples, so the official threshold is 192·log 6 / 300,
    # not the mean entropy log 6.
    problem = clusters(seed=2, per_class=50, scale=1e-3)
    kept = {}
    train_detector(problem["train_seen_x"], problem["train_seen_y"], N_SEEN, problem["syn_unseen_x"],
                   DetectorSettings(lr=1e-12, nepoch=1), torch.Generator().manual_seed(0),
                   lambda epoch, model, threshold: kept.update(threshold=threshold))
    assert kept["threshold"] == pytest.approx(192 / 300 * math.log(N_SEEN), abs=1e-4)
    train_detector(problem["train_seen_x"], problem["train_seen_y"], N_SEEN, problem["syn_unseen_x"],
                   DetectorSettings(lr=1e-12, nepoch=1, threshold_rule="mean"), torch.Generator().manual_seed(0),
                   lambda epoch, model, threshold: kept.update(threshold=threshold))
    assert kept["threshold"] == pytest.approx(math.log(N_SEEN), abs=1e-4)


def test_select_last_reports_the_last_epochs(problem):
    last = run(problem, classifier=dataclasses.replace(CLASSIFIER, select="last"),
               detector=DetectorSettings(nepoch=5, select="last"))
    assert last.epoch == 5 and len(last.curve) == 1
    assert last.seen_classifier_epoch == last.unseen_classifier_epoch == CLASSIFIER.nepoch
    with pytest.raises(ValueError, match="select"):
        DetectorSettings(select="max")
    with pytest.raises(ValueError, match="select"):
        run(problem, classifier=dataclasses.replace(CLASSIFIER, select="max"))
    with pytest.raises(ValueError, match="threshold_rule"):
        DetectorSettings(threshold_rule="median")


def test_same_seed_same_numbers_other_seed_other_numbers(problem):
    short = DetectorSettings(nepoch=5)
    first = run(problem, seed=3, detector=short)
    assert run(problem, seed=3, detector=short) == first
    assert run(problem, seed=4, detector=short).curve != first.curve


# ------------------------------------------------------------------ edge cases
def test_entropy_is_finite_when_a_probability_underflows_to_zero():
    logits = torch.tensor([[0.0, -math.inf, 0.0], [3e38, -3e38, 0.0]], requires_grad=True)
    values = entropy(logits)
    assert torch.allclose(values.detach(), torch.tensor([math.log(2), 0.0]))
    values.sum().backward()
    assert bool(torch.isfinite(logits.grad).all())


def test_local_labels_refuses_negative_ids_instead_of_wrapping():
    with pytest.raises(ValueError, match="non-negative"):
        local_labels(torch.tensor([-1, 0]), torch.tensor([0, 1, 2]))
    with pytest.raises(ValueError, match="found 0 labels"):
        local_labels(torch.tensor([], dtype=torch.long), torch.tensor([0, 1]))


@pytest.mark.parametrize("threshold", [-0.5, 0.0])
def test_config_threshold_at_or_below_zero_is_refused(threshold):
    # entropy >= 0: every test sample would be routed to the unseen classifier (s = 0, H = 0)
    cfg = dataclasses.replace(Config(), od_entropy_threshold=threshold)
    with pytest.raises(ValueError, match=rf"key 'od_entropy_threshold': expected null or a number in "
                                         rf"\(0, ln\(number of seen classes\)\], found {threshold}"):
        DetectorSettings.from_config(cfg)
    assert DetectorSettings.from_config(dataclasses.replace(Config(), od_entropy_threshold=0.7)).entropy_threshold == 0.7


def test_nan_threshold_is_refused():
    # NaN routes every sample nowhere (both comparisons false): s = u = 0 silently
    with pytest.raises(ValueError, match="entropy_threshold: expected None or a number, found nan"):
        DetectorSettings(entropy_threshold=math.nan)


def test_threshold_above_ln_n_seen_is_refused(problem):
    # entropy over 6 seen classes is at most ln 6: everything would be routed to seen (H = 0)
    with pytest.raises(ValueError, match=r"'od_entropy_threshold'.*\(0, 1\.7918\], found 1\.8"):
        run(problem, detector=DetectorSettings(nepoch=1, entropy_threshold=1.8))


def test_detector_batch_of_one_is_refused():
    with pytest.raises(ValueError, match="batch_size: expected an integer >= 2, found 1"):
        DetectorSettings(batch_size=1)


@pytest.mark.parametrize("part", ["test seen", "test unseen", "training seen", "synthetic unseen"])
def test_empty_sample_sets_are_clear_errors(problem, part):
    p = dict(problem)
    ev = p["evaluation"]
    if part == "test seen":
        p["evaluation"] = EvalSet(ev.seen_x[:0], ev.seen_y[:0], ev.unseen_x, ev.unseen_y)
    elif part == "test unseen":
        p["evaluation"] = EvalSet(ev.seen_x, ev.seen_y, ev.unseen_x[:0], ev.unseen_y[:0])
    elif part == "training seen":
        p["train_seen_x"], p["train_seen_y"] = p["train_seen_x"][:0], p["train_seen_y"][:0]
    else:
        p["syn_unseen_x"], p["syn_unseen_y"] = p["syn_unseen_x"][:0], p["syn_unseen_y"][:0]
    with pytest.raises(ValueError, match=f"{part} samples: expected at least one.*found 0 samples"):
        run(p, detector=DetectorSettings(nepoch=1))
