"""The package against its oracle, tfvaegan/bench/official.py: the official networks, losses, training
iteration, optimisers, synthesis and evaluation transcribed from akshitac8/tfvaegan, independently
of the package's own code. Each benchmark's branch (encoded_noise, freeze_dec, bce_att, the
feedback pass) is compared parameter by parameter after one iteration from non-trivial weights; the
evaluation per seed, on the oracle's own random numbers, epoch by epoch. Each comparison is shown to
catch a mutation: a wrong feedback source, a wrong classifier setting."""
from __future__ import annotations

import copy
import dataclasses
import math

import pytest
import torch

from conftest import PROJECT_ROOT
from tfvaegan.bench import official
from tfvaegan.config import Config, read_file
from tfvaegan.method import classifier as classifier_module
from tfvaegan.method import evaluate as evaluate_module
from tfvaegan.method import synthesize as synthesize_module
from tfvaegan.method.classifier import ClassifierSettings
from tfvaegan.method.evaluate import evaluate
from tfvaegan.method.losses import critic_loss_and_gradients, decoder_loss, vae_loss, weighted_l1
from tfvaegan.method.models import TFVAEGAN
from tfvaegan.method.synthesize import synthesize
from tfvaegan.method.train import Trainer, make_optimizers, train
from toy import TINY, load_test_split

# What decides the branch a benchmark's training iteration takes, and its loss weights.
BRANCH_KEYS = ("encoded_noise", "freeze_dec", "bce_att", "recons_weight", "a1", "gammaD", "gammaG", "lambda1")
BENCHMARKS = ("cub", "awa2", "flo", "sun", "hmdb51", "ucf101")
ACTION_BENCHMARKS = ("hmdb51", "ucf101")
ATOL, RTOL = 2e-6, 1e-4  # the training step's comparison: parameters after one iteration
LR = 1e-2
WEIGHT_STD = 0.1


def benchmark_settings(name: str) -> dict:
    values = read_file(PROJECT_ROOT / "config" / "benchmarks" / f"{name}.yaml")
    return {key: values[key] for key in BRANCH_KEYS if key in values}


def weights_of(model: TFVAEGAN) -> dict:
    return {name: getattr(model, name).state_dict() for name in ("encoder", "generator", "critic", "feedback",
                                                                  "decoder")}


@pytest.fixture(scope="module")
def bce_toy(toy_root):
    """The toy benchmark as the action code reads it: min-max scaled decoder targets (bce_att)."""
    root, _ = toy_root
    from tfvaegan.config import from_mapping

    cfg = from_mapping({**TINY, "dataset": "TOY", "bce_att": True})
    data = load_test_split(root, cfg)
    return cfg.resolved(data.res_size, data.att_size, data.n_classes), data


def test_every_benchmark_branch_is_covered():
    covered = {tuple(sorted((k, benchmark_settings(b).get(k, False)) for k in ("encoded_noise", "freeze_dec",
                                                                              "bce_att"))) for b in BENCHMARKS}
    assert len(covered) == 4  # CUB/SUN, AWA2 (freeze_dec), FLO (N(0, I) noise), actions (bce_att)


# ------------------------------------------------------------------ losses, on batches
def test_losses_match_the_official_ones_on_a_batch():
    g = torch.Generator().manual_seed(0)
    recon, x = torch.rand(5, 7, generator=g) * 0.98 + 0.01, torch.rand(5, 7, generator=g)
    mean, log_var = torch.randn(5, 3, generator=g), torch.randn(5, 3, generator=g)
    assert vae_loss(recon, x, mean, log_var).item() == pytest.approx(official.loss_fn(recon, x, mean, log_var).item(),
                                                                     rel=1e-6)
    pred, target = torch.randn(5, 4, generator=g), torch.randn(5, 4, generator=g)
    assert weighted_l1(pred, target).item() == pytest.approx(official.WeightedL1(pred, target).item(), rel=1e-6)
    probs, targets = torch.rand(5, 4, generator=g), torch.rand(5, 4, generator=g)
    assert decoder_loss(probs, targets, bce=True).item() == pytest.approx(
        official.WeightedL1(probs, None, bce=True, gt_bce=targets).item(), rel=1e-6)


