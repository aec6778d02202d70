"""The hyperparameter search: the section's checks (the refused keys among them), the trials it draws,
the trial's fence (a copy of the data without its test rows), one trial on the toy benchmark with the
test set fenced off, collecting the trials, and the permuted-test-labels check."""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml
from conftest import PROJECT_ROOT
from test_workflow import _rows
from toy import TINY, toy_arrays, write_toy

from tfvaegan import config as config_module
from tfvaegan import protocols
from tfvaegan.cli import main
from tfvaegan.data.load import Benchmark, load_benchmark
from tfvaegan.errors import ConfigError, LeakError
from tfvaegan.search import space
from tfvaegan.search import trials as trials_module
from tfvaegan.search.trials import FIGURE, ValidationOnly, read_trial, validation_only

EXAMPLE = yaml.safe_load((PROJECT_ROOT / "config" / "search.yaml").read_text())["search"]
SEARCH_SEED = 3
TOY_SEARCH = {"benchmark": "toy", "metric": "gzsl_h", "seed": SEARCH_SEED, "space": {"lr": [0.001, 0.003]}}
VALIDATION_COLUMNS = ["val_zsl_acc", "val_gzsl_seen", "val_gzsl_unseen", "val_gzsl_h"]


# --------------------------------------------------------------------------- the section
def test_the_shipped_example_is_a_grid_of_four_trials():
    spec = space.parse_search(EXAMPLE)
    assert spec.is_grid and (spec.benchmark, spec.metric, spec.seed) == ("demo", "gzsl_h", 0)
    settings = space.trial_settings(spec)
    assert settings == [{"lr": 0.0001, "syn_num": 50}, {"lr": 0.0001, "syn_num": 100},
                        {"lr": 0.0005, "syn_num": 50}, {"lr": 0.0005, "syn_num": 100}]
    assert len({space.trial_id(s) for s in settings}) == 4


def test_defaults_are_the_schemas():
    schema = yaml.safe_load((PROJECT_ROOT / "workflow" / "schemas" / "config.schema.yaml").read_text())
    properties = schema["properties"]["search"]["properties"]
    assert {key: properties[key]["default"] for key in space.DEFAULTS} == space.DEFAULTS
    assert set(properties) == set(space.SECTION_KEYS)


BAD_SECTIONS = [  # (changes to the example, what the one error says)
    ({"space": {"learning_rate": [0.001]}}, "config key 'search.space.learning_rate': unknown config key"),
    ({"space": {}}, "config key 'search.space': expected at least one config key to search"),
    ({"space": {"lr": {"low": 0.01, "high": 0.001}}}, "config key 'search.space.lr': expected low <= high, "
                                                      "found low 0.01 > high 0.001"),
    ({"space": {"lr": {"low": 0.0, "high": 0.01, "log": True}}},
     "config key 'search.space.lr.low': expected low > 0 for a log range, found 0.0"),
    ({"metric": "top1"}, "config key 'search.metric': expected one of gzsl_h, zsl_acc, found 'top1'"),
    # beyond the five
    ({"space": {"lr": []}}, "config key 'search.space.lr': expected at least one value"),
    ({"space": {"lr": [0.001, 1e-3]}}, "expected distinct values, found 0.001 twice"),
    ({"space": {"lr": 0.001}}, "expected a list of values (a grid) or {low, high, log} (a range), found 0.001"),
    ({"space": {"gzsl": {"low": 0, "high": 1}}}, "a range needs a numeric key, found a bool key"),
    ({"space": {"syn_num": {"low": 10, "high": 20.5}}}, "config key 'search.space.syn_num.high': expected a whole"),
    ({"space": {"lr": {"low": 0.001, "hi": 0.01}}}, "config key 'search.space.lr.hi': unknown range key"),
    ({"space": {"manualSeed": [1, 2]}}, "config key 'search.space.manualSeed': cannot be searched"),
    ({"space": {"protocol": ["paper"]}}, "config key 'search.space.protocol': cannot be searched"),
    ({"trials": 0}, "config key 'search.trials': expected an integer >= 1, found 0"),
    ({"budget": 3}, "config key 'search.budget': unknown key"),
    # issue 22, item 4: a key that moves the validation split or reads test labels
    ({"space": {"val_seen_fraction": [0.1, 0.3]}},
     "config key 'search.space.val_seen_fraction': cannot be searched: it moves the validation split"),
    ({"space": {"val_unseen_fraction": {"low": 0.1, "high": 0.4}}},
     "config key 'search.space.val_unseen_fraction': cannot be searched: it moves the validation split"),
    ({"space": {"transductive_prior": ["uniform", "labels"]}},
     "config key 'search.space.transductive_prior': the value 'labels' cannot be searched: it reads test labels"),
    ({"space": {"transductive_unlabelled": ["test", "test_unseen"]}},
     ("config key 'search.space.transductive_unlabelled': the value 'test_unseen' cannot be searched: it reads "
      "test labels")),
    ({"space": {"dataset": ["CUB", "SUN"]}},
     "config key 'search.space.dataset': cannot be searched: it names other data files, hence another validation split"),
    ({"space": {"class_embedding": ["att"]}}, "config key 'search.space.class_embedding': cannot be searched"),
]


