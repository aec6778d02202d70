"""FREE, f-CLSWGAN and f-VAEGAN against their oracles: tfvaegan/bench/official_free.py (shiming-chen/FREE),
tfvaegan/bench/official_fclswgan.py (Xian et al.'s clswgan.py), and for f-VAEGAN TF-VAEGAN's official iteration
(tfvaegan/bench/official.py) without the decoder's loss and the feedback pass, its ablation baseline (the
authors' f-VAEGAN code is not public: docs/methods.md); all transcribed independently of the package.

As tests/test_oracle.py does for TF-VAEGAN: each image benchmark's settings branch (its
config/benchmarks/<name>_free.yaml / <name>_fclswgan.yaml) is compared parameter by parameter after one
training iteration from the same non-trivial weights, plain SGD on both sides and the same seed before
each; the optimisers' settings are the reference's; the discriminative features and the synthesis are
the reference's given the same random numbers; f-CLSWGAN's pre-trained classifier is the reference's
given the same initial layer and shuffles. Each comparison is shown to catch a mutated setting.
"""
from __future__ import annotations

import copy
import dataclasses

import pytest
import torch
from conftest import PROJECT_ROOT
from test_oracle import nontrivial_weights  # the same N(0, 0.1²) weights as TF-VAEGAN's oracle test

from tfvaegan.bench import official_fclswgan as fclswgan_oracle
from tfvaegan.bench import official_free as free_oracle
from tfvaegan.config import read_file

from tfvaegan.bench import official as tfvaegan_oracle
from tfvaegan.method import fclswgan, free
from tfvaegan.method.models import TFVAEGAN
from tfvaegan.method.train import Trainer

IMAGE_BENCHMARKS = ("cub", "awa2", "flo", "sun")
# What decides the branch a method's training iteration takes, and its loss weights (the benchmark files'
# other keys are widths, epochs and learning rates, which the toy replaces or the optimiser test checks).
FREE_KEYS = ("dataset", "encoded_noise", "freeze_dec", "center_loss", "recons_weight", "center_weight",
             "center_margin", "incenter_weight", "gammaD", "gammaG", "lambda1", "adaptive_lambda")
FCLSWGAN_KEYS = ("cls_weight", "gammaD", "gammaG", "lambda1", "adaptive_lambda", "encoded_noise")
CRITIC_ITER = 3  # every branch's iteration with 3 critic iterations (the files say 1 or 5): the centers'
# never-zeroed gradient then sums three iterations', and the generator step reads the third batch
ATOL, RTOL = 2e-6, 1e-4  # tests/test_oracle.py's: parameters after one iteration
LR = 1e-2


def benchmark_settings(name: str, method: str, keys: tuple[str, ...]) -> dict:
    """The branch keys of config/benchmarks/<name>_<method>.yaml."""
    path = PROJECT_ROOT / "config" / "benchmarks" / f"{name}_{method}.yaml"
    values = read_file(path)
    assert values.get("method") == method, path
    return {key: values[key] for key in keys if key in values}


def sgd(module):
    # Plain SGD on both sides, as tests/test_oracle.py (Adam would turn rounding-sized gradients into
    # lr-sized steps); the optimisers' settings are compared with the reference's below.
    return torch.optim.SGD(module.parameters(), lr=LR)


def max_differences(ours: dict[str, dict], theirs: dict[str, dict]) -> dict[str, float]:
    """`module.parameter` -> max |ours − theirs|, for every parameter of ours (the reference's name in
    `theirs`) that differs beyond the tolerance."""
    return {f"{name}.{key}": (value - theirs[name][key]).abs().max().item()
            for name in ours for key, value in ours[name].items()
            if not torch.allclose(value, theirs[name][key], atol=ATOL, rtol=RTOL)}


# ================================================================== FREE
FREE_MODULES = ("encoder", "generator", "critic", "refinement", "center")


def free_cfg(toy, name: str, **mutation):
    _, cfg, data = toy
    settings = benchmark_settings(name, "free", FREE_KEYS)
    dataset = settings.pop("dataset")
    cfg = dataclasses.replace(cfg, method="free", critic_iter=CRITIC_ITER, **settings)
    return cfg, dataclasses.replace(cfg, **mutation), data, dataset


