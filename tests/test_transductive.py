"""Transductive training (method/transductive.py): no test label reaches training under the defaults
(prior `uniform`, unlabelled set `test`), the `labels` prior and the `test_unseen` set are the ones that
read them, which unlabelled set each protocol trains on, resuming, what metrics.json records, and bad
input."""
from __future__ import annotations

import csv
import dataclasses
import subprocess
import sys

import numpy as np
import pytest
import torch

from tfvaegan import stages
from tfvaegan.config import TRANSDUCTIVE_UNLABELLED, from_mapping
from tfvaegan.data.preprocess import TrainingData
from tfvaegan.errors import ConfigError, DataError
from tfvaegan.method.train import Trainer, train
from tfvaegan.method.lineage import trainer_for
from tfvaegan.method.transductive import TransductiveTrainer, unlabelled_set
from toy import TINY, toy_arrays, write_toy

LOSSES = ("loss_d", "loss_g", "wasserstein", "vae_loss", "lambda1", "loss_d2", "wasserstein2")
QUIET = dict(log=lambda _: None)


def transductive_config(**overrides):
    return from_mapping({**TINY, "dataset": "TOY", "transductive": True, "nepoch": 2, **overrides})


def with_test_relabelled(root, seed: int = 1):
    """The toy benchmark with every test row (seen and unseen together) given a new label, drawn with
    unequal class sizes, and the split's test_seen_loc / test_unseen_loc rebuilt from those labels: the
    set of test rows (and of classes) stays; which rows are unseen, how many, and each class's size change."""
    arrays = toy_arrays()
    labels = arrays["labels"].copy()
    seen_rows, unseen_rows = (arrays[key].ravel().astype(np.int64) - 1 for key in ("test_seen_loc", "test_unseen_loc"))
    test_rows = np.sort(np.concatenate([seen_rows, unseen_rows]))
    classes = np.unique(labels[test_rows])
    rng = np.random.default_rng(seed)
    weights = rng.uniform(0.1, 1.0, classes.size)
    new = rng.choice(classes, size=test_rows.size, p=weights / weights.sum())
    new[: classes.size] = classes  # every class keeps a row: the classes are the split's, not the labels'
    rng.shuffle(new)
    labels[test_rows, 0] = new
    trained = np.unique(labels[arrays["trainval_loc"].ravel().astype(np.int64) - 1])
    is_seen = np.isin(new, trained)
    locs = {"test_seen_loc": test_rows[is_seen] + 1, "test_unseen_loc": test_rows[~is_seen] + 1}
    assert locs["test_unseen_loc"].size != unseen_rows.size  # the partition moved
    assert not np.array_equal(np.bincount(new.astype(np.int64)),
                              np.bincount(arrays["labels"][test_rows, 0].astype(np.int64)))  # and the class sizes
    write_toy(root, feature_overrides={"labels": labels},
              split_overrides={key: value.reshape(-1, 1).astype(arrays[key].dtype) for key, value in locs.items()})
    return root


@pytest.fixture(scope="module")
def relabelled_root(tmp_path_factory):
    return with_test_relabelled(tmp_path_factory.mktemp("relabelled"))


def training_losses(log_path) -> list[dict]:
    with open(log_path) as handle:
        return [{key: row[key] for key in LOSSES} for row in csv.DictReader(handle)]


def train_both(cfg, root, relabelled, tmp_path):
    logs = []
    for name, data_root in (("original", root), ("relabelled", relabelled)):
        out = tmp_path / name
        stages.train_stage(cfg, data_root, out / "model.pt", out / "train_log.csv")
        logs.append(training_losses(out / "train_log.csv"))
    return logs


# ------------------------------------------------------------------ no test label in training
@pytest.mark.parametrize("protocol", ["paper", "val"])
def test_default_training_reads_no_test_label(toy_root, relabelled_root, tmp_path, protocol):
    """New labels for every test row, and the test locations rebuilt from them, leave every training loss of
    every epoch identical: training cannot have read a test label, the seen/unseen partition, the classes'
    sizes or the share of unseen rows (the paper protocol's evaluations do differ)."""
    root, _ = toy_root
    original, relabelled = train_both(transductive_config(protocol=protocol), root, relabelled_root, tmp_path)
    assert len(original) >= 2 and all(row["loss_d2"] != "" for row in original)
    assert original == relabelled


