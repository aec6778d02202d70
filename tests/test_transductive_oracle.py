"""The transductive step against its oracle, tfvaegan/bench/official_transductive.py (the authors'
pre-release train_tfvaegan_transductive.py transcribed, independently of the package's code): every
benchmark's transductive settings, both passes, lambda1 and every parameter (D2's included) after one
iteration, with the authors' `labels` prior. The package's two deliberate differences (freeze_dec
honoured; with encoded_noise off the seen fake's feedback is the reconstruction's) are compared as
differences: everything else agrees, and each difference is exactly the documented one. The
`uniform` prior differs from `labels` only in the classes of the D2 fakes."""
from __future__ import annotations

import copy
import dataclasses
from dataclasses import dataclass
from types import SimpleNamespace

import pytest
import torch

from conftest import PROJECT_ROOT
from tfvaegan.bench import official, official_transductive
from tfvaegan.config import read_file
from tfvaegan.method import transductive
from tfvaegan.method.losses import critic_loss_and_gradients
from tfvaegan.method.models import TFVAEGAN, UnconditionalCritic
from tfvaegan.method.transductive import TransductiveTrainer

# What decides the branch a benchmark's transductive iteration takes, and its loss weights.
BRANCH_KEYS = ("encoded_noise", "freeze_dec", "recons_weight", "a1", "gammaD", "gammaG", "gammaD2", "gammaG_D2",
               "lambda1")
SETTINGS = sorted(p.stem for p in (PROJECT_ROOT / "config" / "benchmarks").glob("*_transductive.yaml"))
CPU = torch.device("cpu")
MODULES = ("encoder", "generator", "critic", "feedback", "decoder")
ATOL, RTOL = 2e-6, 1e-4
LR = 1e-2
WEIGHT_STD = 0.1


def settings_of(name: str) -> dict:
    values = read_file(PROJECT_ROOT / "config" / "benchmarks" / f"{name}.yaml")
    return {key: values[key] for key in BRANCH_KEYS if key in values}


FREEZE_DEC_SETTINGS = [name for name in SETTINGS if settings_of(name).get("freeze_dec")]
PRIOR_NOISE_SETTINGS = [name for name in SETTINGS if settings_of(name).get("encoded_noise") is False]


def transductive_cfg(cfg, name: str, **overrides):
    return dataclasses.replace(cfg, critic_iter=3, transductive=True, transductive_prior="labels",
                               transductive_unlabelled="test_unseen",
                               **{**settings_of(name), **overrides})


def sgd(module):
    # Plain SGD on both sides, as tests/test_oracle.py explains: Adam turns rounding-sized gradients
    # (a critic bias whose real and fake terms cancel) into lr-sized steps, which would hide what is
    # compared; the D2 optimiser's settings are compared with the authors' below.
    return torch.optim.SGD(module.parameters(), lr=LR)


def nontrivial_weights(trainer: TransductiveTrainer) -> None:
    """Every Linear layer N(0, 0.1²) (biases N(0, 0.01²)) instead of N(0, 0.02²) and zero: at the toy's
    widths the official initialisation makes the generator nearly constant and the feedback ~1e-5 of
    its hidden state, so a wrong feedback source or a missing bias path would sit at rounding level.
    Both sides get these same weights."""
    g = torch.Generator().manual_seed(1)
    with torch.no_grad():
        for module in (*trainer.model.modules(), *trainer.critic2.modules()):
            if isinstance(module, torch.nn.Linear):
                module.weight.normal_(0, WEIGHT_STD, generator=g)
                module.bias.normal_(0, 0.01, generator=g)


