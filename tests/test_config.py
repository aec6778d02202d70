"""Config loading: float literals on every path, range checks, and one-line errors for bad files."""
import json
import math

import pytest

import yaml

from tfvaegan.config import Config, ConfigError, from_mapping, load, parse_override


def write(tmp_path, content, name="run.yaml"):
    path = tmp_path / name
    if isinstance(content, bytes):
        path.write_bytes(content)
    else:
        path.write_text(content, encoding="utf-8")
    return path


def one_line_error(excinfo):
    message = str(excinfo.value)
    assert "\n" not in message, message
    return message


# ------------------------------------------------------------------ float literals


@pytest.mark.parametrize("text, expected", [
    ("1e-4", 1e-4), ("1e-05", 1e-5), ("+1.5E3", 1500.0), ("1.0e5", 1e5), (".5", 0.5), ("-2.E-1", -0.2),
])
def test_float_key_accepts_a_decimal_literal_string(text, expected):
    # snakemake's YAML 1.1 loader hands '1e-5' over as a string
    value = from_mapping({"lr": text}).lr if expected > 0 else from_mapping({"a1": text}).a1
    assert value == expected and isinstance(value, float)
    # ...but only a decimal literal: no NaN/Inf spellings, hex, underscores or padding
    for other in ("nan", "NaN", ".nan", "inf", "-Infinity", "1e", "0x10", "1_0", " 1e-4", "abc", ""):
        with pytest.raises(ConfigError, match=r"config: key 'lr': expected float, found str"):
            from_mapping({"lr": other})


def test_workflow_override_of_a_small_float_reaches_the_job():
    # common.smk run_settings passes --set=k=json.dumps(v); json.dumps(0.00001) == '1e-05'
    assert load(None, overrides=[f"lr={json.dumps(0.00001)}"]).lr == 1e-5
    assert load(None, overrides=[f"lr={json.dumps('1e-5')}"]).lr == 1e-5  # a string snakemake read


@pytest.mark.parametrize("raw, expected", [("1e-4", 1e-4), ("1E5", 1e5), ("-2.5e3", -2.5e3), ("1.0e5", 1e5)])
def test_parse_override_reads_exponent_floats(raw, expected):
    key, value = parse_override(f"lr={raw}")
    assert key == "lr" and value == expected and type(value) is float
    assert parse_override("nepoch=3") == ("nepoch", 3)  # integers stay integers


def test_config_file_reads_exponent_floats(tmp_path):
    cfg = load(write(tmp_path, "lr: 1e-5\nfeed_lr: 1E-6\ndec_lr: 2.0e-4\nnepoch: 3\n"))
    assert (cfg.lr, cfg.feed_lr, cfg.dec_lr, cfg.nepoch) == (1e-5, 1e-6, 2e-4, 3)


def test_huge_integer_for_a_float_key_is_a_config_error():
    with pytest.raises(ConfigError, match="key 'lr': expected a finite number"):
        from_mapping({"lr": 10 ** 400})


# ------------------------------------------------------------------ ranges


@pytest.mark.parametrize("key", ["lr", "beta1", "gammaD", "a2", "recons_weight", "od_entropy_threshold",
                                 "val_unseen_fraction", "classifier_lr"])
@pytest.mark.parametrize("value", [math.nan, math.inf, -math.inf])
def test_float_keys_must_be_finite(key, value):
    with pytest.raises(ConfigError, match=rf"key '{key}': expected a finite number, found"):
        from_mapping({key: value})


def test_nan_from_a_set_override_is_refused():
    expected = r"\(with --set overrides\): key 'lr': expected a finite number, found nan"
    with pytest.raises(ConfigError, match=expected):
        load(None, overrides=["lr=.nan"])


@pytest.mark.parametrize("key", ["beta1", "classifier_beta1"])
@pytest.mark.parametrize("value", [-0.1, 1.0, 1.5])
def test_betas_must_lie_in_zero_one(key, value):
    with pytest.raises(ConfigError, match=rf"key '{key}': expected a number in \[0, 1\), found {value}"):
        from_mapping({key: value})
    assert getattr(from_mapping({key: 0}), key) == 0.0
    assert getattr(from_mapping({key: 0.999}), key) == 0.999