@pytest.mark.parametrize("reads", [{"transductive_unlabelled": "test_unseen"}, {"transductive_prior": "labels"}],
                         ids=["unlabelled_test_unseen", "prior_labels"])
def test_the_authors_settings_read_the_test_labels(toy_root, relabelled_root, tmp_path, reads):
    root, _ = toy_root
    original, relabelled = train_both(transductive_config(**reads), root, relabelled_root, tmp_path)
    assert original != relabelled


def _tensors(value, depth: int = 0):
    """Every tensor reachable from `value` through attributes, mappings and sequences."""
    if isinstance(value, torch.Tensor):
        yield value
    elif depth < 4 and isinstance(value, dict):
        for item in value.values():
            yield from _tensors(item, depth + 1)
    elif depth < 4 and isinstance(value, (list, tuple)):
        for item in value:
            yield from _tensors(item, depth + 1)
    elif depth < 4 and hasattr(value, "__dict__") and not isinstance(value, (torch.nn.Module, torch.optim.Optimizer)):
        yield from _tensors(vars(value), depth + 1)


def test_the_default_trainer_holds_no_test_label_tensor(toy):
    """Structurally label-free: the trainer is given a TrainingData without any test label, and no tensor it
    holds is one of the split's test labels."""
    _, cfg, zdata = toy
    cfg = dataclasses.replace(cfg, transductive=True)
    trainer = TransductiveTrainer(cfg, zdata, torch.device("cpu"))
    assert isinstance(trainer.data, TrainingData) and trainer.data.unlabelled_label is None
    assert trainer.unlabelled.labels is None
    held = list(_tensors(vars(trainer)))
    assert any(t is trainer.data.unlabelled_feature for t in held)  # the walk does reach the data
    for label in (zdata.test_seen_label, zdata.test_unseen_label, zdata.test_label):
        assert not any(t.shape == label.shape and torch.equal(t, label) for t in held)
    labelled = TransductiveTrainer(dataclasses.replace(cfg, transductive_prior="labels"), zdata, torch.device("cpu"))
    assert torch.equal(labelled.unlabelled.labels, zdata.test_label)


def test_the_unlabelled_set_is_every_test_row_in_the_files_order_or_test_unseen(toy):
    _, cfg, zdata = toy
    cfg = dataclasses.replace(cfg, transductive=True)
    every = unlabelled_set(zdata, cfg)
    assert every.features.size(0) == zdata.test_seen_feature.size(0) + zdata.test_unseen_feature.size(0)
    assert torch.equal(every.features, zdata.test_feature)
    assert torch.equal(every.classes, torch.unique(torch.cat([zdata.seenclasses, zdata.unseenclasses])))
    unseen = unlabelled_set(zdata, dataclasses.replace(cfg, transductive_unlabelled="test_unseen"))
    assert torch.equal(unseen.features, zdata.test_unseen_feature) and unseen.labels is None
    assert torch.equal(unseen.classes, zdata.unseenclasses)
    labelled = unlabelled_set(zdata, dataclasses.replace(cfg, transductive_unlabelled="test_unseen",
                                                         transductive_prior="labels"))
    assert torch.equal(labelled.labels, zdata.test_unseen_label)
    assert TRANSDUCTIVE_UNLABELLED[0] == cfg.transductive_unlabelled == "test"  # the honest set is the default


def test_the_test_rows_are_in_the_feature_files_order(toy_root, toy):
    _, _, zdata = toy
    arrays = toy_arrays()
    rows = np.sort(np.concatenate([arrays[k].ravel().astype(np.int64) - 1 for k in ("test_seen_loc",
                                                                                   "test_unseen_loc")]))
    assert torch.equal(zdata.test_label, torch.from_numpy(arrays["labels"][rows, 0] - 1).to(zdata.test_label.dtype))


