"""tfvaegan.catalog, called directly: a run's values layered in the documented order, the `--set` arguments a
job gets, which entries share a feature file and how it is made, and the checks' order. The refusals of whole
configurations are in tests/test_workflow.py (`refusal`), each kind also through a real snakemake call."""
from __future__ import annotations

import json
import shlex

import pytest
import yaml
from conftest import PROJECT_ROOT
from snakemake.utils import validate
from tiny_workflow import DEFAULT_CONFIG

from tfvaegan.catalog import Catalog, from_command_line
from tfvaegan.config import Config, from_mapping
from tfvaegan.errors import ConfigError

SCHEMA = PROJECT_ROOT / "workflow" / "schemas" / "config.schema.yaml"


def catalog_of(**changes) -> Catalog:
    config = yaml.safe_load(yaml.safe_dump({**DEFAULT_CONFIG, **changes}))
    validate(config, str(SCHEMA), set_default=True)
    return Catalog(config, PROJECT_ROOT)


def test_run_values_are_layered_file_settings_variant_overrides_then_protocol_and_seed():
    catalog = catalog_of(
        benchmarks=["cub"], variants={"v": {"nepoch": 3, "lr": 0.5}}, overrides={"lr": 0.25},
        catalog={**DEFAULT_CONFIG["catalog"], "cub": {**DEFAULT_CONFIG["catalog"]["cub"],
                                                     "settings": {"nepoch": 2, "syn_num": 7}}})
    written = yaml.safe_load((PROJECT_ROOT / "config" / "benchmarks" / "cub.yaml").read_text())
    values = catalog.run_values("cub", "val", "v", 4)
    assert values["syn_num"] == 7                      # settings over the file
    assert values["nepoch"] == 3                       # the variant over settings
    assert values["lr"] == 0.25                        # overrides over the variant
    assert (values["protocol"], values["manualSeed"]) == ("val", 4)
    assert values["ndh"] == written["ndh"]             # the rest as the file says


def test_run_settings_pass_only_what_differs_from_the_file_and_are_computed_once():
    catalog = catalog_of(benchmarks=["cub"], overrides={"nepoch": 3})
    sets, resolved = catalog.run_settings("cub", "paper", "tfvaegan", 1)
    args = dict(a.removeprefix("--set=").split("=", 1) for a in shlex.split(sets))
    assert args == {"nepoch": "3", "protocol": '"paper"', "manualSeed": "1"}
    assert json.loads(resolved)["nepoch"] == 3
    assert catalog.run_settings("cub", "paper", "tfvaegan", 1) is catalog.run_settings("cub", "paper", "tfvaegan", 1)


def test_entries_that_share_a_feature_file_are_made_one_way():
    catalog = catalog_of(benchmarks=["demo", "demo_transductive", "demo_finetuned"])
    catalog.check()
    assert catalog.how_features_are_made("demo") == catalog.how_features_are_made("demo_transductive")
    assert catalog.how_features_are_made("demo")[0] == "demo"
    assert catalog.how_features_are_made("demo_finetuned")[0] == "finetune"
    assert catalog.config_for("demo_finetuned").image_embedding != catalog.config_for("demo").image_embedding
    assert catalog.settings("demo_finetuned")["features"] == "finetuned"
    assert catalog.label_of("demo_finetuned") == catalog.label_of("demo") == "demo"
    assert catalog.prepared == ["demo", "demo_transductive", "demo_finetuned"]


def test_a_search_benchmark_is_prepared_and_a_provided_file_of_the_archive_is_known():
    catalog = catalog_of(benchmarks=["demo"], search={"benchmark": "cub", "space": {"lr": [1e-4]}})
    assert catalog.prepared == ["demo", "cub"] and catalog.search_benchmarks == ["cub"]
    assert "cub" in catalog.downloaded() and "flo" not in catalog.downloaded()
    assert catalog.data_files("cub") == ["datasets/CUB/res101.mat", "datasets/CUB/att_splits.mat"]


def test_the_first_bad_run_is_the_one_named():
    catalog = catalog_of(benchmarks=["demo"], variants={"tfvaegan": {}, "bad": {"nepoch": "many"}})
    with pytest.raises(ConfigError, match="with variant 'bad'.*nepoch"):
        catalog.check()