@dataclass
class Run:
    trainer: TransductiveTrainer
    nets: official.OfficialNets
    netD2: official_transductive.Discriminator_D2
    expected_lambda: float
    initial: dict  # module name -> its state dict before the step (both sides)

    def ours(self) -> dict:
        return {**{name: getattr(self.trainer.model, name).state_dict() for name in MODULES},
                "critic2": self.trainer.critic2.state_dict()}

    def theirs(self) -> dict:
        return {**{name: module.state_dict() for name, module in self.nets.modules().items()},
                "critic2": self.netD2.state_dict()}

    def differences(self) -> dict[str, float]:
        """`module.parameter` -> max |ours − theirs|, where they differ beyond the tolerance."""
        ours, theirs = self.ours(), self.theirs()
        return {f"{name}.{key}": (value - theirs[name][key]).abs().max().item()
                for name in ours for key, value in ours[name].items()
                if not torch.allclose(value, theirs[name][key], atol=ATOL, rtol=RTOL)}

    def max_differences(self) -> dict[str, float]:
        """module -> max |ours − theirs| over its parameters."""
        ours, theirs = self.ours(), self.theirs()
        return {name: max((v - theirs[name][k]).abs().max().item() for k, v in ours[name].items()) for name in ours}

    def moved(self) -> set[str]:
        """The oracle's modules the step moved by well over the comparison's tolerance."""
        theirs = self.theirs()
        return {name for name in theirs
                if max((v - self.initial[name][k]).abs().max().item() for k, v in theirs[name].items()) > 20 * ATOL}


def stepped(cfg, data, feedback_pass: bool, scale_critics: float = 1.0) -> Run:
    """Our TransductiveTrainer and the oracle from the same weights, both with plain SGD, each after
    one step from the same seed."""
    torch.manual_seed(0)
    trainer = TransductiveTrainer(cfg, data, CPU)
    nontrivial_weights(trainer)
    with torch.no_grad():
        for critic in (trainer.model.critic, trainer.critic2):
            for p in critic.parameters():
                p.mul_(scale_critics)
    initial = {**{name: copy.deepcopy(getattr(trainer.model, name).state_dict()) for name in MODULES},
               "critic2": copy.deepcopy(trainer.critic2.state_dict())}
    nets = official.official_nets(cfg, initial)
    netD2 = official_transductive.Discriminator_D2(nets.opt)
    netD2.load_state_dict(copy.deepcopy(initial["critic2"]))
    for name in list(trainer.opt):
        trainer.opt[name] = sgd(trainer.critic2 if name == "critic2" else getattr(trainer.model, name))
    opts = official_transductive.official_transductive_optimizers(nets, netD2, cfg, make=sgd)
    torch.manual_seed(123)
    expected_lambda = official_transductive.official_transductive_step(nets, netD2, opts, cfg, data,
                                                                       int(feedback_pass), cfg.lambda1)
    torch.manual_seed(123)
    trainer.step(feedback_pass)
    return Run(trainer, nets, netD2, expected_lambda, initial)


def parameter_count(run: Run) -> int:
    return sum(len(state) for state in run.ours().values())


def test_every_authors_setting_is_compared():
    assert SETTINGS == sorted(f"{b}{f}_transductive" for b in ("cub", "awa2", "flo", "sun") for f in ("", "_finetuned"))
    assert FREEZE_DEC_SETTINGS == ["awa2_finetuned_transductive", "awa2_transductive"]
    assert PRIOR_NOISE_SETTINGS == ["sun_finetuned_transductive"]


# ------------------------------------------------------------------ one iteration, every setting
@pytest.mark.parametrize("feedback_pass", [False, True], ids=["pass0", "feedback_pass"])
@pytest.mark.parametrize("name", SETTINGS)
def test_transductive_step_matches_the_authors_iteration(toy, name, feedback_pass):
    _, cfg, data = toy
    # freeze_dec: compared as the authors' script trains, which never reads the flag (its generator
    # step always steps the decoder); ours honours it: test_freeze_dec_... below.
    cfg = transductive_cfg(cfg, name, freeze_dec=False)
    run = stepped(cfg, data, feedback_pass)
    assert run.trainer.lambda1.item() == pytest.approx(run.expected_lambda, rel=1e-6)
    assert len(run.ours()["critic2"]) == 4 and parameter_count(run) == 4 + len(list(run.trainer.model.parameters()))
    always_moved = {"encoder", "generator", "critic", "critic2", "decoder"}
    assert run.moved() == always_moved | ({"feedback"} if feedback_pass else set())
    differ = run.differences()
    if feedback_pass and not cfg.encoded_noise:
        # Deliberate (docs/transductive.md): in the generator step our seen fake from N(0, I) noise
        # takes the feedback of the reconstruction (the released code), the authors' transductive
        # script its own (feedback_module). Both critics and the adaptive rule, which come before
        # it, agree; the modules the generator step moves differ, by exactly that choice:
        # test_the_feedback_source_of_the_seen_prior_fake_is_the_only_difference.
        assert differ and all(key.startswith(("encoder.", "generator.", "feedback.", "decoder.")) for key in differ)
    else:
        assert differ == {}