@pytest.mark.parametrize("changes, message", BAD_SECTIONS)
def test_bad_section_is_one_clear_error(changes, message):
    with pytest.raises(ConfigError) as caught:
        space.parse_search({**EXAMPLE, **changes})
    assert message in str(caught.value) and "\n" not in str(caught.value)


def _searchable_value(key: str):
    """A value `key` accepts in a run (its default, or a valid one where the default is None)."""
    default = getattr(config_module.Config(), key)
    return {"manualSeed": 1, "val_unseen_fraction": 0.25, "image_embedding_path": "CUB"}.get(key, default)


@pytest.mark.parametrize("key", sorted(space.REFUSED_KEYS))
def test_every_refused_key_is_refused_with_its_reason_and_only_the_refused_values(key):
    refusal = space.REFUSED_KEYS[key]
    refused = list(refusal.values) if refusal.values else [_searchable_value(key)]
    with pytest.raises(ConfigError) as caught:
        space.parse_search({**EXAMPLE, "space": {"lr": [0.001], key: refused}})
    what = f"the value {refused[0]!r} cannot be searched" if refusal.values else "cannot be searched"
    assert str(caught.value) == f"config key 'search.space.{key}': {what}: {refusal.reason}"
    if refusal.values:  # the other values of the key stay searchable
        choices = {"transductive_prior": config_module.TRANSDUCTIVE_PRIORS,
                   "transductive_unlabelled": config_module.TRANSDUCTIVE_UNLABELLED}[key]
        allowed = [value for value in choices if value not in refusal.values]
        assert allowed and space.parse_search({**EXAMPLE, "space": {key: allowed}}).space[key] == tuple(allowed)


def test_the_refused_keys_are_documented():
    """config/README.md names every refused key (and value); README.md names the item-4 ones."""
    config_readme = (PROJECT_ROOT / "config" / "README.md").read_text()
    documented = config_readme[config_readme.index("- **Refused keys.**"):].split("\n- ")[0]
    for key, refusal in space.REFUSED_KEYS.items():
        names = [f"`{key}: {value}`" for value in refusal.values] if refusal.values else [f"`{key}`"]
        assert all(name in documented for name in names), (key, documented)
    readme = (PROJECT_ROOT / "README.md").read_text()
    for name in ("`val_seen_fraction`", "`val_unseen_fraction`", "`transductive_prior: labels`",
                 "`transductive_unlabelled: test_unseen`"):
        assert name in readme


