"""The per-benchmark settings of f-CLSWGAN, f-VAEGAN and FREE (config/benchmarks/*_{fclswgan,fvaegan,free}.yaml).

Each file loads, names its method, comments every value with its source; the FREE files are checked against
the option values of the authors' run scripts, transcribed below (docs/methods.md, "Settings and their sources").
"""
from __future__ import annotations

import csv
import re
from pathlib import Path

import pytest

from tfvaegan.config import METHODS, Config, load

ROOT = Path(__file__).resolve().parents[1]
BENCHMARKS = ("cub", "awa2", "flo", "sun")
NEW_METHODS = ("fclswgan", "fvaegan", "free")
FILES = [ROOT / "config" / "benchmarks" / f"{b}_{m}.yaml" for b in BENCHMARKS for m in NEW_METHODS]
# A source: a file of the reference code (run script, clswgan.py, train_free.py, ...).
SOURCE = re.compile(r"[\w.-]+\.(py|sh)\b")

# The option values of shiming-chen/FREE's run scripts, as they stand in the repository (commit f38ad82):
# a flag is True; options train_free.py never reads (--a1, --a2, --feed_lr) or that have no key here
# (--nclass_seen: from the data; --cuda, --dataroot) are kept, and listed in NOT_CARRIED.
# shiming-chen/FREE image-scripts/run_cub.py
RUN_CUB_PY = {
    "--gammaD": "10", "--gammaG": "10", "--gzsl": True, "--manualSeed": "3483", "--encoded_noise": True,
    "--preprocessing": True, "--cuda": True, "--image_embedding": "res101", "--class_embedding": "att",
    "--nepoch": "501", "--ngh": "4096", "--ndh": "4096", "--lr": "0.0001", "--classifier_lr": "0.001",
    "--lambda1": "10", "--critic_iter": "1", "--dataroot": "data", "--dataset": "CUB", "--a1": "1", "--a2": "1",
    "--feed_lr": "0.00001", "--dec_lr": "0.0001", "--loop": "2", "--nclass_all": "200", "--nclass_seen": "150",
    "--batch_size": "64", "--nz": "312", "--latent_size": "312", "--attSize": "312", "--resSize": "2048",
    "--syn_num": "700", "--center_margin": "200", "--center_weight": "0.5", "--recons_weight": "0.001",
    "--incenter_weight": "0.8",
}
# shiming-chen/FREE image-scripts/run_awa2.py
RUN_AWA2_PY = {
    "--gammaD": "10", "--gammaG": "10", "--gzsl": True, "--encoded_noise": True, "--manualSeed": "9182",
    "--preprocessing": True, "--cuda": True, "--image_embedding": "res101", "--class_embedding": "att",
    "--nepoch": "401", "--ngh": "4096", "--ndh": "4096", "--lambda1": "10", "--critic_iter": "1",
    "--feed_lr": "0.0001", "--dec_lr": "0.0001", "--loop": "2", "--a1": "0.01", "--a2": "0.01",
    "--nclass_all": "50", "--dataroot": "data", "--dataset": "AWA2", "--batch_size": "64", "--nz": "85",
    "--latent_size": "85", "--attSize": "85", "--resSize": "2048", "--lr": "0.00001", "--classifier_lr": "0.001",
    "--nclass_seen": "40", "--freeze_dec": True, "--syn_num": "4600", "--center_margin": "50",
    "--center_weight": "0.5", "--recons_weight": "0.001", "--incenter_weight": "0.5",
}
# shiming-chen/FREE image-scripts/run_flo.py (as written: its `--nclass_seen 82\` line joins the next
# option in the Python string, so the published command fails; the values are taken as written)
RUN_FLO_PY = {
    "--gammaD": "10", "--gammaG": "10", "--gzsl": True, "--nclass_all": "102", "--latent_size": "1024",
    "--manualSeed": "806", "--preprocessing": True, "--class_embedding": "att", "--nepoch": "501", "--ngh": "4096",
    "--loop": "2", "--feed_lr": "0.00001", "--a1": "0.5", "--a2": "0.5", "--dec_lr": "0.0001", "--ndh": "4096",
    "--lambda1": "10", "--critic_iter": "5", "--dataset": "FLO", "--batch_size": "256", "--nz": "1024",
    "--attSize": "1024", "--resSize": "2048", "--lr": "0.0001", "--classifier_lr": "0.001", "--cuda": True,
    "--image_embedding": "res101", "--dataroot": "data", "--nclass_seen": "82", "--syn_num": "2400",
    "--center_margin": "200", "--center_weight": "0.5", "--recons_weight": "0.001", "--incenter_weight": "0.8",
}
# shiming-chen/FREE image-scripts/run_sun.py (it calls train_fear_inductive.py, with train_free.py's options)
RUN_SUN_PY = {
    "--gammaD": "1", "--gammaG": "1", "--gzsl": True, "--manualSeed": "4115", "--encoded_noise": True,
    "--preprocessing": True, "--cuda": True, "--image_embedding": "res101", "--class_embedding": "att",
    "--nepoch": "601", "--ngh": "4096", "--a1": "0.1", "--a2": "0.01", "--loop": "2", "--feed_lr": "0.0001",
    "--ndh": "4096", "--lambda1": "10", "--critic_iter": "1", "--dataset": "SUN", "--batch_size": "512",
    "--nz": "102", "--latent_size": "102", "--attSize": "102", "--resSize": "2048", "--lr": "0.0002",
    "--classifier_lr": "0.0005", "--nclass_seen": "645", "--nclass_all": "717", "--dataroot": "data",
    "--syn_num": "300", "--center_margin": "120", "--incenter_weight": "0.8", "--center_weight": "0.5",
    "--recons_weight": "0.1",
}
FREE_SCRIPTS = {"cub": RUN_CUB_PY, "awa2": RUN_AWA2_PY, "flo": RUN_FLO_PY, "sun": RUN_SUN_PY}
NOT_CARRIED = {"--a1", "--a2", "--feed_lr", "--nclass_seen", "--cuda", "--dataroot"}
RENAMED = {"--loop": "feedback_loop"}
FLAGS = ("--gzsl", "--preprocessing", "--encoded_noise", "--freeze_dec")  # store_true: absent = False
# FREE config.py defaults of the options a script may leave out
FREE_DEFAULTS = {"dec_lr": 0.0001}
# train_free.py picks the center loss by dataset: TripCenterLoss_margin for CUB, FLO, SUN; _min_margin for AWA
FREE_CENTER_LOSS = {"CUB": "margin", "FLO": "margin", "SUN": "margin", "AWA2": "min_margin"}