@pytest.mark.parametrize("name", PRIOR_NOISE_SETTINGS)
def test_the_feedback_source_of_the_seen_prior_fake_is_the_only_difference(toy, monkeypatch, name):
    """With the seen fake's feedback taken from the fake itself (the authors' feedback_module), our
    feedback pass with encoded_noise off is the authors' iteration."""
    _, cfg, data = toy
    cfg = transductive_cfg(cfg, name, freeze_dec=False)
    assert not cfg.encoded_noise
    original = TFVAEGAN.generate
    sources = []

    def own_feedback(self, z, att, feedback_weight=None, feedback_source=None):
        sources.append(feedback_source is not None)
        return original(self, z, att, feedback_weight)

    released = stepped(cfg, data, feedback_pass=True)
    monkeypatch.setattr(TFVAEGAN, "generate", own_feedback)
    run = stepped(cfg, data, feedback_pass=True)
    assert sources.count(True) == 1  # the generator step's seen prior fake, and nothing else
    assert run.trainer.lambda1.item() == pytest.approx(run.expected_lambda, rel=1e-6)
    assert run.differences() == {}
    # unpatched, the modules the generator step moves differ by far more than rounding
    # (at the toy's sizes and SUN's a1 = 0.1 the difference itself is small)
    before, after = released.max_differences(), run.max_differences()
    for module in ("generator", "feedback", "decoder"):
        assert before[module] > 10 * after[module], (module, before[module], after[module])


@pytest.mark.parametrize("feedback_pass", [False, True], ids=["pass0", "feedback_pass"])
@pytest.mark.parametrize("name", FREEZE_DEC_SETTINGS)
def test_freeze_dec_keeps_the_decoder_out_of_our_generator_step(toy, monkeypatch, name, feedback_pass):
    """AWA2's freeze_dec, which the authors' script ignores: our generator step leaves the decoder as
    our critic loop left it (and that equals the authors' decoder before their generator step); every
    other parameter agrees with the authors' iteration, whose generator step moves the decoder."""
    _, cfg, data = toy
    cfg = transductive_cfg(cfg, name)
    assert cfg.freeze_dec and cfg.recons_weight > 0
    before = {}
    ours_generator_step = TransductiveTrainer.generator_step
    theirs_generator_step = official_transductive._generator_step

    def ours_spy(self, *args):
        before["ours"] = copy.deepcopy(self.model.decoder.state_dict())
        return ours_generator_step(self, *args)

    def theirs_spy(state, *args):
        before["theirs"] = copy.deepcopy(state.nets.netDec.state_dict())
        return theirs_generator_step(state, *args)

    monkeypatch.setattr(TransductiveTrainer, "generator_step", ours_spy)
    monkeypatch.setattr(official_transductive, "_generator_step", theirs_spy)
    run = stepped(cfg, data, feedback_pass)
    ours_after, theirs_after = run.trainer.model.decoder.state_dict(), run.nets.netDec.state_dict()
    for key, value in ours_after.items():
        assert torch.equal(value, before["ours"][key]), key  # untouched by our generator step
        assert torch.allclose(before["ours"][key], before["theirs"][key], atol=ATOL, rtol=RTOL), key
    assert any(not torch.allclose(v, before["theirs"][k], atol=ATOL, rtol=RTOL) for k, v in theirs_after.items())
    assert run.trainer.lambda1.item() == pytest.approx(run.expected_lambda, rel=1e-6)
    assert run.differences() and all(key.startswith("decoder.") for key in run.differences())