def free_weights(model) -> dict[str, dict]:
    return {name: getattr(model, name).state_dict() for name in FREE_MODULES}


def free_stepped(toy, name: str, as_run: bool = False, **mutation):
    """Our FREETrainer (its settings changed by `mutation`) and the oracle (the benchmark's settings) from
    the same non-trivial weights, both with plain SGD, each after one iteration from the same seed; and the
    oracle's lambda1 after it."""
    cfg, ours_cfg, data, dataset = free_cfg(toy, name, **mutation)
    torch.manual_seed(0)
    trainer = free.FREETrainer(ours_cfg, data, torch.device("cpu"))
    nontrivial_weights(trainer.model)
    nets = free_oracle.official_free_nets(cfg, len(data.seenclasses), dataset, free_weights(trainer.model))
    modules = {"encoder": "encoder", "generator": "generator", "critic": "critic", "refinement": "refinement",
               "centers": "center"}
    assert set(trainer.opt) == set(modules)
    for key, module in modules.items():
        trainer.opt[key] = sgd(getattr(trainer.model, module))
    opts = free_oracle.official_free_optimizers(nets, cfg, make=sgd)
    torch.manual_seed(123)
    expected_lambda = free_oracle.official_free_step(nets, opts, cfg, data, cfg.lambda1, as_run=as_run)
    torch.manual_seed(123)
    trainer.step(feedback_pass=False)
    return trainer, nets, expected_lambda


def free_differences(trainer, nets) -> dict[str, float]:
    return max_differences(free_weights(trainer.model), {k: m.state_dict() for k, m in nets.modules().items()})


@pytest.mark.parametrize("name", IMAGE_BENCHMARKS)
def test_free_iteration_matches_the_reference(toy, name):
    trainer, nets, expected_lambda = free_stepped(toy, name)
    assert trainer.lambda1.item() == pytest.approx(expected_lambda, rel=1e-6)
    assert free_differences(trainer, nets) == {}
    # and the comparison is not vacuous: every module moved (FR under AWA2's freeze_dec in the critic
    # iterations only, the reference's generator step leaving it as ours does)
    torch.manual_seed(0)
    fresh = free.FREETrainer(trainer.cfg, toy[2], torch.device("cpu"))
    nontrivial_weights(fresh.model)
    for module in FREE_MODULES:
        before, after = free_weights(fresh.model)[module], free_weights(trainer.model)[module]
        assert any(not torch.equal(before[k], after[k]) for k in before), module


def test_free_branches_are_covered():
    """The four benchmarks cover both center losses, encoded and prior noise, and freeze_dec."""
    branches = set()
    for name in IMAGE_BENCHMARKS:
        path = PROJECT_ROOT / "config" / "benchmarks" / f"{name}_free.yaml"
        if not path.exists():
            pytest.skip(f"{path.relative_to(PROJECT_ROOT)} not written yet")
        s = read_file(path)
        branches.add((s["center_loss"], s["encoded_noise"], s["freeze_dec"]))
        # train_free.py picks the center loss by the dataset's name
        expected = type(free_oracle.center_criterion_for(s["dataset"], 3, 2)).__name__
        assert expected == {"margin": "TripCenterLoss_margin", "min_margin": "TripCenterLoss_min_margin"}[
            s["center_loss"]], name
    assert branches == {("margin", True, False), ("min_margin", True, True), ("margin", False, False)}


def test_free_skipped_reference_computations_only_draw_random_numbers(toy):
    """The oracle's as_run=False leaves out FR on the critic's fakes and FR's gradient penalty, whose
    results train_free.py discards. Consuming their draws in their place (FR's eps on the fakes, the FR
    penalty's alpha, FR's eps on its interpolates) makes the two forms agree exactly: they changed
    nothing else."""
    cfg, _, data, dataset = free_cfg(toy, "cub")
    weights = free_weights(free.FREE(cfg, n_seen=len(data.seenclasses)))
    results = {}
    for as_run in (True, False):
        torch.manual_seed(0)  # FR's unused heads are initialised, not loaded: alike on both sides
        nets = free_oracle.official_free_nets(cfg, len(data.seenclasses), dataset, copy.deepcopy(weights))
        if not as_run:
            center_forward = nets.center_criterion.forward

            def forward(x, *args, center_forward=center_forward, **kwargs):
                torch.randn(cfg.batch_size, cfg.attSize)
                torch.rand(cfg.batch_size, 1)
                torch.randn(cfg.batch_size, cfg.attSize)
                return center_forward(x, *args, **kwargs)

            nets.center_criterion.forward = forward
        torch.manual_seed(5)
        lam = free_oracle.official_free_step(nets, free_oracle.official_free_optimizers(nets, cfg, make=sgd), cfg,
                                             data, cfg.lambda1, as_run=as_run)
        results[as_run] = lam, {k: m.state_dict() for k, m in nets.modules().items()}
    assert results[True][0] == results[False][0]
    for module, state in results[True][1].items():
        assert all(torch.equal(value, results[False][1][module][key]) for key, value in state.items()), module


