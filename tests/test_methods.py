"""The lineage's methods (`method`: fclswgan, fvaegan, free beside tfvaegan) end to end on the toy benchmark,
their shared floor, and the config's refusals. The oracles against the reference codes are in
tests/test_method_oracles.py; the settings files' sources in tests/test_method_settings.py."""
from __future__ import annotations

import dataclasses

import pytest
import torch

from tfvaegan import stages
from tfvaegan.artifacts import load_artifact, SYNTHETIC_FORMAT
from tfvaegan.config import METHOD_KEYS, METHODS, Config, from_mapping
from tfvaegan.errors import ConfigError
from tfvaegan.method.fclswgan import FCLSWGANTrainer
from tfvaegan.method.free import CenterLoss, FREETrainer
from tfvaegan.method.lineage import MODELS, trainer_for
from tfvaegan.method.models import FVAEGAN, TFVAEGAN
from tfvaegan.method.train import Trainer, train
from tfvaegan.method.transductive import TransductiveTrainer
from toy import TINY

TFVAEGAN_ONLY = ("recons_weight", "a1", "a2", "feed_lr", "dec_lr")
VAE_WIDTHS = ("encoder_hidden", "generator_hidden")


def method_values(method: str) -> dict:
    """TINY for `method`: the keys it does not read dropped, its own set."""
    values = {**TINY, "dataset": "TOY", "method": method}
    if method != "tfvaegan":
        for key in TFVAEGAN_ONLY:
            values.pop(key)
        values["feedback_loop"] = 1
    if method == "fvaegan":
        values.pop("ngh")  # its generator is generator_hidden wide
    if method == "free":
        values.update(recons_weight=0.1, dec_lr=1e-4, center_margin=5.0, feedback_loop=2)
    if method == "fclswgan":
        for key in (*VAE_WIDTHS, "encoded_noise"):
            values.pop(key)
        values.update(gammaD=1, gammaG=1, adaptive_lambda=False, cls_weight=0.1)
    return values


def resolved(method: str, toy, **extra) -> Config:
    _, cfg, zdata = toy
    cfg = from_mapping({**method_values(method), **extra})
    return cfg.resolved(zdata.res_size, zdata.att_size, zdata.n_classes)


# ------------------------------------------------------------------ refusals, before anything runs
def test_an_unknown_method_is_refused():
    with pytest.raises(ConfigError, match=r"key 'method': expected one of \('tfvaegan', 'fclswgan', 'fvaegan', 'free'\), "
                                          r"found 'clswgan'"):
        from_mapping({"method": "clswgan"})


@pytest.mark.parametrize("key, value, method", [("center_weight", 0.3, "fclswgan"), ("cls_weight", 0.2, "free"),
                                                ("recons_weight", 0.01, "fvaegan"), ("a1", 0.5, "free"),
                                                ("encoded_noise", True, "fclswgan"), ("center_loss", "min_margin",
                                                                                      "tfvaegan"),
                                                ("ngh", 128, "fvaegan"), ("amp", True, "free")])
def test_a_key_of_another_method_is_refused(key, value, method):
    with pytest.raises(ConfigError) as caught:
        from_mapping({"method": method, key: value}, source="cub_x.yaml")
    message = str(caught.value)
    assert message.startswith(f"cub_x.yaml: key '{key}'") and f"method {method!r} would ignore it" in message
    assert "\n" not in message


@pytest.mark.parametrize("values", [{}, {"gammaD": 1, "gammaG": 1}, {"adaptive_lambda": False}])
def test_fclswgan_with_loss_weights_or_an_adaptive_penalty_is_refused(values):
    """TF-VAEGAN's defaults (γD = γG = 1000, adaptive λ) are not f-CLSWGAN: its settings must say so."""
    with pytest.raises(ConfigError, match=r"keys 'gammaD', 'gammaG', 'adaptive_lambda': f-CLSWGAN's losses"):
        from_mapping({"method": "fclswgan", **values})
    assert from_mapping({"method": "fclswgan", "gammaD": 1, "gammaG": 1, "adaptive_lambda": False}).gammaG == 1


@pytest.mark.parametrize("method", ["fclswgan", "free"])
def test_transductive_training_is_refused_where_a_method_has_no_transductive_form(method):
    with pytest.raises(ConfigError, match=rf"key 'transductive': method '{method}' has no transductive form"):
        from_mapping({"method": method, "transductive": True})


def test_every_method_key_belongs_to_a_method_and_each_default_passes():
    for key, (owners, meaning) in METHOD_KEYS.items():
        assert hasattr(Config, key) and set(owners) <= set(METHODS) and meaning
    for method in METHODS:
        extra = {"gammaD": 1, "gammaG": 1, "adaptive_lambda": False} if method == "fclswgan" else {}
        assert from_mapping({"method": method, **extra}).method == method  # the other defaults are every method's
    assert set(MODELS) == set(METHODS)


