"""The Snakemake workflow: lint, the six-benchmark DAG, the demo DAG end to end, caching by
params, resuming after a kill, and the split averaging."""
from __future__ import annotations

import csv
import importlib.util
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import pytest
import yaml
from conftest import PROJECT_ROOT
from snakemake.exceptions import WorkflowError
from snakemake.utils import validate
from snakemake_cli import SNAKEFILE, snakemake
from snakemake_cli import command as snakemake_command
from snakemake_cli import environment as snakemake_environment
from snakemake_cli import run as run_snakemake
from tiny_workflow import DEFAULT_CONFIG, TINY, write_config

from tfvaegan.catalog import Catalog
from tfvaegan.errors import ConfigError
from tfvaegan.features.demo import N_CLASSES
from tfvaegan.search import space as search_space

SCHEMA = PROJECT_ROOT / "workflow" / "schemas" / "config.schema.yaml"

ZSL_COLUMNS = ["benchmark", "protocol", "variant", "n_seeds", "top1_mean", "top1_std", "paper_top1"]
GZSL_COLUMNS = ["benchmark", "protocol", "variant", "n_seeds", "u_mean", "u_std", "s_mean", "s_std",
                "h_mean", "h_std", "paper_u", "paper_s", "paper_h"]


def job_counts(output: str) -> Counter:
    """Job counts per rule from the 'Job stats' table of a (dry) run."""
    table = output.split("Job stats:", 1)[1]
    counts = Counter()
    for line in table.splitlines()[3:]:
        parts = line.split()
        if len(parts) != 2 or parts[0] == "total":
            break
        counts[parts[0]] = int(parts[1])
    return counts


def planned_jobs(output: str) -> list[tuple[str, str]]:
    """(rule, output files) of every job a dry run lists: in the rule's details, or in its message
    ('Job N: <rule>: ... -> <output> (...)', the long rules)."""
    described = re.findall(r"^(?:local)?rule (\w+):\n(?:    .*\n)*?    output: (.*)$", output, flags=re.M)
    announced = re.findall(r"^Job \d+: (\w+): .* -> (\S+)", output, flags=re.M)
    return described + announced


# --------------------------------------------------------------------------- static checks
def test_lint_is_clean(tmp_path):
    result = snakemake(tmp_path, "--lint")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "Congratulations, your workflow is in a good condition" in result.stdout + result.stderr


def test_the_workflow_reads_the_package_without_loading_torch():
    """common.smk imports the catalog (with it the config and the data layout) and the errors of the package
    (one copy of each rule), search.smk the search space, every time Snakemake parses the workflow: none of
    them may pull torch in."""
    probe = ("import sys; import tfvaegan.catalog, tfvaegan.errors; "
             "from tfvaegan.search import space; "
             "heavy = sorted(m for m in ('torch', 'numpy', 'scipy', 'sklearn') if m in sys.modules); "
             "print(heavy); sys.exit(1 if heavy else 0)")
    result = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, cwd=PROJECT_ROOT,
                            timeout=60)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "from tfvaegan.catalog import" in (PROJECT_ROOT / "workflow" / "rules" / "common.smk").read_text()


def _placeholder_data(root: Path) -> None:
    """Empty files where the six benchmarks expect theirs: enough for a dry run."""
    import tfvaegan.config as config_module
    from tfvaegan.data.layout import feature_path, manual_attribute_path, split_path

    for name, entry in DEFAULT_CONFIG["catalog"].items():
        cfg = config_module.load(PROJECT_ROOT / entry["config"])
        datasets = [entry["split_dataset"].format(split=k) for k in entry.get("splits", [])] or [cfg.dataset]
        for dataset in datasets:
            split_cfg = config_module.from_mapping({**cfg.to_dict(), "dataset": dataset})
            for path in (feature_path(root, split_cfg), split_path(root, split_cfg)):
                path.parent.mkdir(parents=True, exist_ok=True)
                path.touch()
            if split_cfg.manual_att:
                manual_attribute_path(root, split_cfg).touch()


def test_dry_run_of_the_six_benchmarks_lists_every_job(tmp_path):
    _placeholder_data(tmp_path / "datasets")
    config = write_config(tmp_path / "six.yaml", benchmarks=["cub", "awa2", "flo", "sun", "hmdb51", "ucf101"],
                          protocols=["paper", "val"], seeds=[0, 1],
                          variants={"tfvaegan": {}, "baseline": {"recons_weight": 0.0, "feedback_loop": 1,
                                                                 "disc_features": False}})
    result = snakemake(tmp_path, "--configfile", config, "-n")
    assert result.returncode == 0, result.stdout + result.stderr
    combos = 2 * 2 * 2  # protocols x seeds x variants
    runs = combos * (4 + 1 + 29)  # four image benchmarks, HMDB51 split 1, UCF101 splits 1-29
    images, splits = combos * 4, combos * (1 + 29)  # runs of the image benchmarks; splits of the action ones
    assert images + splits == runs
    assert job_counts(result.stdout) == Counter(
        verify_features=6, train=images, synthesize=images, classify=images, train_split=splits,
        synthesize_split=splits, classify_split=splits, average_splits=2 * combos, tables=1, plots=1, all=1)
    commands = result.stdout
    assert "--set=dataset=\"ucf101_i3d/split_29\"" in commands or "'--set=dataset=\"ucf101_i3d/split_29\"'" in commands
    assert "--set=recons_weight=0.0" in commands and "--set=manualSeed=1" in commands
    assert "results/hmdb51/val/baseline/seed1/split_1/metrics.json" in commands
    # every rule calls the package CLI (`python -m tfvaegan <stage>`), the split average included
    assert "python -m tfvaegan average-splits --metrics" in commands


def test_documented_config_overrides_on_the_command_line(tmp_path):
    """config/README.md: `snakemake --cores all --config 'benchmarks=[cub,sun]' 'seeds=[0,1,2]'` (as a
    dry run here): Snakemake's parser hands the list items over as text; the workflow reads them as
    its schema and tfvaegan.config say (seeds are integers, run keys as --set reads them)."""
    _placeholder_data(tmp_path / "datasets")
    result = snakemake(tmp_path, "--cores", "all", "--config", "benchmarks=[cub,sun]", "seeds=[0,1,2]",
                       "overrides={nepoch: 3, lr: 1e-5, device: cpu}", "gpus_per_job=0", "-n")
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-2000:]
    counts = job_counts(result.stdout)
    assert counts["train"] == 2 * 2 * 3 and counts["classify"] == 12  # benchmarks x protocols x seeds
    assert "results/sun/val/tfvaegan/seed2/metrics.json" in result.stdout
    assert "--set=nepoch=3" in result.stdout and "--set=lr=1e-05" in result.stdout


def test_the_paper_configuration_plans_all_six_benchmarks_on_a_gpu(tmp_path):
    """README: `snakemake --cores all --configfile config/paper.yaml` (planned with placeholder files)."""
    _placeholder_data(tmp_path / "datasets")
    result = snakemake(tmp_path, "--cores", "all", "--configfile", PROJECT_ROOT / "config" / "paper.yaml", "-n")
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-2000:]
    combos = 2 * 3  # protocols x seeds
    counts = job_counts(result.stdout)
    assert counts["train"] == 4 * combos and counts["train_split"] == 30 * combos
    assert "--set=device=\"cuda\"" in result.stdout or "'--set=device=\"cuda\"'" in result.stdout
    assert "--set=amp" not in result.stdout  # the official numerics: float32, amp's default