def test_critic_penalty_matches_the_official_gradient_penalty_on_a_batch():
    cfg = dataclasses.replace(from_tiny(), resSize=7, attSize=3, latent_size=3, nz=3, ndh=16, nclass_all=4)
    nets = official.official_nets(cfg)
    ours = TFVAEGAN(cfg).critic
    ours.load_state_dict(nets.netD.state_dict())
    g = torch.Generator().manual_seed(1)
    x, fake, att = torch.rand(6, 7, generator=g), torch.rand(6, 7, generator=g), torch.rand(6, 3, generator=g)
    torch.manual_seed(3)
    expected = official.calc_gradient_penalty(nets.netD, x, fake, att, type("opt", (), {"batch_size": 6,
                                                                                          "lambda1": 10.0}))
    torch.manual_seed(3)
    alpha = torch.rand(6, 1)  # the same draw as the official alpha
    penalty, _, _ = critic_loss_and_gradients(ours, x, fake, att, alpha, 1.0, torch.tensor(10.0))
    assert 10.0 * penalty.item() == pytest.approx(expected.item(), rel=1e-5)


def from_tiny():
    from tfvaegan.config import from_mapping

    return from_mapping({**TINY, "dataset": "TOY"})


# ------------------------------------------------------------------ optimisers
def test_optimisers_are_the_official_ones(toy):
    _, cfg, _ = toy
    cfg = dataclasses.replace(cfg, lr=3e-4, feed_lr=2e-5, dec_lr=7e-5, beta1=0.4)  # all different
    model = TFVAEGAN(cfg)
    ours = make_optimizers(model, cfg)
    theirs = official.official_optimizers(official.official_nets(cfg, weights_of(model)), cfg)
    pairs = {"encoder": "optimizer", "critic": "optimizerD", "generator": "optimizerG", "feedback": "optimizerF",
             "decoder": "optimizerDec"}
    for name, key in pairs.items():
        mine, official_group = ours[name].param_groups[0], theirs[key].param_groups[0]
        assert type(ours[name]) is type(theirs[key]) is torch.optim.Adam, name
        for setting in ("lr", "betas", "eps", "weight_decay", "amsgrad"):
            assert mine[setting] == official_group[setting], (name, setting)
        assert [p.shape for p in mine["params"]] == [p.shape for p in official_group["params"]], name
    assert ours["encoder"].param_groups[0]["betas"] == (0.9, 0.999)  # the encoder keeps Adam's default


# ------------------------------------------------------------------ one training iteration, every branch
def nontrivial_weights(model: TFVAEGAN) -> None:
    """Every Linear layer N(0, 0.1²) (biases N(0, 0.01²)) instead of the official N(0, 0.02²) and zero,
    as tests/test_transductive_oracle.py does: at the toy's width (64) the official initialisation
    makes the feedback ~1e-5 of the generator's hidden state, so that a wrong feedback source moved
    the parameters by ~1e-6 (at plain SGD, lr 0.05), inside the comparison's tolerance; at these
    weights it moves them by ~1e-5 (generator) to ~3e-4 (feedback module), where the two sides
    agree within ~4e-7 (test_a_wrong_feedback_source_is_detected). Both sides get these weights."""
    g = torch.Generator().manual_seed(1)
    with torch.no_grad():
        for module in model.modules():
            if isinstance(module, torch.nn.Linear):
                module.weight.normal_(0, WEIGHT_STD, generator=g)
                module.bias.normal_(0, 0.01, generator=g)


