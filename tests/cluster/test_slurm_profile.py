"""The slurm profile's contract, checked without a cluster (fast; runs in the default suite).

The real submission is tests/cluster/test_slurm.py; this guards what it cannot: that the profile
names rules that exist, requests GPUs for exactly the rules that can use one, and that its
environment overrides evaluate as docs/slurm.md says.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]
PROFILE = REPO / "workflow" / "profiles" / "slurm" / "config.yaml"
RULES_DIR = REPO / "workflow" / "rules"
GPU_RULES = {"finetune_backbone", "finetune_selection_backbone", "train", "synthesize", "classify", "train_split", "synthesize_split",
             "classify_split", "search_trial", "search_final"}


@pytest.fixture(scope="module")
def profile() -> dict:
    return yaml.safe_load(PROFILE.read_text())


def evaluate(expression, env: dict[str, str]):
    """A profile resource value as Snakemake computes it: environment variables expanded, then
    evaluated as Python, falling back to the plain string (snakemake.resources)."""
    if not isinstance(expression, str):
        return expression
    saved = dict(os.environ)
    try:
        os.environ.clear()
        os.environ.update(env)
        try:
            return eval(os.path.expandvars(expression), {"threads": 3, "attempt": 1})  # noqa: S307
        except (NameError, SyntaxError):
            return expression
    finally:
        os.environ.clear()
        os.environ.update(saved)


def workflow_rules() -> dict[str, str]:
    """Rule name -> its source text, for every rule in workflow/rules/*.smk; a rule made with
    `use rule A as B with:` gets A's text followed by its own."""
    rules, derived = {}, {}
    for smk in sorted(RULES_DIR.glob("*.smk")):
        text = smk.read_text()
        starts = [(m.group(1) or m.group(3), m.group(2), m.start())
                  for m in re.finditer(r"^\s*(?:rule (\w+)|use rule (\w+) as (\w+) with):", text, re.MULTILINE)]
        for (name, base, start), (_, _, end) in zip(starts, [*starts[1:], ("", None, len(text))]):
            (derived if base else rules)[name] = (base, text[start:end])
    rules = {name: text for name, (_, text) in rules.items()}
    rules.update({name: rules[base] + text for name, (base, text) in derived.items()})
    return rules


def test_profile_submits_through_slurm_with_retries(profile):
    assert profile["executor"] == "slurm"
    assert profile["retries"] >= 1
    assert profile["jobs"] >= 1
    assert {"slurm_partition", "slurm_account", "runtime", "mem_mb", "cpus_per_task"} <= set(
        profile["default-resources"]
    )


def test_every_profile_entry_is_commented():
    """Each key has a comment line right above it, or is the only child of a commented block."""
    lines = PROFILE.read_text().splitlines()
    for number, line in enumerate(lines):
        key = re.match(r"^\s*([\w-]+):", line)
        if not key:
            continue
        above = lines[number - 1].strip() if number else ""
        documented = above.startswith("#") or re.fullmatch(r"[\w-]+:", above)
        assert documented, f"{PROFILE}:{number + 1}: entry {key.group(1)!r} has no comment above it"


@pytest.mark.skipif(not RULES_DIR.is_dir(), reason="workflow/rules not present")
def test_set_resources_name_real_rules_and_gpu_rules_only(profile):
    rules = workflow_rules()
    if not rules:
        pytest.skip("no rules in workflow/rules yet")
    named = set(profile["set-resources"])
    assert named <= set(rules), f"profile names unknown rules: {sorted(named - set(rules))}"
    requesting_gpu = {name for name, block in profile["set-resources"].items() if "gpu" in block or "gres" in block}
    assert requesting_gpu == GPU_RULES
    declaring_gpu = {name for name, text in rules.items() if re.search(r"\bgpu\s*=", text)}
    assert requesting_gpu == declaring_gpu, "the profile and the rules disagree on which rules use a GPU"


@pytest.mark.parametrize(
    ("env", "expected"),
    [({}, 1), ({"TFVAEGAN_SLURM_GPUS": "0"}, 0), ({"TFVAEGAN_SLURM_GPUS": "2"}, 2)],
)
def test_gpu_request_follows_environment(profile, env, expected):
    for rule in GPU_RULES:
        assert evaluate(profile["set-resources"][rule]["gpu"], env) == expected


def test_partition_and_account_follow_environment(profile):
    defaults = profile["default-resources"]
    assert evaluate(defaults["slurm_partition"], {}) == ""  # empty: the cluster's default partition
    assert evaluate(defaults["slurm_partition"], {"TFVAEGAN_SLURM_PARTITION": "gpu"}) == "gpu"
    assert evaluate(defaults["slurm_account"], {}) == ""
    assert evaluate(defaults["slurm_account"], {"TFVAEGAN_SLURM_ACCOUNT": "lab"}) == "lab"
    assert evaluate(defaults["cpus_per_task"], {}) == 3  # the rule's threads


@pytest.mark.skipif(not RULES_DIR.is_dir(), reason="workflow/rules not present")
def test_image_rules_decode_on_the_cpus_they_request(profile):
    """Fine-tuning and extraction decode images on a pool of the job's threads, which the profile requests
    as --cpus-per-task: no pool of 8 in a 1-CPU allocation."""
    rules = workflow_rules()
    for name in ("finetune_backbone", "finetune_selection_backbone", "extract_features", "extract_selection_features"):
        assert "--workers {threads}" in rules[name], name
    assert profile["default-resources"]["cpus_per_task"] == "threads"
    assert not any("cpus_per_task" in block for block in profile["set-resources"].values())