def test_the_workflow_reads_this_checkouts_package_whatever_is_installed(tmp_path):
    """A copy of tfvaegan earlier on the path than the checkout (another install, another checkout)
    must not be what the workflow reads: its rules and jobs use the checkout they belong to."""
    impostor = tmp_path / "impostor" / "tfvaegan"
    impostor.mkdir(parents=True)
    (impostor / "__init__.py").write_text("raise ImportError('the wrong tfvaegan was imported')\n")
    env = {**os.environ, "PYTHONPATH": str(impostor.parent)}
    result = snakemake(tmp_path / "work", "-n", timeout=300, env=env)
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-2000:]


def test_custom_benchmark_inherits_a_named_benchmark_with_overrides(tmp_path):
    """A catalog entry pointing at cub.yaml, with its own dataset, feature stem and epochs."""
    for name in ("feats.mat", "att_splits.mat"):
        (tmp_path / "datasets" / "MINE").mkdir(parents=True, exist_ok=True)
        (tmp_path / "datasets" / "MINE" / name).touch()
    catalog = {**DEFAULT_CONFIG["catalog"], "mine": {
        "config": "config/benchmarks/cub.yaml",
        "settings": {"dataset": "MINE", "image_embedding": "feats", "nepoch": 7, "resSize": None,
                     "attSize": None, "nclass_all": None}}}
    config = write_config(tmp_path / "mine.yaml", benchmarks=["mine"], protocols=["paper"], catalog=catalog)
    result = snakemake(tmp_path, "--configfile", config, "-n")
    assert result.returncode == 0, result.stdout + result.stderr
    assert job_counts(result.stdout) == Counter(verify_features=1, train=1, synthesize=1, classify=1,
                                                tables=1, plots=1, all=1)
    out = result.stdout
    assert "datasets/MINE/feats.mat" in out
    assert "--config " + str(PROJECT_ROOT / "config/benchmarks/cub.yaml") in out
    for setting in ('--set=dataset="MINE"', '--set=image_embedding="feats"', "--set=nepoch=7"):
        assert setting in out, setting
    assert "--set=lr=" not in out, "inherited values come from the file, not from --set"
    assert "results/mine/paper/tfvaegan/seed0/metrics.json" in out


IMAGE_BENCHMARKS = ("cub", "awa2", "flo", "sun")
AUTHORS_EPOCHS = {"cub": 150, "awa2": 1, "flo": 4, "sun": 56}  # read from the authors' feature file names


def test_dry_run_of_the_fine_tuned_image_benchmarks_finetunes_and_extracts_before_training(tmp_path):
    _placeholder_data(tmp_path / "datasets")  # res101.mat (the image list) and att_splits.mat of each
    for made in (tmp_path / "datasets").glob("*/res101_finetuned.mat"):
        made.unlink()  # what the DAG makes
    config = write_config(tmp_path / "ft.yaml", benchmarks=[f"{b}_finetuned" for b in IMAGE_BENCHMARKS])
    result = snakemake(tmp_path, "--configfile", config, "-n")
    assert result.returncode == 0, result.stdout + result.stderr
    assert job_counts(result.stdout) == Counter(finetune_backbone=4, extract_features=4, verify_features=4,
                                                finetune_selection_backbone=4, extract_selection_features=4,
                                                train=8, synthesize=8, classify=8, tables=1, plots=1, all=1)
    jobs = planned_jobs(result.stdout)
    order = [rule for rule, _ in jobs]
    assert max(i for i, r in enumerate(order) if r in ("finetune_backbone", "extract_features")) < order.index("train")
    out = result.stdout
    for benchmark in IMAGE_BENCHMARKS:
        folder = {"cub": "CUB", "awa2": "AWA2", "flo": "FLO", "sun": "SUN"}[benchmark]
        backbone = f"datasets/{folder}/res101_finetuned_backbone.pt"
        assert ("finetune_backbone", backbone) in jobs
        assert ("extract_features", f"datasets/{folder}/res101_finetuned.mat") in jobs
        finetune = next(line for line in out.splitlines() if "tfvaegan finetune" in line and f"/{folder}/" in line)
        assert f"--list datasets/{folder}/res101.mat --split-file datasets/{folder}/att_splits.mat" in finetune
        assert f"--epochs {AUTHORS_EPOCHS[benchmark]} " in finetune and "--image-size 448" in finetune
        extract = next(line for line in out.splitlines()
                       if "tfvaegan extract" in line and f"--out datasets/{folder}/res101_finetuned.mat" in line)
        assert f"--weights {backbone}" in extract and "--allow-random-init" not in extract
        assert f"--config {PROJECT_ROOT / 'config/benchmarks'}/{benchmark}_finetuned.yaml" in out
        assert f"--benchmark {benchmark} " in out  # the label: its rows stand beside the plain ones
        assert f"results/{benchmark}_finetuned/paper/tfvaegan/seed0/metrics.json" in out

    # A copy of the authors' fine-tuned features instead: no fine-tuning, no extraction
    catalog = {**DEFAULT_CONFIG["catalog"]}
    for benchmark in IMAGE_BENCHMARKS:
        entry = catalog[f"{benchmark}_finetuned"]
        catalog[f"{benchmark}_finetuned"] = {"config": entry["config"], "label": benchmark, "features": "provided"}
        folder = yaml.safe_load((PROJECT_ROOT / entry["config"]).read_text())["dataset"]
        (tmp_path / "datasets" / folder / "res101_finetuned.mat").touch()
    config = write_config(tmp_path / "provided.yaml", benchmarks=[f"{b}_finetuned" for b in IMAGE_BENCHMARKS],
                          catalog=catalog)
    result = snakemake(tmp_path, "--configfile", config, "-n")
    assert result.returncode == 0, result.stdout + result.stderr
    counts = job_counts(result.stdout)
    assert counts["finetune_backbone"] == counts["extract_features"] == 0 and counts["train"] == 8
    assert "datasets/CUB/res101_finetuned.mat" in result.stdout