def sgd(module):
    # Plain SGD on both sides: Adam turns float-rounding-sized gradients (a critic bias whose real
    # and fake terms cancel) into lr-sized steps, which would hide what is compared here; the
    # optimisers' settings are compared with the official ones above. lr 0.01: at 0.05 the
    # non-trivial weights make a step diverge (both sides alike).
    return torch.optim.SGD(module.parameters(), lr=LR)


def stepped(cfg, data, feedback_pass: bool, actions: bool) -> tuple[Trainer, official.OfficialNets, float]:
    """Our Trainer and the oracle from the same non-trivial weights, both with plain SGD, each after
    one iteration from the same seed; and the oracle's lambda1 after it."""
    torch.manual_seed(0)
    trainer = Trainer(cfg, data, torch.device("cpu"))
    nontrivial_weights(trainer.model)
    nets = official.official_nets(cfg, weights_of(trainer.model))
    for name in trainer.opt:
        trainer.opt[name] = sgd(getattr(trainer.model, name))
    opts = official.official_optimizers(nets, cfg, make=sgd)
    torch.manual_seed(123)
    expected_lambda = official.official_generator_step(nets, opts, cfg, data, int(feedback_pass), cfg.lambda1,
                                                       actions=actions)
    torch.manual_seed(123)
    trainer.step(feedback_pass)
    return trainer, nets, expected_lambda


def differences(trainer: Trainer, nets: official.OfficialNets) -> dict[str, float]:
    """`module.parameter` -> max |ours − theirs|, where they differ beyond the tolerance."""
    ours, theirs = weights_of(trainer.model), {name: m.state_dict() for name, m in nets.modules().items()}
    return {f"{name}.{key}": (value - theirs[name][key]).abs().max().item()
            for name in ours for key, value in ours[name].items()
            if not torch.allclose(value, theirs[name][key], atol=ATOL, rtol=RTOL)}


def benchmark_cfg(toy, bce_toy, name: str):
    cfg, data = bce_toy if name in ACTION_BENCHMARKS else toy[1:]
    return dataclasses.replace(cfg, critic_iter=3, **benchmark_settings(name)), data


@pytest.mark.parametrize("feedback_pass", [False, True], ids=["pass0", "feedback_pass"])
@pytest.mark.parametrize("name", BENCHMARKS)
def test_training_step_matches_the_official_iteration(toy, bce_toy, name, feedback_pass):
    cfg, data = benchmark_cfg(toy, bce_toy, name)
    trainer, nets, expected_lambda = stepped(cfg, data, feedback_pass, actions=name in ACTION_BENCHMARKS)
    assert trainer.lambda1.item() == pytest.approx(expected_lambda, rel=1e-6)
    assert differences(trainer, nets) == {}
    assert sum(len(state) for state in weights_of(trainer.model).values()) == len(list(trainer.model.parameters()))
    # and the step changed exactly what it should
    torch.manual_seed(0)
    fresh = Trainer(cfg, data, torch.device("cpu"))
    nontrivial_weights(fresh.model)
    moved = lambda module: not torch.equal(getattr(fresh.model, module).fc1.weight,
                                           getattr(trainer.model, module).fc1.weight)
    assert moved("feedback") == feedback_pass
    assert moved("decoder") == (cfg.recons_weight > 0)  # the critic iterations step it, freeze_dec or not


PRIOR_NOISE_BENCHMARKS = [name for name in BENCHMARKS if benchmark_settings(name).get("encoded_noise") is False]


