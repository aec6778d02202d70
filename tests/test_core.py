"""Core method: shapes, losses against hand-computed values, the adaptive λ, metrics, faithfulness of
one training step to a literal transcription of the official loop, determinism and resuming."""
from __future__ import annotations

import copy
import dataclasses
import math
from pathlib import Path

import pytest
import torch
from toy import load_test_split

from tfvaegan.config import Config, ConfigError, from_mapping
from tfvaegan.device import resolve_device
from tfvaegan.method.classifier import ClassifierSettings
from tfvaegan.method.evaluate import EvalSet, gzsl, zsl
from tfvaegan.method.losses import (
    adapt_lambda,
    critic_loss_and_gradients,
    decoder_loss,
    gradient_penalty,
    vae_loss,
    weighted_l1,
)
from tfvaegan.method.metrics import harmonic_mean, per_class_accuracy
from tfvaegan.method.models import TFVAEGAN, Critic
from tfvaegan.method.train import Trainer, train


# ------------------------------------------------------------------ models
def test_shapes_and_widths(toy):
    _, cfg, zdata = toy
    cfg = dataclasses.replace(cfg, ngh=48, generator_hidden=48, encoder_hidden=40, ndh=24, nz=10)
    model = TFVAEGAN(cfg)
    x = zdata.train_feature[:5]
    att = zdata.attribute[zdata.train_label[:5]]
    mean, log_var = model.encoder(x, att)
    assert mean.shape == log_var.shape == (5, cfg.latent_size)
    assert model.encoder.fc1.out_features == 40
    fake = model.generator(torch.randn(5, 10), att)
    assert fake.shape == x.shape and bool(((fake > 0) & (fake < 1)).all())
    assert model.critic(x, att).shape == (5, 1) and model.critic.fc1.out_features == 24
    hidden, out = model.decoder(x)
    assert hidden.shape == (5, 48)
    assert torch.allclose(out.norm(dim=1), torch.ones(5), atol=1e-5)
    assert model.feedback(hidden).shape == (5, 48)
    assert model.discriminative_features(x).shape == (5, x.shape[1] + 48 + cfg.attSize)
    assert model.synthesize(torch.randn(5, 10), att).shape == x.shape


def test_initialisation_is_official():
    model = TFVAEGAN(Config(resSize=300, attSize=20, nclass_all=5, nz=20, latent_size=20, ngh=256,
                            generator_hidden=256, encoder_hidden=256, ndh=256))
    weight = model.critic.fc1.weight
    assert abs(weight.std().item() - 0.02) < 0.002 and abs(weight.mean().item()) < 0.002
    assert all(float(m.bias.detach().abs().max()) == 0 for m in model.modules() if isinstance(m, torch.nn.Linear))


def test_feedback_and_generator_widths_must_agree():
    with pytest.raises(ConfigError, match="generator_hidden.*ngh"):
        from_mapping({"ngh": 1024, "generator_hidden": 4096})
    from_mapping({"ngh": 1024, "generator_hidden": 4096, "feedback_loop": 1})  # no feedback: fine
    with pytest.raises(ConfigError, match="'nz' and 'latent_size'.*found nz=10, latent_size=8"):
        from_mapping({"nz": 10}).resolved(64, 8, 24)
    assert from_mapping({"nz": 10, "latent_size": 10}).resolved(64, 8, 24).nz == 10


def test_sigmoid_decoder_for_bce_attributes():
    model = TFVAEGAN(Config(resSize=8, attSize=4, nclass_all=3, nz=4, latent_size=4, ngh=16,
                            generator_hidden=16, encoder_hidden=16, ndh=16, bce_att=True))
    _, out = model.decoder(torch.rand(3, 8))
    assert bool(((out > 0) & (out < 1)).all())


# ------------------------------------------------------------------ losses, by hand
def test_weighted_l1_by_hand():
    pred, target = torch.tensor([[1.0, 2.0], [0.0, -3.0]]), torch.zeros(2, 2)
    # row 1: error (1, 2); weights (1, 4)/sqrt(5); (1*1 + 4*2)/sqrt(5). row 2: error (0, -3);
    # weights (0, 9)/3; 9*3/3 = 9. Summed over rows, divided by the batch of 2.
    assert weighted_l1(pred, target).item() == pytest.approx((9 / math.sqrt(5) + 9) / 2, rel=1e-6)