# ------------------------------------------------------------------ the shared floor
def test_each_method_gets_its_trainer_and_model(toy):
    expected = {"tfvaegan": (Trainer, TFVAEGAN), "fvaegan": (Trainer, FVAEGAN), "free": (FREETrainer, None),
                "fclswgan": (FCLSWGANTrainer, None)}
    for method, (trainer_class, model_class) in expected.items():
        cfg = resolved(method, toy)
        assert trainer_for(cfg) is trainer_class
        if model_class is not None:
            assert type(MODELS[method](cfg)) is model_class
    assert trainer_for(resolved("fvaegan", toy, transductive=True)) is TransductiveTrainer  # f-VAEGAN-D2


def test_fvaegan_steps_as_tfvaegan_without_decoder_and_feedback(toy):
    """f-VAEGAN's step is TF-VAEGAN's baseline step (no decoder loss, no feedback pass), which the official
    oracle checks (tests/test_oracle.py): from the same weights and seed both move the encoder, generator
    and critic identically; and f-VAEGAN's model holds no decoder or feedback module at all."""
    _, _, zdata = toy
    fvaegan = Trainer(resolved("fvaegan", toy), zdata, torch.device("cpu"))
    baseline_cfg = dataclasses.replace(resolved("tfvaegan", toy), recons_weight=0.0, feedback_loop=1)
    baseline = Trainer(baseline_cfg, zdata, torch.device("cpu"))
    for name in ("encoder", "generator", "critic"):
        getattr(baseline.model, name).load_state_dict(getattr(fvaegan.model, name).state_dict())
    for trainer in (fvaegan, baseline):
        torch.manual_seed(5)
        trainer.step(feedback_pass=False)
    for name in ("encoder", "generator", "critic"):
        for key, value in getattr(fvaegan.model, name).state_dict().items():
            assert torch.equal(value, getattr(baseline.model, name).state_dict()[key]), (name, key)
    assert fvaegan.model.decoder is None and not hasattr(fvaegan.model, "feedback")
    assert set(fvaegan.opt) == {"encoder", "generator", "critic"}


def test_fvaegan_d2_steps_as_tfvaegan_transductive_without_decoder_and_feedback(toy):
    """f-VAEGAN-D2's step is TF-VAEGAN's transductive step (tests/test_transductive_oracle.py checks it against
    the authors' pre-release code) without the decoder's loss and the feedback pass: from the same weights and
    seed both move the encoder, generator, critic and D2 identically."""
    _, _, zdata = toy
    d2 = TransductiveTrainer(resolved("fvaegan", toy, transductive=True), zdata, torch.device("cpu"))
    baseline_cfg = dataclasses.replace(resolved("tfvaegan", toy, transductive=True), recons_weight=0.0,
                                       feedback_loop=1)
    baseline = TransductiveTrainer(baseline_cfg, zdata, torch.device("cpu"))
    modules = ("encoder", "generator", "critic")
    for name in modules:
        getattr(baseline.model, name).load_state_dict(getattr(d2.model, name).state_dict())
    baseline.critic2.load_state_dict(d2.critic2.state_dict())
    d2_before = d2.critic2.fc1.weight.clone()
    for trainer in (d2, baseline):
        torch.manual_seed(5)
        trainer.step(feedback_pass=False)
    for ours, theirs in [(getattr(d2.model, n), getattr(baseline.model, n)) for n in modules] + [(d2.critic2,
                                                                                                  baseline.critic2)]:
        for key, value in ours.state_dict().items():
            assert torch.equal(value, theirs.state_dict()[key]), key
    assert not torch.equal(d2.critic2.fc1.weight, d2_before)  # D2 was trained


@pytest.mark.parametrize("method, extra", [("free", {}), ("fclswgan", {}), ("fvaegan", {"transductive": True})],
                         ids=["free", "fclswgan", "fvaegan_d2"])
def test_an_interrupted_training_resumes_to_the_same_model(toy, tmp_path, method, extra):
    """As tests/test_core.py for TF-VAEGAN: FREE's checkpoint holds the centers' accumulated gradient,
    f-CLSWGAN's the frozen classifier, f-VAEGAN-D2's its critic D2."""
    _, _, zdata = toy
    cfg = resolved(method, toy, nepoch=3, checkpoint_every=1, **extra)
    make = trainer_for(cfg)
    quiet = lambda _: None  # noqa: E731
    straight = train(cfg, zdata, torch.device("cpu"), make_trainer=make, log=quiet)
    ckpt = tmp_path / "model.ckpt"

    def crash(row):
        if row["epoch"] == 2:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        train(cfg, zdata, torch.device("cpu"), make_trainer=make, checkpoint=ckpt, fingerprint="x", log=quiet,
              on_epoch=crash)
    messages = []
    resumed = train(cfg, zdata, torch.device("cpu"), make_trainer=make, checkpoint=ckpt, fingerprint="x",
                    log=messages.append)
    assert any("resuming" in m for m in messages)
    for name, value in straight.trainer.model.state_dict().items():
        assert torch.equal(value, resumed.trainer.model.state_dict()[name]), name


def test_plain_trainer_refuses_the_methods_of_other_rooms(toy):
    _, _, zdata = toy
    for method in ("free", "fclswgan"):
        with pytest.raises(ValueError, match="trainer_for"):
            Trainer(resolved(method, toy), zdata, torch.device("cpu"))