@pytest.mark.parametrize("unlabelled", TRANSDUCTIVE_UNLABELLED)
def test_uniform_prior_draws_every_class_the_unlabelled_rows_may_hold(toy, unlabelled):
    _, cfg, zdata = toy
    trainer = TransductiveTrainer(dataclasses.replace(cfg, transductive=True, batch_size=64,
                                                      transductive_unlabelled=unlabelled), zdata, torch.device("cpu"))
    torch.manual_seed(0)
    drawn = set()
    for _ in range(20):
        _, att, _ = trainer.sample_unlabelled()
        drawn |= {int(torch.nonzero((zdata.attribute == row).all(1))[0]) for row in att}
    expected = zdata.unseenclasses if unlabelled == "test_unseen" else torch.cat([zdata.seenclasses,
                                                                                  zdata.unseenclasses])
    assert drawn == set(expected.tolist())


# ------------------------------------------------------------------ the unlabelled set of each protocol
@pytest.mark.parametrize("unlabelled", TRANSDUCTIVE_UNLABELLED)
def test_val_protocol_chooses_epochs_on_validation_rows_then_retrains_on_test_rows(toy_root, tmp_path,
                                                                                   monkeypatch, unlabelled):
    """`test`: every validation row, then every test row; `test_unseen`: the validation-unseen rows, then
    test_unseen's."""
    root, _ = toy_root
    seen = []
    original_init = TransductiveTrainer.__init__

    def spy(self, cfg, data, device):
        original_init(self, cfg, data, device)
        seen.append((self.unlabelled.features.size(0), self.data.train_feature.size(0)))

    monkeypatch.setattr(TransductiveTrainer, "__init__", spy)
    cfg = transductive_config(protocol="val", transductive_unlabelled=unlabelled)
    saved = stages.train_stage(cfg, root, tmp_path / "model.pt", tmp_path / "train_log.csv").saved
    validation = saved["selection"]["validation"]
    arrays = toy_arrays()
    if unlabelled == "test":
        expected = (validation["n_val_seen"] + validation["n_val_unseen"],
                    int(arrays["test_seen_loc"].size + arrays["test_unseen_loc"].size))
    else:
        expected = (validation["n_val_unseen"], int(arrays["test_unseen_loc"].size))
    assert seen == [(expected[0], validation["n_train"]), (expected[1], int(arrays["trainval_loc"].size))]


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
    assert (metrics["setting"], metrics["transductive_prior"], metrics["transductive_unlabelled"]) == (
        "transductive", "uniform", "test")
    assert any("no test label is read" in note for note in metrics["notes"])
    assert any("every test row, seen and unseen together" in note for note in metrics["notes"])
    metrics = stages.run(transductive_config(nepoch=1, transductive_unlabelled="test_unseen"), root, tmp_path / "u")
    assert metrics["transductive_unlabelled"] == "test_unseen"
    assert any("training reads test labels" in note for note in metrics["notes"])
    metrics = stages.run(from_mapping({**TINY, "dataset": "TOY", "nepoch": 1}), root, tmp_path / "i")
    assert (metrics["setting"], metrics["transductive_prior"], metrics["transductive_unlabelled"]) == (
        "inductive", None, None)
    assert not any("transductive" in note for note in metrics["notes"])


# ------------------------------------------------------------------ bad input
def test_an_unlabelled_set_not_in_the_list_is_refused():
    with pytest.raises(ConfigError, match=r"key 'transductive_unlabelled': expected one of \('test', 'test_unseen'\)"):
        transductive_config(transductive_unlabelled="unseen")


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
        TransductiveTrainer(dataclasses.replace(cfg, transductive_unlabelled="test_unseen"), empty,
                            torch.device("cpu"))
    no_test = dataclasses.replace(zdata, test_feature=zdata.test_feature[:0], test_label=zdata.test_label[:0])
    with pytest.raises(DataError, match=r"att_splits.mat: keys 'test_seen_loc', 'test_unseen_loc': .* empty set"):
        TransductiveTrainer(cfg, no_test, torch.device("cpu"))


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
