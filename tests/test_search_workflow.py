"""The search in the workflow: lint, the DAG of config/search.yaml (one job per trial, GPUs on SLURM),
bad sections stopped before any job, and a tiny search run for real (cached, extended, reported)."""
from __future__ import annotations

import json
import os
import re
from collections import Counter
from pathlib import Path

import pytest
import yaml
from conftest import PROJECT_ROOT
from snakemake_cli import snakemake
from test_workflow import SLURM_PROFILE, _rows, checked, job_counts, planned_jobs, refusal
from tiny_workflow import DEFAULT_CONFIG, TINY_SEARCH, TINY_SETTINGS, write_config

from tfvaegan import config as config_module
from tfvaegan.search import space as search_space

SEARCH_CONFIG = PROJECT_ROOT / "config" / "search.yaml"


def test_lint_is_clean_with_a_search_section(tmp_path):
    result = snakemake(tmp_path, "--configfile", SEARCH_CONFIG, "--lint")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "Congratulations, your workflow is in a good condition" in result.stdout + result.stderr


def test_the_example_search_is_one_job_per_trial_and_trials_get_gpus_on_slurm(tmp_path):
    env = {**os.environ, "TFVAEGAN_SLURM_GPUS": "2"}
    result = snakemake(tmp_path, "--workflow-profile", SLURM_PROFILE, "search", "--configfile", SEARCH_CONFIG, "-n",
                       timeout=300, env=env, slurm=True)  # the documented order: the target first
    assert result.returncode == 0, result.stdout + result.stderr
    assert job_counts(result.stdout) == Counter(demo_benchmark=1, extract_features=1, verify_features=1,
                                                search_trial=4, search_collect=1, search_final=1, search=1)
    announced = re.findall(r"^Job \d+: (search_\w+): .*\(\d+ thread\(s\), (\d+) GPU\(s\), ", result.stdout, re.M)
    assert sorted(announced) == [("search_final", "2")] + [("search_trial", "2")] * 4
    collect = re.search(r"^rule search_collect:\n(?:    .*\n)*?    resources: (.*)$", result.stdout, re.M)
    assert collect and "gpu=" not in collect.group(1)
    trials = [out for rule, out in planned_jobs(result.stdout) if rule == "search_trial"]
    assert len(set(trials)) == 4 and all(re.fullmatch(r"results/search/demo/trials/[0-9a-f]{10}/trial.json", t)
                                         for t in trials)
    # every trial: the demo file, the val protocol and the search's seed, plus its own settings
    assert result.stdout.count("python -m tfvaegan search trial") == 4
    assert "--set=protocol=\"val\"" in result.stdout and "--trial=lr=0.0005 --trial=syn_num=100" in result.stdout
    assert "--config results/search/demo/best.yaml --benchmark demo --variant search" in result.stdout


def _search_config(path: Path, **search) -> Path:
    return write_config(path, search={**yaml.safe_load(SEARCH_CONFIG.read_text())["search"], **search})


def test_a_bad_section_stops_before_the_dag_and_the_target_needs_a_section(tmp_path):
    bad = _search_config(tmp_path / "bad.yaml", space={"lr": [1e-4], "lrr": [1]})
    result = snakemake(tmp_path, "--configfile", bad, "-n", "search")
    out = result.stdout + result.stderr
    assert result.returncode != 0 and "config key 'search.space.lrr': unknown config key" in out
    assert "Building DAG of jobs" not in out and "Exception" not in out.replace("WorkflowError", "")
    result = snakemake(tmp_path, "-n", "search")
    assert result.returncode != 0
    assert "the `search` target needs a `search` section in the config" in result.stdout + result.stderr


@pytest.mark.parametrize("search, message", [
    # the five go through one check (tests/test_search.py has each); two of them here
    ({"space": {}}, "config key 'search.space': expected at least one config key to search"),
    ({"metric": "accuracy"}, "config key 'search.metric': expected one of gzsl_h, zsl_acc, found 'accuracy'"),
    # the workflow's own cross-checks
    ({"benchmark": "nope"}, "config key 'search.benchmark': 'nope' has no entry under 'catalog'"),
    ({"variant": "nope"}, "config key 'search.variant': 'nope' is not under 'variants'"),
    ({"benchmark": "hmdb51"}, "config key 'search.benchmark': 'hmdb51' runs over splits"),
    ({"space": {"lr": [0.0]}}, "key 'lr': expected a positive number, found 0.0"),
    # issue 22, item 4: keys that move the validation split or read test labels (tests/test_search.py: each)
    ({"space": {"val_seen_fraction": [0.1, 0.3]}},
     "config key 'search.space.val_seen_fraction': cannot be searched: it moves the validation split"),
    ({"space": {"transductive_prior": ["labels"]}},
     "config key 'search.space.transductive_prior': the value 'labels' cannot be searched: it reads test labels"),
])
def test_each_bad_section_is_one_error_before_any_job(search, message):
    # the checks search.smk makes when it is parsed, called directly (the wiring: the test above)
    section = {**yaml.safe_load(SEARCH_CONFIG.read_text())["search"], **search}
    assert message in refusal({**DEFAULT_CONFIG, "search": section})


KNOWN_PRIOR = {"transductive": True, "transductive_prior": "labels"}