def test_command_line_values_are_read_as_the_schema_and_the_config_say():
    """`snakemake --config 'seeds=[0,1]' 'overrides={lr: 1e-5}'`: Snakemake hands list and mapping items over
    as text; the schema's types (and, for run keys, tfvaegan.config's reading) turn them back."""
    schema = yaml.safe_load(SCHEMA.read_text())
    given = {"seeds": ["0", "1"], "benchmarks": ["cub", "sun"], "gpus_per_job": "1",
             "overrides": {"lr": "1e-5", "device": "cuda", "nepoch": "3"}, "data_root": "123"}
    read = from_command_line(given, schema)
    assert read["seeds"] == [0, 1] and read["benchmarks"] == ["cub", "sun"] and read["gpus_per_job"] == 1
    assert read["overrides"] == {"lr": 1e-5, "device": "cuda", "nepoch": 3}
    assert read["data_root"] == "123"  # a string key stays a string


def test_stage_arguments_of_a_fine_tuned_entry():
    catalog = catalog_of(benchmarks=["demo_finetuned"])
    extract = catalog.extraction_args("demo", "res101_finetuned", "datasets/demo/res101_finetuned_backbone.pt")
    assert "--weights datasets/demo/res101_finetuned_backbone.pt" in extract and "--allow-random-init" not in extract
    assert "--image-size 32" in extract
    assert "--allow-random-init" in catalog.extraction_args("demo", "res101_finetuned")
    assert catalog.is_finetuned("demo", "res101_finetuned")
    assert catalog.split_file("demo", "res101_finetuned") == "datasets/demo/att_splits.mat"
    assert catalog.image_path("demo", "res101_finetuned", "image_list") == "datasets/demo/image_list.txt"
    finetune = catalog.finetuning_args("demo", "res101_finetuned")
    assert "--epochs 8 " in finetune and "--crop-scale 0.5 " in finetune and "--allow-random-init" in finetune


def test_the_schema_documents_the_extraction_defaults_of_the_package():
    """features/extract.ExtractionSettings is the one source of the extraction defaults: the workflow schema's
    `extraction` defaults (what a catalog entry gets for a key it leaves out) and config/config.yaml say the same."""
    import dataclasses

    from tfvaegan.features.extract import EXTRACTION

    defaults = dataclasses.asdict(EXTRACTION)
    properties = yaml.safe_load(SCHEMA.read_text())["definitions"]["extraction"]["properties"]
    assert {key: spec["default"] for key, spec in properties.items()} == defaults
    written = DEFAULT_CONFIG["extraction"]
    assert written == {key: defaults[key] for key in written}


def test_the_selection_backbone_is_planned_for_val_protocol_fine_tuned_runs_once_per_feature_file_and_seed():
    """A val-protocol run of fine-tuned features selects on a backbone fine-tuned on its validation split's
    training part only: one per feature file and seed (the seed draws the split), shared by the entries,
    variants and the search reading that file; none for the paper protocol or plain features."""
    selection = "datasets/demo/res101_finetuned_selection_seed{}.mat"
    twin = {**DEFAULT_CONFIG["catalog"]["demo_finetuned"], "settings": {
        **DEFAULT_CONFIG["catalog"]["demo_finetuned"]["settings"], "transductive": True}}
    catalog = catalog_of(benchmarks=["demo", "demo_finetuned", "demo_finetuned_t"], protocols=["paper", "val"],
                         variants={"tfvaegan": {}, "other": {"nepoch": 3}},
                         catalog={**DEFAULT_CONFIG["catalog"], "demo_finetuned_t": twin})
    catalog.check()
    assert catalog.selection_files() == [selection.format(0)]
    assert catalog.selection_features("demo_finetuned", "val", 0) == [selection.format(0)]
    assert catalog.selection_features("demo_finetuned_t", "val", 0) == [selection.format(0)]
    assert catalog.selection_features("demo_finetuned", "paper", 0) == catalog.selection_features("demo", "val", 0) == []
    assert catalog.selection_args("demo_finetuned", "val", 0) == f"--selection-features {selection.format(0)}"
    assert catalog.selection_args("demo_finetuned", "paper", 0) == catalog.selection_args("demo", "val", 0) == ""
    args = catalog.selection_finetuning_args("demo", "res101_finetuned", 0)
    assert args.startswith(catalog.finetuning_args("demo", "res101_finetuned") + " ")  # the trainval backbone's recipe
    assert args.endswith(" --train-part selection --val-seed 0 --val-seen-fraction 0.2")
    # one per seed, and the search's seed too; none without the val protocol
    catalog = catalog_of(benchmarks=["demo_finetuned"], seeds=[0, 1],
                         search={"benchmark": "demo_finetuned", "seed": 5, "space": {"lr": [1e-4]}})
    assert catalog.selection_files() == [selection.format(s) for s in (0, 1, 5)]
    assert catalog_of(benchmarks=["demo", "demo_finetuned"], protocols=["paper"]).selection_files() == []
    assert catalog_of(benchmarks=["demo"]).selection_files() == []


