"""Tables: mean/std over seeds on hand-made metrics files, exact columns, paper columns, bad input."""
from __future__ import annotations

import csv
import json
import math
from pathlib import Path

import pandas as pd
import pytest

from tfvaegan.cli import main
from tfvaegan.errors import UserError
from tfvaegan.report.tables import (
    ABLATION_COLUMNS,
    DEFAULT_PAPER_RESULTS,
    GZSL_COLUMNS,
    METHOD_ORDER,
    METHODS_COLUMNS,
    ZSL_COLUMNS,
    build_main_table,
    build_tables,
    load_paper,
    load_runs,
    mean_std,
    section_name,
)

PAPER_CSV = """benchmark,metric,value,source
cub,zsl_top1,64.9,test
cub,gzsl_u,52.8,test
cub,gzsl_s,64.7,test
cub,gzsl_h,58.1,test
cub,ablation:baseline:zsl_top1,61.0,test
cub,ablation:baseline:gzsl_h,53.0,test
"""


def write_metrics(root: Path, benchmark, protocol, variant, seed, zsl, u=None, s=None, h=None, **extra) -> Path:
    path = root / benchmark / protocol / variant / f"seed{seed}" / "metrics.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    record = {"benchmark": benchmark, "protocol": protocol, "variant": variant, "seed": seed,
              "zsl_acc": zsl, "gzsl_seen": s, "gzsl_unseen": u, "gzsl_h": h, "notes": [], **extra}
    path.write_text(json.dumps(record))
    return path


@pytest.fixture
def paper_file(tmp_path):
    path = tmp_path / "paper.csv"
    path.write_text(PAPER_CSV)
    return path


@pytest.fixture
def hand_made(tmp_path):
    root = tmp_path / "results"
    return [
        write_metrics(root, "cub", "paper", "tfvaegan", 1, 0.60, 0.50, 0.60, 0.54),
        write_metrics(root, "cub", "paper", "tfvaegan", 2, 0.64, 0.54, 0.62, 0.58),
        write_metrics(root, "cub", "paper", "tfvaegan", 3, 0.62, 0.52, 0.64, 0.56),
        write_metrics(root, "cub", "val", "tfvaegan", 1, 0.55, 0.45, 0.60, 0.50),
        write_metrics(root, "cub", "paper", "baseline", 1, 0.58, 0.40, 0.60, 0.48),
        write_metrics(root, "demo", "paper", "tfvaegan", 1, 0.30),  # no GZSL
        write_metrics(root, "demo", "paper", "tfvaegan", 2, 0.40),
    ]


def test_mean_std_is_sample_std_and_nan_for_one_value():
    mean, std = mean_std([60.0, 64.0, 62.0])
    assert mean == pytest.approx(62.0) and std == pytest.approx(2.0)  # ddof=1: sqrt((4+4+0)/2)
    mean, std = mean_std([55.0])
    assert mean == 55.0 and math.isnan(std)


def test_tables_aggregate_hand_made_runs(hand_made, paper_file):
    tables = build_tables(load_runs(hand_made), load_paper(paper_file))
    zsl = tables["zsl"].set_index(["benchmark", "protocol", "variant"])
    row = zsl.loc[("cub", "paper", "tfvaegan")]
    assert row.n_seeds == 3
    assert row.top1_mean == pytest.approx(62.0) and row.top1_std == pytest.approx(2.0)
    assert row.paper_top1 == 64.9 and row.diff_top1 == pytest.approx(-2.9)
    # The paper column is the paper's number whatever our protocol: the val row shows its own gap.
    val = zsl.loc[("cub", "val", "tfvaegan")]
    assert val.n_seeds == 1 and math.isnan(val.top1_std) and val.paper_top1 == 64.9
    assert val.diff_top1 == pytest.approx(55.0 - 64.9)
    assert zsl.loc[("cub", "paper", "baseline")].paper_top1 == 61.0  # ablation row of the paper
    demo = zsl.loc[("demo", "paper", "tfvaegan")]
    assert demo.top1_mean == pytest.approx(35.0) and demo.top1_std == pytest.approx(7.07, abs=0.01)
    assert math.isnan(demo.paper_top1)

    gzsl = tables["gzsl"].set_index(["benchmark", "protocol", "variant"])
    assert ("demo", "paper", "tfvaegan") not in gzsl.index  # runs without GZSL give no GZSL row
    row = gzsl.loc[("cub", "paper", "tfvaegan")]
    assert (row.u_mean, row.s_mean, row.h_mean) == pytest.approx((52.0, 62.0, 56.0))
    assert (row.u_std, row.s_std, row.h_std) == pytest.approx((2.0, 2.0, 2.0))
    assert (row.paper_u, row.paper_s, row.paper_h) == (52.8, 64.7, 58.1)
    assert row.diff_h == pytest.approx(56.0 - 58.1)

    ablation = tables["ablation"].set_index(["benchmark", "protocol", "variant"])
    base = ablation.loc[("cub", "paper", "baseline")]
    assert (base.top1_mean, base.h_mean, base.paper_top1, base.paper_h) == pytest.approx((58.0, 48.0, 61.0, 53.0))
    assert math.isnan(ablation.loc[("demo", "paper", "tfvaegan")].h_mean)


def test_cli_writes_exact_columns_atomically(hand_made, paper_file, tmp_path):
    out = tmp_path / "tables"
    args = ["tables", "--metrics", *map(str, hand_made), "--paper", str(paper_file), "--out-dir", str(out)]
    assert main(args) == 0
    assert sorted(p.name for p in out.iterdir()) == ["ablation.csv", "gzsl.csv", "main_table.md", "main_table.tex",
                                                     "methods.csv", "zsl.csv"]  # no temp files left
    for name, columns in (("zsl", ZSL_COLUMNS), ("gzsl", GZSL_COLUMNS), ("ablation", ABLATION_COLUMNS),
                          ("methods", METHODS_COLUMNS)):
        frame = pd.read_csv(out / f"{name}.csv")
        assert list(frame.columns) == columns
    # Issue 3 fixes these leading columns; ours only append diff_* after them.
    assert ZSL_COLUMNS[:7] == ["benchmark", "protocol", "variant", "n_seeds", "top1_mean", "top1_std", "paper_top1"]
    assert GZSL_COLUMNS[:13] == ["benchmark", "protocol", "variant", "n_seeds", "u_mean", "u_std", "s_mean",
                                 "s_std", "h_mean", "h_std", "paper_u", "paper_s", "paper_h"]
    ablation = pd.read_csv(out / "ablation.csv")
    assert list(ablation.variant[:3]) == ["baseline", "tfvaegan", "tfvaegan"]  # the paper's order: complete model last
    zsl = pd.read_csv(out / "zsl.csv")
    assert list(zsl.benchmark) == ["cub", "cub", "cub", "demo"]  # paper order, paper protocol first
    assert list(zsl.protocol) == ["paper", "paper", "val", "paper"]
    assert list(zsl.variant) == ["tfvaegan", "baseline", "tfvaegan", "tfvaegan"]