@pytest.mark.parametrize("name", PRIOR_NOISE_BENCHMARKS)
def test_a_wrong_feedback_source_is_detected(toy, bce_toy, monkeypatch, name):
    """The comparison above sees the feedback's source: with encoded_noise off (FLO) the generator
    step's fake from N(0, I) noise takes the feedback of the reconstruction (train_images.py); made
    to take its own (the action code's feedback_module), our step departs from the oracle's in the
    modules the generator step moves, by far more than the two sides' rounding."""
    cfg, data = benchmark_cfg(toy, bce_toy, name)
    assert not cfg.encoded_noise and name not in ACTION_BENCHMARKS
    released = differences(*stepped(cfg, data, True, actions=False)[:2])
    original = TFVAEGAN.generate
    sources = []

    def own_feedback(self, z, att, feedback_weight=None, feedback_source=None):
        sources.append(feedback_source is not None)
        return original(self, z, att, feedback_weight)

    monkeypatch.setattr(TFVAEGAN, "generate", own_feedback)
    trainer, nets, expected_lambda = stepped(cfg, data, True, actions=False)
    assert sources.count(True) == 1  # the generator step's prior fake, and nothing else
    assert trainer.lambda1.item() == pytest.approx(expected_lambda, rel=1e-6)  # the critics come before it
    mutated = differences(trainer, nets)
    assert released == {} and mutated
    assert {key.split(".")[0] for key in mutated} == {"generator", "feedback"}
    assert max(value for key, value in mutated.items() if key.startswith("feedback.")) > 10 * ATOL


def test_freeze_dec_keeps_the_decoder_out_of_the_generator_step(toy):
    """AWA2's freeze_dec: the generator step does not move the decoder (the critic steps still do)."""
    _, cfg, data = toy
    cfg = dataclasses.replace(cfg, critic_iter=1, freeze_dec=True)
    torch.manual_seed(0)
    trainer = Trainer(cfg, data, torch.device("cpu"))
    x, att, target = trainer.sample()
    before = copy.deepcopy(trainer.model.decoder.state_dict())
    trainer.generator_step(x, att, target, feedback_pass=True)
    assert all(torch.equal(before[k], v) for k, v in trainer.model.decoder.state_dict().items())
    trainer.cfg = dataclasses.replace(cfg, freeze_dec=False)
    trainer.generator_step(x, att, target, feedback_pass=True)
    assert not all(torch.equal(before[k], v) for k, v in trainer.model.decoder.state_dict().items())


# ------------------------------------------------------------------ synthesis
@pytest.mark.parametrize("feedback_loop", [2, 1])
def test_synthesis_follows_the_official_feedback_rule_except_without_feedback_training(toy, feedback_loop):
    """With feedback_loop 2 our synthesis is the official generate_syn_feature. With feedback_loop 1
    (the ablation's baseline and +decoder) the official code still applies its never-trained feedback
    module at weight a2; we do not (a deliberate difference, docs/architecture.md)."""
    _, cfg, data = toy
    # 512 wide: the feedback of a freshly initialised module is then well above rounding (at the
    # official 4096 more so; at the toy's 64 it is ~1e-4)
    cfg = dataclasses.replace(cfg, feedback_loop=feedback_loop, ngh=512, generator_hidden=512)
    torch.manual_seed(0)
    model = TFVAEGAN(cfg)
    nets = official.official_nets(cfg, weights_of(model))
    classes = data.unseenclasses[:3]
    torch.manual_seed(4)
    theirs, their_labels = official.generate_syn_feature(nets, classes, data.attribute, 20, cfg.a2)
    # the official loop draws each class's noise in turn: replay those draws for our batched synthesis
    torch.manual_seed(4)
    noise = torch.cat([torch.randn(20, cfg.nz) for _ in classes])
    ours = model.synthesize(noise, data.attribute[classes.repeat_interleave(20)])
    assert torch.equal(their_labels, classes.repeat_interleave(20))
    if feedback_loop > 1:
        assert torch.allclose(ours, theirs, atol=1e-6)
    else:
        without_feedback = model.generate(noise, data.attribute[classes.repeat_interleave(20)])
        assert torch.equal(ours, without_feedback)
        assert (ours - theirs).abs().max() > 1e-4  # the official feedback of an untrained module (rounding: 1e-7)


def test_batched_synthesis_is_class_major_as_the_official_loop(toy):
    _, cfg, data = toy
    features, labels = synthesize(TFVAEGAN(cfg), data.attribute, data.unseenclasses, 7, cfg.nz,
                                  torch.Generator().manual_seed(0))
    assert torch.equal(labels, data.unseenclasses.repeat_interleave(7)) and features.shape[0] == len(labels)