def test_runs_reading_one_selection_backbone_must_draw_one_validation_split():
    catalog = catalog_of(benchmarks=["demo_finetuned"], variants={"tfvaegan": {}, "wide": {"val_seen_fraction": 0.3}})
    with pytest.raises(ConfigError, match=r"runs 'demo_finetuned' \(variant 'tfvaegan', seed 0\) and 'demo_finetuned' "
                                          r"\(variant 'wide', seed 0\): both read the selection features "
                                          r"datasets/demo/res101_finetuned_selection_seed0.mat"):
        catalog.check()
    unseen = catalog_of(benchmarks=["demo_finetuned"], overrides={"val_unseen_fraction": 0.5})
    assert unseen.selection_finetuning_args("demo", "res101_finetuned", 0).endswith(
        "--val-seen-fraction 0.2 --val-unseen-fraction 0.5")


# --------------------------------------------------------------------------- GPUs
NO_GPU = {"CUDA_VISIBLE_DEVICES": ""}  # a machine without a GPU, wherever the tests run


def test_each_job_knows_its_device():
    catalog = catalog_of(benchmarks=["demo", "cub", "demo_finetuned"],
                         variants={"tfvaegan": {}, "gpu": {"device": "cuda:1"}})
    assert catalog.run_device("demo", "paper", "tfvaegan", 0) == "cpu"      # config/benchmarks/demo.yaml
    assert catalog.run_device("cub", "val", "tfvaegan", 2) == "auto"        # the Config default
    assert catalog.run_device("cub", "val", "gpu", 0) == "cuda:1"           # a variant's
    assert catalog.feature_device("demo", "res101_finetuned", "finetuning") == "auto"
    assert catalog.feature_device("demo", "res101", "extraction") == "cpu"


def test_what_asks_for_a_gpu_is_named_by_its_config_key():
    assert catalog_of().gpu_requests() == []  # the default: device cpu or auto, gpus_per_job 0
    assert catalog_of(gpus_per_job=1).gpu_requests() == ["'gpus_per_job': 1"]
    assert catalog_of(benchmarks=["cub"], overrides={"device": "cuda"}).gpu_requests() == [
        "'overrides.device': cuda (benchmark 'cub')"]
    entry = {**DEFAULT_CONFIG["catalog"]["demo_finetuned"], "finetuning": {"epochs": 1, "device": "cuda"},
             "extraction": {"image_size": 32, "device": "cuda:0"}}
    assert catalog_of(benchmarks=["demo_finetuned"], catalog={**DEFAULT_CONFIG["catalog"], "demo_finetuned": entry}
                      ).gpu_requests() == ["'catalog.demo_finetuned.finetuning.device': cuda",
                                           "'catalog.demo_finetuned.extraction.device': cuda:0"]