def test_dry_run_of_the_fine_tuned_demo_makes_one_selection_backbone_for_its_val_runs_and_the_search(tmp_path):
    """Issue 22, item 3: the val protocol's selection run (and every search trial) of fine-tuned features reads
    those of a backbone fine-tuned on the validation split's training part only: one fine-tuning and one
    extraction per feature file and seed, shared by the entries reading that file; the final run and the paper
    protocol read the trainval features."""
    twin = {**DEFAULT_CONFIG["catalog"]["demo_finetuned"], "settings": {
        **DEFAULT_CONFIG["catalog"]["demo_finetuned"]["settings"], "transductive": True}}
    config = write_config(tmp_path / "sel.yaml", benchmarks=["demo_finetuned", "demo_finetuned_t"],
                          protocols=["paper", "val"], catalog={**DEFAULT_CONFIG["catalog"], "demo_finetuned_t": twin},
                          search={"benchmark": "demo_finetuned", "trials": 1, "space": {"lr": [1e-3]}})
    result = snakemake(tmp_path, "--configfile", config, "-n")
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    assert job_counts(result.stdout) == Counter(demo_benchmark=1, finetune_backbone=1, extract_features=1,
                                                finetune_selection_backbone=1, extract_selection_features=1,
                                                verify_features=2, train=4, synthesize=4, classify=4, tables=1,
                                                plots=1, all=1)
    selection = "datasets/demo/res101_finetuned_selection_seed0"
    jobs = planned_jobs(result.stdout)
    assert ("finetune_selection_backbone", f"{selection}_backbone.pt") in jobs
    assert ("extract_selection_features", f"{selection}.mat") in jobs
    lines = result.stdout.splitlines()
    finetune = next(line for line in lines if "tfvaegan finetune" in line and "--train-part" in line)
    assert f"--out {selection}_backbone.pt " in finetune and "--train-part selection --val-seed 0" in finetune
    extract = next(line for line in lines if "tfvaegan extract" in line and f"--out {selection}.mat" in line)
    assert f"--weights {selection}_backbone.pt" in extract
    trains = [line for line in lines if "python -m tfvaegan train" in line]
    assert len(trains) == 4
    for line in trains:
        assert (f"--selection-features {selection}.mat" in line) == ("/val/" in line), line
    order = [rule for rule, _ in jobs]
    assert order.index("extract_selection_features") < max(i for i, r in enumerate(order) if r == "train")
    # the search on the fine-tuned entry: its trials and its final run read the same selection features
    result = snakemake(tmp_path, "search", "--configfile", config, "-n")  # the target first
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    counts = job_counts(result.stdout)
    assert counts["finetune_selection_backbone"] == counts["extract_selection_features"] == 1
    for command in ("python -m tfvaegan search trial", "python -m tfvaegan run"):
        line = next(line for line in result.stdout.splitlines() if command in line)
        assert f"--selection-features {selection}.mat" in line, line


def test_transductive_entries_are_their_inductive_twins_with_the_transductive_file():
    """config/config.yaml: each *_finetuned_transductive entry is its *_finetuned one (YAML merge key) but
    for the settings file, so both read one feature file made one way; demo_transductive is demo's."""
    catalog = DEFAULT_CONFIG["catalog"]
    for benchmark in IMAGE_BENCHMARKS:
        twin = {**catalog[f"{benchmark}_finetuned"],
                "config": f"config/benchmarks/{benchmark}_finetuned_transductive.yaml"}
        assert catalog[f"{benchmark}_finetuned_transductive"] == twin
        assert catalog[f"{benchmark}_transductive"] == {
            "config": f"config/benchmarks/{benchmark}_transductive.yaml", "label": benchmark, "features": "provided"}
        for name in (f"{benchmark}_transductive", f"{benchmark}_finetuned_transductive"):
            values = yaml.safe_load((PROJECT_ROOT / catalog[name]["config"]).read_text())
            assert (values["transductive"], values["transductive_prior"]) == (True, "uniform"), name
    assert catalog["demo_transductive"] == {**catalog["demo"], "label": "demo", "settings": {"transductive": True}}
    # the default DAG keeps its time budget; the transductive demo is one documented command (README)
    assert "demo_transductive" not in DEFAULT_CONFIG["benchmarks"]


DEMO_TRANSDUCTIVE_COMMAND = "snakemake --cores all --config 'benchmarks=[demo,demo_transductive]'"


def test_the_documented_transductive_demo_command_plans_both_settings_on_one_feature_file(tmp_path):
    for doc in ("README.md", "config/README.md", "docs/transductive.md", "config/config.yaml"):
        assert DEMO_TRANSDUCTIVE_COMMAND in (PROJECT_ROOT / doc).read_text(), doc
    result = snakemake(tmp_path, "--cores", "all", "--config", "benchmarks=[demo,demo_transductive]", "-n")
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-2000:]
    assert job_counts(result.stdout) == Counter(demo_benchmark=1, extract_features=1, verify_features=2, train=4,
                                                synthesize=4, classify=4, tables=1, plots=1, all=1)
    trains = [line for line in result.stdout.splitlines() if "python -m tfvaegan train" in line]
    assert len(trains) == 4
    for line in trains:
        assert ("--set=transductive=true" in line) == ("results/demo_transductive/" in line), line
    classify = [line for line in result.stdout.splitlines() if "python -m tfvaegan classify" in line]
    assert len(classify) == 4 and all("--benchmark demo " in line for line in classify)
    assert "results/demo_transductive/val/tfvaegan/seed0/metrics.json" in result.stdout


def test_dry_run_of_the_transductive_image_benchmarks_shares_the_feature_jobs(tmp_path):
    _placeholder_data(tmp_path / "datasets")
    for made in (tmp_path / "datasets").glob("*/res101_finetuned.mat"):
        made.unlink()  # what the DAG makes, once per dataset
    benchmarks = [f"{b}{kind}" for b in IMAGE_BENCHMARKS
                  for kind in ("", "_transductive", "_finetuned", "_finetuned_transductive")]
    config = write_config(tmp_path / "t.yaml", benchmarks=benchmarks, protocols=["paper", "val"])
    result = snakemake(tmp_path, "--configfile", config, "-n")
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    runs = 2 * len(benchmarks)
    assert job_counts(result.stdout) == Counter(finetune_backbone=4, extract_features=4, verify_features=16,
                                                finetune_selection_backbone=4, extract_selection_features=4,
                                                train=runs, synthesize=runs, classify=runs, tables=1, plots=1, all=1)
    out = result.stdout
    for benchmark in IMAGE_BENCHMARKS:
        for kind in ("_transductive", "_finetuned_transductive"):
            assert f"--config {PROJECT_ROOT / 'config/benchmarks'}/{benchmark}{kind}.yaml" in out
            assert f"results/{benchmark}{kind}/val/tfvaegan/seed0/metrics.json" in out
        folder = {"cub": "CUB", "awa2": "AWA2", "flo": "FLO", "sun": "SUN"}[benchmark]
        verified = re.findall(rf"^    input: (datasets/{folder}/\S+), .*\n    output: \S+/(\w+)/data.json", out, re.M)
        assert sorted(verified) == sorted([(f"datasets/{folder}/res101.mat", n) for n in (benchmark,
                                           f"{benchmark}_transductive")] + [
            (f"datasets/{folder}/res101_finetuned.mat", n) for n in (f"{benchmark}_finetuned",
                                                                     f"{benchmark}_finetuned_transductive")])


LINEAGE_METHODS = ("fclswgan", "fvaegan", "free")


def test_dry_run_of_the_lineage_on_the_image_benchmarks_plans_every_run_on_one_feature_file_each(tmp_path):
    """The four image benchmarks by TF-VAEGAN, f-CLSWGAN, f-VAEGAN and FREE, and f-VAEGAN-D2 (planned with
    placeholder files): every run planned, each method's file and settings passed, one label per benchmark."""
    _placeholder_data(tmp_path / "datasets")
    benchmarks = [*IMAGE_BENCHMARKS, *(f"{b}_{m}" for b in IMAGE_BENCHMARKS for m in LINEAGE_METHODS),
                  *(f"{b}_fvaegan_transductive" for b in IMAGE_BENCHMARKS)]
    config = write_config(tmp_path / "lineage.yaml", benchmarks=benchmarks, protocols=["paper", "val"])
    result = snakemake(tmp_path, "--configfile", config, "-n")
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    runs = 2 * len(benchmarks)
    assert job_counts(result.stdout) == Counter(verify_features=len(benchmarks), train=runs, synthesize=runs,
                                                classify=runs, tables=1, plots=1, all=1)
    lines = result.stdout.splitlines()
    for benchmark in IMAGE_BENCHMARKS:
        for name in (*(f"{benchmark}_{m}" for m in LINEAGE_METHODS), f"{benchmark}_fvaegan_transductive"):
            trains = [line for line in lines if "python -m tfvaegan train" in line and f"results/{name}/" in line]
            assert len(trains) == 2, name  # paper and val
            file = name.removesuffix("_transductive")
            for line in trains:
                assert f"--config {PROJECT_ROOT / 'config/benchmarks'}/{file}.yaml" in line, line
                assert ("--set=transductive=true" in line) == name.endswith("_transductive"), line
            classify = [line for line in lines if "python -m tfvaegan classify" in line and f"results/{name}/" in line]
            assert len(classify) == 2 and all(f"--benchmark {benchmark} " in line for line in classify), name
    assert "results/tables/methods.csv" in result.stdout