@pytest.mark.parametrize("changes, search, message", [
    ({"variants": {"tfvaegan": {}, "known_prior": KNOWN_PRIOR}}, {"variant": "known_prior"},
     ("config key 'variants.known_prior.transductive_prior': the searched run (benchmark 'demo', variant "
      "'known_prior') sets 'labels', which a search refuses: it reads test labels")),
    ({"overrides": {"transductive_unlabelled": "test_unseen"}}, {},
     ("config key 'overrides.transductive_unlabelled': the searched run (benchmark 'demo', variant 'tfvaegan') "
      "sets 'test_unseen', which a search refuses: it reads test labels")),
    ({"catalog": {**DEFAULT_CONFIG["catalog"], "demo": {**DEFAULT_CONFIG["catalog"]["demo"],
                                                        "settings": KNOWN_PRIOR}}}, {},
     "config key 'catalog.demo.settings.transductive_prior': the searched run"),
])
def test_a_searched_run_that_reads_test_labels_is_refused_where_it_is_set(changes, search, message):
    """The searched run's own values (benchmark file < settings < variant < overrides) may not read test
    labels either: the final run would."""
    section = {**yaml.safe_load(SEARCH_CONFIG.read_text())["search"], **search}
    assert message in refusal({**DEFAULT_CONFIG, **changes, "search": section})


def test_a_refused_value_in_the_benchmark_file_is_named_by_the_file(tmp_path):
    demo = PROJECT_ROOT / "config" / "benchmarks" / "demo.yaml"
    mine = tmp_path / "demo_known_prior.yaml"
    mine.write_text(demo.read_text() + "\ntransductive: true\ntransductive_prior: labels\n")
    catalog = {**DEFAULT_CONFIG["catalog"], "demo": {**DEFAULT_CONFIG["catalog"]["demo"], "config": str(mine)}}
    section = yaml.safe_load(SEARCH_CONFIG.read_text())["search"]
    assert f"{mine}: key 'transductive_prior': the searched run" in refusal(
        {**DEFAULT_CONFIG, "catalog": catalog, "search": section})


def test_a_fixed_validation_share_of_the_searched_run_is_one_split_for_all_and_allowed():
    section = yaml.safe_load(SEARCH_CONFIG.read_text())["search"]
    config = {**DEFAULT_CONFIG, "overrides": {"val_seen_fraction": 0.3}, "search": section}
    spec, base, planned = search_space.plan_workflow_search(checked(config))
    assert base["val_seen_fraction"] == 0.3 and len(planned) == 4 and spec.benchmark == "demo"


# --------------------------------------------------------------------------- a tiny search, for real
# tests/tiny_workflow.py: `snakemake search` on demo_b (TINY_SEARCH) after the shared run's main DAG.
@pytest.mark.slow
@pytest.mark.xdist_group("tiny_workflow")
@pytest.mark.timeout(900)  # the first reader makes the shared run
def test_tiny_search_writes_every_output_and_the_final_run_reuses_the_best_selection(tiny_workflow):
    workdir, config = tiny_workflow.workdir, tiny_workflow.config
    counts = job_counts(tiny_workflow.search)
    assert counts["search_trial"] == 2 and counts["search_final"] == 1 and counts["train"] == 0
    folder = workdir / "results" / "search" / "demo_b"
    rows = _rows(folder / "trials.csv")
    assert len(rows) == 2 and {row["rank"] for row in rows} == {"1", "2"}
    best = next(row for row in rows if row["rank"] == "1")
    cfg = config_module.load(folder / "best.yaml")
    assert cfg.lr == float(best["lr"]) and cfg.protocol == "val" and cfg.manualSeed == 0
    assert cfg.nepoch == yaml.safe_load(TINY_SETTINGS.read_text())["overrides"]["nepoch"]
    metrics = json.loads((folder / "final" / "metrics.json").read_text())
    assert (metrics["benchmark"], metrics["protocol"], metrics["variant"]) == ("demo_b", "val", "search")
    assert metrics["config"]["lr"] == float(best["lr"])
    assert metrics["selection"]["validation"]["gzsl_h"] == pytest.approx(float(best["val_gzsl_h"]))
    assert "reusing the epoch selection" in (workdir / "logs" / "search_final" / "demo_b.log").read_text()
    assert (folder / "trials.png").stat().st_size > 0
    assert (workdir / "benchmarks" / "search_trial" / "demo_b" / f"{best['trial']}.tsv").is_file()

    report = workdir / "report.html"
    made = snakemake(workdir, "--configfile", config, "--report", report, "search")
    assert made.returncode == 0, made.stdout[-3000:] + made.stderr[-3000:]
    assert report.stat().st_size > 0 and "trials.png" in report.read_text(errors="replace")


@pytest.mark.slow
@pytest.mark.xdist_group("tiny_workflow")
def test_the_same_search_is_cached_and_more_trials_run_only_the_new_ones(tiny_workflow):
    workdir, config = tiny_workflow.workdir, tiny_workflow.config
    result = snakemake(workdir, "--configfile", config, "-n", "search")
    assert result.returncode == 0 and "Nothing to be done" in result.stdout + result.stderr
    more = write_config(workdir / "more.yaml", **{**yaml.safe_load(Path(config).read_text()),
                                                  "search": {**TINY_SEARCH, "trials": 3}})
    result = snakemake(workdir, "--configfile", more, "-n", "search")
    assert result.returncode == 0, result.stdout + result.stderr
    assert job_counts(result.stdout) == Counter(search_trial=1, search_collect=1, search_final=1, search=1)
    done = {p.parent.name for p in (workdir / "results" / "search" / "demo_b" / "trials").glob("*/trial.json")}
    new = [out for rule, out in planned_jobs(result.stdout) if rule == "search_trial"]
    assert len(done) == 2 and len(new) == 1 and Path(new[0]).parent.name not in done