def test_decoder_bce_by_hand():
    pred, target = torch.tensor([[0.5, 0.25], [0.9, 0.6]]), torch.tensor([[1.0, 0.0], [0.0, 1.0]])
    rows = (-math.log(0.5) - math.log(0.75)) + (-math.log(0.1) - math.log(0.6))
    assert decoder_loss(pred, target, bce=True).item() == pytest.approx(rows / 2, rel=1e-5)


def test_vae_loss_by_hand():
    recon, x = torch.tensor([[0.5, 0.8], [0.25, 0.5]]), torch.tensor([[1.0, 0.0], [0.0, 1.0]])
    mean, log_var = torch.tensor([[1.0], [0.0]]), torch.tensor([[0.0], [math.log(2.0)]])
    bce = (-math.log(0.5) - math.log(0.2)) + (-math.log(0.75) - math.log(0.5))
    kld = -0.5 * ((1 + 0 - 1 - 1) + (1 + math.log(2.0) - 0 - 2))
    assert vae_loss(recon, x, mean, log_var).item() == pytest.approx((bce + kld) / 2, rel=1e-5)


def test_gradient_penalty_by_hand():
    assert gradient_penalty(torch.tensor([[3.0, 4.0], [0.0, 1.0]])).item() == pytest.approx((16 + 0) / 2)


def test_critic_gradients_in_closed_form_match_autograd():
    torch.manual_seed(0)
    critic = Critic(res_size=7, att_size=3, hidden=32).double()
    with torch.no_grad():  # larger weights than the N(0, 0.02) start, so the penalty is far from 0
        critic.fc1.weight.mul_(20)
        critic.fc2.weight.mul_(20)
        critic.fc1.bias.normal_()
    x, fake = torch.rand(6, 7, dtype=torch.double), torch.rand(6, 7, dtype=torch.double)
    att, alpha = torch.rand(6, 3, dtype=torch.double), torch.rand(6, 1, dtype=torch.double)
    gamma_d, penalty_weight = 10.0, torch.tensor(10.0 * 2.5, dtype=torch.double)

    by_autograd = copy.deepcopy(critic)  # the official computation: three passes, double backward
    interpolates = (alpha * x + (1 - alpha) * fake).requires_grad_(True)
    (grad,) = torch.autograd.grad(by_autograd(interpolates, att).sum(), interpolates, create_graph=True)
    expected_penalty = ((grad.norm(2, dim=1) - 1) ** 2).mean()  # in float64 throughout
    expected_wasserstein = gamma_d * (by_autograd(x, att).mean() - by_autograd(fake, att).mean())
    expected_loss = -expected_wasserstein + penalty_weight * expected_penalty
    expected_loss.backward()

    pre = critic.fc1(torch.cat((alpha * x + (1 - alpha) * fake, att), 1))
    assert (pre > 0).any() and (pre < 0).any()  # both LeakyReLU slopes are exercised
    for _ in range(2):  # the second call writes into the gradient buffers of the first
        buffer = critic.fc1.weight.grad
        penalty, loss, wasserstein = critic_loss_and_gradients(critic, x, fake, att, alpha, gamma_d, penalty_weight)
    assert buffer is not None and critic.fc1.weight.grad.data_ptr() == buffer.data_ptr()
    assert penalty.item() == pytest.approx(expected_penalty.item(), rel=1e-6)  # reported in float32
    assert penalty.item() > 0.1
    assert wasserstein.item() == pytest.approx(expected_wasserstein.item(), rel=1e-10)
    assert loss.item() == pytest.approx(expected_loss.item(), rel=1e-6)
    for (name, ours), theirs in zip(critic.named_parameters(), by_autograd.parameters()):
        assert torch.allclose(ours.grad, theirs.grad, rtol=1e-9, atol=1e-10), name


def test_critic_gradients_under_bf16_autocast_stay_float32_and_close():
    # The CUDA path runs the critic step under bf16 autocast; CPU autocast exercises the same dtype logic.
    torch.manual_seed(0)
    critic = Critic(res_size=32, att_size=8, hidden=64)
    mixed = copy.deepcopy(critic)
    x, fake, att, alpha = torch.rand(16, 32), torch.rand(16, 32), torch.rand(16, 8), torch.rand(16, 1)
    critic_loss_and_gradients(critic, x, fake, att, alpha, 10.0, torch.tensor(100.0))
    with torch.autocast("cpu", dtype=torch.bfloat16):
        outputs = critic_loss_and_gradients(mixed, x, fake, att, alpha, 10.0, torch.tensor(100.0))
    assert all(value.dtype == torch.float32 for value in outputs)
    for name in ("fc1.weight", "fc2.weight"):
        full, half = dict(critic.named_parameters())[name].grad, dict(mixed.named_parameters())[name].grad
        assert half.dtype == torch.float32
        assert (full - half).abs().max() <= 0.02 * full.abs().max(), name