DEMO_LINEAGE_COMMAND = "snakemake --cores all --config 'benchmarks=[demo,demo_fclswgan,demo_fvaegan,demo_free]'"


def test_the_documented_lineage_demo_command_plans_four_methods_on_one_feature_file(tmp_path):
    for doc in ("README.md", "docs/results.md", "config/config.yaml"):
        assert DEMO_LINEAGE_COMMAND in (PROJECT_ROOT / doc).read_text(), doc
    result = snakemake(tmp_path, "--cores", "all", "--config", "benchmarks=[demo,demo_fclswgan,demo_fvaegan,demo_free]",
                       "-n")
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-2000:]
    assert job_counts(result.stdout) == Counter(demo_benchmark=1, extract_features=1, verify_features=4, train=8,
                                                synthesize=8, classify=8, tables=1, plots=1, all=1)
    trains = [line for line in result.stdout.splitlines() if "python -m tfvaegan train" in line]
    for method in LINEAGE_METHODS:
        mine = [line for line in trains if f"results/demo_{method}/" in line]
        assert len(mine) == 2 and all(f"config/benchmarks/demo_{method}.yaml" in line for line in mine), method
    classify = [line for line in result.stdout.splitlines() if "python -m tfvaegan classify" in line]
    assert len(classify) == 8 and all("--benchmark demo " in line for line in classify)


def test_a_transductive_entry_of_a_downloaded_benchmark_downloads_its_files(tmp_path):
    config = write_config(tmp_path / "cub_t.yaml", benchmarks=["cub_transductive"], protocols=["paper"])
    result = snakemake(tmp_path, "--configfile", config, "-n")
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-2000:]
    assert job_counts(result.stdout)["download_xlsa17"] == 1
    config = write_config(tmp_path / "flo_t.yaml", benchmarks=["flo_transductive"], protocols=["paper"])
    result = snakemake(tmp_path, "--configfile", config, "-n")  # FLO is not in the archive
    assert result.returncode != 0 and "datasets/FLO/res101.mat not found" in result.stdout + result.stderr


def test_missing_files_point_to_the_datasets_readme_and_xlsa17_is_downloaded(tmp_path):
    config = write_config(tmp_path / "flo.yaml", benchmarks=["flo"], protocols=["paper"])
    result = snakemake(tmp_path, "--configfile", config, "-n")
    assert result.returncode != 0
    assert "datasets/FLO/res101.mat not found" in result.stderr + result.stdout
    assert "datasets/README.md" in result.stderr + result.stdout

    config = write_config(tmp_path / "cub.yaml", benchmarks=["cub"], protocols=["paper"])
    result = snakemake(tmp_path, "--configfile", config, "-n")
    assert result.returncode == 0, result.stdout + result.stderr
    assert job_counts(result.stdout)["download_xlsa17"] == 1


def checked(config: dict) -> Catalog:
    """What common.smk and search.smk check when Snakemake parses the workflow, called directly: the schema
    (which sets its defaults), the catalog and every run (tfvaegan.catalog), the search section."""
    config = yaml.safe_load(yaml.safe_dump(config))  # as a --configfile reaches the workflow
    validate(config, str(SCHEMA), set_default=True)
    catalog = Catalog(config, PROJECT_ROOT)
    catalog.check()
    search_space.plan_workflow_search(catalog)
    return catalog


def refusal(config: dict) -> str:
    """The one message a bad configuration is refused with (by the checks of `checked`)."""
    with pytest.raises((ConfigError, WorkflowError)) as refused:
        checked(config)
    return str(refused.value)


def test_the_default_and_documented_configurations_pass_the_checks():
    for path in (PROJECT_ROOT / "config" / name for name in ("config.yaml", "paper.yaml", "search.yaml")):
        values = yaml.safe_load(path.read_text())
        catalog = checked(values if "catalog" in values else {**DEFAULT_CONFIG, **values})
        assert catalog.prepared


def test_unknown_config_key_is_refused():
    message = refusal({**DEFAULT_CONFIG, "variants": {"typo": {"nepochs": 3}}})
    assert "unknown key(s) ['nepochs']" in message


NAME_RULE = "['propertyNames']"  # the schema's rule for names (with its description)


@pytest.mark.parametrize("changes, message", [
    ({"variants": {"..": {}}}, ("'..' does not match", "instance['variants']", NAME_RULE)),
    ({"variants": {".hidden": {}}}, ("'.hidden' does not match", "instance['variants']", NAME_RULE)),
    ({"benchmarks": ["tables"], "catalog": {**DEFAULT_CONFIG["catalog"], "tables": DEFAULT_CONFIG["catalog"]["demo"]}},
     ("'tables' should not be valid", "instance['catalog']", NAME_RULE)),
    ({"benchmarks": ["a/b"], "catalog": {**DEFAULT_CONFIG["catalog"], "a/b": DEFAULT_CONFIG["catalog"]["demo"]}},
     ("'a/b' does not match", "instance['catalog']", NAME_RULE)),
    ({"benchmarks": ["demo", "demo"]}, "has non-unique elements"),
    ({"seeds": ["0"]}, "'0' is not of type 'integer'"),
    ({"benchmarks": ["nope"]}, "config key 'benchmarks': 'nope' has no entry under 'catalog'"),
    ({"catalog": {**DEFAULT_CONFIG["catalog"], "demo": {**DEFAULT_CONFIG["catalog"]["demo"], "config": "nothere.yaml"}}},
     "config key 'catalog.demo.config': file"),
    ({"overrides": {"feedback_loop": "two"}}, "key 'feedback_loop'"),
    ({"benchmarks": ["demo_finetuned"], "catalog": {**DEFAULT_CONFIG["catalog"], "demo_finetuned": {
        **DEFAULT_CONFIG["catalog"]["demo_finetuned"], "settings": {"image_embedding": "ft", "features": "plain"}}}},
     "features: finetune makes fine-tuned features, but its config says features: 'plain'"),
    ({"benchmarks": ["demo", "demo_finetuned"], "catalog": {**DEFAULT_CONFIG["catalog"], "demo_finetuned": {
        **DEFAULT_CONFIG["catalog"]["demo_finetuned"], "settings": {}}}},
     ("catalog entries 'demo' and 'demo_finetuned': both read datasets/demo/res101.mat", "own image_embedding")),
    ({"benchmarks": ["demo", "demo2"], "catalog": {**DEFAULT_CONFIG["catalog"], "demo2": {
        **DEFAULT_CONFIG["catalog"]["demo"], "label": "demo"}}},
     "catalog entries 'demo' and 'demo2': both are benchmark 'demo' with plain features"),
    ({"catalog": {**DEFAULT_CONFIG["catalog"], "demo": {**DEFAULT_CONFIG["catalog"]["demo"], "images": "web"}}},
     "'web' is not one of ['provided', 'demo']"),
    ({"benchmarks": ["demo_transductive", "demo_t2"], "catalog": {**DEFAULT_CONFIG["catalog"], "demo_t2": {
        **DEFAULT_CONFIG["catalog"]["demo_transductive"]}}},
     "catalog entries 'demo_transductive' and 'demo_t2': both are benchmark 'demo' with plain features, "
     "transductive (uniform prior, unlabelled test), in the tables"),
    ({"benchmarks": ["demo", "demo_transductive"], "catalog": {**DEFAULT_CONFIG["catalog"], "demo_transductive": {
        **DEFAULT_CONFIG["catalog"]["demo_transductive"], "extraction": {"image_size": 64}}}},
     ("catalog entries 'demo' and 'demo_transductive': both read datasets/demo/res101.mat", "make them agree")),
    ({"benchmarks": ["cub_finetuned", "cub_finetuned_transductive"], "catalog": {
        **DEFAULT_CONFIG["catalog"], "cub_finetuned_transductive": {
            **DEFAULT_CONFIG["catalog"]["cub_finetuned_transductive"], "image_root": "other_images"}}},
     "catalog entries 'cub_finetuned' and 'cub_finetuned_transductive': both read datasets/CUB/res101_finetuned.mat"),
])
def test_bad_workflow_config_is_refused_with_one_message(changes, message):
    refused = refusal({**DEFAULT_CONFIG, **changes})
    for part in (message if isinstance(message, tuple) else (message,)):
        assert part in refused, (part, refused)