def test_yaml_1_1_float_strings_count_as_numbers():
    """Snakemake's YAML loader reads 1e-5 as a string."""
    spec = space.parse_search({**EXAMPLE, "space": {"lr": {"low": "1e-5", "high": "1e-3", "log": True},
                                                    "feed_lr": ["1e-4", 0.001]}})
    assert spec.space["lr"] == space.Range(1e-5, 1e-3, log=True) and spec.space["feed_lr"] == (1e-4, 0.001)


# --------------------------------------------------------------------------- drawing trials
RANDOM = {**EXAMPLE, "trials": 6, "space": {"lr": {"low": 1e-5, "high": 1e-2, "log": True},
                                            "syn_num": {"low": 10, "high": 400}, "gzsl": [True, False]}}


def test_random_draws_are_seeded_and_more_trials_keep_the_first_ones():
    six = space.trial_settings(space.parse_search(RANDOM))
    assert len(six) == 6 and six == space.trial_settings(space.parse_search(RANDOM))
    assert space.trial_settings(space.parse_search({**RANDOM, "trials": 3})) == six[:3]
    assert space.trial_settings(space.parse_search({**RANDOM, "seed": 1})) != six
    for trial in six:
        assert 1e-5 <= trial["lr"] <= 1e-2 and float(f"{trial['lr']:.4g}") == trial["lr"]
        assert isinstance(trial["syn_num"], int) and 10 <= trial["syn_num"] <= 400
        assert trial["gzsl"] in (True, False)
    # log-uniform: the draws spread over the decades rather than crowding the top one
    many = space.trial_settings(space.parse_search({**RANDOM, "trials": 200}))
    assert sum(t["lr"] < 1e-3 for t in many) > 100


def test_adding_a_key_keeps_the_other_keys_draws():
    before = space.trial_settings(space.parse_search(RANDOM))
    after = space.trial_settings(space.parse_search({**RANDOM, "space": {**RANDOM["space"], "a1": [0.5, 1.0]}}))
    assert [{k: t[k] for k in before[0]} for t in after] == before


def test_a_range_with_fewer_points_than_trials_gives_each_point_once():
    spec = space.parse_search({**EXAMPLE, "trials": 10, "space": {"critic_iter": {"low": 1, "high": 3}}})
    assert sorted(t["critic_iter"] for t in space.trial_settings(spec)) == [1, 2, 3]


def test_plan_checks_every_trial_config_and_the_metric():
    base = dict(config_module.read_file(PROJECT_ROOT / "config" / "benchmarks" / "demo.yaml"), protocol="val",
                manualSeed=0)
    planned = space.plan_trials(space.parse_search(EXAMPLE), base)
    assert list(planned.values()) == space.trial_settings(space.parse_search(EXAMPLE))
    with pytest.raises(ConfigError, match="key 'lr': expected a positive number, found -0.1"):
        space.plan_trials(space.parse_search({**EXAMPLE, "space": {"lr": [-0.1]}}), base)
    with pytest.raises(ConfigError, match="'search.metric': gzsl_h needs GZSL, but trial"):
        space.plan_trials(space.parse_search({**EXAMPLE, "space": {"gzsl": [True, False]}}), base)
    assert len(space.plan_trials(space.parse_search({**EXAMPLE, "metric": "zsl_acc",
                                                     "space": {"gzsl": [True, False]}}), base)) == 2