# ------------------------------------------------------------------ evaluation
# The evaluation is compared per seed, on the same random numbers: our evaluation is handed the
# oracle's draws (the synthesis noise, each classifier's initial layer and its shuffles), so that
# the two differ only by floating-point rounding (fused Adam against torch.optim.Adam, the softmax
# gradient in closed form against autograd). Per-epoch curves are compared, not only their best
# values, so that a wrong epoch count cannot hide behind a best epoch both runs reach.
# The tolerance, measured (tests/test_oracle.py's toy, the model trained below): over seeds 0-19
# every epoch's ZSL accuracy and GZSL H, and the best of each, agreed exactly (difference 0.0). Each
# mutated setting of the mutation test below departed by 0.26 or more at its worst epoch on every
# one of seeds 0-5 (0.16 or more in its best values), a wrong epoch count also by the curves'
# lengths; even lr 0.011 instead of 0.01 departed by 0.04 or more. 0.02 lies between: it admits a
# rounding-flipped unseen prediction on another machine (1/120 of the ZSL accuracy, at most 2/120
# of H) and is 13 times below the smallest departure the mutation test asserts more than 5 times of.
EVAL_TOLERANCE = 0.02
EVAL_SEEDS = (0, 1, 2)
CLASSIFIER_KEYS = ("classifier_nepoch", "classifier_beta1", "classifier_batch_size")


class _Draws:
    """`torch` as a module sees it, except for the functions named, which answer instead."""

    def __init__(self, **answers):
        self.answers = answers

    def __getattr__(self, name):
        return self.answers[name] if name in self.answers else getattr(torch, name)


@dataclasses.dataclass
class OracleRun:
    """The oracle's evaluation from one seed, and the random numbers it drew."""

    result: dict
    noise: torch.Tensor  # the synthesis noise, class by class
    classifiers: list  # per classifier: (its initial weight, the permutations its next_batch drew)


@pytest.fixture(scope="module")
def evaluated(toy):
    """A model trained on the toy benchmark, the evaluation's config (the package's classifier
    defaults, which must be the official literals the oracle writes out) and the oracle's runs."""
    _, cfg, zdata = toy
    model = train(dataclasses.replace(cfg, nepoch=15), zdata, torch.device("cpu"), log=lambda _: None).trainer.model
    defaults = {field.name: field.default for field in dataclasses.fields(Config) if field.name in CLASSIFIER_KEYS}
    cfg = dataclasses.replace(cfg, **defaults)
    nets = official.official_nets(cfg, weights_of(model))
    return model, cfg, zdata, {seed: oracle_run(nets, cfg, zdata, seed) for seed in EVAL_SEEDS}


def oracle_run(nets, cfg, data, seed: int) -> OracleRun:
    classifiers = []
    official_init = official.weights_init

    def weights_init(module):  # CLASSIFIER's model.apply(util.weights_init): a classifier begins
        official_init(module)
        classifiers.append((module.weight.detach().clone(), []))

    def randperm(n):  # next_batch's shuffles
        perm = torch.randperm(n)
        classifiers[-1][1].append(perm)
        return perm

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(official, "weights_init", weights_init)
        patch.setattr(official, "torch", _Draws(randperm=randperm))
        torch.manual_seed(seed)
        result = official.official_evaluation(nets, cfg, data)
    # generate_syn_feature's draws, the first after the seed: syn_noise.normal_(0, 1) for each class in turn
    torch.manual_seed(seed)
    noise = torch.cat([torch.randn(cfg.syn_num, cfg.nz) for _ in data.unseenclasses])
    return OracleRun(result, noise, classifiers)