# One real snakemake call per kind of refusal (the search section's: tests/test_search_workflow.py), to prove
# the wiring: the same message, before the DAG, no traceback.
@pytest.mark.parametrize("changes, message", [
    ({"variants": {"..": {}}}, ("'..' does not match", "instance['variants']", NAME_RULE)),  # the schema
    ({"variants": {"typo": {"nepochs": 3}}}, ("unknown key(s) ['nepochs']",)),  # a run's config
    ({"benchmarks": ["nope"]}, ("config key 'benchmarks': 'nope' has no entry under 'catalog'",)),  # the catalog
    ({"benchmarks": ["demo", "demo_transductive"], "catalog": {  # the feature files' agreement
        **DEFAULT_CONFIG["catalog"], "demo_transductive": {**DEFAULT_CONFIG["catalog"]["demo_transductive"],
                                                           "extraction": {"image_size": 64}}}},
     ("catalog entries 'demo' and 'demo_transductive': both read datasets/demo/res101.mat", "make them agree")),
])
def test_bad_workflow_config_gives_one_error_before_the_dag(tmp_path, changes, message):
    config = write_config(tmp_path / "bad.yaml", **changes)
    result = snakemake(tmp_path, "--configfile", config, "-n")
    out = result.stdout + result.stderr
    assert result.returncode != 0
    for part in message:
        assert part in out, (part, out[-2000:])
    # checked when the workflow is read, not inside a job's params while the DAG is built
    assert "Building DAG of jobs" not in out and "Exception" not in out.replace("WorkflowError", "")


def test_variant_names_with_plus_and_dots_make_their_own_folders(tmp_path):
    config = write_config(tmp_path / "plus.yaml", benchmarks=["demo"], protocols=["paper"],
                          variants={"tfvaegan": {}, "+decoder": {"feedback_loop": 1, "disc_features": False},
                                    "v1.2": {"nepoch": 3}})
    result = snakemake(tmp_path, "--configfile", config, "-n")
    assert result.returncode == 0, result.stdout + result.stderr
    assert job_counts(result.stdout)["classify"] == 3
    outputs = {out for rule, out in planned_jobs(result.stdout) if rule == "classify"}
    assert outputs == {f"results/demo/paper/{v}/seed0/metrics.json" for v in ("tfvaegan", "+decoder", "v1.2")}
    assert "--variant +decoder" in result.stdout and "--set=nepoch=3" in result.stdout


# --------------------------------------------------------------------------- the slurm profile
SLURM_PROFILE = PROJECT_ROOT / "workflow" / "profiles" / "slurm"
# `pip install -e ".[test]"` installs the executor plugin; a checkout without it skips these cleanly.
needs_slurm_plugin = pytest.mark.skipif(importlib.util.find_spec("snakemake_executor_plugin_slurm") is None,
                                        reason="snakemake-executor-plugin-slurm is not installed "
                                               "(pip install -e '.[test]')")


@needs_slurm_plugin
def test_slurm_profile_options_exist_and_resume_like_the_default_profile():
    profile = yaml.safe_load((SLURM_PROFILE / "config.yaml").read_text())
    help_text = run_snakemake("--executor", "slurm", "--help", timeout=300, slurm=True).stdout
    for key in profile:
        assert re.search(rf"--{re.escape(key)}\b", help_text), f"profile option {key!r} is not a snakemake option"
    default = yaml.safe_load((PROJECT_ROOT / "workflow" / "profiles" / "default" / "config.yaml").read_text())
    assert profile.get("rerun-incomplete") is default["rerun-incomplete"] is True  # docs/slurm.md: resuming


@needs_slurm_plugin
def test_slurm_profile_requests_gpus_for_the_gpu_rules_and_names_real_rules(tmp_path):
    env = {**os.environ, "TFVAEGAN_SLURM_GPUS": "2"}
    result = snakemake(tmp_path, "--workflow-profile", SLURM_PROFILE, "-n", timeout=300, env=env, slurm=True)
    assert result.returncode == 0, result.stdout + result.stderr
    jobs = re.findall(r"^(?:local)?rule (\w+):\n(?:    .*\n)*?    resources: (.*)$", result.stdout, flags=re.M)
    assert jobs
    gpu_rules = ("finetune_backbone", "finetune_selection_backbone", "train", "synthesize", "classify")
    for rule, resources in jobs:
        if rule == "all":
            continue
        assert ("gpu=2" in resources) == (rule in gpu_rules), (rule, resources)
        assert "cpus_per_task=" in resources and "runtime=" in resources and "mem_mb=" in resources, rule
    # the long rules announce themselves with a message that states their request instead
    announced = re.findall(r"^Job \d+: (\w+): .*\((\d+) thread\(s\), (?:(\d+) GPU\(s\), )?\d+ MB, at most \d+ min\)$",
                           result.stdout, flags=re.M)
    assert {rule for rule, _, _ in announced} >= {"train", "classify"}
    for rule, _, gpus in announced:
        assert (gpus == "2") == (rule in gpu_rules), (rule, gpus)
    rules = set(snakemake(tmp_path, "--list-rules", timeout=300).stdout.split())
    profile = yaml.safe_load((SLURM_PROFILE / "config.yaml").read_text())
    assert set(profile["set-resources"]) <= rules
    # rule names the profile's comments and docs/slurm.md mention are rules of the workflow
    for text in ((SLURM_PROFILE / "config.yaml").read_text(), (PROJECT_ROOT / "docs" / "slurm.md").read_text()):
        named = set(re.findall(r"\b(?:download|verify|extract|demo|average)_[a-z0-9_]+", text))
        assert named and named <= rules, named - rules


def test_schema_refuses_an_unknown_protocol():
    assert "'test' is not one of ['paper', 'val']" in refusal({**DEFAULT_CONFIG, "protocols": ["test"]})