# --------------------------------------------------------------------------- the trial's fence
def test_a_trial_reads_a_copy_of_the_data_without_its_test_rows(toy_root):
    root, _ = toy_root
    cfg = config_module.from_mapping({**TINY, "dataset": "TOY", "protocol": "val", "manualSeed": SEARCH_SEED})
    benchmark = load_benchmark(root, cfg)
    fenced = validation_only(benchmark)
    raw, locs = benchmark.raw, {key: np.asarray(value).ravel() for key, value in benchmark.raw.locs.items()}
    outside = np.setdiff1d(np.arange(raw.labels.size), locs["trainval"])
    assert np.array_equal(outside, np.sort(np.concatenate([locs["test_seen"], locs["test_unseen"]])))
    assert isinstance(fenced, ValidationOnly) and np.isnan(fenced.raw.features[outside]).all()
    assert np.array_equal(fenced.raw.features[locs["trainval"]], raw.features[locs["trainval"]])
    unlabelled = np.setdiff1d(outside, locs["val"])  # val_loc keeps its labels: the split's notes count its classes
    assert unlabelled.size and (fenced.raw.labels[unlabelled] == -1).all()
    labelled = np.union1d(locs["trainval"], locs["val"])
    assert np.array_equal(fenced.raw.labels[labelled], raw.labels[labelled])
    assert not np.isnan(raw.features).any() and (raw.labels >= 0).all()  # the loaded benchmark is untouched
    with pytest.raises(LeakError, match="search trial: the test split was asked for"):
        fenced.test_split()
    with pytest.raises(LeakError, match="the seen evaluation part of a split holds 3 images outside trainval_loc"):
        fenced.split(locs["trainval"], locs["test_seen"][:3], locs["trainval"][:2])
    with pytest.raises(LeakError, match="the unseen evaluation part of a split holds 1 images outside"):
        fenced.split(locs["trainval"], locs["trainval"][:2], locs["test_unseen"][:1])
    # the validation split and its tensors are those of the whole data
    split = protocols.validation_split(fenced.raw, cfg, SEARCH_SEED)
    whole = protocols.validation_split(raw, cfg, SEARCH_SEED)
    assert split.notes == whole.notes and all(np.array_equal(getattr(split, part), getattr(whole, part))
                                              for part in ("train", "val_seen", "val_unseen"))
    ours, theirs = (b.split(split.train, split.val_seen, split.val_unseen) for b in (fenced, benchmark))
    for name in ("train_feature", "train_label", "test_seen_feature", "test_seen_label", "test_unseen_feature",
                 "test_unseen_label", "attribute", "seenclasses", "unseenclasses", "test_feature", "test_label"):
        assert torch.equal(getattr(ours, name), getattr(theirs, name)), name


# --------------------------------------------------------------------------- trials on the toy benchmark
def fence_off_the_test_set(monkeypatch) -> None:
    """The test's own fence, beside the trial's (`validation_only`): any use of a test image fails, as
    no split may hold one and the test split cannot be built."""
    split = Benchmark.split

    def validation_only(self, train, test_seen, test_unseen, device="cpu"):
        test = np.concatenate([self.raw.locs["test_seen"], self.raw.locs["test_unseen"]])
        for part in (train, test_seen, test_unseen):
            if np.isin(np.asarray(part), test).any():
                raise AssertionError("a test image reached a split during the search")
        return split(self, train, test_seen, test_unseen, device)

    def no_test_split(self, device="cpu"):
        raise AssertionError("the search built the test split")

    monkeypatch.setattr(Benchmark, "split", validation_only)
    monkeypatch.setattr(Benchmark, "test_split", no_test_split)


def run_search(root: Path, config: Path, out: Path) -> list[Path]:
    """The toy search's trials and collect through the CLI, as the workflow's jobs run them."""
    spec = space.parse_search(TOY_SEARCH)
    base = {**TINY, "dataset": "TOY", "protocol": "val", "manualSeed": SEARCH_SEED}
    paths = []
    for name, settings in space.plan_trials(spec, base).items():
        paths.append(out / "trials" / name / "trial.json")
        trial_args = [f"--trial={key}={json.dumps(value)}" for key, value in settings.items()]
        assert main(["search", "trial", "--data-root", str(root), "--config", str(config), "--dataset", "TOY",
                     "--set", "nepoch=2", f"--set=manualSeed={SEARCH_SEED}", *trial_args,
                     "--out", str(paths[-1])]) == 0
    assert main(["search", "collect", "--trials", *map(str, paths), "--metric", spec.metric,
                 "--out-dir", str(out), "--final-model", str(out / "final" / "model.pt")]) == 0
    return paths