@pytest.mark.parametrize("name, mutation", [
    ("cub", "swap_recons_center"), ("awa2", "swap_recons_center"), ("cub", "incenter_weight"),
    ("awa2", "incenter_weight"), ("flo", "center_loss"), ("awa2", "center_loss"),
])
def test_a_wrong_free_setting_is_detected(toy, name, mutation):
    """The comparison above sees each setting of FR's update: swapped recons_weight and center_weight,
    another incenter_weight, the other center loss (min_margin for FLO, margin for AWA2) move our
    parameters away from the reference's by far more than the tolerance (`detected` holds the sizes).
    (center_margin is not among them: while every hinge of the center loss is active, as at the toy's
    and the benchmarks' margins, the margin is a constant of the loss and moves nothing.)"""
    cfg, _, _, _ = free_cfg(toy, name)
    changes = {"swap_recons_center": {"recons_weight": cfg.center_weight, "center_weight": cfg.recons_weight},
               "incenter_weight": {"incenter_weight": 0.3 if cfg.incenter_weight != 0.3 else 0.6},
               "center_loss": {"center_loss": "margin" if cfg.center_loss == "min_margin" else "min_margin"}}[mutation]
    detected = free_differences(*free_stepped(toy, name, **changes)[:2])
    assert {key.split(".")[0] for key in detected} >= {"refinement", "center"}
    assert max(detected.values()) > 100 * ATOL, detected


def test_free_optimisers_are_the_references(toy):
    """train_free.py's five Adam: encoder at lr with Adam's default betas, generator, critic and centers at
    lr, FR at dec_lr, each (beta1, 0.999)."""
    cfg, _, data, dataset = free_cfg(toy, "cub")
    cfg = dataclasses.replace(cfg, lr=3e-4, dec_lr=7e-5, beta1=0.4)  # all different
    trainer = free.FREETrainer(cfg, data, torch.device("cpu"))
    theirs = free_oracle.official_free_optimizers(
        free_oracle.official_free_nets(cfg, len(data.seenclasses), dataset), cfg)
    pairs = {"encoder": "optimizer", "critic": "optimizerD", "generator": "optimizerG", "refinement": "optimizerFR",
             "centers": "optimizer_center"}
    for name, key in pairs.items():
        mine, reference = trainer.opt[name].param_groups[0], theirs[key].param_groups[0]
        assert type(trainer.opt[name]) is type(theirs[key]) is torch.optim.Adam, name
        for setting in ("lr", "betas", "eps", "weight_decay", "amsgrad"):
            assert mine[setting] == reference[setting], (name, setting)
        shapes = [p.shape for p in reference["params"]]
        if name == "refinement":  # FR's fc1, fc3; its discriminator and classifier heads, which no loss reads,
            shapes = shapes[:4]  # have no counterpart
        assert [p.shape for p in mine["params"]] == shapes, name
    assert trainer.opt["encoder"].param_groups[0]["betas"] == (0.9, 0.999)
    assert trainer.opt["refinement"].param_groups[0]["lr"] == cfg.dec_lr
    assert trainer.opt["centers"].param_groups[0]["lr"] == cfg.lr