def test_a_config_asking_for_a_gpu_where_the_pool_has_none_is_one_clear_error():
    asking = catalog_of(gpus_per_job=1)
    problem = asking.gpu_problem(NO_GPU)
    assert problem.startswith("config key 'gpus_per_job': 1 asks for a GPU, but this machine has none "
                              "(CUDA_VISIBLE_DEVICES='')") and "\n" not in problem
    assert "TFVAEGAN_GPU_CHECK=off" in problem and "gpus_per_job: 0" in problem
    assert "config key 'gpus' is 0" in catalog_of(gpus_per_job=1, gpus=0).gpu_problem({"CUDA_VISIBLE_DEVICES": "0"})
    assert asking.gpu_problem({"CUDA_VISIBLE_DEVICES": "0"}) is None       # a GPU found
    assert catalog_of(gpus_per_job=1, gpus=1).gpu_problem(NO_GPU) is None  # the config says there is one
    assert asking.gpu_problem({**NO_GPU, "TFVAEGAN_GPU_CHECK": "off"}) is None  # a cluster's login node
    assert catalog_of().gpu_problem(NO_GPU) is None                        # nothing asks for a GPU
    both = catalog_of(gpus_per_job=1, benchmarks=["cub"], overrides={"device": "cuda"}).gpu_problem(NO_GPU)
    assert "(and 1 more: 'overrides.device': cuda (benchmark 'cub'))" in both


# --------------------------------------------------------------------------- the lineage (docs/methods.md)
IMAGE_BENCHMARKS = ("cub", "awa2", "flo", "sun")
LINEAGE_METHODS = ("fclswgan", "fvaegan", "free")


def test_each_method_entry_runs_its_method_on_the_benchmarks_feature_file_beside_its_rows():
    names = [f"{b}_{m}" for b in IMAGE_BENCHMARKS for m in LINEAGE_METHODS]
    transductive = [f"{b}_fvaegan_transductive" for b in IMAGE_BENCHMARKS]
    catalog = catalog_of(benchmarks=[*IMAGE_BENCHMARKS, *names, *transductive], protocols=["paper", "val"])
    catalog.check()  # one table row each: entries differing only by method are rows of their own
    for benchmark in IMAGE_BENCHMARKS:
        plain = catalog.data_files(benchmark)
        for method in LINEAGE_METHODS:
            name = f"{benchmark}_{method}"
            assert DEFAULT_CONFIG["catalog"][name] == {
                "config": f"config/benchmarks/{name}.yaml", "label": benchmark, "features": "provided"}
            assert catalog.config_for(name).method == method and catalog.label_of(name) == benchmark
            assert catalog.data_files(name) == plain  # the benchmark's one provided feature file
            assert catalog.how_features_are_made(name) == catalog.how_features_are_made(benchmark) == ("provided",)
        twin = f"{benchmark}_fvaegan_transductive"  # f-VAEGAN-D2: the fvaegan file, transductive
        assert DEFAULT_CONFIG["catalog"][twin] == {**DEFAULT_CONFIG["catalog"][f"{benchmark}_fvaegan"],
                                                   "settings": {"transductive": True}}
        cfg = catalog.config_for(twin)
        assert (cfg.method, cfg.transductive, cfg.transductive_prior) == ("fvaegan", True, "uniform")
        assert catalog.data_files(twin) == plain
    assert catalog.config_for("cub").method == "tfvaegan"
    # the ones of the xlsa17 archive are downloaded with it
    assert set(catalog.data_files("sun_free")) <= set(catalog.archive_files)