@pytest.mark.parametrize("seed", [-1, 2 ** 64 - 3, 2 ** 70])
def test_manual_seed_out_of_range_is_refused(seed):
    with pytest.raises(ConfigError, match=rf"key 'manualSeed': expected null or an integer .*found {seed}"):
        from_mapping({"manualSeed": seed})
    # torch seeds generators with manualSeed + 1..3, up to 2**64 - 1
    for fine in (None, 0, 3483, 2 ** 64 - 4):
        assert from_mapping({"manualSeed": fine}).manualSeed == fine


@pytest.mark.parametrize("device", ["cuda0", "cuda:x", "cuda:", "cudax"])
def test_malformed_cuda_device_is_refused(device):
    with pytest.raises(ConfigError, match="key 'device': expected auto, cpu, cuda or cuda:N"):
        from_mapping({"device": device})
    for fine in ("auto", "cpu", "cuda", "cuda:0", "cuda:12"):
        assert from_mapping({"device": fine}).device == fine


# ------------------------------------------------------------------ files and keys


def test_duplicate_key_in_a_config_file_is_refused(tmp_path):
    path = write(tmp_path, "nepoch: 2\nlr: 0.1\nnepoch: 300\n")
    with pytest.raises(ConfigError) as excinfo:
        load(path)
    message = one_line_error(excinfo)
    assert message.startswith(f"{path}: key 'nepoch': ")
    assert "line 3" in message and "line 1" in message
    # a YAML merge ('<<') brings keys in that the file may override: not a duplicate
    assert load(write(tmp_path, "<<: {nepoch: 2, lr: 0.5}\nnepoch: 5\n")).nepoch == 5


def test_unknown_keys_of_mixed_types_are_listed():
    with pytest.raises(ConfigError, match=r"config: unknown key\(s\) \[5, 'foo'\]"):
        from_mapping({5: "x", "foo": "y"})


def test_unknown_keys_of_mixed_types_in_a_file(tmp_path):
    with pytest.raises(ConfigError, match=r"unknown key\(s\) \[5, 'foo'\]"):
        load(write(tmp_path, "5: x\nfoo: y\n"))


def test_non_utf8_config_file_is_one_config_error(tmp_path):
    path = write(tmp_path, "dataset: caf\xe9\n".encode("latin-1"))
    with pytest.raises(ConfigError) as excinfo:
        load(path)
    message = one_line_error(excinfo)
    assert message.startswith(f"{path}: expected a UTF-8 text file, found byte 0xe9")


@pytest.mark.parametrize("text, line", [
    ("nepoch: 2\nlr: [0.1\n", 3),
    ("nepoch: 2\n  lr: 0.1\n", 2),
    ("dataset: 'CUB\n", 2),
])
def test_invalid_yaml_is_one_line_with_its_position(tmp_path, text, line):
    path = write(tmp_path, text)
    with pytest.raises(ConfigError) as excinfo:
        load(path)
    message = one_line_error(excinfo)
    assert message.startswith(f"{path}: not valid YAML: ")
    assert f"(line {line}, column " in message


def test_control_character_in_a_config_file_is_one_line(tmp_path):
    path = write(tmp_path, "dataset: a\x07b\n")
    with pytest.raises(ConfigError) as excinfo:
        load(path)
    assert one_line_error(excinfo) == (
        f"{path}: not valid YAML: expected printable text, found character #x0007 (position 10)")


# --------------------------------------------------------------------------- documented commands
def test_help_lists_every_stage():
    import subprocess
    import sys

    from conftest import PROJECT_ROOT

    result = subprocess.run([sys.executable, "-m", "tfvaegan", "--help"], capture_output=True, text=True,
                            cwd=PROJECT_ROOT, timeout=120)
    assert result.returncode == 0, result.stderr
    for stage in ("run", "config", "train", "synthesize", "classify", "dataset", "extract", "demo", "download",
                  "verify-features", "tables", "plots", "average-splits"):
        assert f"    {stage}" in result.stdout, stage


def printed_by(capsys, *args):
    """`python -m tfvaegan ARGS` in-process: (exit status, what it printed on stdout)."""
    from tfvaegan.cli import main

    capsys.readouterr()
    code = main([str(a) for a in args])
    return code, capsys.readouterr().out