def test_free_discriminative_features_are_compute_fear_out(toy):
    """[x, FR hidden, sigmoid(mu + eps*std)] as classifier.py's compute_fear_out, given the same eps."""
    cfg, _, data, dataset = free_cfg(toy, "cub")
    model = free.FREE(cfg, n_seen=len(data.seenclasses))
    nontrivial_weights(model)
    nets = free_oracle.official_free_nets(cfg, len(data.seenclasses), dataset, free_weights(model))
    x = data.test_unseen_feature[:50]
    ours = model.discriminative_features(x, torch.Generator().manual_seed(5))
    torch.manual_seed(5)  # one batch: the reference draws eps for the whole of x at once
    theirs = free_oracle.compute_fear_out(nets.netFR, x, cfg.resSize + cfg.ngh + cfg.attSize, batch_size=len(x))
    assert ours.shape == theirs.shape == (50, cfg.resSize + cfg.ngh + cfg.attSize)
    assert torch.allclose(ours, theirs, atol=1e-6)
    other_eps = model.discriminative_features(x, torch.Generator().manual_seed(6))
    assert (other_eps - theirs)[:, -cfg.attSize:].abs().max() > 1e-3  # the eps is seen


def test_free_synthesis_is_generate_syn_feature(toy):
    cfg, _, data, dataset = free_cfg(toy, "cub")
    model = free.FREE(cfg, n_seen=len(data.seenclasses))
    nontrivial_weights(model)
    nets = free_oracle.official_free_nets(cfg, len(data.seenclasses), dataset, free_weights(model))
    classes = data.unseenclasses[:3]
    torch.manual_seed(4)
    theirs, labels = free_oracle.generate_syn_feature(nets.netG, classes, data.attribute, 20, nets.opt)
    torch.manual_seed(4)
    noise = torch.cat([torch.randn(20, cfg.nz) for _ in classes])
    ours = model.synthesize(noise, data.attribute[classes.repeat_interleave(20)])
    assert torch.equal(labels, classes.repeat_interleave(20))
    assert torch.allclose(ours, theirs, atol=1e-6)


# ================================================================== f-CLSWGAN
def fclswgan_cfg(toy, name: str, **mutation):
    _, cfg, data = toy
    settings = benchmark_settings(name, "fclswgan", FCLSWGAN_KEYS)
    # TINY's encoded_noise is TF-VAEGAN's; f-CLSWGAN has no encoder (its files leave the key at false)
    cfg = dataclasses.replace(cfg, method="fclswgan", critic_iter=CRITIC_ITER, **{"encoded_noise": False, **settings})
    return cfg, dataclasses.replace(cfg, **mutation), data


def fclswgan_weights(model) -> dict[str, dict]:
    """Our generator and critic under MLP_G's and MLP_CRITIC's parameter names (our fc3 is MLP_G's fc2)."""
    generator = {key.replace("fc3.", "fc2."): value for key, value in model.generator.state_dict().items()}
    return {"generator": generator, "critic": model.critic.state_dict()}


def frozen_reference_classifier(layer: torch.nn.Linear) -> fclswgan_oracle.CLASSIFIER:
    """A stand-in for clswgan.py's pretrain_cls holding `layer`'s weights (the pre-training is compared
    on its own in test_fclswgan_pretrained_classifier_is_the_references)."""
    model = fclswgan_oracle.LINEAR_LOGSOFTMAX(layer.in_features, layer.out_features)
    model.fc.load_state_dict(layer.state_dict())
    model.requires_grad_(False)
    stand_in = fclswgan_oracle.CLASSIFIER.__new__(fclswgan_oracle.CLASSIFIER)
    stand_in.model = model
    return stand_in


@pytest.fixture(scope="module")
def fclswgan_trainers(toy):
    """One FCLSWGANTrainer per benchmark's settings (the pre-training runs in its constructor), kept in
    their initial state: the tests step deep copies."""
    trainers = {}

    def trainer_for(name):
        if name not in trainers:
            cfg, _, data = fclswgan_cfg(toy, name)
            torch.manual_seed(0)
            trainers[name] = fclswgan.FCLSWGANTrainer(cfg, data, torch.device("cpu"))
        return trainers[name]

    return trainer_for


