"""Config loading: float literals on every path, range checks, and one-line errors for bad files."""
import json
import math

import pytest

from tfvaegan.config import ConfigError, from_mapping, load, parse_override


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