@pytest.mark.parametrize("penalty, factor", [(1.2, 1.1), (1.05, 1.0), (1.03, 1.0), (1.001, 1.0), (0.5, 1 / 1.1)])
def test_adaptive_lambda_rule(penalty, factor):
    out = adapt_lambda(torch.tensor(10.0), torch.tensor(penalty))
    assert out.item() == pytest.approx(10.0 * factor, rel=1e-6)


# ------------------------------------------------------------------ metrics
def test_per_class_accuracy_by_hand():
    label = torch.tensor([0, 0, 0, 0, 1, 2, 2])
    pred = torch.tensor([0, 0, 1, 1, 1, 0, 2])
    # class 0: 2/4, class 1: 1/1, class 2: 1/2 -> mean 2/3 ; over classes {0, 2}: 1/2
    assert per_class_accuracy(pred, label, torch.tensor([0, 1, 2])) == pytest.approx(2 / 3)
    assert per_class_accuracy(pred, label, torch.tensor([0, 2])) == pytest.approx(0.5)
    # a class without samples is left out of the mean, not counted as 0
    assert per_class_accuracy(pred, label, torch.tensor([0, 2, 5])) == pytest.approx(0.5)


def test_harmonic_mean():
    assert harmonic_mean(0.5, 0.25) == pytest.approx(2 * 0.5 * 0.25 / 0.75)
    assert harmonic_mean(0.0, 0.0) == 0.0


def test_per_class_accuracy_edge_cases_are_clear_errors():
    label, pred = torch.tensor([0, 1, 1]), torch.tensor([0, 1, 0])
    # labels outside the class list are ignored (official loop over the target classes)
    assert per_class_accuracy(pred, label, torch.tensor([0])) == 1.0
    assert per_class_accuracy(torch.tensor([0, 7]), label[:2], torch.tensor([0, 1])) == pytest.approx(0.5)
    empty = torch.tensor([], dtype=torch.long)
    with pytest.raises(ValueError, match="at least one labelled sample, found 0"):
        per_class_accuracy(empty, empty, torch.tensor([0]))
    with pytest.raises(ValueError, match="at least one target class, found 0"):
        per_class_accuracy(pred, label, empty)
    # a negative class id used to wrap around to the last class (class -1 scored as class 1)
    with pytest.raises(ValueError, match=r"non-negative class ids in classes, found \[-1\]"):
        per_class_accuracy(pred, label, torch.tensor([-1]))
    with pytest.raises(ValueError, match=r"non-negative class ids in label, found \[-1\]"):
        per_class_accuracy(pred, torch.tensor([-1, 1, 1]), torch.tensor([1]))


def test_harmonic_mean_refuses_values_that_are_not_accuracies():
    assert harmonic_mean(0.0, 0.7) == 0.0
    assert harmonic_mean(1.0, 1.0) == 1.0
    # -1 (the "nothing kept yet" sentinel) used to give H = 2.0
    for seen, unseen in ((-1.0, 0.5), (0.5, float("nan")), (1.5, 0.5)):
        with pytest.raises(ValueError, match="accuracy in \\[0, 1\\]"):
            harmonic_mean(seen, unseen)


def test_softmax_classifier_learns_separable_data():
    g = torch.Generator().manual_seed(0)
    centers = torch.randn(4, 6, generator=g) * 4
    y = torch.arange(4).repeat_interleave(30)
    x = centers[y] + torch.randn(len(y), 6, generator=g) * 0.3
    settings = ClassifierSettings(lr=0.01, beta1=0.5, nepoch=10, batch_size=16)
    ev = EvalSet(x[y < 2], y[y < 2], x[y >= 2], y[y >= 2])
    z = zsl(x[y >= 2], y[y >= 2], ev, torch.tensor([2, 3]), settings, torch.Generator().manual_seed(1))
    assert z.acc > 0.95 and 1 <= z.epoch <= 10 and len(z.curve) == 10
    gz = gzsl(x, y, ev, torch.tensor([0, 1]), torch.tensor([2, 3]), 4, settings, torch.Generator().manual_seed(1))
    assert gz.h > 0.95
    last = dataclasses.replace(settings, select="last")
    z_last = zsl(x[y >= 2], y[y >= 2], ev, torch.tensor([2, 3]), last, torch.Generator().manual_seed(1))
    assert z_last.epoch == 10 and len(z_last.curve) == 1  # evaluated once, at the end