def fclswgan_stepped(toy, fclswgan_trainers, name: str, **mutation):
    cfg, ours_cfg, data = fclswgan_cfg(toy, name, **mutation)
    trainer = copy.deepcopy(fclswgan_trainers(name))
    trainer.cfg = ours_cfg
    nontrivial_weights(trainer.model.generator)
    nontrivial_weights(trainer.model.critic)
    nets = fclswgan_oracle.official_fclswgan_nets(cfg, fclswgan_weights(trainer.model))
    assert set(trainer.opt) == {"generator", "critic"}
    for key in trainer.opt:
        trainer.opt[key] = sgd(getattr(trainer.model, key))
    opts = fclswgan_oracle.official_fclswgan_optimizers(nets, cfg, make=sgd)
    pretrain_cls = frozen_reference_classifier(trainer.model.seen_classifier)
    torch.manual_seed(123)
    fclswgan_oracle.official_fclswgan_step(nets, opts, cfg, data, pretrain_cls)
    torch.manual_seed(123)
    trainer.step(feedback_pass=False)
    return trainer, nets


def fclswgan_differences(trainer, nets) -> dict[str, float]:
    return max_differences(fclswgan_weights(trainer.model), {k: m.state_dict() for k, m in nets.modules().items()})


@pytest.mark.parametrize("name", IMAGE_BENCHMARKS)
def test_fclswgan_iteration_matches_the_reference(toy, fclswgan_trainers, name):
    trainer, nets = fclswgan_stepped(toy, fclswgan_trainers, name)
    assert trainer.lambda1.item() == pytest.approx(trainer.cfg.lambda1)  # fixed, as clswgan.py's
    assert fclswgan_differences(trainer, nets) == {}
    initial = fclswgan_trainers(name)
    assert not torch.equal(initial.model.seen_classifier.weight, torch.zeros(1))  # a trained classifier
    assert torch.equal(initial.model.seen_classifier.weight, trainer.model.seen_classifier.weight)  # frozen


@pytest.mark.parametrize("factor", [10.0, 0.0], ids=["cls_weight_x10", "cls_weight_0"])
def test_a_wrong_cls_weight_is_detected(toy, fclswgan_trainers, factor):
    """Another cls_weight (ten times the benchmark's, or none) moves our generator away from the reference's
    by more than ten times the tolerance (measured: ~3e-5 for none, 3e-4 and more for ten times); the
    critic, stepped before the generator, agrees."""
    cfg, _, _ = fclswgan_cfg(toy, "flo")
    detected = fclswgan_differences(*fclswgan_stepped(toy, fclswgan_trainers, "flo", cls_weight=cfg.cls_weight * factor))
    assert detected and {key.split(".")[0] for key in detected} == {"generator"}
    assert max(detected.values()) > 10 * ATOL, detected


def test_fclswgan_optimisers_are_the_references(toy, fclswgan_trainers):
    cfg, _, _ = fclswgan_cfg(toy, "cub")
    trainer = copy.deepcopy(fclswgan_trainers("cub"))
    theirs = fclswgan_oracle.official_fclswgan_optimizers(fclswgan_oracle.official_fclswgan_nets(cfg), cfg)
    for name, key in {"generator": "optimizerG", "critic": "optimizerD"}.items():
        mine, reference = trainer.opt[name].param_groups[0], theirs[key].param_groups[0]
        assert type(trainer.opt[name]) is type(theirs[key]) is torch.optim.Adam, name
        for setting in ("lr", "betas", "eps", "weight_decay", "amsgrad"):
            assert mine[setting] == reference[setting], (name, setting)
        assert [p.shape for p in mine["params"]] == [p.shape for p in reference["params"]], name


def reference_pretraining(data, cfg, seed: int):
    """clswgan.py's pre-trained classifier from `seed`, and the random numbers its CLASSIFIER drew: its
    initial layer (after util.weights_init) and the permutations of its next_batch."""
    drawn = {"perms": []}
    original_init = fclswgan_oracle.weights_init

    def weights_init(module):
        original_init(module)
        if isinstance(module, torch.nn.Linear):
            drawn["weight"] = module.weight.detach().clone()

    def randperm(n):
        perm = torch.randperm(n)
        drawn["perms"].append(perm)
        return perm

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(fclswgan_oracle, "weights_init", weights_init)
        patch.setattr(fclswgan_oracle, "torch", _Draws(randperm=randperm))
        torch.manual_seed(seed)
        classifier = fclswgan_oracle.pretrain_classifier(data, cfg)
    return classifier, drawn