def ours_on_the_oracles_draws(monkeypatch, model, cfg, data, run: OracleRun) -> tuple[dict, dict]:
    """Our evaluate() handed the oracle's random numbers; its row and the curves of its classifiers.
    Our classifier draws its initial layer as randn · 0.02 and its shuffles as a stream of
    permutations of the rows; the official next_batch permutes the already permuted rows, so our
    stream gets the running composition of its permutations (the same batches). A classifier that
    asks for more shuffles than the oracle drew (a mutated setting) gets fresh ones."""
    classifiers = list(run.classifiers)
    stream = []

    def randn(*size, generator=None, device=None):
        weight, perms = classifiers.pop(0)
        stream.clear()
        for perm in perms:
            stream.append(perm if not stream else stream[-1][perm])  # the rows the official batches read
        return weight / 0.02

    def randperm(n, generator=None, device=None):
        return stream.pop(0) if stream else torch.randperm(n, generator=generator)

    curves = {}

    def spy(name, function):
        def spied(*args, **kwargs):
            result = function(*args, **kwargs)
            curves[name] = result.curve
            return result
        return spied

    monkeypatch.setattr(synthesize_module, "torch", _Draws(randn=lambda *size, generator=None, device=None: run.noise))
    monkeypatch.setattr(classifier_module, "torch", _Draws(randn=randn, randperm=randperm))
    for name in ("zsl", "gzsl"):
        monkeypatch.setattr(evaluate_module, name, spy(name, getattr(evaluate_module, name)))
    row = evaluate(model, data, cfg, torch.Generator().manual_seed(0))
    return row, curves


def curve_difference(ours: list[float], theirs: list[float]) -> float:
    """max over epochs of |ours − theirs|; curves of different lengths (epoch counts) differ wholly."""
    return max(abs(a - b) for a, b in zip(ours, theirs)) if len(ours) == len(theirs) else math.inf


def evaluation_difference(monkeypatch, evaluated, seed: int) -> float:
    model, cfg, data, runs = evaluated
    row, curves = ours_on_the_oracles_draws(monkeypatch, model, cfg, data, runs[seed])
    theirs = runs[seed].result
    return max(curve_difference(curves["zsl"], theirs["zsl_curve"]),
               curve_difference(curves["gzsl"], theirs["gzsl_curve"]),
               abs(row["zsl_acc"] - theirs["zsl_acc"]), abs(row["gzsl_h"] - theirs["gzsl_h"]))


@pytest.mark.parametrize("seed", EVAL_SEEDS)
def test_evaluation_agrees_with_official_transcription(evaluated, monkeypatch, seed):
    _, cfg, _, runs = evaluated
    assert (cfg.classifier_nepoch, cfg.classifier_beta1, cfg.cls_batch_size) == (25, 0.5, cfg.syn_num)
    assert len(runs[seed].classifiers) == 2 and len(runs[seed].result["zsl_curve"]) == 25
    assert evaluation_difference(monkeypatch, evaluated, seed) <= EVAL_TOLERANCE
    chance = 1 / 6  # six unseen classes: the compared accuracies are far from trivial
    assert runs[seed].result["zsl_acc"] > 2.5 * chance and runs[seed].result["gzsl_h"] > 0.2


@pytest.mark.parametrize("mutation", [{"batch_size": 100}, {"nepoch": 20}, {"beta1": 0.9}, {"lr": 1e-3}],
                         ids=["batch_size_100", "nepoch_20", "beta1_0.9", "lr_0.001"])
def test_a_wrong_classifier_setting_fails_the_evaluation_comparison(evaluated, monkeypatch, mutation):
    """Each of our classifier's settings changed alone (to the official CLASSIFIER's defaults, or
    Adam's beta1) makes the comparison above fail."""
    from_config = ClassifierSettings.from_config.__func__
    monkeypatch.setattr(ClassifierSettings, "from_config", classmethod(
        lambda cls, *args, **kwargs: dataclasses.replace(from_config(cls, *args, **kwargs), **mutation)))
    assert evaluation_difference(monkeypatch, evaluated, EVAL_SEEDS[0]) > 5 * EVAL_TOLERANCE