def test_schema_defaults_are_config_yaml_values():
    # A complete --configfile that leaves a key out gets the schema's default: it must be what
    # config/config.yaml says (a partial resource group keeps config.yaml's other fields).
    from snakemake.utils import validate

    schema = PROJECT_ROOT / "workflow" / "schemas" / "config.schema.yaml"
    config = json.loads(json.dumps(DEFAULT_CONFIG))
    keys = ("benchmarks", "protocols", "seeds", "variants", "resources", "gpus_per_job", "gpus", "jobs_per_gpu")
    for key in keys:
        del config[key]
    validate(config, str(schema), set_default=True)
    for key in keys:
        assert config[key] == DEFAULT_CONFIG[key], key
    partial = json.loads(json.dumps(DEFAULT_CONFIG))
    partial["resources"] = {"train": {"threads": 4}}
    validate(partial, str(schema), set_default=True)
    assert partial["resources"]["train"] == {**DEFAULT_CONFIG["resources"]["train"], "threads": 4}
    assert partial["resources"]["tables"] == DEFAULT_CONFIG["resources"]["tables"]


# --------------------------------------------------------------------------- the local GPU pool (issue 23)
GPU_RULES = ("finetune_backbone", "finetune_selection_backbone", "train", "synthesize", "classify", "search_trial",
             "search_final")


def test_a_config_asking_for_a_gpu_stops_a_local_run_without_one_before_any_job(tmp_path):
    """A real (not dry) local run whose config asks for a GPU, on a machine without one: one error naming the
    key, before the first job; the dry run of the same config plans it (Snakemake's onstart runs for real runs
    only)."""
    config = write_config(tmp_path / "gpu.yaml", benchmarks=["demo"], protocols=["paper"], gpus_per_job=1)
    no_gpu = {**os.environ, "CUDA_VISIBLE_DEVICES": ""}  # no GPU, wherever the tests run
    assert snakemake(tmp_path, "--configfile", config, "-n", env=no_gpu).returncode == 0
    result = snakemake(tmp_path, "--configfile", config, "--cores", "1", env=no_gpu)
    out = result.stdout + result.stderr
    assert result.returncode != 0
    assert out.count("config key 'gpus_per_job': 1 asks for a GPU, but this machine has none") == 1, out[-2000:]
    assert not (tmp_path / "logs").exists() and not (tmp_path / "datasets").exists()  # no job ran
    assert "Exception" not in out.replace("WorkflowError", "")


def test_every_gpu_job_runs_on_a_slot_of_the_local_pool_and_image_jobs_decode_on_their_threads(tmp_path):
    """Each GPU rule's command runs under `python -m tfvaegan.gpu_slots` with the job's own device (the run's,
    the fine-tuning's, the extraction's) and GPU request; fine-tuning and extraction decode images on the job's
    threads."""
    resources = {**DEFAULT_CONFIG["resources"], "extract": {**DEFAULT_CONFIG["resources"]["extract"], "threads": 3},
                 "finetune": {**DEFAULT_CONFIG["resources"]["finetune"], "threads": 3}}
    config = write_config(tmp_path / "pool.yaml", benchmarks=["demo", "demo_finetuned"], protocols=["paper", "val"],
                          variants={"tfvaegan": {}, "gpu": {"device": "cuda:1"}}, gpus=2, gpus_per_job=2,
                          resources=resources,
                          search={"benchmark": "demo", "trials": 1, "space": {"lr": [1e-3]}})
    result = snakemake(tmp_path, "all", "search", "--configfile", config, "-n", "--cores", "4")
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    commands = [line for line in result.stdout.splitlines() if "python -m tfvaegan " in line]
    wrapped = {rule: [c for c in commands if re.search(rf"python -m tfvaegan {rule}\b", c)]
               for rule in ("finetune", "train", "synthesize", "classify", "search trial", "run", "extract")}
    assert all(wrapped.values()), {rule: len(found) for rule, found in wrapped.items()}
    for rule, found in wrapped.items():
        for command in found:
            device = re.search(r"python -m tfvaegan\.gpu_slots --device (\S+)( --gpus-requested 2)? -- python -m "
                               r"tfvaegan ", command)  # the job's `gpu` resource: gpus_per_job
            assert device and bool(device.group(2)) == (rule != "extract"), command
            expected = {"finetune": "auto", "extract": "cpu"}.get(rule)
            if expected is None:  # a run's: the demo's file says cpu, the `gpu` variant cuda:1
                expected = "cuda:1" if "/gpu/" in command else "cpu"
            assert device.group(1) == expected, command
            if rule in ("finetune", "extract"):
                assert command.endswith("--workers 3 > " + command.split(" > ")[-1]), command
    on_slots = [c for c in commands if "tfvaegan.gpu_slots" in c and "tfvaegan extract" not in c]
    assert len(on_slots) == sum(job_counts(result.stdout)[rule] for rule in GPU_RULES)  # every GPU job's


@pytest.mark.slow
@pytest.mark.xdist_group("tiny_workflow")
@pytest.mark.timeout(900)  # the first reader makes the shared run
def test_with_one_gpu_and_one_job_per_gpu_the_gpu_jobs_run_one_at_a_time(tiny_workflow, tmp_path):
    """Issue 23's acceptance on this CPU machine: with a GPU count of 1 given (gpus: 1, jobs_per_gpu: 1) two
    trainings Snakemake starts side by side (--cores 2) hold the GPU one after the other: each log's claim time
    comes after the other's last line, or before its claim. Their records name the GPU they were given."""
    workdir = tmp_path / "one_gpu"
    shutil.copytree(tiny_workflow.workdir / "datasets" / "demo", workdir / "datasets" / "demo")  # mtimes kept
    (workdir / "results" / "demo").mkdir(parents=True)
    shutil.copy2(tiny_workflow.workdir / "results" / "demo" / "data.json", workdir / "results" / "demo")
    settings = yaml.safe_load(Path(tiny_workflow.config).read_text())
    settings.update(benchmarks=["demo"], protocols=["paper"], seeds=[0, 1], gpus_per_job=1, gpus=1, jobs_per_gpu=1)
    config = workdir / "config.yaml"
    config.write_text(yaml.safe_dump(settings))
    runs = [f"results/demo/paper/tfvaegan/seed{seed}" for seed in (0, 1)]
    env = {**os.environ, "TFVAEGAN_GPU_SLOT_DIR": str(tmp_path / "slots"), "CUDA_VISIBLE_DEVICES": ""}
    result = snakemake(workdir, "--configfile", config, "--cores", "2", *[f"{run}/model.pt" for run in runs], env=env)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    assert job_counts(result.stdout + result.stderr) == Counter(train=2)
    spans = []
    for seed in (0, 1):
        log = workdir / "logs" / "train" / "demo" / "paper" / "tfvaegan" / f"seed{seed}.log"
        claimed = re.search(r"^gpu slot: GPU 0 \(slot 1 of 1; .* claimed at (\d+\.\d+)$", log.read_text(), flags=re.M)
        assert claimed, log.read_text()[:2000]
        spans.append((float(claimed.group(1)), log.stat().st_mtime))
    (_, end_first), (start_second, _) = sorted(spans)
    assert end_first <= start_second, spans  # the second claimed the GPU only after the first's last line
    import torch

    for run in runs:
        saved = torch.load(workdir / run / "model.pt", map_location="cpu", weights_only=False)
        assert saved["provenance"]["cuda_visible_devices"] == "0"