class _Draws:
    """`torch` as a module sees it, except for the functions named (tests/test_oracle.py's)."""

    def __init__(self, **answers):
        self.answers = answers

    def __getattr__(self, name):
        return self.answers[name] if name in self.answers else getattr(torch, name)


def ours_on_the_references_draws(monkeypatch, data, drawn, settings=None):
    """Our pretrain_seen_classifier handed the reference's initial layer and shuffles. Ours draws the layer
    as randn · 0.02 and its shuffles as a stream of permutations of the rows; the reference's next_batch
    permutes the already permuted rows, so ours gets their running composition (the same batches)."""
    from tfvaegan.method import classifier as classifier_module
    from tfvaegan.method.classifier import local_labels

    stream = []
    for perm in drawn["perms"]:
        stream.append(perm if not stream else stream[-1][perm])
    monkeypatch.setattr(classifier_module, "torch", _Draws(
        randn=lambda *size, generator=None, device=None: drawn["weight"] / 0.02,
        randperm=lambda n, generator=None, device=None: stream.pop(0) if stream else torch.randperm(n)))
    if settings is not None:
        monkeypatch.setattr(fclswgan, "PRETRAIN", settings)
    labels = local_labels(data.train_label, data.seenclasses)
    return fclswgan.pretrain_seen_classifier(data.train_feature, labels, len(data.seenclasses),
                                             torch.Generator().manual_seed(0))


@pytest.fixture(scope="module")
def reference_pretrained(toy):
    cfg, _, data = fclswgan_cfg(toy, "cub")
    return (data, cfg, *reference_pretraining(data, cfg, seed=3))


def test_fclswgan_pretrained_classifier_is_the_references(reference_pretrained, monkeypatch):
    """clswgan.py's CLASSIFIER(..., 0.001, 0.5, 50, 100): our settings are its literals, and given its
    initial layer and shuffles our pre-training ends where it does (measured: within 5e-8 after its 150
    Adam steps on the toy, the weights ~0.2)."""
    data, cfg, reference, drawn = reference_pretrained
    settings = fclswgan.PRETRAIN
    assert (settings.lr, settings.beta1, settings.nepoch, settings.batch_size) == fclswgan_oracle.PRETRAIN_SETTINGS
    assert settings.select == "last"  # CLASSIFIER.fit keeps its last epoch's layer: no validation
    ours = ours_on_the_references_draws(monkeypatch, data, drawn)
    theirs = reference.model.fc
    assert ours.weight.shape == theirs.weight.shape == (len(data.seenclasses), cfg.resSize)
    assert torch.allclose(ours.weight, theirs.weight, atol=1e-6) and torch.allclose(ours.bias, theirs.bias, atol=1e-6)


@pytest.mark.parametrize("mutation", [{"lr": 0.01}, {"nepoch": 20}, {"batch_size": 64}, {"beta1": 0.9}],
                         ids=["lr_0.01", "nepoch_20", "batch_size_64", "beta1_0.9"])
def test_a_wrong_pretraining_setting_is_detected(reference_pretrained, monkeypatch, mutation):
    """Each pre-training setting changed alone departs from the reference's classifier by more than 1e-3
    (measured: lr 0.81, 20 epochs 0.09, batch 64 0.10, beta1 0.9 5e-3), against the 5e-8 of the match."""
    data, _, reference, drawn = reference_pretrained
    mutated = ours_on_the_references_draws(monkeypatch, data, drawn, dataclasses.replace(fclswgan.PRETRAIN, **mutation))
    assert (mutated.weight - reference.model.fc.weight).abs().max() > 1e-3


def test_fclswgan_synthesis_is_generate_syn_feature(toy, fclswgan_trainers):
    cfg, _, data = fclswgan_cfg(toy, "cub")
    model = copy.deepcopy(fclswgan_trainers("cub").model)
    nontrivial_weights(model.generator)
    nets = fclswgan_oracle.official_fclswgan_nets(cfg, fclswgan_weights(model))
    classes = data.unseenclasses[:3]
    torch.manual_seed(4)
    theirs, labels = fclswgan_oracle.generate_syn_feature(nets.netG, classes, data.attribute, 20, nets.opt)
    torch.manual_seed(4)
    noise = torch.cat([torch.randn(20, cfg.nz) for _ in classes])
    ours = model.synthesize(noise, data.attribute[classes.repeat_interleave(20)])
    assert torch.equal(labels, classes.repeat_interleave(20))
    assert torch.allclose(ours, theirs, atol=1e-6)
    assert (theirs == 0).any() and (ours >= 0).all()  # MLP_G's ReLU output


