"""Transductive training (method/transductive.py): no test label reaches training under the default
prior, the `labels` prior is the one that reads them, which unlabelled set each protocol trains on,
resuming, what metrics.json records, and bad input."""
from __future__ import annotations

import csv
import dataclasses
import subprocess
import sys

import numpy as np
import pytest
import torch

from tfvaegan import stages
from tfvaegan.config import from_mapping
from tfvaegan.errors import ConfigError, DataError
from tfvaegan.method import transductive
from tfvaegan.method.train import Trainer, train
from tfvaegan.method.transductive import TransductiveTrainer, trainer_for, unlabelled_set
from toy import TINY, toy_arrays, write_toy

LOSSES = ("loss_d", "loss_g", "wasserstein", "vae_loss", "lambda1", "loss_d2", "wasserstein2")
QUIET = dict(log=lambda _: None)


def transductive_config(**overrides):
    return from_mapping({**TINY, "dataset": "TOY", "transductive": True, "nepoch": 2, **overrides})


def with_test_unseen_labels_permuted(root, seed: int = 1):
    """The toy benchmark with the labels of its test_unseen rows shuffled among those rows (the
    classes present stay the same, each row's label changes)."""
    arrays = toy_arrays()
    rows = arrays["test_unseen_loc"].ravel().astype(np.int64) - 1
    labels = arrays["labels"].copy()
    shuffled = np.random.default_rng(seed).permutation(rows)
    labels[rows] = arrays["labels"][shuffled]
    assert (labels != arrays["labels"]).sum() > len(rows) // 2
    write_toy(root, feature_overrides={"labels": labels})
    return root


@pytest.fixture(scope="module")
def permuted_root(tmp_path_factory):
    return with_test_unseen_labels_permuted(tmp_path_factory.mktemp("permuted"))


def training_losses(log_path) -> list[dict]:
    with open(log_path) as handle:
        return [{key: row[key] for key in LOSSES} for row in csv.DictReader(handle)]


def train_both(cfg, root, permuted, tmp_path):
    logs = []
    for name, data_root in (("original", root), ("permuted", permuted)):
        out = tmp_path / name
        stages.train_stage(cfg, data_root, out / "model.pt", out / "train_log.csv")
        logs.append(training_losses(out / "train_log.csv"))
    return logs


# ------------------------------------------------------------------ no test label in training
@pytest.mark.parametrize("protocol", ["paper", "val"])
def test_uniform_prior_training_reads_no_test_label(toy_root, permuted_root, tmp_path, protocol):
    """Permuting the test_unseen labels in the feature file leaves every training loss of every epoch
    identical: the training cannot have read them (the paper protocol's evaluations do differ)."""
    root, _ = toy_root
    original, permuted = train_both(transductive_config(protocol=protocol), root, permuted_root, tmp_path)
    assert len(original) >= 2 and all(row["loss_d2"] != "" for row in original)
    assert original == permuted


def test_labels_prior_reads_the_test_labels(toy_root, permuted_root, tmp_path):
    root, _ = toy_root
    original, permuted = train_both(transductive_config(transductive_prior="labels"), root, permuted_root, tmp_path)
    assert original != permuted


def test_uniform_trainer_is_given_no_label_of_the_unlabelled_rows(toy):
    _, cfg, zdata = toy
    cfg = dataclasses.replace(cfg, transductive=True)
    assert unlabelled_set(zdata, cfg).labels is None
    trainer = TransductiveTrainer(cfg, zdata, torch.device("cpu"))
    assert trainer.unlabelled.labels is None
    assert torch.equal(trainer.unlabelled.features, zdata.test_unseen_feature)
    assert torch.equal(trainer.unlabelled.classes, zdata.unseenclasses)
    labelled = unlabelled_set(zdata, dataclasses.replace(cfg, transductive_prior="labels"))
    assert torch.equal(labelled.labels, zdata.test_unseen_label)


def test_uniform_prior_draws_every_unseen_class(toy):
    _, cfg, zdata = toy
    trainer = TransductiveTrainer(dataclasses.replace(cfg, transductive=True, batch_size=64), zdata,
                                  torch.device("cpu"))
    torch.manual_seed(0)
    drawn = set()
    for _ in range(20):
        _, att, _ = trainer.sample_unlabelled()
        drawn |= {int(torch.nonzero((zdata.attribute == row).all(1))[0]) for row in att}
    assert drawn == set(zdata.unseenclasses.tolist())


# ------------------------------------------------------------------ the unlabelled set of each protocol
def test_val_protocol_chooses_epochs_on_validation_unseen_features_then_retrains_on_test_unseen(toy_root, tmp_path,
                                                                                                monkeypatch):
    root, _ = toy_root
    seen = []
    original_init = TransductiveTrainer.__init__

    def spy(self, cfg, data, device):
        original_init(self, cfg, data, device)
        seen.append((self.unlabelled.features.size(0), data.info["n_test_unseen"], data.info["n_train"]))

    monkeypatch.setattr(TransductiveTrainer, "__init__", spy)
    cfg = transductive_config(protocol="val")
    saved = stages.train_stage(cfg, root, tmp_path / "model.pt", tmp_path / "train_log.csv").saved
    validation = saved["selection"]["validation"]
    n_test_unseen = int(toy_arrays()["test_unseen_loc"].size)
    assert seen[0][:2] == (validation["n_val_unseen"], validation["n_val_unseen"])
    assert seen[0][2] == validation["n_train"]
    assert seen[1][:2] == (n_test_unseen, n_test_unseen)