def test_both_directions_of_the_adaptive_rule_and_unequal_d2_weights(toy):
    """The settings all have gammaD2 = gammaD, gammaG_D2 = gammaG and, at the toy's weights, a penalty
    that lowers λ; here the weights differ (the authors divide the summed penalties by gammaD2 alone)
    and the critics' scale sends λ both ways."""
    _, cfg, data = toy
    cfg = dataclasses.replace(transductive_cfg(cfg, "cub_transductive"), gammaD=10.0, gammaD2=2.0, gammaG=5.0,
                              gammaG_D2=0.5, critic_iter=2)
    directions = set()
    for scale in (1.0, 1.5):  # the authors' normalised penalty sum above 1.05, then below 1.001
        run = stepped(cfg, data, feedback_pass=True, scale_critics=scale)
        assert run.trainer.lambda1.item() == pytest.approx(run.expected_lambda, rel=1e-6), scale
        directions.add((run.expected_lambda > cfg.lambda1) - (run.expected_lambda < cfg.lambda1))
        assert run.differences() == {}, scale
    assert {-1, 1} <= directions


# ------------------------------------------------------------------ the parts
def test_unlabelled_batches_are_the_authors_next_unseen_batch(toy):
    _, cfg, data = toy
    cfg = dataclasses.replace(cfg, transductive=True, transductive_prior="labels",
                              transductive_unlabelled="test_unseen")
    trainer = TransductiveTrainer(cfg, data, CPU)
    torch.manual_seed(9)
    features, att, target = trainer.sample_unlabelled()
    torch.manual_seed(9)
    their_features, their_att = official_transductive.next_unseen_batch(data, cfg.batch_size)
    assert torch.equal(features, their_features) and torch.equal(att, their_att)
    assert torch.equal(target, att)  # no bce_att: the decoder regresses the class embeddings


def test_d2_optimiser_is_the_authors(toy):
    _, cfg, data = toy
    cfg = dataclasses.replace(cfg, transductive=True, lr=3e-4, beta1=0.4, feed_lr=2e-5, dec_lr=7e-5)
    trainer = TransductiveTrainer(cfg, data, CPU)
    nets = official.official_nets(cfg)
    theirs = official_transductive.official_transductive_optimizers(
        nets, official_transductive.Discriminator_D2(nets.opt), cfg)["optimizerD2"]
    mine = trainer.opt["critic2"]
    assert type(mine) is type(theirs) is torch.optim.Adam
    for setting in ("lr", "betas", "eps", "weight_decay", "amsgrad", "maximize"):  # ours is fused: same update
        assert mine.param_groups[0][setting] == theirs.param_groups[0][setting], setting
    assert mine.param_groups[0]["betas"] == (0.4, 0.999) and mine.param_groups[0]["lr"] == 3e-4
    assert [p.shape for p in mine.param_groups[0]["params"]] == [p.shape for p in theirs.param_groups[0]["params"]]
    assert [p is q for p, q in zip(mine.param_groups[0]["params"], trainer.critic2.parameters())] == [True] * 4


class _TrueClassDraw:
    """`torch` as method/transductive.py sees it, except that the uniform prior's class draw
    (torch.randint) returns the positions, among the unseen classes, of the TRUE classes of the rows
    just drawn (torch.randperm): the embeddings the `labels` prior reads, and no extra random draw."""

    def __init__(self, data):
        assert torch.equal(data.unseenclasses, data.unseenclasses.sort().values)
        self.true_positions = torch.searchsorted(data.unseenclasses, data.test_unseen_label)
        assert torch.equal(data.unseenclasses[self.true_positions], data.test_unseen_label)
        self.n_classes, self.rows, self.draws = data.unseenclasses.numel(), None, 0

    def __getattr__(self, name):
        return getattr(torch, name)

    def randperm(self, *args, **kwargs):
        self.rows = torch.randperm(*args, **kwargs)
        return self.rows

    def randint(self, high, size, device=None):
        self.draws += 1
        assert high == self.n_classes
        return self.true_positions[self.rows[: size[0]]].to(device)


def _uniform_step(cfg, data):
    torch.manual_seed(0)
    trainer = TransductiveTrainer(cfg, data, CPU)
    nontrivial_weights(trainer)
    torch.manual_seed(123)
    trainer.step(True)
    return {**trainer.model.state_dict(), **{f"critic2.{k}": v for k, v in trainer.critic2.state_dict().items()},
            "lambda1": trainer.lambda1}