# ================================================================== f-VAEGAN
FVAEGAN_KEYS = ("encoded_noise", "gammaD", "gammaG", "lambda1", "adaptive_lambda")
FVAEGAN_MODULES = ("encoder", "generator", "critic")


def fvaegan_stepped(toy, name: str, **mutation):
    """Our f-VAEGAN Trainer (`mutation` applied) and TF-VAEGAN's official iteration at recons_weight 0, outside
    the feedback pass, on the benchmark's fvaegan settings, from the same non-trivial weights and seed, both with
    plain SGD; the oracle's decoder and feedback module (which f-VAEGAN has not) are a TFVAEGAN's, and unused."""
    _, cfg, data = toy
    settings = benchmark_settings(name, "fvaegan", FVAEGAN_KEYS)
    base = {k: v for k, v in dataclasses.asdict(cfg).items() if k not in ("recons_weight", "a1", "a2", "feed_lr",
                                                                          "dec_lr")}
    ours_cfg = dataclasses.replace(type(cfg)(**base), method="fvaegan", feedback_loop=1, critic_iter=CRITIC_ITER,
                                   **{**settings, **mutation})
    oracle_cfg = dataclasses.replace(ours_cfg, method="tfvaegan", recons_weight=0.0, **settings)  # unmutated
    torch.manual_seed(0)
    trainer = Trainer(ours_cfg, data, torch.device("cpu"))
    nontrivial_weights(trainer.model)
    unused = TFVAEGAN(oracle_cfg)
    weights = {name: getattr(trainer.model, name).state_dict() for name in FVAEGAN_MODULES}
    nets = tfvaegan_oracle.official_nets(oracle_cfg, {**weights, "decoder": unused.decoder.state_dict(),
                                                      "feedback": unused.feedback.state_dict()})
    for key in trainer.opt:
        trainer.opt[key] = sgd(getattr(trainer.model, key))
    opts = tfvaegan_oracle.official_optimizers(nets, oracle_cfg, make=sgd)
    torch.manual_seed(123)
    expected_lambda = tfvaegan_oracle.official_generator_step(nets, opts, oracle_cfg, data, 0, oracle_cfg.lambda1)
    torch.manual_seed(123)
    trainer.step(feedback_pass=False)
    theirs = {name: module.state_dict() for name, module in nets.modules().items() if name in FVAEGAN_MODULES}
    ours = {name: getattr(trainer.model, name).state_dict() for name in FVAEGAN_MODULES}
    return trainer, max_differences(ours, theirs), expected_lambda


@pytest.mark.parametrize("name", IMAGE_BENCHMARKS)
def test_fvaegan_iteration_matches_the_official_baseline_iteration(toy, name):
    trainer, differences, expected_lambda = fvaegan_stepped(toy, name)
    assert trainer.lambda1.item() == pytest.approx(expected_lambda, rel=1e-6)
    assert differences == {}
    assert set(trainer.opt) == set(FVAEGAN_MODULES) and trainer.model.decoder is None


def test_fvaegan_branches_are_covered():
    covered = {benchmark_settings(name, "fvaegan", FVAEGAN_KEYS).get("encoded_noise", False)
               for name in IMAGE_BENCHMARKS}
    assert covered == {True, False}  # CUB, AWA2, SUN: the encoder's z; FLO: N(0, I) noise


@pytest.mark.parametrize("mutation", [{"gammaG": 3.0}, {"encoded_noise": None}], ids=["gammaG", "noise_source"])
def test_a_wrong_fvaegan_setting_is_detected(toy, mutation):
    name = "cub"
    if mutation.get("encoded_noise", 0) is None:
        mutation = {"encoded_noise": not benchmark_settings(name, "fvaegan", FVAEGAN_KEYS).get("encoded_noise", False)}
    _, differences, _ = fvaegan_stepped(toy, name, **mutation)
    assert differences and max(differences.values()) > 10 * ATOL, differences