def test_an_epoch_must_beat_zero_as_in_the_official_classifiers():
    """Official CLASSIFIER.fit / fit_zsl start from H = 0 and accuracy 0: a classifier that never
    gets an unseen sample right reports s = u = H = 0, not the seen accuracy of some epoch."""
    g = torch.Generator().manual_seed(0)
    centers = torch.randn(3, 6, generator=g) * 4
    y = torch.arange(3).repeat_interleave(30)
    x = centers[y] + torch.randn(len(y), 6, generator=g) * 0.3
    settings = ClassifierSettings(lr=0.01, beta1=0.5, nepoch=5, batch_size=16)
    # the unseen test samples (class 2) lie where seen class 0 lies: always classified as seen
    ev = EvalSet(x[y < 2], y[y < 2], x[y == 0], torch.full((30,), 2))
    result = gzsl(x, y, ev, torch.tensor([0, 1]), torch.tensor([2]), 3, settings, torch.Generator().manual_seed(1))
    assert (result.seen, result.unseen, result.h, result.epoch) == (0.0, 0.0, 0.0, 0)
    assert max(result.curve) == 0.0  # H was 0 in every epoch, while the seen accuracy was not
    # ZSL: never right either (the test samples labelled 2 are features the classifier learns as 1)
    ev = EvalSet(None, None, x[y == 0], torch.full((30,), 2))
    wrong = zsl(x[y != 1], torch.where(y[y != 1] == 0, 1, 2), ev, torch.tensor([1, 2]), settings,
                torch.Generator().manual_seed(1))
    assert (wrong.acc, wrong.epoch) == (0.0, 0)


# ------------------------------------------------------------------ faithfulness of one step
# ------------------------------------------------------------------ determinism and resuming
def _short(cfg, **changes):
    return dataclasses.replace(cfg, **{"nepoch": 2, "critic_iter": 1, **changes})


def test_same_seed_same_numbers_on_cpu(toy):
    _, cfg, zdata = toy
    cfg = _short(cfg)
    runs = [train(cfg, zdata, torch.device("cpu"), log=lambda _: None) for _ in range(2)]
    keys = ("loss_d", "loss_g", "wasserstein", "vae_loss", "lambda1")
    assert [[row[k] for k in keys] for row in runs[0].history] == [[row[k] for k in keys] for row in runs[1].history]
    other = train(dataclasses.replace(cfg, manualSeed=cfg.manualSeed + 1), zdata, torch.device("cpu"), log=lambda _: None)
    assert other.history[-1]["loss_d"] != runs[0].history[-1]["loss_d"]


def test_mixed_precision_step_runs_bf16_products_and_keeps_float32_state(toy):
    # CUDA runs a step's forward passes under bf16 autocast (amp); CPU autocast exercises the same
    # code: products in bf16, losses, parameters and gradients in float32, close to a float32 step.
    from tfvaegan.bench.timing import GemmRecorder

    _, cfg, zdata = toy
    trainers = []
    for autocast_device in (None, "cpu"):
        torch.manual_seed(0)
        trainer = Trainer(cfg, zdata, torch.device("cpu"))
        trainer.autocast_device = autocast_device
        torch.manual_seed(5)
        with GemmRecorder() as recorder:
            out = trainer.step(feedback_pass=True)
        trainers.append((trainer, out, {dtype for *_, dtype in recorder.shapes}))
    (full, full_out, full_dtypes), (mixed, mixed_out, mixed_dtypes) = trainers
    assert full_dtypes == {torch.float32} and torch.bfloat16 in mixed_dtypes
    for key in ("loss_g", "vae_loss"):
        assert mixed_out[key].dtype == torch.float32
        assert mixed_out[key].item() == pytest.approx(full_out[key].item(), rel=0.02, abs=0.02), key
    for name, parameter in mixed.model.named_parameters():
        assert parameter.dtype == torch.float32 and torch.isfinite(parameter).all(), name
        assert parameter.grad is None or parameter.grad.dtype == torch.float32, name