def test_an_inductive_config_trains_as_before(toy):
    _, cfg, zdata = toy
    assert trainer_for(cfg) is Trainer
    assert trainer_for(dataclasses.replace(cfg, transductive=True)) is TransductiveTrainer
    cfg = dataclasses.replace(cfg, nepoch=1)
    default = train(cfg, zdata, torch.device("cpu"), **QUIET)
    explicit = train(cfg, zdata, torch.device("cpu"), make_trainer=trainer_for(cfg), **QUIET)
    assert default.history[0]["loss_d"] == explicit.history[0]["loss_d"]
    assert "loss_d2" not in default.history[0]


# ------------------------------------------------------------------ resume, records
def test_interrupted_transductive_training_resumes_to_the_same_model(toy, tmp_path):
    _, cfg, zdata = toy
    cfg = dataclasses.replace(cfg, transductive=True, nepoch=3, checkpoint_every=1)
    device = torch.device("cpu")
    straight = train(cfg, zdata, device, make_trainer=TransductiveTrainer, **QUIET)
    ckpt = tmp_path / "model.ckpt"

    def crash(row):
        if row["epoch"] == 2:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        train(cfg, zdata, device, make_trainer=TransductiveTrainer, checkpoint=ckpt, fingerprint="x", on_epoch=crash,
              **QUIET)
    messages = []
    resumed = train(cfg, zdata, device, make_trainer=TransductiveTrainer, checkpoint=ckpt, fingerprint="x",
                    log=messages.append)
    assert any("resuming" in m for m in messages)
    assert [r["loss_d2"] for r in resumed.history] == [r["loss_d2"] for r in straight.history]
    for name, value in straight.trainer.critic2.state_dict().items():
        assert torch.equal(value, resumed.trainer.critic2.state_dict()[name]), name
    for name, value in straight.trainer.model.state_dict().items():
        assert torch.equal(value, resumed.trainer.model.state_dict()[name]), name
    inductive_state = Trainer(dataclasses.replace(cfg, transductive=False), zdata, device).state()
    assert "critic2" in resumed.trainer.misfit(inductive_state)


def test_metrics_record_the_setting_and_the_prior(toy_root, tmp_path):
    root, _ = toy_root
    metrics = stages.run(transductive_config(nepoch=1), root, tmp_path / "t")
    assert (metrics["setting"], metrics["transductive_prior"]) == ("transductive", "uniform")
    assert any("no test label is read" in note for note in metrics["notes"])
    metrics = stages.run(from_mapping({**TINY, "dataset": "TOY", "nepoch": 1}), root, tmp_path / "i")
    assert (metrics["setting"], metrics["transductive_prior"]) == ("inductive", None)
    assert not any("transductive" in note for note in metrics["notes"])


# ------------------------------------------------------------------ bad input
def test_a_prior_not_in_the_list_is_refused():
    with pytest.raises(ConfigError, match=r"key 'transductive_prior': expected one of \('uniform', 'labels'\)"):
        transductive_config(transductive_prior="known")


def test_the_config_command_refuses_a_bad_prior_in_one_line(toy_root):
    _, config = toy_root
    result = subprocess.run([sys.executable, "-m", "tfvaegan", "config", "--config", str(config),
                             "--set", "transductive_prior=estimated"], capture_output=True, text=True)
    assert result.returncode != 0
    assert "transductive_prior" in result.stderr and "Traceback" not in result.stderr
    shown = subprocess.run([sys.executable, "-m", "tfvaegan", "config", "--config", str(config),
                            "--set", "transductive=true"], capture_output=True, text=True, check=True).stdout
    assert "transductive: true" in shown and "transductive_prior: uniform" in shown


def test_empty_unlabelled_set_is_refused(toy):
    _, cfg, zdata = toy
    cfg = dataclasses.replace(cfg, transductive=True)
    empty = dataclasses.replace(zdata, test_unseen_feature=zdata.test_unseen_feature[:0],
                                test_unseen_label=zdata.test_unseen_label[:0])
    with pytest.raises(DataError, match=r"att_splits.mat: key 'test_unseen_loc': transductive: true .* empty set"):
        TransductiveTrainer(cfg, empty, torch.device("cpu"))


def test_a_split_without_unseen_classes_is_refused(toy):
    _, cfg, zdata = toy
    no_unseen = dataclasses.replace(zdata, unseenclasses=zdata.unseenclasses[:0])
    with pytest.raises(DataError, match="needs unseen classes"):
        TransductiveTrainer(dataclasses.replace(cfg, transductive=True), no_unseen, torch.device("cpu"))


def test_empty_test_unseen_in_the_files_is_refused_before_training(tmp_path):
    write_toy(tmp_path, split_overrides={"test_unseen_loc": np.zeros((0, 1))})
    with pytest.raises(DataError, match="test_unseen_loc"):
        stages.run(transductive_config(), tmp_path, tmp_path / "out")
    assert not (tmp_path / "out" / "model.pt").exists()


def test_module_lists_its_priors_as_the_config_does():
    from tfvaegan.config import _CHOICES

    assert tuple(_CHOICES["transductive_prior"]) == transductive.PRIORS