# --------------------------------------------------------------------------- end to end (the tiny run)
# tests/tiny_workflow.py: one run of the workflow shared by these tests, the search's and the cluster's.
def _rows(path: Path) -> list[dict]:
    with open(path, newline="") as handle:
        return list(csv.DictReader(handle))


def _metrics(workdir: Path, benchmark: str, protocol: str = "paper") -> dict:
    return json.loads((workdir / "results" / benchmark / protocol / "tfvaegan" / "seed0" / "metrics.json").read_text())


@pytest.mark.slow
@pytest.mark.xdist_group("tiny_workflow")
@pytest.mark.timeout(900)  # the first reader makes the shared run
def test_demo_dag_writes_the_tables(tiny_workflow):
    workdir = tiny_workflow.workdir
    counts = job_counts(tiny_workflow.main)
    # one demo and one plain extraction for demo, demo_b and demo_transductive; demo_finetuned's own
    assert counts == Counter(demo_benchmark=1, finetune_backbone=1, extract_features=2, verify_features=4,
                             train=4, synthesize=4, classify=4, tables=1, plots=1, all=1)
    zsl = _rows(workdir / "results" / "tables" / "zsl.csv")
    gzsl = _rows(workdir / "results" / "tables" / "gzsl.csv")
    assert list(zsl[0])[:len(ZSL_COLUMNS)] == ZSL_COLUMNS or set(ZSL_COLUMNS) <= set(zsl[0])
    assert set(GZSL_COLUMNS) <= set(gzsl[0])
    kinds = {"demo": ("demo", "plain", "inductive"), "demo_b": ("demo_b", "plain", "inductive"),
             "demo_finetuned": ("demo", "finetuned", "inductive"),
             "demo_transductive": ("demo", "plain", "transductive")}
    assert sorted((r["benchmark"], r["features"], r["setting"]) for r in zsl) == sorted(kinds.values())
    for name, (label, features, setting) in kinds.items():
        row = next(r for r in zsl if (r["benchmark"], r["features"], r["setting"]) == (label, features, setting))
        grow = next(r for r in gzsl if (r["benchmark"], r["features"], r["setting"]) == (label, features, setting))
        metrics = _metrics(workdir, name)
        assert (metrics["benchmark"], metrics["protocol"], metrics["variant"]) == (label, "paper", "tfvaegan")
        assert (metrics["features"], metrics["setting"]) == (features, setting)
        assert row["protocol"] == "paper" and row["variant"] == "tfvaegan" and int(row["n_seeds"]) == 1
        assert float(row["top1_mean"]) == pytest.approx(100 * metrics["zsl_acc"], abs=0.051)
        assert float(grow["h_mean"]) == pytest.approx(100 * metrics["gzsl_h"], abs=0.051)
        assert 0 <= float(row["top1_mean"]) <= 100
    assert _metrics(workdir, "demo_transductive")["transductive_prior"] == "uniform"
    assert next(r for r in zsl if r["setting"] == "transductive")["prior"] == "uniform"
    for name in ("paper_vs_ours.png", "training_curves.png"):
        assert (workdir / "results" / "plots" / name).stat().st_size > 0
    main_table = (workdir / "results" / "tables" / "main_table.md").read_text()  # the paper's layout (issue 23)
    assert "| Setting | Method | DEMO T1 | DEMO u | DEMO s | DEMO H | DEMO_B T1 |" in main_table
    assert "| Fine-tuned features, inductive | TF-VAEGAN (ours, paper protocol) |" in main_table
    assert "\\begin{tabular}{l cccc cccc}" in (workdir / "results" / "tables" / "main_table.tex").read_text()
    record = json.loads((workdir / "results" / "demo_b" / "data.json").read_text())
    assert record["datasets"][0]["classes"] == N_CLASSES
    assert (workdir / "benchmarks" / "train" / "demo_b" / "paper" / "tfvaegan" / "seed0.tsv").is_file()
    assert (workdir / "logs" / "train" / "demo_b" / "paper" / "tfvaegan" / "seed0.log").is_file()


@pytest.mark.slow
@pytest.mark.xdist_group("tiny_workflow")
def test_same_config_is_up_to_date_and_a_changed_hyperparameter_reruns_only_its_benchmark(tiny_workflow):
    workdir, config = tiny_workflow.workdir, tiny_workflow.config
    result = snakemake(workdir, "--configfile", config, "-n")
    assert result.returncode == 0 and "Nothing to be done" in result.stdout + result.stderr

    # lr: a key of demo_b's file that tests/tiny_workflow.yaml's overrides leave alone
    (workdir / "demo_b.yaml").write_text(yaml.safe_dump({**TINY, "lr": 0.002}))
    try:
        result = snakemake(workdir, "--configfile", config, "-n")
    finally:
        (workdir / "demo_b.yaml").write_text(yaml.safe_dump(TINY))
    assert result.returncode == 0, result.stdout + result.stderr
    jobs = planned_jobs(result.stdout)
    per_run = {(rule, out.split("/")[1]) for rule, out in jobs if rule in ("train", "synthesize", "classify")}
    assert per_run == {("train", "demo_b"), ("synthesize", "demo_b"), ("classify", "demo_b")}
    assert {rule for rule, _ in jobs} == {"train", "synthesize", "classify", "tables", "plots"}


@pytest.mark.slow
@pytest.mark.xdist_group("tiny_workflow")
def test_demo_with_fine_tuned_features_runs_beside_the_plain_demo(tiny_workflow):
    workdir = tiny_workflow.workdir
    assert (workdir / "datasets" / "demo" / "res101_finetuned_backbone.pt").is_file()
    log = (workdir / "logs" / "finetune_backbone" / "demo" / "res101_finetuned.log").read_text()
    assert "other listed images are never opened" in log and "epoch 1/1" in log
    for name, features in (("demo", "plain"), ("demo_finetuned", "finetuned")):
        metrics = _metrics(workdir, name)
        assert (metrics["benchmark"], metrics["features"], metrics["config"]["features"]) == (
            "demo", features, features)
    inductive = [(r["benchmark"], r["features"]) for r in _rows(workdir / "results" / "tables" / "zsl.csv")
                 if r["benchmark"] == "demo" and r["setting"] == "inductive"]
    assert inductive == [("demo", "plain"), ("demo", "finetuned")]
    assert [r["features"] for r in _rows(workdir / "results" / "tables" / "gzsl.csv")
            if r["benchmark"] == "demo" and r["setting"] == "inductive"] == ["plain", "finetuned"]