def test_uniform_prior_differs_only_in_the_classes_of_the_d2_fakes(toy, monkeypatch):
    _, cfg, data = toy
    cfg = dataclasses.replace(cfg, critic_iter=2, transductive=True, transductive_prior="uniform",
                              transductive_unlabelled="test_unseen")  # the authors' rows, our prior
    labels = _uniform_step(dataclasses.replace(cfg, transductive_prior="labels"), data)
    uniform = _uniform_step(cfg, data)
    # Unpatched they differ from D2's first step on; the critic D, stepped before any class draw, agrees.
    assert all(torch.equal(labels[k], uniform[k]) for k in labels if k.startswith("critic."))
    assert not torch.equal(labels["critic2.fc1.weight"], uniform["critic2.fc1.weight"])
    assert not torch.equal(labels["generator.fc1.weight"], uniform["generator.fc1.weight"])
    # The uniform trainer handed the true labels' classes instead of its uniform draws trains as the labels one.
    draw = _TrueClassDraw(data)
    monkeypatch.setattr(transductive, "torch", draw)
    patched = _uniform_step(cfg, data)
    assert draw.draws == cfg.critic_iter
    for key, value in labels.items():
        assert torch.equal(value, patched[key]), key


@pytest.mark.parametrize("weight_std", [0.02, 0.5], ids=["gradient_norm_below_1", "gradient_norm_above_1"])
def test_closed_form_d2_update_equals_autograd_of_the_authors_loss(weight_std):
    """critic_loss_and_gradients with an empty class embedding against the authors' D2 iteration:
    criticD2_real.backward(mone), criticD2_fake.backward(one), the penalty's (weight gammaD2·lambda2)
    backward, on a batch of 6."""
    g = torch.Generator().manual_seed(2)
    batch, res, hidden, gamma, lam = 6, 7, 16, 10.0, 3.0
    ours = UnconditionalCritic(res, hidden)
    with torch.no_grad():
        for p in ours.parameters():
            p.normal_(0, weight_std, generator=g)
    opt = SimpleNamespace(resSize=res, ndh=hidden, batch_size=batch, lambda1=lam, lambda2=lam)
    theirs = official_transductive.Discriminator_D2(opt)
    theirs.load_state_dict(ours.state_dict())
    real, fake = torch.rand(batch, res, generator=g), torch.rand(batch, res, generator=g)
    one = torch.tensor(1.0)
    theirs.zero_grad()
    criticD2_real = gamma * theirs(real).mean()
    criticD2_real.backward(-one)
    criticD2_fake = gamma * theirs(fake).mean()
    criticD2_fake.backward(one)
    torch.manual_seed(5)
    gradient_penalty_D2 = gamma * official_transductive.calc_gradient_penalty(theirs, real, fake, opt)
    gradient_penalty_D2.backward()
    torch.manual_seed(5)
    alpha = torch.rand(batch, 1)  # the authors' alpha draw
    interpolates = (alpha * real + (1 - alpha) * fake).requires_grad_(True)
    norms = torch.autograd.grad(theirs(interpolates).sum(), interpolates)[0].norm(dim=1)
    assert bool((norms < 1).all()) == (weight_std < 0.1) and bool((norms > 1).all()) == (weight_std > 0.1)
    penalty, loss, wasserstein = critic_loss_and_gradients(ours, real, fake, real[:, :0], alpha, gamma,
                                                           torch.tensor(gamma * lam))
    assert gamma * lam * penalty.item() == pytest.approx(gradient_penalty_D2.item(), rel=1e-5)
    assert loss.item() == pytest.approx((criticD2_fake - criticD2_real + gradient_penalty_D2).item(), rel=1e-5)
    assert wasserstein.item() == pytest.approx((criticD2_real - criticD2_fake).item(), rel=1e-5, abs=1e-7)
    for (name, mine), (_, official_param) in zip(ours.named_parameters(), theirs.named_parameters()):
        assert torch.allclose(mine.grad, official_param.grad, atol=1e-6, rtol=1e-4), name