def test_the_center_loss_forms_on_a_hand_made_batch():
    loss = CenterLoss(3, 2)
    with torch.no_grad():
        loss.centers.copy_(torch.tensor([[0.0, 0.0], [3.0, 0.0], [0.0, 1.0]]))
    latent, labels = torch.tensor([[1.0, 0.0]]), torch.tensor([0])
    # distances to the centers: 1, 4, 2; own = 1
    nearest = loss(latent, labels, None, margin=0.5, incenter_weight=0.8)  # the nearest other: 2
    assert nearest.item() == pytest.approx(max(0.0, 0.5 + 0.8 * 1 - 0.2 * 2))
    random_other = loss(latent, labels, torch.tensor([1]), margin=0.5, incenter_weight=0.8)  # class 1: 4
    assert random_other.item() == pytest.approx(max(0.0, 0.5 + 0.8 * 1 - 0.2 * 4))
    own = loss(latent, labels, torch.tensor([3]), margin=0.5, incenter_weight=0.8)  # wraps to itself, as run
    assert own.item() == pytest.approx(0.5 + 0.8 - 0.2)


def test_fclswgan_pretrains_a_seen_classifier_that_stays_frozen(toy):
    _, _, zdata = toy
    trainer = FCLSWGANTrainer(resolved("fclswgan", toy), zdata, torch.device("cpu"))
    classifier = trainer.model.seen_classifier
    predicted = zdata.seenclasses[classifier(zdata.train_feature).argmax(1)]
    accuracy = (predicted == zdata.train_label).float().mean().item()
    assert accuracy > 3 / len(zdata.seenclasses)  # far above chance on the features it was trained on
    before = {k: v.clone() for k, v in classifier.state_dict().items()}
    generator_before = trainer.model.generator.fc1.weight.clone()
    trainer.step(feedback_pass=False)
    assert all(torch.equal(before[k], v) for k, v in classifier.state_dict().items())
    assert not torch.equal(generator_before, trainer.model.generator.fc1.weight)
    assert set(trainer.opt) == {"generator", "critic"}


def test_free_accumulates_the_centers_gradient_as_the_reference_does(toy):
    """train_free.py never zeroes the centers' gradient: after two critic steps it is the sum of both."""
    _, _, zdata = toy
    trainer = FREETrainer(resolved("free", toy), zdata, torch.device("cpu"))
    trainer.opt["centers"] = torch.optim.SGD(trainer.model.center.parameters(), lr=0.0)  # keep the centers fixed
    grads = []
    for _ in range(2):
        x, att, target = trainer.sample()
        trainer.critic_step(x, att, target, False)
        grads.append(trainer.model.center.centers.grad.clone())
    assert grads[0].abs().sum() > 0
    assert not torch.allclose(grads[1], grads[0])
    second_alone = grads[1] - grads[0]
    assert second_alone.abs().sum() > 0  # the second step's own gradient was added, not replaced


# ------------------------------------------------------------------ end to end, through the files
@pytest.mark.parametrize("method", ["fclswgan", "fvaegan", "free"])
def test_a_method_runs_end_to_end_and_its_model_file_synthesises_the_same(toy, tmp_path, method):
    root, _, _ = toy
    cfg = from_mapping({**method_values(method), "nepoch": 2, "classifier_nepoch": 3})
    metrics = stages.run(cfg, root, tmp_path / "run")
    assert metrics["method"] == method and metrics["config"]["method"] == method
    assert 0.0 <= metrics["zsl_acc"] <= 1.0 and 0.0 <= metrics["gzsl_h"] <= 1.0
    in_memory = load_artifact(tmp_path / "run" / "synthetic.pt", SYNTHETIC_FORMAT)
    stages.synthesize_stage(tmp_path / "run" / "model.pt", tmp_path / "again.pt")
    from_file = load_artifact(tmp_path / "again.pt", SYNTHETIC_FORMAT)
    assert torch.equal(in_memory["features"], from_file["features"])
    saved = torch.load(tmp_path / "run" / "model.pt", weights_only=True)
    assert list(saved["state"]) == list(MODELS[method].saved_modules)
    if method == "free":  # the one method whose evaluation draws random numbers of its own (the refined features)
        again = stages.run(cfg, root, tmp_path / "rerun")
        assert (again["zsl_acc"], again["gzsl_h"]) == (metrics["zsl_acc"], metrics["gzsl_h"])


def test_fvaegan_d2_trains_its_unlabelled_critic(toy, tmp_path):
    root, _, _ = toy
    cfg = from_mapping({**method_values("fvaegan"), "transductive": True, "nepoch": 1, "classifier_nepoch": 3})
    metrics = stages.run(cfg, root, tmp_path / "run")
    assert metrics["method"] == "fvaegan" and metrics["setting"] == "transductive"
    log = (tmp_path / "run" / "train_log.csv").read_text().splitlines()
    header, first = log[0].split(","), log[1].split(",")
    assert first[header.index("loss_d2")] != ""