@pytest.mark.slow
@pytest.mark.xdist_group("tiny_workflow")
def test_run_killed_mid_training_resumes_and_completes(tiny_workflow):
    workdir, config = tiny_workflow.workdir, tiny_workflow.config
    (workdir / "demo_slow.yaml").write_text(yaml.safe_dump({**TINY, "nepoch": 6}))
    settings = yaml.safe_load(Path(config).read_text())
    settings["benchmarks"] = ["demo_slow"]
    settings["catalog"]["demo_slow"] = {**settings["catalog"]["demo_b"], "config": str(workdir / "demo_slow.yaml")}
    settings["overrides"] = {**settings["overrides"], "nepoch": 6, "checkpoint_every": 1}
    slow = workdir / "slow.yaml"
    slow.write_text(yaml.safe_dump(settings))
    target = workdir / "results" / "demo_slow" / "paper" / "tfvaegan" / "seed0" / "model.pt"
    command = snakemake_command("-s", SNAKEFILE, "-d", workdir, "--configfile", slow, "--cores", "1",
                                target.relative_to(workdir))  # targets are relative to the working directory
    # Training waits after epoch 3 (and its checkpoint) until interrupted: the Ctrl-C lands mid-training
    # however fast or loaded the machine is.
    first_output = workdir / "killed_run.out"  # what Snakemake printed, shown if it does not stop
    with first_output.open("w") as out:
        # Ctrl-C's default action restored in Snakemake's process: a test runner may start its workers with
        # SIGINT ignored, which every child would inherit (seen under CI: the Ctrl-C below then did nothing).
        first = subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT, start_new_session=True,
                                 preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
                                 env=snakemake_environment(TFVAEGAN_PAUSE_AFTER_EPOCH="3"))
    train_log = workdir / "logs" / "train" / "demo_slow" / "paper" / "tfvaegan" / "seed0.log"
    deadline = time.monotonic() + 600
    while first.poll() is None and time.monotonic() < deadline and not (
            train_log.is_file() and "pausing after epoch 3" in train_log.read_text()):
        time.sleep(0.2)
    checkpoint = target.with_suffix(".ckpt")
    assert checkpoint.exists(), "training never reached its pause after epoch 3"
    os.killpg(first.pid, signal.SIGINT)  # Ctrl-C: snakemake and its running job
    try:
        first.wait(timeout=120)
    except subprocess.TimeoutExpired:
        os.killpg(first.pid, signal.SIGKILL)
        pytest.fail("Snakemake did not stop within 120 s of Ctrl-C; its output:\n" + first_output.read_text()[-3000:]
                    + "\ntraining's log:\n" + train_log.read_text()[-1500:])
    assert not target.exists() and checkpoint.exists()

    again = subprocess.run(command, capture_output=True, text=True, timeout=900, env=snakemake_environment())
    assert again.returncode == 0, again.stdout[-3000:] + again.stderr[-3000:]
    assert target.exists() and not checkpoint.exists()
    assert "resuming from" in train_log.read_text() and "after epoch 3" in train_log.read_text()
    rows = _rows(target.with_name("train_log.csv"))
    assert [int(r["epoch"]) for r in rows] == list(range(1, 7))


# --------------------------------------------------------------------------- split averaging
def _split_metrics(zsl, h, split):
    return {"benchmark": "hmdb51", "protocol": "paper", "variant": "tfvaegan", "seed": 0, "zsl_acc": zsl,
            "gzsl_seen": 0.5, "gzsl_unseen": h, "gzsl_h": h, "seconds_per_epoch": 1.0,
            "config": {"dataset": f"hmdb_i3d/split_{split}"}, "notes": ["od"]}


@pytest.mark.slow
def test_average_over_splits(tmp_path):
    paths = []
    for split, (zsl, h) in enumerate([(0.2, 0.1), (0.4, 0.3), (0.3, 0.5)], 1):
        paths.append(tmp_path / f"split_{split}.json")
        paths[-1].write_text(json.dumps(_split_metrics(zsl, h, split)))
    out = tmp_path / "seed0" / "metrics.json"
    result = subprocess.run([sys.executable, "-m", "tfvaegan", "average-splits", "--metrics", *map(str, paths),
                             "--out", str(out)], capture_output=True, text=True, cwd=PROJECT_ROOT)
    assert result.returncode == 0, result.stderr
    merged = json.loads(out.read_text())
    assert merged["zsl_acc"] == pytest.approx(0.3) and merged["gzsl_h"] == pytest.approx(0.3)
    assert merged["n_splits"] == 3 and [s["dataset"] for s in merged["splits"]][2] == "hmdb_i3d/split_3"
    assert (merged["benchmark"], merged["protocol"], merged["variant"], merged["seed"]) == ("hmdb51", "paper",
                                                                                          "tfvaegan", 0)

    other = _split_metrics(0.1, 0.1, 4) | {"protocol": "val"}
    paths[0].write_text(json.dumps(other))
    result = subprocess.run([sys.executable, "-m", "tfvaegan", "average-splits", "--metrics", *map(str, paths),
                             "--out", str(tmp_path / "x.json")], capture_output=True, text=True, cwd=PROJECT_ROOT)
    assert result.returncode == 2 and "key 'protocol'" in result.stderr
    assert not (tmp_path / "x.json").exists()


@pytest.mark.slow
@pytest.mark.xdist_group("readme_main_job")
@pytest.mark.timeout(1500)  # the default DAG: ~5 min on 2 idle cores, longer beside the other tests
def test_the_readme_main_job_as_written(tmp_path):
    """README, the main job: `snakemake --cores all` in a checkout (the embedded demo, both
    protocols, offline), then `snakemake --cores all --report results/report.html`, as written."""
    checkout = tmp_path / "checkout"
    files = subprocess.run(["git", "ls-files", "-co", "--exclude-standard"], capture_output=True, text=True,
                           cwd=PROJECT_ROOT, check=True).stdout.split()
    for name in files:
        source = PROJECT_ROOT / name
        if source.is_file():
            (checkout / name).parent.mkdir(parents=True, exist_ok=True)
            (checkout / name).write_bytes(source.read_bytes())
    run = lambda *args: run_snakemake(*args, cwd=checkout, timeout=1800)  # noqa: E731
    result = run("--cores", "all")
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    h = {(row["benchmark"], row["features"], row["protocol"]): float(row["h_mean"])
         for row in _rows(checkout / "results" / "tables" / "gzsl.csv")}
    assert set(h) == {("demo", features, protocol) for features in ("plain", "finetuned")
                      for protocol in ("paper", "val")}
    zsl = {(row["features"], row["protocol"]): float(row["top1_mean"])
           for row in _rows(checkout / "results" / "tables" / "zsl.csv")}
    assert min(zsl.values()) > 100 / 12  # above chance (12 unseen classes) under both protocols
    # Issue 14: fine-tuned features beat plain ones, both protocols, by margins set from the spread over
    # seeds, not from one machine's run. Measured: the default DAG with seeds 0-3 (this 2-core machine kind,
    # 2026-12-06), fine-tuned minus plain per seed, in points:
    #   GZSL H: paper +13.9 +13.8 +16.5 +11.0 (mean 13.8, sd 2.2); val +16.2 +22.1 +16.5 +17.3 (18.0, 2.7)
    #   ZSL:    paper +41.2 +27.1 +22.1 +27.1 (29.4, 8.3);        val +31.7 +38.3 +4.6 +27.9 (25.6, 14.7)
    # One seed's difference on another machine is one more draw from that spread: each margin is the mean
    # less three standard deviations, rounded down (H: 7.2 and 9.9 -> 7; ZSL paper: 4.5 -> 4). ZSL val's
    # spread gives no positive margin (seed 2: +4.6), so there only "not below plain" is asserted.
    for protocol, zsl_margin, h_margin in (("paper", 4, 7), ("val", 0, 7)):
        assert zsl[("finetuned", protocol)] > zsl[("plain", protocol)] + zsl_margin, zsl
        assert h[("demo", "finetuned", protocol)] > h[("demo", "plain", protocol)] + h_margin, h
    report = run("--cores", "all", "--report", "results/report.html")
    assert report.returncode == 0 and (checkout / "results" / "report.html").stat().st_size > 0, report.stderr[-2000:]
    again = run("--cores", "all", "-n")
    assert again.returncode == 0 and "Nothing to be done" in again.stdout + again.stderr