def test_config_command_prints_what_a_run_would_use(capsys, toy_root):
    from conftest import PROJECT_ROOT

    cub = PROJECT_ROOT / "config" / "benchmarks" / "cub.yaml"
    code, out = printed_by(capsys, "config", "--config", cub, "--set", "nepoch=10", "device=cuda", "--set", "lr=1e-5")
    printed = yaml.safe_load(out)
    assert code == 0 and printed["amp"] is False and printed["nepoch"] == 10 and printed["device"] == "cuda"
    assert printed["lr"] == 1e-5 and printed["resSize"] == 2048 and printed["gammaD"] == 10.0
    assert set(printed) == {f.name for f in __import__("dataclasses").fields(Config)}
    # with the data: the sizes the data decides, here through cub.yaml as a template for the toy
    root, _ = toy_root
    code, out = printed_by(capsys, "config", "--config", cub, "--data-root", root, "--dataset", "TOY")
    printed = yaml.safe_load(out)
    assert code == 0 and (printed["resSize"], printed["attSize"], printed["nz"], printed["nclass_all"]) == (64, 8, 8, 24)


def test_printed_configuration_loads_back_as_the_same_config(tmp_path, capsys):
    from conftest import PROJECT_ROOT

    for name in ("cub", "awa2", "flo", "sun", "hmdb51", "ucf101", "demo", "cub_finetuned", "awa2_finetuned",
                 "flo_finetuned", "sun_finetuned"):
        path = PROJECT_ROOT / "config" / "benchmarks" / f"{name}.yaml"
        code, out = printed_by(capsys, "config", "--config", path)
        assert code == 0
        printed = tmp_path / f"{name}.yaml"
        printed.write_text(out)
        assert load(printed) == load(path), name


def test_set_takes_several_pairs_per_flag_and_repeats():
    from tfvaegan.cli import _config_from, build_parser

    args = build_parser().parse_args(["config", "--set", "nepoch=3", "lr=0.5", "--set", "syn_num=7"])
    cfg = _config_from(args)
    assert (cfg.nepoch, cfg.lr, cfg.syn_num) == (3, 0.5, 7)


def test_absent_keys_keep_the_official_config_defaults():
    """config/README.md: keys a benchmark file leaves out keep the official config.py defaults."""
    official = {"gzsl": False, "preprocessing": False, "standardization": False, "syn_num": 100, "batch_size": 64,
                "ngh": 4096, "ndh": 1024, "nepoch": 2000, "critic_iter": 5, "lambda1": 10.0, "lr": 0.001,
                "feed_lr": 0.0001, "dec_lr": 0.0001, "classifier_lr": 0.001, "beta1": 0.5, "encoded_noise": False,
                "gammaD": 1000.0, "gammaG": 1000.0, "a1": 1.0, "a2": 1.0, "recons_weight": 1.0, "feedback_loop": 2,
                "freeze_dec": False}  # akshitac8/tfvaegan zero-shot-images/config.py
    defaults = Config()
    assert {key: getattr(defaults, key) for key in official} == official


def test_a_file_is_a_template_for_other_data_but_explicit_sizes_stay():
    from conftest import PROJECT_ROOT

    cub = PROJECT_ROOT / "config" / "benchmarks" / "cub.yaml"
    own = load(cub)
    assert (own.resSize, own.attSize, own.nclass_all, own.nz) == (2048, 312, 200, 312)
    other = load(cub, extra={"dataset": "MYDATA"})
    assert (other.resSize, other.attSize, other.nclass_all, other.nz, other.latent_size) == (None,) * 5
    assert other.lr == own.lr and other.gammaD == own.gammaD  # the hyperparameters stay
    assert load(cub, ["attSize=85"], extra={"dataset": "MYDATA"}).attSize == 85
    assert load(cub, ["class_embedding=sent"]).attSize is None  # other class embeddings of CUB
    ucf = PROJECT_ROOT / "config" / "benchmarks" / "ucf101.yaml"  # another split reads the same data
    assert load(ucf, extra={"dataset": "ucf101_i3d/split_7"}).attSize == load(ucf).attSize == 115