def test_the_demo_methods_share_the_demos_feature_file_and_mirror_its_values():
    catalog = catalog_of(benchmarks=["demo", *(f"demo_{m}" for m in LINEAGE_METHODS)], protocols=["paper", "val"])
    catalog.check()
    demo = catalog.file_values["demo"]
    # what differs from demo.yaml: the method, the keys it would refuse, and those its own CUB file sets
    differs = {"fclswgan": {"gammaD": 1.0, "gammaG": 1.0, "adaptive_lambda": False, "feedback_loop": 1},
               "fvaegan": {"feedback_loop": 1}, "free": {"recons_weight": 0.001}}
    # demo.yaml's keys each leaves out: those it would refuse, or never reads (f-VAEGAN has no ngh-wide module)
    left_out = {"fclswgan": {"encoder_hidden", "generator_hidden", "recons_weight", "feed_lr", "encoded_noise"},
                "fvaegan": {"recons_weight", "feed_lr", "ngh"}, "free": {"feed_lr"}}
    unread = {("fvaegan", "ngh")}
    for method in LINEAGE_METHODS:
        name = f"demo_{method}"
        assert DEFAULT_CONFIG["catalog"][name] == {**DEFAULT_CONFIG["catalog"]["demo"], "label": "demo",
                                                   "config": f"config/benchmarks/{name}.yaml"}
        cfg = catalog.config_for(name)
        assert cfg.method == method and catalog.label_of(name) == "demo"
        assert catalog.data_files(name) == catalog.data_files("demo")
        assert catalog.how_features_are_made(name) == catalog.how_features_are_made("demo")
        values = catalog.file_values[name]
        assert {k: v for k, v in values.items() if k != "method" and demo.get(k, object()) != v} == differs[method]
        assert {k for k in demo if k not in values} == left_out[method]
        for key in left_out[method]:  # demo.yaml's value of a key left out: refused, unless a default or unread
            if demo[key] != getattr(Config, key) and (method, key) not in unread:
                with pytest.raises(ConfigError, match=f"key '{key}'"):
                    from_mapping({**values, key: demo[key]}, name)
    assert catalog.feature_maker("demo", "res101") == "demo"  # one job makes the file for all four
    # the documented command
    command = "snakemake --cores all --config 'benchmarks=[demo,demo_fclswgan,demo_fvaegan,demo_free]'"
    assert command in (PROJECT_ROOT / "config" / "config.yaml").read_text()


@pytest.mark.parametrize("settings, message", [
    ({"method": "clswgan"}, (r"key 'method': expected one of \('tfvaegan', 'fclswgan', 'fvaegan', 'free'\), "
                             r"found 'clswgan'")),
    ({"method": "fclswgan"}, (r"key 'recons_weight' \(.*\) is read by method tfvaegan and free only; method "
                              r"'fclswgan' would ignore it: expected it unset \(default 1.0\), found 0.01")),
    ({"cls_weight": 0.1}, r"key 'cls_weight' .* is read by method fclswgan only; method 'tfvaegan' would ignore it"),
    ({"center_margin": 100.0}, r"key 'center_margin' .*method 'tfvaegan' would ignore it"),
])
def test_a_bad_method_setting_is_one_error_naming_the_entry(settings, message):
    entry = {**DEFAULT_CONFIG["catalog"]["demo"], "settings": settings}
    catalog = catalog_of(benchmarks=["mine"], catalog={**DEFAULT_CONFIG["catalog"], "mine": entry})
    with pytest.raises(ConfigError, match=message) as refused:
        catalog.check()
    text = str(refused.value)
    assert text.startswith("catalog entry 'mine' (") and "demo.yaml and its settings) with variant 'tfvaegan'" in text
    assert "\n" not in text


@pytest.mark.parametrize("method", ["fclswgan", "free"])
def test_transductive_with_a_method_without_a_transductive_form_is_one_error_naming_the_entry(method):
    entry = {**DEFAULT_CONFIG["catalog"][f"cub_{method}"], "settings": {"transductive": True}}
    catalog = catalog_of(benchmarks=["cub", "odd"], catalog={**DEFAULT_CONFIG["catalog"], "odd": entry})
    with pytest.raises(ConfigError, match=rf"key 'transductive': method '{method}' has no transductive form") as refused:
        catalog.check()
    assert str(refused.value).startswith("catalog entry 'odd' (") and f"cub_{method}.yaml and its settings" in str(
        refused.value)
    # the method entries' own files are fine; f-VAEGAN's transductive form is
    catalog_of(benchmarks=[f"cub_{method}", "cub_fvaegan_transductive"]).check()


def test_two_entries_of_one_method_and_row_are_refused_and_of_two_methods_are_not():
    twin = {**DEFAULT_CONFIG["catalog"]["cub_free"]}
    catalog = catalog_of(benchmarks=["cub_free", "cub_free2"], catalog={**DEFAULT_CONFIG["catalog"], "cub_free2": twin})
    with pytest.raises(ConfigError, match=r"catalog entries 'cub_free' and 'cub_free2': both are benchmark 'cub' with "
                                          r"plain features, inductive, in the tables \(both method 'free'\)"):
        catalog.check()
    catalog_of(benchmarks=["cub", "cub_free", "cub_fclswgan", "cub_fvaegan"]).check()