def setting_lines(path: Path) -> list[str]:
    return [line for line in path.read_text().splitlines() if line.strip() and not line.lstrip().startswith("#")]


@pytest.mark.parametrize("path", FILES, ids=lambda p: p.stem)
def test_file_loads_names_its_method_and_cites_every_value(path):
    cfg = load(path)
    assert cfg.method == path.stem.rsplit("_", 1)[1]
    lines = setting_lines(path)
    assert lines[0].startswith("method:")  # the house order: the method first
    for line in lines:
        assert re.match(r"[A-Za-z_][A-Za-z0-9_]*:\s*\S", line), line
        value, sep, comment = line.partition("#")
        assert sep and SOURCE.search(comment), f"{path.name}: no source named in {line!r}"


def expected_free_values(options: dict) -> dict:
    typed = {}
    for option, raw in options.items():
        if option in NOT_CARRIED or option in FLAGS:
            continue
        key = RENAMED.get(option, option[2:])
        kind = type(getattr(Config, key)) if getattr(Config, key) is not None else int
        typed[key] = raw if kind is str else kind(raw) if kind is not bool else raw
    typed.update({flag[2:]: options.get(flag, False) for flag in FLAGS})
    for key, value in FREE_DEFAULTS.items():
        typed.setdefault(key, value)
    typed["center_loss"] = FREE_CENTER_LOSS[options["--dataset"]]
    return typed


@pytest.mark.parametrize("bench", BENCHMARKS)
def test_free_values_are_the_run_scripts(bench):
    cfg = load(ROOT / "config" / "benchmarks" / f"{bench}_free.yaml")
    expected = expected_free_values(FREE_SCRIPTS[bench])
    found = {key: getattr(cfg, key) for key in expected}
    assert found == expected
    # FREE's own constants, not options of its scripts
    assert cfg.adaptive_lambda and cfg.beta1 == 0.5 and cfg.classifier_nepoch == 25 and cfg.classifier_beta1 == 0.5
    # what FREE's config.py accepts but train_free.py never reads stays at the default (the config refuses it anyway)
    assert (cfg.a1, cfg.a2, cfg.feed_lr) == (Config.a1, Config.a2, Config.feed_lr)


def test_a_mutated_free_value_fails_the_transcription_check():
    options = dict(RUN_CUB_PY, **{"--syn_num": "701"})
    cfg = load(ROOT / "config" / "benchmarks" / "cub_free.yaml")
    expected = expected_free_values(options)
    assert {key: getattr(cfg, key) for key in expected} != expected


def test_paper_results_have_a_method_column_with_every_method():
    with (ROOT / "config" / "paper_results.csv").open(newline="", encoding="utf-8") as handle:
        reader = csv.DictReader(handle)
        rows = list(reader)
    assert reader.fieldnames == ["benchmark", "features", "setting", "method", "metric", "value", "source"]
    assert {row["method"] for row in rows} == set(METHODS)
    assert all(row["source"].strip() for row in rows)
    # FREE reports GZSL only; f-VAEGAN-D2's transductive rows are ZSL top-1
    assert not [row for row in rows if row["method"] == "free" and row["metric"] == "zsl_top1"]
    assert {row["benchmark"] for row in rows if row["method"] == "fvaegan" and row["setting"] == "transductive"} \
        == {"cub", "awa2", "sun"}