def test_amp_is_opt_in_and_float32_is_the_default():
    assert Config().amp is False and from_mapping({}).amp is False
    for name in ("paper.yaml", "config.yaml"):  # the paper tables run the official numerics on a GPU
        text = (Path(__file__).resolve().parents[1] / "config" / name).read_text()
        assert "amp: true" not in text


def test_output_activations_and_the_vae_loss_stay_float32_under_bf16_autocast():
    """Under autocast a bf16 sigmoid rounds to exactly 1 from x ≈ 7, and BCE there has no gradient:
    the generator's output, the decoder's output and the losses must run in float32."""
    from tfvaegan.method.models import Decoder, Generator

    generator = Generator(nz=2, att_size=2, res_size=3, hidden=4)
    with torch.no_grad():
        generator.fc3.weight.fill_(2.0)
        generator.fc3.bias.zero_()
    hidden = torch.full((5, 4), 1.0, requires_grad=True)  # pre-activation 8 for every output unit
    with torch.autocast("cpu", dtype=torch.bfloat16):
        bf16_sigmoid = torch.sigmoid(generator.fc3(hidden))
        recon = generator.output(hidden)
        _, decoded = Decoder(3, 2, 4, sigmoid_output=True)(recon)
    assert bf16_sigmoid.dtype == torch.bfloat16 and bool((bf16_sigmoid == 1).all())  # what float32 avoids
    assert recon.dtype == torch.float32 and bool((recon < 1).all())
    assert decoded.dtype == torch.float32
    target = torch.full((5, 3), 0.5)
    mean = torch.zeros(5, 2)
    loss = vae_loss(recon, target, mean, mean)
    loss.backward()
    assert loss.dtype == torch.float32 and float(hidden.grad.abs().sum()) > 0


def test_amp_switches_tf32_with_bf16():
    # amp: false must mean float32 throughout on CUDA, TF32 products included (only flags are set,
    # so this runs without a GPU).
    from tfvaegan.device import prepare_device

    saved = torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32
    try:
        for amp in (False, True, False):
            prepare_device(torch.device("cuda"), tf32=amp)
            assert (torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32) == (amp, amp)
    finally:
        torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32 = saved


@pytest.mark.slow
def test_compiled_step_matches_eager_without_graph_breaks(toy):
    from torch._dynamo.utils import counters

    _, cfg, zdata = toy
    cfg = _short(cfg)
    eager = train(cfg, zdata, torch.device("cpu"), log=lambda _: None)
    torch._dynamo.reset()
    counters.clear()
    compiled = train(dataclasses.replace(cfg, compile=True), zdata, torch.device("cpu"), log=lambda _: None)
    assert not counters["graph_break"], dict(counters["graph_break"])
    # The critic's fake batch and the generator's losses, each without and with feedback, and the
    # decoder's loss: five whole graphs, compiled once each.
    assert counters["stats"]["unique_graphs"] == 5
    for row_eager, row_compiled in zip(eager.history, compiled.history, strict=True):
        for key in ("loss_d", "loss_g", "wasserstein", "vae_loss", "lambda1"):
            assert row_compiled[key] == pytest.approx(row_eager[key], rel=1e-5, abs=1e-6), key


def test_interrupted_training_resumes_to_the_same_model(toy, tmp_path):
    _, cfg, zdata = toy
    cfg = _short(cfg, nepoch=3, checkpoint_every=1)
    straight = train(cfg, zdata, torch.device("cpu"), log=lambda _: None)
    ckpt = tmp_path / "model.ckpt"

    def crash(row):
        if row["epoch"] == 2:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        train(cfg, zdata, torch.device("cpu"), checkpoint=ckpt, fingerprint="x", log=lambda _: None, on_epoch=crash)
    assert ckpt.is_file()
    messages = []
    resumed = train(cfg, zdata, torch.device("cpu"), checkpoint=ckpt, fingerprint="x", log=messages.append)
    assert any("resuming" in m for m in messages)
    assert len(resumed.history) == 3
    for name, value in straight.trainer.model.state_dict().items():
        assert torch.equal(value, resumed.trainer.model.state_dict()[name]), name
    # a checkpoint of another configuration is not resumed
    messages.clear()
    train(cfg, zdata, torch.device("cpu"), checkpoint=ckpt, fingerprint="other", log=messages.append)
    assert any("ignoring" in m for m in messages)