@pytest.fixture(scope="module")
def searched(toy_root, tmp_path_factory):
    """The toy search with the test set fenced off: a test number read anywhere fails it."""
    root, config = toy_root
    out = tmp_path_factory.mktemp("search")
    with pytest.MonkeyPatch.context() as monkeypatch:
        fence_off_the_test_set(monkeypatch)
        paths = run_search(root, config, out)
    return out, paths


def test_the_fence_catches_a_read_of_the_test_set(toy_root, monkeypatch):
    root, _ = toy_root
    fence_off_the_test_set(monkeypatch)
    benchmark = load_benchmark(root, config_module.from_mapping({**TINY, "dataset": "TOY"}))
    with pytest.raises(AssertionError, match="test split"):
        benchmark.test_split()
    locs = benchmark.raw.locs
    with pytest.raises(AssertionError, match="test image"):
        benchmark.split(locs["trainval"], locs["test_seen"][:3], locs["test_unseen"])


def test_search_without_a_test_number_writes_trials_best_and_figure(searched):
    out, paths = searched
    rows = _rows(out / "trials.csv")
    assert list(rows[0]) == ["trial", "lr", *VALIDATION_COLUMNS, "generator_epochs", "seconds", "rank"]
    assert [row["trial"] for row in rows] == [p.parent.name for p in paths]
    assert [float(row["lr"]) for row in rows] == [0.001, 0.003]
    assert sorted(int(row["rank"]) for row in rows) == [1, 2]
    for row, path in zip(rows, paths):
        record = read_trial(path)
        assert record["config"]["protocol"] == "val" and record["config"]["manualSeed"] == SEARCH_SEED
        assert float(row["val_gzsl_h"]) == pytest.approx(record["validation"]["gzsl_h"])
        assert 1 <= int(row["generator_epochs"]) <= 2 and float(row["seconds"]) > 0
        # the trial's history is its selection run, evaluated on the validation split only
        assert {r.get("eval_split") for r in record["selection_cache"]["history"]} == {"val"}
    best = min(rows, key=lambda row: int(row["rank"]))
    assert float(best["val_gzsl_h"]) == max(float(row["val_gzsl_h"]) for row in rows)
    assert (out / FIGURE).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_best_yaml_is_a_config_file_of_the_best_trial(searched):
    out, paths = searched
    best_name = next(row["trial"] for row in _rows(out / "trials.csv") if row["rank"] == "1")
    record = read_trial(next(p for p in paths if p.parent.name == best_name))
    cfg = config_module.load(out / "best.yaml")
    assert cfg.to_dict() == record["config"] and cfg.protocol == "val"
    assert best_name in (out / "best.yaml").read_text().splitlines()[0]
    cache = json.loads((out / "final" / "model.selection.json").read_text())
    assert cache == record["selection_cache"]


def test_collect_refuses_trials_of_another_search_and_a_missing_metric(searched, tmp_path, run_cli):
    out, paths = searched
    other = json.loads(paths[1].read_text())
    other["config"]["syn_num"] += 1
    (tmp_path / "other.json").write_text(json.dumps(other))
    code, err = run_cli("search", "collect", "--trials", paths[0], tmp_path / "other.json", "--metric", "gzsl_h",
                        "--out-dir", tmp_path)
    assert code == 2 and "key 'config.syn_num': expected" in err and "only the searched keys may differ" in err
    no_gzsl = json.loads(paths[0].read_text())
    no_gzsl["validation"]["gzsl_h"] = None
    (tmp_path / "no_gzsl.json").write_text(json.dumps(no_gzsl))
    code, err = run_cli("search", "collect", "--trials", tmp_path / "no_gzsl.json", "--metric", "gzsl_h",
                        "--out-dir", tmp_path)
    assert code == 2 and "key 'validation.gzsl_h': expected a number, found None" in err
    (tmp_path / "bad.json").write_text("{")
    code, err = run_cli("search", "collect", "--trials", tmp_path / "bad.json", "--metric", "zsl_acc",
                        "--out-dir", tmp_path)
    assert code == 2 and "bad.json: expected a tfvaegan-search-trial/1 JSON file" in err
    assert not (tmp_path / "trials.csv").exists() and not (tmp_path / "best.yaml").exists()