@pytest.mark.parametrize("field, value, message", [
    ("zsl_acc", 64.9, r"key 'zsl_acc': expected a fraction in \[0, 1\], found 64.9"),
    ("zsl_acc", None, r"key 'zsl_acc': expected a fraction"),
    ("protocol", "test", r"key 'protocol': expected one of"),
    ("seed", "1", r"key 'seed': expected an integer"),
    ("gzsl_h", 0.5, r"expected all three numbers or all null"),
])
def test_bad_metrics_file_is_one_clear_error(tmp_path, field, value, message):
    path = write_metrics(tmp_path, "cub", "paper", "tfvaegan", 1, 0.5, **{})
    record = json.loads(path.read_text())
    record[field] = value
    path.write_text(json.dumps(record))
    with pytest.raises(UserError, match=message) as caught:
        load_runs([path])
    assert str(path) in str(caught.value)


def test_duplicate_run_and_bad_json_are_refused(tmp_path, capsys):
    a = write_metrics(tmp_path / "a", "cub", "paper", "tfvaegan", 1, 0.5)
    b = write_metrics(tmp_path / "b", "cub", "paper", "tfvaegan", 1, 0.6)
    with pytest.raises(UserError, match="expected one file per run"):
        load_runs([a, b])
    broken = tmp_path / "broken.json"
    broken.write_text("{")
    out = tmp_path / "out"
    assert main(["tables", "--metrics", str(broken), "--out-dir", str(out)]) == 2
    assert "broken.json: not valid JSON" in capsys.readouterr().err
    assert not out.exists()  # nothing partial written


def test_bad_paper_file_names_line_and_column(tmp_path):
    path = tmp_path / "paper.csv"
    path.write_text("benchmark,metric,value,source\ncub,zsl_top1,abc,x\n")
    with pytest.raises(UserError, match=r"line 2, column 'value'.*'abc'"):
        load_paper(path)
    path.write_text("benchmark,metric,value\n")
    with pytest.raises(UserError, match="header"):
        load_paper(path)


def test_shipped_paper_results_are_well_formed():
    lineage = load_paper(DEFAULT_PAPER_RESULTS)
    for benchmark, features, setting, method, _ in lineage:  # every method's GZSL triple agrees
        u, s, h = (lineage.get((benchmark, features, setting, method, m)) for m in ("gzsl_u", "gzsl_s", "gzsl_h"))
        if None not in (u, s, h):  # the published H: the harmonic mean of the published u and s (transcription slips)
            assert h == pytest.approx(2 * u * s / (u + s), abs=0.06), (benchmark, features, setting, method)
    paper = {(b, f, s, m): v for (b, f, s, method, m), v in lineage.items() if method == "tfvaegan"}
    for benchmark in ("cub", "flo", "sun", "awa2"):
        assert all((benchmark, "plain", "inductive", m) in paper for m in ("gzsl_u", "gzsl_s", "gzsl_h"))
        assert 0 < paper[(benchmark, "plain", "inductive", "zsl_top1")] < 100
    # the fine-tuned rows as issue 14 quotes them (ZSL / GZSL H; u and s are not quoted)
    finetuned = {(b, m): v for (b, f, s, m), v in paper.items() if f == "finetuned"}
    # the transductive ZSL values as issue 15 quotes them (known class prior), no GZSL value
    assert {(b, m): v for (b, f, s, m), v in paper.items() if s == "transductive"} == {
        ("cub", "zsl_top1"): 74.7, ("awa2", "zsl_top1"): 92.6, ("sun", "zsl_top1"): 70.9}
    assert finetuned == {("cub", "zsl_top1"): 74.3, ("cub", "gzsl_h"): 70.7, ("flo", "zsl_top1"): 74.7,
                         ("flo", "gzsl_h"): 79.4, ("sun", "zsl_top1"): 66.7, ("sun", "gzsl_h"): 46.3,
                         ("awa2", "zsl_top1"): 73.4, ("awa2", "gzsl_h"): 66.7}
    text = DEFAULT_PAPER_RESULTS.read_text()
    assert text.count("channelCS/ZSL_Generative Report.pdf Table 4") == 8