def test_cuda_request_without_gpu_is_refused():
    if torch.cuda.is_available():
        pytest.skip("a GPU is present")
    with pytest.raises(ConfigError, match="device"):
        resolve_device("cuda")
    assert resolve_device("auto").type == "cpu"


def test_benchmark_counts_the_flops_of_every_matrix_product():
    from tfvaegan.bench.timing import GemmRecorder

    layer = torch.nn.Linear(8, 4)
    x = torch.randn(3, 8, requires_grad=True)
    with GemmRecorder() as recorder:
        layer(x).sum().backward()
    flop = sum(2 * m * k * n for m, k, n, _ in recorder.shapes)
    # forward 3x8 @ 8x4, gradient w.r.t. the input 3x4 @ 4x8, w.r.t. the weight 4x3 @ 3x8
    assert flop == 3 * (2 * 3 * 8 * 4)


def test_bench_writes_its_problem_as_a_cub_shaped_dataset(tmp_path):
    # `bench --write-data` is how a whole CUB-sized run is timed where CUB itself is absent: the
    # official CUB config must load it with CUB's sizes, and the split must be the bench's own.
    from tfvaegan.bench.problem import CUB, cub_sized_problem, write_cub_sized_dataset
    from tfvaegan.config import load as load_config

    write_cub_sized_dataset(tmp_path)
    cfg = load_config(Path(__file__).resolve().parents[1] / "config" / "benchmarks" / "cub.yaml",
                      ["preprocessing=false"])
    zdata = load_test_split(tmp_path, cfg)
    assert (zdata.res_size, zdata.att_size, zdata.n_classes) == (CUB["res"], CUB["att"], 200)
    assert len(zdata.train_label) == CUB["n_train"] and len(zdata.unseenclasses) == CUB["n_unseen"]
    _, in_memory = cub_sized_problem(torch.device("cpu"))
    assert torch.equal(zdata.train_feature, in_memory.train_feature)
    assert torch.equal(zdata.test_unseen_label, in_memory.test_unseen_label)
    assert torch.allclose(zdata.attribute, in_memory.attribute)


def test_dispatch_counter_counts_operators_and_host_reads():
    from tfvaegan.bench.timing import counted

    x = torch.rand(4, 3)
    count = counted(lambda: (x @ x.t()).sum().item())
    assert count.ops == 4 and count.host_reads == 1  # t, mm, sum, _local_scalar_dense; the item()
    assert counted(lambda: x.sum(0).tolist()).host_reads == 1
    assert torch.Tensor.tolist.__name__ == "tolist"  # restored


def test_a_training_step_reads_nothing_on_the_host_and_the_official_one_does(toy):
    """No host synchronisation inside our step (what the GPU test asserts on CUDA), counted on the
    CPU; the official iteration reads its adaptive-λ comparison on the host every step."""
    from tfvaegan.bench.official import official_generator_step, official_nets, official_optimizers
    from tfvaegan.bench.timing import counted

    _, cfg, zdata = toy
    torch.manual_seed(0)
    trainer = Trainer(cfg, zdata, torch.device("cpu"))
    for feedback_pass in (False, True):
        assert counted(lambda: trainer.step(feedback_pass)).host_reads == 0
    nets = official_nets(cfg)
    theirs = counted(lambda: official_generator_step(nets, official_optimizers(nets, cfg), cfg, zdata, 1, 10.0))
    assert theirs.host_reads >= 1 and theirs.ops > 0


@pytest.mark.slow
def test_the_bench_command_runs_as_documented(tmp_path):
    import json
    import subprocess
    import sys

    out = tmp_path / "bench.json"
    result = subprocess.run([sys.executable, "-m", "tfvaegan.bench", "--steps", "1", "--no-eval", "--no-official",
                             "--json", str(out)], capture_output=True, text=True, timeout=900,
                            cwd=Path(__file__).resolve().parents[1])
    assert result.returncode == 0, result.stderr[-2000:]
    report = json.loads(out.read_text())
    assert report["epoch_s"] > 0 and report["ops_per_epoch"] == report["ops_per_step"] * report["steps_per_epoch"]
    assert report["host_reads_per_step"] == 0