def test_an_interrupted_trial_resumes_from_its_checkpoint_to_the_same_result(searched, toy_root, tmp_path,
                                                                          monkeypatch, capsys):
    """Ctrl-C right after the trial's first checkpoint; the same command then resumes, and gives the
    numbers of the uninterrupted trial."""
    import tfvaegan.method.train as train_module

    out, paths = searched
    root, config = toy_root
    reference = read_trial(paths[0])
    save = train_module.atomic_torch_save

    def save_then_interrupt(obj, path):
        save(obj, path)
        raise KeyboardInterrupt

    trial = tmp_path / "trials" / reference["trial"] / "trial.json"
    command = ["search", "trial", "--data-root", str(root), "--config", str(config), "--dataset", "TOY",
               "--set", "nepoch=2", f"--set=manualSeed={SEARCH_SEED}",
               *(f"--trial={k}={json.dumps(v)}" for k, v in reference["settings"].items()), "--out", str(trial)]
    monkeypatch.setattr(train_module, "atomic_torch_save", save_then_interrupt)
    assert main(command) == 130
    assert not trial.exists() and trial.with_name("model.select.ckpt").is_file()
    monkeypatch.setattr(train_module, "atomic_torch_save", save)
    capsys.readouterr()
    assert main(command) == 0
    assert "resuming from" in capsys.readouterr().err
    resumed = read_trial(trial)
    assert resumed["validation"] == reference["validation"] and resumed["config"] == reference["config"]
    assert not trial.with_name("model.select.ckpt").exists()


def test_search_trial_refuses_a_refused_key_before_reading_any_data(toy_root, tmp_path, run_cli):
    """`search trial` makes the section's one check (search.space.REFUSED_KEYS) on its --trial keys,
    and on its whole config for a value that reads test labels."""
    _, config = toy_root
    missing_root, out = tmp_path / "no_data", tmp_path / "trial" / "trial.json"
    command = ["search", "trial", "--data-root", missing_root, "--config", config, "--dataset", "TOY",
               f"--set=manualSeed={SEARCH_SEED}", "--out", out]
    code, err = run_cli(*command, "--trial=lr=0.001", "--trial=val_seen_fraction=0.3")
    assert code == 2 and ("search trial: config key 'val_seen_fraction': cannot be searched: it moves the "
                          "validation split") in err
    code, err = run_cli(*command, "--set=transductive=true", '--set=transductive_unlabelled="test_unseen"',
                        "--trial=lr=0.001")
    assert code == 2 and ("search trial: config key 'transductive_unlabelled': the trial's config sets "
                          "'test_unseen', which a search refuses: it reads test labels") in err
    code, err = run_cli(*command, "--trial=protocol=\"paper\"")
    assert code == 2 and "search trial: config key 'protocol': cannot be searched" in err
    assert not out.parent.exists() and not missing_root.exists()


def permuted_test_rows(root: Path) -> None:
    """TOY with its test rows' labels permuted (within test_seen and within test_unseen, so the files
    stay valid) and their features replaced by noise; nothing else changes."""
    arrays = toy_arrays()
    labels, features = arrays["labels"].copy(), arrays["features"].copy()
    rng = np.random.default_rng(0)
    for key in ("test_seen_loc", "test_unseen_loc"):
        rows = arrays[key].ravel().astype(np.int64) - 1
        labels[rows] = labels[rng.permutation(rows)]
        features[:, rows] = rng.random((features.shape[0], rows.size), dtype=np.float32)
    assert (labels != arrays["labels"]).any()
    write_toy(root, feature_overrides={"labels": labels, "features": features})