@pytest.mark.parametrize("row, message", [
    ("toy", r"line 3: expected 4 columns \['benchmark', 'metric', 'value', 'source'\], found 1"),
    ("cub,zsl_top1,64.9,x,extra", r"line 3: expected 4 columns .*found 5"),
    (",zsl_top1,64.9,x", r"line 3, column 'benchmark': expected a non-empty value, found ''"),
    ("sun,zsl_top1,64.9,", r"line 3, column 'source': expected a non-empty value, found ''"),
    ("cub,bogus:gzsl_h,50,x", r"line 3, column 'metric': expected one of .*found 'bogus:gzsl_h'"),
    ("cub,ablation:gzsl_h,50,x", r"line 3, column 'metric': .*found 'ablation:gzsl_h'"),
    ("cub,ablation::gzsl_h,50,x", r"line 3, column 'metric': .*found 'ablation::gzsl_h'"),
    ("cub,ablation:baseline:h,50,x", r"line 3, column 'metric': .*found 'ablation:baseline:h'"),
])
def test_bad_paper_row_names_file_line_and_expected(tmp_path, capsys, hand_made, row, message):
    path = tmp_path / "paper.csv"
    path.write_text(f"benchmark,metric,value,source\ncub,zsl_top1,64.9,x\n{row}\n")
    with pytest.raises(UserError, match=message) as caught:
        load_paper(path)
    assert str(caught.value).startswith(f"{path}: line 3")
    out = tmp_path / "tables"
    assert main(["tables", "--metrics", *map(str, hand_made), "--paper", str(path), "--out-dir", str(out)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "Traceback" not in err and not out.exists()


def test_paper_line_numbers_count_blank_and_multiline_rows(tmp_path):
    path = tmp_path / "paper.csv"
    path.write_text('benchmark,metric,value,source\ncub,zsl_top1,64.9,"two\nlines"\n\ncub,gzsl_h,abc,x\n')
    with pytest.raises(UserError, match=r"line 5, column 'value'"):
        load_paper(path)
    path.write_text("benchmark,metric,value,source\ncub,ablation:+decoder:gzsl_h,50,x\n")
    assert load_paper(path) == {("cub", "plain", "inductive", "tfvaegan", "ablation:+decoder:gzsl_h"): 50.0}


PAPER_WITH_FEATURES = """benchmark,features,metric,value,source
cub,plain,zsl_top1,64.9,test
cub,plain,gzsl_h,58.1,test
cub,finetuned,zsl_top1,74.3,test
"""


def test_features_column_keeps_plain_and_finetuned_rows_and_paper_values_apart(tmp_path):
    paper = tmp_path / "paper.csv"
    paper.write_text(PAPER_WITH_FEATURES)
    root = tmp_path / "results"
    runs = [write_metrics(root, "cub", "paper", "tfvaegan", 0, 0.60, 0.5, 0.6, 0.54),  # written before `features`
            write_metrics(root / "ft", "cub", "paper", "tfvaegan", 0, 0.70, 0.6, 0.7, 0.64, features="finetuned"),
            write_metrics(root / "ft", "cub", "val", "tfvaegan", 0, 0.65, 0.6, 0.7, 0.64, features="finetuned")]
    tables = build_tables(load_runs(runs), load_paper(paper))  # same benchmark, protocol, variant, seed: two runs
    zsl = tables["zsl"]
    assert list(zsl.features) == ["plain", "finetuned", "finetuned"]  # plain first, then the fine-tuned rows
    assert list(zsl.protocol) == ["paper", "paper", "val"]
    assert list(zsl.paper_top1) == [64.9, 74.3, 74.3] and list(zsl.diff_top1) == pytest.approx([-4.9, -4.3, -9.3])
    gzsl = tables["gzsl"].set_index(["features", "protocol"])
    assert gzsl.loc[("plain", "paper")].paper_h == 58.1
    assert math.isnan(gzsl.loc[("finetuned", "paper")].paper_h)  # never the plain number instead
    assert list(tables["ablation"].features) == ["plain", "finetuned", "finetuned"]
    out = tmp_path / "tables"
    assert main(["tables", "--metrics", *map(str, runs), "--paper", str(paper), "--out-dir", str(out)]) == 0
    assert list(pd.read_csv(out / "zsl.csv").features) == ["plain", "finetuned", "finetuned"]
    twin = write_metrics(root / "twin", "cub", "paper", "tfvaegan", 0, 0.71, features="finetuned")
    with pytest.raises(UserError, match="expected one file per run"):
        load_runs([runs[1], twin])


def test_bad_features_value_is_one_clear_error(tmp_path):
    path = write_metrics(tmp_path, "cub", "paper", "tfvaegan", 1, 0.5, features="fine-tuned")
    with pytest.raises(UserError, match=r"key 'features': expected one of \('plain', 'finetuned'\)"):
        load_runs([path])
    paper = tmp_path / "paper.csv"
    paper.write_text("benchmark,features,metric,value,source\ncub,tuned,zsl_top1,70,x\n")
    with pytest.raises(UserError, match=r"line 2, column 'features': expected one of \['plain', 'finetuned'\]"):
        load_paper(paper)
    paper.write_text("benchmark,features,metric,value,source\ncub,plain,zsl_top1,70,x\ncub,plain,zsl_top1,71,x\n")
    with pytest.raises(UserError, match=r"line 3: expected one value per \(benchmark, features, setting, method, "
                                        r"metric\)"):
        load_paper(paper)


@pytest.mark.parametrize("config, selection, found", [
    ({"protocol": "paper"}, {"protocol": "paper"},
     "protocol='val', config.protocol='paper', selection.protocol='paper'"),
    ({"protocol": "paper"}, None, "protocol='val', config.protocol='paper'"),
    ({"dataset": "CUB"}, {"protocol": "paper"}, "protocol='val', selection.protocol='paper'"),
])
def test_inconsistent_protocol_fields_are_refused(tmp_path, capsys, config, selection, found):
    path = write_metrics(tmp_path / "results", "cub", "val", "tfvaegan", 1, 0.5, config=config, selection=selection)
    with pytest.raises(UserError) as caught:
        load_runs([path])
    assert str(caught.value).startswith(f"{path}: keys 'protocol', ")
    assert f"expected one protocol, found {found}" in str(caught.value)
    out = tmp_path / "tables"
    assert main(["tables", "--metrics", str(path), "--out-dir", str(out)]) == 2
    assert capsys.readouterr().err.count("\n") == 1 and not out.exists()


def test_consistent_protocol_fields_are_accepted(tmp_path):
    path = write_metrics(tmp_path, "cub", "val", "tfvaegan", 1, 0.5, config={"protocol": "val"},
                         selection={"protocol": "val"})
    assert load_runs([path])[0].protocol == "val"
    bad = write_metrics(tmp_path / "b", "cub", "val", "tfvaegan", 1, 0.5, config=["protocol", "val"])
    with pytest.raises(UserError, match=r"key 'config': expected an object or null, found list"):
        load_runs([bad])


def split_metrics(split: int, **changes) -> dict:
    record = {"benchmark": "hmdb51", "protocol": "paper", "variant": "tfvaegan", "seed": 0, "zsl_acc": 0.2 * split,
              "gzsl_seen": 0.5, "gzsl_unseen": 0.1, "gzsl_h": 0.2, "seconds_per_epoch": 1.0,
              "config": {"dataset": f"hmdb_i3d/split_{split}", "protocol": "paper"}, "notes": ["od"]}
    record.update(changes)
    return record


@pytest.mark.parametrize("text, message", [
    (json.dumps(split_metrics(2, zsl_acc="abc")), r"key 'zsl_acc': expected a fraction in \[0, 1\], found 'abc'"),
    (json.dumps([split_metrics(2)]), r"expected a JSON object, found list"),
    (json.dumps({k: v for k, v in split_metrics(2).items() if k != "benchmark"}),
     r"key 'benchmark': expected a non-empty string, found None"),
    (json.dumps(split_metrics(2))[:40], r"not valid JSON"),
    (json.dumps(split_metrics(2, seconds_per_epoch="fast")),
     r"key 'seconds_per_epoch': expected a non-negative number or null, found 'fast'"),
    (json.dumps(split_metrics(2, notes="od")), r"key 'notes': expected a list of strings or null, found 'od'"),
    (json.dumps(split_metrics(2, config=["hmdb"])), r"key 'config': expected an object or null, found list"),
    (json.dumps(split_metrics(2, protocol="val")), r"keys 'protocol', 'config.protocol': expected one protocol"),
])
def test_average_splits_bad_input_is_one_clear_error(tmp_path, capsys, text, message):
    import re

    good, bad = tmp_path / "split_1.json", tmp_path / "split_2.json"
    good.write_text(json.dumps(split_metrics(1)))
    bad.write_text(text)
    out = tmp_path / "seed0" / "metrics.json"
    assert main(["average-splits", "--metrics", str(good), str(bad), "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith(f"error: {bad}: ") and re.search(message, err), err
    assert not out.parent.exists()
    bad.write_text(json.dumps(split_metrics(2)))  # the same files, fixed, average
    assert main(["average-splits", "--metrics", str(good), str(bad), "--out", str(out)]) == 0
    assert json.loads(out.read_text())["zsl_acc"] == pytest.approx(0.3)


# ------------------------------------------------------------------ transductive rows (issue 15)
def test_settings_and_priors_of_one_benchmark_stay_apart_with_their_own_paper_values(tmp_path):
    root = tmp_path / "results"
    paper = tmp_path / "paper.csv"
    paper.write_text("benchmark,features,setting,metric,value,source\n"
                     "cub,plain,inductive,zsl_top1,64.9,x\ncub,plain,transductive,zsl_top1,74.7,y\n")
    runs = load_runs([
        write_metrics(root / "i", "cub", "paper", "tfvaegan", 1, 0.60, 0.5, 0.6, 0.54),
        write_metrics(root / "u", "cub", "paper", "tfvaegan", 1, 0.70, 0.6, 0.6, 0.60, setting="transductive",
                      transductive_prior="uniform"),
        write_metrics(root / "l", "cub", "paper", "tfvaegan", 1, 0.72, 0.6, 0.6, 0.61, setting="transductive",
                      transductive_prior="labels"),
        write_metrics(root / "t", "cub", "paper", "tfvaegan", 1, 0.66, 0.6, 0.6, 0.58, setting="transductive",
                      transductive_prior="uniform", transductive_unlabelled="test"),
    ])
    tables = build_tables(runs, load_paper(paper))
    zsl = tables["zsl"]
    assert list(zsl.columns[-5:]) == ["features", "setting", "prior", "unlabelled", "method"]
    # a transductive file without transductive_unlabelled (written before the key) trained on test_unseen
    assert list(zip(zsl.setting, zsl.prior, zsl.unlabelled)) == [
        ("inductive", "", ""), ("transductive", "uniform", "test"), ("transductive", "uniform", "test_unseen"),
        ("transductive", "labels", "test_unseen")]
    assert list(zsl.paper_top1) == [64.9, 74.7, 74.7, 74.7]  # the known-prior number beside every row
    assert list(zsl.top1_mean) == [60.0, 66.0, 70.0, 72.0]
    assert list(tables["gzsl"].setting) == ["inductive", "transductive", "transductive", "transductive"]
    assert tables["gzsl"].paper_h.isna().all()  # no GZSL value: empty, never the inductive one


TRANSDUCTIVE = {"setting": "transductive", "transductive_prior": "uniform"}


def test_every_table_ends_with_features_setting_prior_unlabelled_method_after_its_fixed_columns(tmp_path):
    for columns in (ZSL_COLUMNS, GZSL_COLUMNS, ABLATION_COLUMNS):
        assert columns[-5:] == ["features", "setting", "prior", "unlabelled", "method"]
        assert columns[:4] == ["benchmark", "protocol", "variant", "n_seeds"]
    runs = [write_metrics(tmp_path / "i", "cub", "paper", "tfvaegan", 1, 0.6, 0.5, 0.6, 0.54),
            write_metrics(tmp_path / "t", "cub", "paper", "tfvaegan", 1, 0.7, 0.6, 0.6, 0.6, **TRANSDUCTIVE)]
    out = tmp_path / "tables"
    assert main(["tables", "--metrics", *map(str, runs), "--out-dir", str(out)]) == 0  # the shipped paper file
    zsl = pd.read_csv(out / "zsl.csv", keep_default_na=False)
    assert list(zsl.columns) == ZSL_COLUMNS
    assert [(r.setting, r.prior, r.paper_top1) for r in zsl.itertuples()] == [
        ("inductive", "", 64.9), ("transductive", "uniform", 74.7)]  # an inductive row's prior: empty
    for name in ("gzsl", "ablation"):
        frame = pd.read_csv(out / f"{name}.csv", keep_default_na=False)
        assert list(frame.setting) == ["inductive", "transductive"] and list(frame.prior) == ["", "uniform"]


def test_seeds_of_one_setting_and_prior_aggregate_and_never_mix_with_another(tmp_path):
    root = tmp_path / "results"
    labels = {"setting": "transductive", "transductive_prior": "labels"}
    runs = load_runs([
        write_metrics(root / "u", "cub", "val", "tfvaegan", 0, 0.60, **TRANSDUCTIVE),
        write_metrics(root / "u", "cub", "val", "tfvaegan", 1, 0.64, **TRANSDUCTIVE),
        write_metrics(root / "l", "cub", "val", "tfvaegan", 0, 0.80, **labels),
        write_metrics(root / "i", "cub", "val", "tfvaegan", 0, 0.50),
        write_metrics(root / "fu", "cub", "val", "tfvaegan", 0, 0.90, features="finetuned", **TRANSDUCTIVE),
    ])
    zsl = build_tables(runs, {})["zsl"]
    rows = [(r.features, r.setting, r.prior, r.n_seeds, r.top1_mean) for r in zsl.itertuples()]
    assert rows == [("plain", "inductive", "", 1, 50.0), ("plain", "transductive", "uniform", 2, 62.0),
                    ("plain", "transductive", "labels", 1, 80.0), ("finetuned", "transductive", "uniform", 1, 90.0)]
    twin = write_metrics(root / "twin", "cub", "val", "tfvaegan", 1, 0.61, **TRANSDUCTIVE)
    with pytest.raises(UserError, match=r"'setting', 'transductive_prior'.*expected one file per run"):
        load_runs([runs[1].path, twin])


PAPER_BY_SETTING = """benchmark,features,setting,metric,value,source
cub,plain,inductive,zsl_top1,64.9,x
cub,plain,inductive,gzsl_h,58.1,x
cub,plain,inductive,ablation:baseline:zsl_top1,61.0,x
cub,plain,transductive,zsl_top1,74.7,y
flo,plain,inductive,zsl_top1,70.8,x
"""


def test_paper_values_attach_only_to_the_matching_setting(tmp_path):
    paper = tmp_path / "paper.csv"
    paper.write_text(PAPER_BY_SETTING)
    root = tmp_path / "results"
    runs = load_runs([
        write_metrics(root / "i", "cub", "paper", "tfvaegan", 0, 0.60, 0.5, 0.6, 0.55),
        write_metrics(root / "t", "cub", "paper", "tfvaegan", 0, 0.70, 0.5, 0.6, 0.55, **TRANSDUCTIVE),
        write_metrics(root / "t", "cub", "paper", "baseline", 0, 0.65, **TRANSDUCTIVE),
        write_metrics(root / "t", "flo", "paper", "tfvaegan", 0, 0.70, **TRANSDUCTIVE),
        write_metrics(root / "ft", "cub", "paper", "tfvaegan", 0, 0.75, features="finetuned", **TRANSDUCTIVE),
    ])
    tables = build_tables(runs, load_paper(paper))
    zsl = tables["zsl"].set_index(["benchmark", "features", "setting", "variant"])
    assert zsl.loc[("cub", "plain", "inductive", "tfvaegan")].paper_top1 == 64.9
    assert zsl.loc[("cub", "plain", "transductive", "tfvaegan")].paper_top1 == 74.7
    assert zsl.loc[("cub", "plain", "transductive", "tfvaegan")].diff_top1 == pytest.approx(70.0 - 74.7)
    # no transductive number: empty, never the inductive one (nor the plain one for fine-tuned features)
    for row in (("flo", "plain", "transductive", "tfvaegan"), ("cub", "finetuned", "transductive", "tfvaegan"),
                ("cub", "plain", "transductive", "baseline")):
        assert math.isnan(zsl.loc[row].paper_top1) and math.isnan(zsl.loc[row].diff_top1), row
    gzsl = tables["gzsl"].set_index(["setting"])
    assert gzsl.loc["inductive"].paper_h == 58.1 and math.isnan(gzsl.loc["transductive"].paper_h)
    ablation = tables["ablation"].set_index(["benchmark", "features", "setting", "variant"])
    assert math.isnan(ablation.loc[("cub", "plain", "transductive", "baseline")].paper_top1)  # inductive ablation
    assert ablation.loc[("cub", "plain", "transductive", "tfvaegan")].paper_top1 == 74.7
    # the older files (six columns without `method`, five without `setting`, four without `features`) hold
    # TF-VAEGAN's (inductive) values only
    for header, row in (("benchmark,features,setting,metric,value,source", "cub,plain,inductive,zsl_top1,64.9,x"),
                        ("benchmark,features,metric,value,source", "cub,plain,zsl_top1,64.9,x"),
                        ("benchmark,metric,value,source", "cub,zsl_top1,64.9,x")):
        paper.write_text(f"{header}\n{row}\n")
        assert load_paper(paper) == {("cub", "plain", "inductive", "tfvaegan", "zsl_top1"): 64.9}
        zsl = build_tables(runs[:2], load_paper(paper))["zsl"]
        assert zsl.paper_top1.iloc[0] == 64.9 and math.isnan(zsl.paper_top1.iloc[1])


def test_metrics_without_setting_read_as_inductive(tmp_path):
    older = write_metrics(tmp_path / "a", "cub", "paper", "tfvaegan", 0, 0.5)  # no setting, no prior
    explicit = write_metrics(tmp_path / "b", "cub", "val", "tfvaegan", 0, 0.5, setting=None, transductive_prior=None)
    assert [(r.setting, r.prior) for r in load_runs([older, explicit])] == [("inductive", "")] * 2


@pytest.mark.parametrize("changes, message", [
    ({"setting": "semi"}, r"key 'setting': expected one of \('inductive', 'transductive'\) or absent, found 'semi'"),
    ({"setting": False}, r"key 'setting': expected one of .*found False"),
    ({"setting": "transductive"}, r"key 'transductive_prior': expected one of \('uniform', 'labels'\) for a "
                                  r"transductive run and null for an inductive one, found None"),
    ({**TRANSDUCTIVE, "transductive_prior": "known"}, r"key 'transductive_prior': .*found 'known'"),
    ({"transductive_prior": "uniform"}, r"key 'transductive_prior': .*found 'uniform' \(setting 'inductive'\)"),
    ({**TRANSDUCTIVE, "config": {"transductive": False}},
     r"keys 'setting', 'config.transductive': expected one setting and prior, found setting='transductive', "
     r"config.transductive=False"),
    ({"config": {"transductive": True, "transductive_prior": "uniform"}},
     r"keys 'setting', 'config.transductive': .*found setting='inductive', config.transductive=True"),
    ({**TRANSDUCTIVE, "config": {"transductive": True, "transductive_prior": "labels"}},
     r"keys 'setting', 'config.transductive', 'transductive_prior', 'config.transductive_prior': .*"
     r"transductive_prior='uniform', config.transductive_prior='labels'"),
    ({"transductive_unlabelled": "test"}, r"key 'transductive_unlabelled': expected null for an inductive run, "
                                          r"found 'test'"),
    ({**TRANSDUCTIVE, "transductive_unlabelled": "all"},
     r"key 'transductive_unlabelled': expected one of \('test', 'test_unseen'\) for a transductive run, found 'all'"),
    ({**TRANSDUCTIVE, "transductive_unlabelled": "test",
      "config": {"transductive": True, "transductive_prior": "uniform", "transductive_unlabelled": "test_unseen"}},
     r"keys 'transductive_unlabelled', 'config.transductive_unlabelled': expected the same set, found 'test' and "
     r"'test_unseen'"),
])
def test_bad_setting_or_prior_in_metrics_is_one_clear_error(tmp_path, capsys, changes, message):
    import re

    bad = write_metrics(tmp_path / "a", "cub", "paper", "tfvaegan", 1, 0.5, **changes)
    with pytest.raises(UserError, match=message) as caught:
        load_runs([bad])
    assert str(caught.value).startswith(f"{bad}: key")  # the file, then the key
    out = tmp_path / "tables"
    assert main(["tables", "--metrics", str(bad), "--out-dir", str(out)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and re.search(message, err) and "Traceback" not in err and not out.exists()


def test_consistent_setting_and_config_are_accepted(tmp_path):
    runs = [write_metrics(tmp_path / "t", "cub", "paper", "tfvaegan", 0, 0.5, **TRANSDUCTIVE,
                          config={"protocol": "paper", "transductive": True, "transductive_prior": "uniform"}),
            write_metrics(tmp_path / "i", "cub", "paper", "tfvaegan", 0, 0.5, setting="inductive",
                          config={"protocol": "paper", "transductive": False, "transductive_prior": "uniform"})]
    assert [(r.setting, r.prior) for r in load_runs(runs)] == [("transductive", "uniform"), ("inductive", "")]


def test_bad_setting_in_the_paper_file_names_line_and_column(tmp_path):
    paper = tmp_path / "paper.csv"
    paper.write_text("benchmark,features,setting,metric,value,source\ncub,plain,trans,zsl_top1,70,x\n")
    with pytest.raises(UserError, match=r"line 2, column 'setting': expected one of \['inductive', 'transductive'\]"):
        load_paper(paper)
    paper.write_text("benchmark,features,setting,metric,value,source\ncub,plain,zsl_top1,70,x\n")
    with pytest.raises(UserError, match=r"line 2: expected 6 columns"):
        load_paper(paper)
    paper.write_text("benchmark,setting,metric,value,source\ncub,transductive,zsl_top1,70,x\n")
    with pytest.raises(UserError, match=r"header: expected columns \['benchmark', 'features', 'setting'"):
        load_paper(paper)


def test_shipped_transductive_paper_rows_cite_the_known_prior_source():
    with DEFAULT_PAPER_RESULTS.open(newline="") as handle:  # TF-VAEGAN's rows (a file without `method`: all)
        rows = [r for r in csv.DictReader(handle)
                if r["setting"] == "transductive" and r.get("method", "tfvaegan") == "tfvaegan"]
    assert [[r[k] for k in ("benchmark", "features", "setting", "metric", "value")] for r in rows] == [
        ["cub", "plain", "transductive", "zsl_top1", "74.7"], ["awa2", "plain", "transductive", "zsl_top1", "92.6"],
        ["sun", "plain", "transductive", "zsl_top1", "70.9"]]
    for row in rows:
        assert "known class prior" in row["source"]
        assert "github.com/Zhicaiwww/Bi-VAEGAN README.md result.png" in row["source"]
        assert "Narayan et al. ECCV 2020" in row["source"]


def test_average_splits_keeps_the_setting_and_refuses_mixed_ones(tmp_path):
    paths = []
    for split in (1, 2):
        paths.append(tmp_path / f"split_{split}.json")
        paths[-1].write_text(json.dumps(split_metrics(split, **TRANSDUCTIVE)))
    out = tmp_path / "seed0" / "metrics.json"
    assert main(["average-splits", "--metrics", *map(str, paths), "--out", str(out)]) == 0
    merged = json.loads(out.read_text())
    assert (merged["setting"], merged["transductive_prior"]) == ("transductive", "uniform")
    assert [(r.setting, r.prior) for r in load_runs([out])] == [("transductive", "uniform")]
    paths[1].write_text(json.dumps(split_metrics(2)))  # an inductive split among transductive ones
    assert main(["average-splits", "--metrics", *map(str, paths), "--out", str(tmp_path / "x.json")]) == 2
    assert not (tmp_path / "x.json").exists()


# ------------------------------------------------------------------ the main table, in the paper's layout (issue 23)
IMAGE_BENCHMARKS = {"cub": 0.60, "awa2": 0.70, "flo": 0.66, "sun": 0.62}  # ZSL top-1 of the paper protocol's seed 0
LABELS_TEST_UNSEEN = {"setting": "transductive", "transductive_prior": "labels",
                      "transductive_unlabelled": "test_unseen"}


def four_benchmark_runs(root: Path) -> list[Path]:
    """Plain inductive runs of the paper's four image benchmarks (both protocols, 2 seeds), and for CUB a
    fine-tuned run and a transductive one (known prior, test_unseen)."""
    paths = []
    for benchmark, top1 in IMAGE_BENCHMARKS.items():
        for protocol, shift in (("paper", 0.0), ("val", -0.02)):
            for seed, step in ((0, 0.0), (1, 0.04)):
                z = top1 + shift + step
                paths.append(write_metrics(root, benchmark, protocol, "tfvaegan", seed, z, z - 0.1, z, z - 0.05))
    paths.append(write_metrics(root / "ft", "cub", "paper", "tfvaegan", 0, 0.75, 0.6, 0.7, 0.65, features="finetuned"))
    paths.append(write_metrics(root / "t", "cub", "paper", "tfvaegan", 0, 0.76, 0.6, 0.6, 0.6, **LABELS_TEST_UNSEEN))
    paths.append(write_metrics(root, "cub", "paper", "baseline", 0, 0.10, 0.1, 0.1, 0.1))  # an ablation: not shown
    return paths


def markdown_rows(text: str) -> list[list[str]]:
    return [[cell.strip() for cell in line.strip().strip("|").split("|")]
            for line in text.splitlines() if line.startswith("|")]


def shipped_paper_values() -> dict[tuple[str, str, str, str], float]:
    """config/paper_results.csv read here with the csv module, not with the code under test."""
    with DEFAULT_PAPER_RESULTS.open(newline="") as handle:  # TF-VAEGAN's rows (a file without `method`: all)
        return {(r["benchmark"], r["features"], r["setting"], r["metric"]): float(r["value"])
                for r in csv.DictReader(handle) if r.get("method", "tfvaegan") == "tfvaegan"}


def test_main_table_of_the_four_image_benchmarks_in_the_papers_layout(tmp_path):
    out = tmp_path / "tables"
    assert main(["tables", "--metrics", *map(str, four_benchmark_runs(tmp_path / "results")), "--out-dir",
                 str(out)]) == 0  # the shipped paper file
    header, rule, *rows = markdown_rows((out / "main_table.md").read_text())
    groups = ["CUB", "AWA2", "FLO", "SUN"]  # the paper's order
    assert header == ["Setting", "Method"] + [f"{b} {m}" for b in groups for m in ("T1", "u", "s", "H")]
    assert rule == [":---", ":---"] + ["---:"] * 16 and all(len(row) == 18 for row in rows)
    plain, trans, tuned = ("Plain features, inductive",
                           "Plain features, transductive (prior labels, unlabelled test_unseen)",
                           "Fine-tuned features, inductive")
    published, paper, val, delta = ("TF-VAEGAN (paper, published)", "TF-VAEGAN (ours, paper protocol)",
                                    "TF-VAEGAN (ours, val protocol)", "Δ (ours − published)")
    assert [tuple(row[:2]) for row in rows] == [
        (plain, published), (plain, paper), (plain, delta), (plain, val), (plain, delta),
        (trans, published), (trans, paper), (trans, delta), (tuned, published), (tuned, paper), (tuned, delta)]
    cell, ours = {}, None  # (section, method, column) -> text; a Δ row is named after the row of ours above it
    for row in rows:
        ours = row[1] if row[1] != delta else ours
        method = f"Δ of {ours}" if row[1] == delta else row[1]
        cell.update({(row[0], method, name): value for name, value in zip(header[2:], row[2:])})
    d_paper, d_val = f"Δ of {paper}", f"Δ of {val}"
    # ours: mean ± sample std over the two seeds (60, 64: 62.0 ± 2.8), the numbers of zsl.csv and gzsl.csv
    assert cell[(plain, paper, "CUB T1")] == "62.0 ± 2.8" and cell[(plain, val, "CUB T1")] == "60.0 ± 2.8"
    assert cell[(plain, paper, "SUN u")] == "54.0 ± 2.8" and cell[(plain, paper, "AWA2 H")] == "67.0 ± 2.8"
    zsl = pd.read_csv(out / "zsl.csv")
    row = zsl[(zsl.benchmark == "flo") & (zsl.protocol == "val") & (zsl.variant == "tfvaegan")].iloc[0]
    assert cell[(plain, val, "FLO T1")] == f"{row.top1_mean:.1f} ± {row.top1_std:.1f}"
    assert cell[(tuned, paper, "CUB T1")] == "75.0"  # one seed: the mean alone
    # the published row: every value from config/paper_results.csv, and a few checked by hand
    expected = shipped_paper_values()
    for benchmark in groups:
        for metric, name in (("zsl_top1", "T1"), ("gzsl_u", "u"), ("gzsl_s", "s"), ("gzsl_h", "H")):
            value = expected[(benchmark.lower(), "plain", "inductive", metric)]
            assert cell[(plain, published, f"{benchmark} {name}")] == f"{value:.1f}"
    assert (cell[(plain, published, "CUB T1")], cell[(plain, published, "AWA2 H")], cell[(plain, published, "SUN u")],
            cell[(plain, published, "FLO s")]) == ("64.9", "66.6", "45.6", "84.1")
    assert [cell[(tuned, published, f"CUB {m}")] for m in ("T1", "u", "s", "H")] == ["74.3", "–", "–", "70.7"]
    assert cell[(tuned, published, "CUB T1")] == f"{expected[('cub', 'finetuned', 'inductive', 'zsl_top1')]:.1f}"
    assert cell[(trans, published, "CUB T1")] == "74.7" and cell[(trans, published, "CUB H")] == "–"
    assert cell[(trans, published, "AWA2 T1")] == "–"  # no transductive run of AWA2: nothing to compare
    # Δ = ours − published, under each of our rows
    assert [cell[(plain, d_paper, f"CUB {m}")] for m in ("T1", "u", "s", "H")] == ["-2.9", "-0.8", "-2.7", "-1.1"]
    assert cell[(plain, d_val, "CUB T1")] == "-4.9"  # the val row's own gap: 60.0 − 64.9
    assert cell[(plain, d_paper, "AWA2 T1")] == "-0.2" and cell[(plain, d_paper, "FLO s")] == "-16.1"  # 68.0 − 84.1
    assert cell[(tuned, d_paper, "CUB T1")] == "+0.7" and cell[(tuned, d_paper, "CUB H")] == "-5.7"
    assert cell[(tuned, d_paper, "CUB u")] == "–" and cell[(trans, d_paper, "CUB T1")] == "+1.3"

    tex = (out / "main_table.tex").read_text()
    assert tex.startswith("% ") and "booktabs" in tex.splitlines()[0]
    body = [line for line in tex.splitlines() if not line.startswith("%")]
    assert body[0] == r"\begin{tabular}{l cccc cccc cccc cccc}" and body[-1] == r"\end{tabular}"
    assert "\\usepackage" not in "\n".join(body) and tex.count("{") == tex.count("}")
    depth = 0
    for char in tex:  # balanced, never closed before opened
        depth += {"{": 1, "}": -1}.get(char, 0)
        assert depth >= 0
    assert body[2] == " & " + " & ".join(rf"\multicolumn{{4}}{{c}}{{{b}}}" for b in groups) + r" \\"
    assert body[3] == r"\cmidrule(lr){2-5} \cmidrule(lr){6-9} \cmidrule(lr){10-13} \cmidrule(lr){14-17}"
    assert [body[1], body[4], body[-2]] == [r"\toprule", "Method & " + " & ".join(["T1", "u", "s", "H"] * 4) + r" \\",
                                            r"\bottomrule"]
    sections = [line for line in body if line.startswith(r"\multicolumn{17}{l}")]
    assert sections == [rf"\multicolumn{{17}}{{l}}{{\textit{{{s}}}}} \\" for s in
                        (plain, trans.replace("_", r"\_"), tuned)]
    assert tex.count(r"\multicolumn") == 4 + 3 and tex.count(r"\midrule") == 3
    table_rows = [line for line in body[4:-2] if line.endswith(r"\\") and not line.startswith(r"\multicolumn")]
    assert len(table_rows) == 1 + len(rows) and all(line.count("&") == 16 for line in table_rows)
    assert r"TF-VAEGAN (ours, paper protocol) & 62.0 $\pm$ 2.8 & " in tex
    assert r"$\Delta$ (ours $-$ published) & $-2.9$ & $-0.8$ & $-2.7$ & $-1.1$ & " in tex
    assert r"TF-VAEGAN (paper, published) & 64.9 & 52.8 & 64.7 & 58.1 & 72.2 & " in tex


def test_main_table_names_a_transductive_section_only_by_what_is_not_the_default():
    assert section_name("plain", "transductive", "uniform", "test") == "Plain features, transductive"
    assert (section_name("finetuned", "transductive", "labels", "test")
            == "Fine-tuned features, transductive (prior labels)")
    assert section_name("plain", "inductive", "", "") == "Plain features, inductive"


def test_main_table_bad_or_empty_input_is_one_clear_error(tmp_path, capsys):
    empty = {"zsl": pd.DataFrame(columns=ZSL_COLUMNS), "gzsl": pd.DataFrame(columns=GZSL_COLUMNS)}
    with pytest.raises(UserError, match="main table: expected at least one row in the zsl table"):
        build_main_table(empty)
    with pytest.raises(UserError, match="main table: expected the gzsl table of build_tables, found NoneType"):
        build_main_table({"zsl": empty["zsl"]})
    with pytest.raises(UserError, match=r"main table: the zsl table: expected the columns .*none of \['diff_top1'"):
        build_main_table({**empty, "zsl": empty["zsl"].drop(columns=["diff_top1"])})
    out = tmp_path / "tables"
    assert main(["tables", "--metrics", str(tmp_path / "missing.json"), "--out-dir", str(out)]) == 2
    assert capsys.readouterr().err.count("\n") == 1 and not out.exists()  # nothing written, main table included
    # runs of ablation variants only: the CSV tables as before, the main table says why it is empty
    runs = [write_metrics(tmp_path, "cub", "paper", "baseline", 0, 0.5, 0.4, 0.5, 0.45)]
    assert main(["tables", "--metrics", *map(str, runs), "--out-dir", str(out)]) == 0
    assert "No main table: no run of the complete model (variant 'tfvaegan')" in (out / "main_table.md").read_text()
    assert "\\begin{tabular}" not in (out / "main_table.tex").read_text()


# ------------------------------------------------------------------ the lineage: methods side by side
PAPER_BY_METHOD = """benchmark,features,setting,method,metric,value,source
cub,plain,inductive,tfvaegan,zsl_top1,64.9,t
cub,plain,inductive,tfvaegan,gzsl_h,58.1,t
cub,plain,inductive,fclswgan,zsl_top1,57.3,c
cub,plain,inductive,fclswgan,gzsl_h,49.7,c
cub,plain,inductive,fvaegan,zsl_top1,61.0,v
cub,plain,inductive,fvaegan,gzsl_h,53.7,v
cub,plain,inductive,free,gzsl_h,57.7,f
"""
# ZSL top-1 (= u = s = H, for simplicity) of seeds 0 and 1, per protocol and method. paper: TF-VAEGAN and FREE
# tie (63.0), then f-VAEGAN (59.0), f-CLSWGAN (52.0); val: f-CLSWGAN first; FREE's val runs report no GZSL.
LINEAGE = {"paper": {"fclswgan": (0.50, 0.54), "fvaegan": (0.58, 0.60), "tfvaegan": (0.62, 0.64),
                     "free": (0.61, 0.65)},
           "val": {"fclswgan": (0.60, 0.62), "fvaegan": (0.55, 0.57), "tfvaegan": (0.56, 0.58),
                   "free": (0.50, 0.52)}}


def lineage_runs(root: Path, numbers=LINEAGE) -> list[Path]:
    """The four methods on CUB under both protocols, two seeds each; TF-VAEGAN's files without `method` (written
    before it existed), the others with it (and with config.method, as the classify stage writes them)."""
    paths = []
    for protocol, methods in numbers.items():
        for method, values in methods.items():
            for seed, z in enumerate(values):
                h = None if (protocol, method) == ("val", "free") else z - 0.05
                extra = {} if method == "tfvaegan" else {"method": method, "config": {"method": method,
                                                                                      "protocol": protocol}}
                paths.append(write_metrics(root / method, "cub", protocol, "tfvaegan", seed, z,
                                           None if h is None else z, None if h is None else z, h, **extra))
    return paths


def methods_frame(tmp_path: Path, numbers=LINEAGE) -> pd.DataFrame:
    tmp_path.mkdir(parents=True, exist_ok=True)
    paper = tmp_path / "paper.csv"
    paper.write_text(PAPER_BY_METHOD)
    return build_tables(load_runs(lineage_runs(tmp_path / "results", numbers)), load_paper(paper))["methods"]


def test_methods_table_ranks_each_method_within_its_benchmark_and_protocol(tmp_path):
    methods = methods_frame(tmp_path)
    assert list(methods.columns) == METHODS_COLUMNS
    assert METHOD_ORDER == ("fclswgan", "fvaegan", "tfvaegan", "free")  # the lineage, chronologically
    # one row per protocol and method, paper first, the methods chronologically
    assert list(zip(methods.protocol, methods.method)) == [(p, m) for p in ("paper", "val") for m in METHOD_ORDER]
    row = {(r.protocol, r.method): r for r in methods.itertuples()}
    # ties (TF-VAEGAN and FREE: 63.0) share the lower rank; the next rank is 3
    assert [row[("paper", m)].rank_top1 for m in METHOD_ORDER] == [4, 3, 1, 1]
    assert [row[("val", m)].rank_top1 for m in METHOD_ORDER] == [1, 3, 2, 4]
    assert [row[("paper", m)].rank_h for m in METHOD_ORDER] == [4, 3, 1, 1]
    assert [row[("val", m)].rank_h for m in METHOD_ORDER][:3] == [1, 3, 2]
    assert pd.isna(row[("val", "free")].rank_h) and math.isnan(row[("val", "free")].h_mean)  # no H, no rank
    # mean ± sample std over the two seeds
    assert (row[("paper", "fclswgan")].top1_mean, row[("paper", "fclswgan")].top1_std) == pytest.approx((52.0, 2.83))
    assert (row[("paper", "free")].top1_mean, row[("paper", "free")].top1_std) == pytest.approx((63.0, 2.83))
    assert (row[("val", "tfvaegan")].h_mean, row[("val", "tfvaegan")].h_std) == pytest.approx((52.0, 1.41))
    assert all(r.n_seeds == 2 for r in methods.itertuples())
    # each method beside its own published number, whatever our protocol; none where the paper file has none
    for protocol in ("paper", "val"):
        assert [row[(protocol, m)].paper_top1 for m in METHOD_ORDER][:3] == [57.3, 61.0, 64.9]
        assert math.isnan(row[(protocol, "free")].paper_top1)
        assert [row[(protocol, m)].paper_h for m in METHOD_ORDER] == [49.7, 53.7, 58.1, 57.7]
    assert set(methods.features) == {"plain"} and set(methods.setting) == {"inductive"}


def test_swapping_two_methods_numbers_swaps_their_ranks(tmp_path):
    swapped = {protocol: {**methods, "fclswgan": methods["fvaegan"], "fvaegan": methods["fclswgan"]}
               for protocol, methods in LINEAGE.items()}
    before, after = methods_frame(tmp_path / "a"), methods_frame(tmp_path / "b", swapped)
    rank = {frame_name: {(r.protocol, r.method): r.rank_top1 for r in frame.itertuples()}
            for frame_name, frame in (("before", before), ("after", after))}
    for protocol in ("paper", "val"):
        assert rank["after"][(protocol, "fclswgan")] == rank["before"][(protocol, "fvaegan")]
        assert rank["after"][(protocol, "fvaegan")] == rank["before"][(protocol, "fclswgan")]
        assert rank["after"][(protocol, "tfvaegan")] == rank["before"][(protocol, "tfvaegan")]
    assert rank["before"][("paper", "fclswgan")] != rank["after"][("paper", "fclswgan")]
    # the published numbers stay with the method's name, not its numbers
    assert list(after[after.protocol == "paper"].paper_top1[:2]) == [57.3, 61.0]


def test_every_table_has_a_row_per_method_with_the_methods_paper_values(tmp_path):
    paper = tmp_path / "paper.csv"
    paper.write_text(PAPER_BY_METHOD)
    runs = load_runs(lineage_runs(tmp_path / "results"))
    assert {r.method for r in runs if "method" not in json.loads(r.path.read_text())} == {"tfvaegan"}  # older files
    tables = build_tables(runs, load_paper(paper))
    zsl = tables["zsl"]
    assert list(zsl.columns[-5:]) == ["features", "setting", "prior", "unlabelled", "method"]
    assert list(zip(zsl.protocol, zsl.method)) == [(p, m) for p in ("paper", "val") for m in METHOD_ORDER]
    assert list(zsl.paper_top1[:3]) == [57.3, 61.0, 64.9] and math.isnan(zsl.paper_top1[3])
    gzsl = tables["gzsl"]
    assert list(zip(gzsl.protocol, gzsl.method))[-1] == ("val", "tfvaegan")  # FREE's val runs: no GZSL row
    assert list(tables["ablation"].method[:4]) == list(METHOD_ORDER)
    # the main table keeps TF-VAEGAN's rows only: its published row and ours, never another method's numbers
    main_table = build_main_table(tables)
    assert [row.method for row in main_table.rows] == [
        "TF-VAEGAN (paper, published)", "TF-VAEGAN (ours, paper protocol)", "Δ (ours − published)",
        "TF-VAEGAN (ours, val protocol)", "Δ (ours − published)"]
    assert main_table.rows[1].cells[0] == pytest.approx((63.0, 1.41), abs=0.01)


def test_main_table_lists_the_methods_compared_with_mean_std_rank_and_published(tmp_path):
    paper = tmp_path / "paper.csv"
    paper.write_text(PAPER_BY_METHOD)
    out = tmp_path / "tables"
    assert main(["tables", "--metrics", *map(str, lineage_runs(tmp_path / "results")), "--paper", str(paper),
                 "--out-dir", str(out)]) == 0
    methods = pd.read_csv(out / "methods.csv", keep_default_na=False)
    assert list(methods.columns) == METHODS_COLUMNS and len(methods) == 8
    assert list(methods.rank_top1[:4]) == [4, 3, 1, 1] and methods.rank_h.iloc[-1] == ""  # integers; none: empty
    text = (out / "main_table.md").read_text()
    assert text.index("| Setting | Method | CUB T1 |") < text.index("## Methods compared")
    compared = markdown_rows(text[text.index("## Methods compared"):])
    assert compared[0] == ["Benchmark", "Method", "T1 published", "T1 paper", "T1 val", "H published", "H paper",
                           "H val"]
    assert [row[:2] for row in compared[2:]] == [["CUB", "f-CLSWGAN"], ["CUB", "f-VAEGAN"], ["CUB", "TF-VAEGAN"],
                                                 ["CUB", "FREE"]]
    assert compared[2][2:] == ["57.3", "52.0 ± 2.8 (4)", "61.0 ± 1.4 (1)", "49.7", "47.0 ± 2.8 (4)",
                               "56.0 ± 1.4 (1)"]
    assert compared[5][2:] == ["–", "63.0 ± 2.8 (1)", "51.0 ± 1.4 (4)", "57.7", "58.0 ± 2.8 (1)", "–"]
    tex = (out / "main_table.tex").read_text()
    assert tex.count(r"\begin{tabular}") == 2 and tex.count("{") == tex.count("}")
    assert r"CUB & f-CLSWGAN & 57.3 & 52.0 $\pm$ 2.8 (4) & 61.0 $\pm$ 1.4 (1) & 49.7 & " in tex
    assert r"Benchmark & Method & published & paper & val & published & paper & val \\" in tex


def test_one_method_still_writes_methods_csv_without_a_comparison_section(tmp_path):
    runs = [write_metrics(tmp_path / "r", "cub", protocol, "tfvaegan", seed, z, z, z, z)
            for protocol in ("paper", "val") for seed, z in ((0, 0.6), (1, 0.62))]
    runs.append(write_metrics(tmp_path / "r", "cub", "paper", "baseline", 0, 0.7))  # an ablation: not in methods.csv
    out = tmp_path / "tables"
    assert main(["tables", "--metrics", *map(str, runs), "--out-dir", str(out)]) == 0
    methods = pd.read_csv(out / "methods.csv")
    assert list(zip(methods.method, methods.protocol, methods.rank_top1, methods.rank_h)) == [
        ("tfvaegan", "paper", 1, 1), ("tfvaegan", "val", 1, 1)]
    assert list(methods.paper_top1) == [64.9, 64.9]  # the shipped paper file: TF-VAEGAN's CUB number
    assert "Methods compared" not in (out / "main_table.md").read_text()
    assert (out / "main_table.tex").read_text().count(r"\begin{tabular}") == 1


@pytest.mark.parametrize("changes, message", [
    ({"method": "clswgan"}, (r"key 'method': expected one of \('tfvaegan', 'fclswgan', 'fvaegan', 'free'\) or "
                             r"absent, found 'clswgan'")),
    ({"method": "free", "config": {"method": "fvaegan"}},
     r"keys 'method', 'config.method': expected the same method, found 'free' and 'fvaegan'"),
])
def test_bad_method_in_metrics_is_one_clear_error(tmp_path, capsys, changes, message):
    import re

    bad = write_metrics(tmp_path / "a", "cub", "paper", "tfvaegan", 1, 0.5, **changes)
    with pytest.raises(UserError, match=message) as caught:
        load_runs([bad])
    assert str(caught.value).startswith(f"{bad}: key")
    out = tmp_path / "tables"
    assert main(["tables", "--metrics", str(bad), "--out-dir", str(out)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and re.search(message, err) and not out.exists()


def test_runs_differing_only_by_method_are_two_runs_and_one_method_twice_is_refused(tmp_path):
    a = write_metrics(tmp_path / "a", "cub", "paper", "tfvaegan", 1, 0.5)
    b = write_metrics(tmp_path / "b", "cub", "paper", "tfvaegan", 1, 0.6, method="free")
    assert [r.method for r in load_runs([a, b])] == ["tfvaegan", "free"]
    c = write_metrics(tmp_path / "c", "cub", "paper", "tfvaegan", 1, 0.6, method="tfvaegan")  # = a's run
    with pytest.raises(UserError, match=r"'variant', 'method', 'seed': expected one file per run"):
        load_runs([a, c])


def test_bad_method_in_the_paper_file_names_line_and_column(tmp_path):
    paper = tmp_path / "paper.csv"
    paper.write_text("benchmark,features,setting,method,metric,value,source\n"
                     "cub,plain,inductive,free,zsl_top1,60,x\ncub,plain,inductive,FREE,zsl_top1,70,x\n")
    with pytest.raises(UserError, match=r"line 3, column 'method': expected one of \['tfvaegan', 'fclswgan', "
                                        r"'fvaegan', 'free'\], found 'FREE'"):
        load_paper(paper)
