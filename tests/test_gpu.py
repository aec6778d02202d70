"""The CUDA path, on a GPU: `python -m pytest -m gpu` (skipped where there is none).

The CPU suite runs the same code under CPU bf16 autocast and CPU torch.compile; these check what only
a GPU shows: the step's functions agree with the CPU's, bf16 autocast where CUDA refuses unsafe
operations, compiling with the CUDA backend, no host synchronisation inside a training step, and a
whole run far above chance. TFVAEGAN_GPU_TEST_DEVICE=cpu runs them on the CPU instead, to check the
tests themselves (the synchronisation check needs CUDA and skips).
"""
from __future__ import annotations

import dataclasses
import math
import os

import pytest
import torch
from toy import TINY, load_test_split

from tfvaegan.config import from_mapping
from tfvaegan.device import prepare_device
from tfvaegan.method.evaluate import evaluate
from tfvaegan.method.train import Trainer, train

DEVICE = torch.device(os.environ.get("TFVAEGAN_GPU_TEST_DEVICE", "cuda"))
pytestmark = [
    pytest.mark.gpu,
    pytest.mark.skipif(DEVICE.type == "cuda" and not torch.cuda.is_available(), reason="no CUDA GPU here"),
]
LOSS_KEYS = ("loss_d", "loss_g", "wasserstein", "vae_loss", "lambda1")


@pytest.fixture(scope="module")
def toy(toy_root):
    root, _ = toy_root
    prepare_device(DEVICE)
    cfg = from_mapping({**TINY, "dataset": "TOY", "device": str(DEVICE)})
    zdata = load_test_split(root, cfg)
    return cfg.resolved(zdata.res_size, zdata.att_size, zdata.n_classes), zdata


def _on_device(*tensors):
    return [t.to(DEVICE) for t in tensors]


@pytest.mark.parametrize("amp", [False, True])
def test_step_functions_agree_with_the_cpu(toy, amp):
    # Same weights, same batch, same noise: the forward passes of a step on the device against the
    # CPU's float32 (TF32 products, or bf16 ones under amp, hence the tolerances).
    cfg, zdata = toy
    cfg = dataclasses.replace(cfg, amp=amp)
    torch.manual_seed(0)
    cpu = Trainer(cfg, zdata, torch.device("cpu"))
    device = Trainer(cfg, zdata.to(DEVICE), DEVICE)
    device.model.load_state_dict(cpu.model.state_dict())
    x, att, target = cpu.sample()
    noise = torch.randn(x.size(0), cfg.latent_size, generator=torch.Generator().manual_seed(1))
    tolerance = 0.05 if amp else 0.01
    for feedback_pass in (False, True):
        expected = cpu.generator_losses(x, att, target, noise, None, feedback_pass)
        found = device.generator_losses(*_on_device(x, att, target, noise), None, feedback_pass)
        for name, e, f in zip(("loss", "generator_cost", "vae"), expected, found, strict=True):
            assert f.dtype == torch.float32, name
            assert f.item() == pytest.approx(e.item(), rel=tolerance, abs=tolerance), name
        with torch.no_grad():
            fake_cpu = cpu.fake_features(x, att, noise, feedback_pass)
            fake_device = device.fake_features(*_on_device(x, att, noise), feedback_pass)
        assert fake_device.dtype == torch.float32
        assert torch.allclose(fake_device.cpu(), fake_cpu, atol=tolerance)


def test_training_step_never_waits_for_the_gpu(toy):
    if DEVICE.type != "cuda":
        pytest.skip("synchronisation checking needs CUDA")
    cfg, zdata = toy
    trainer = Trainer(cfg, zdata.to(DEVICE), DEVICE)
    for feedback_pass in (False, True):  # warm-up: allocator, cuBLAS handles, optimiser state
        trainer.step(feedback_pass)
    torch.cuda.synchronize()
    torch.cuda.set_sync_debug_mode("error")  # any host-device synchronisation raises, naming the op
    try:
        for feedback_pass in (False, True):
            trainer.step(feedback_pass)
    finally:
        torch.cuda.set_sync_debug_mode("default")


def test_compiled_training_matches_eager_without_graph_breaks(toy):
    from torch._dynamo.utils import counters

    cfg, zdata = toy
    data = zdata.to(DEVICE)
    # float32 first: compiled and eager draw the same noise, so their losses must agree closely.
    cfg = dataclasses.replace(cfg, nepoch=2, critic_iter=1, amp=False)
    eager = train(cfg, data, DEVICE, log=lambda _: None)
    torch._dynamo.reset()
    counters.clear()
    compiled = train(dataclasses.replace(cfg, compile=True), data, DEVICE, log=lambda _: None)
    assert not counters["graph_break"], dict(counters["graph_break"])
    assert counters["stats"]["unique_graphs"] == 5
    for row_eager, row_compiled in zip(eager.history, compiled.history, strict=True):
        for key in LOSS_KEYS:
            assert row_compiled[key] == pytest.approx(row_eager[key], rel=1e-3, abs=1e-4), key
    # and as users run it, with bf16 autocast: still whole graphs, finite losses
    torch._dynamo.reset()
    counters.clear()
    mixed = train(dataclasses.replace(cfg, nepoch=1, amp=True, compile=True), data, DEVICE, log=lambda _: None)
    assert not counters["graph_break"], dict(counters["graph_break"])
    assert counters["stats"]["unique_graphs"] == 5
    assert all(math.isfinite(mixed.history[0][key]) for key in LOSS_KEYS)


def test_whole_run_on_the_device_is_far_above_chance(toy):
    cfg, zdata = toy
    cfg = dataclasses.replace(cfg, nepoch=15, classifier_nepoch=10)  # float32, as by default
    data = zdata.to(DEVICE)
    model = train(cfg, data, DEVICE, log=lambda _: None).trainer.model
    row = evaluate(model, data, cfg, torch.Generator(device=DEVICE).manual_seed(0))
    chance = 1 / 6  # six unseen classes
    assert row["zsl_acc"] > 2.5 * chance
    assert row["gzsl_h"] > chance