def test_a_trial_scores_the_same_when_the_test_rows_are_noise_and_their_labels_permuted(
        searched, tmp_path, toy_root, monkeypatch):
    """One trial on TOY with every test row's features replaced by noise and the test labels permuted:
    every epoch's validation numbers are those of the same trial on TOY, and it ran on the fenced copy."""
    _, paths = searched
    reference = read_trial(paths[0])
    root = tmp_path / "data"
    permuted_test_rows(root)
    ran_on = []
    choose = protocols.choose_on_validation

    def spy(benchmark, *args, **kwargs):
        ran_on.append(benchmark)
        return choose(benchmark, *args, **kwargs)

    monkeypatch.setattr(trials_module.protocols, "choose_on_validation", spy)
    trial = tmp_path / "trial" / "trial.json"
    assert main(["search", "trial", "--data-root", str(root), "--config", str(toy_root[1]), "--dataset", "TOY",
                 "--set", "nepoch=2", f"--set=manualSeed={SEARCH_SEED}",
                 *(f"--trial={k}={json.dumps(v)}" for k, v in reference["settings"].items()), "--out", str(trial)]) == 0
    (benchmark,) = ran_on
    test_rows = np.concatenate([np.asarray(benchmark.raw.locs[k]).ravel() for k in ("test_seen", "test_unseen")])
    assert isinstance(benchmark, ValidationOnly) and np.isnan(benchmark.raw.features[test_rows]).all()
    record = read_trial(trial)
    assert (record["trial"], record["config"]) == (reference["trial"], reference["config"])
    assert (record["validation"], record["generator_epochs"]) == (reference["validation"], reference["generator_epochs"])
    epochs = lambda rec: [{k: v for k, v in row.items() if k != "seconds"} for row in rec["selection_cache"]["history"]]
    assert epochs(record) == epochs(reference)


@pytest.mark.slow
def test_permuted_test_labels_leave_the_search_identical(searched, toy_root, tmp_path):
    out, _ = searched
    root = tmp_path / "data"
    permuted_test_rows(root)
    shutil.copy(toy_root[1], tmp_path / "tiny.yaml")
    run_search(root, tmp_path / "tiny.yaml", tmp_path / "search")
    columns = ["trial", "lr", *VALIDATION_COLUMNS, "generator_epochs", "rank"]
    original, permuted = _rows(out / "trials.csv"), _rows(tmp_path / "search" / "trials.csv")
    assert [[row[c] for c in columns] for row in permuted] == [[row[c] for c in columns] for row in original]
    assert (tmp_path / "search" / "best.yaml").read_text() == (out / "best.yaml").read_text()


@pytest.mark.slow
def test_best_yaml_runs_as_it_is_and_reuses_the_best_trials_selection(searched, toy_root, capsys):
    out, _ = searched
    root, _ = toy_root
    final = out / "final"
    assert main(["run", "--data-root", str(root), "--config", str(out / "best.yaml"), "--out", str(final),
                 "--variant", "search"]) == 0
    assert f"reusing the epoch selection in {final / 'model.selection.json'}" in capsys.readouterr().err
    metrics = json.loads((final / "metrics.json").read_text())
    best = json.loads((final / "model.selection.json").read_text())["selection"]
    assert metrics["protocol"] == "val" and metrics["selection"] == best
    assert metrics["variant"] == "search" and 0 <= metrics["gzsl_h"] <= 1


def test_draws_are_the_same_in_another_process():
    """Trials are named and cached by their draws, so another Snakemake process must draw the same:
    string seeds of `random` do not depend on PYTHONHASHSEED."""
    probe = ("import json; from tfvaegan.search import space; "
             f"print(json.dumps(space.trial_settings(space.parse_search({RANDOM!r}))))")
    result = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, cwd=PROJECT_ROOT,
                            env={**os.environ, "PYTHONHASHSEED": "12345"}, timeout=120)
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout) == space.trial_settings(space.parse_search(RANDOM))
