"""Plots: both PNGs are written, non-empty and valid, with and without training logs."""
from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest
from matplotlib.container import BarContainer

from tfvaegan.cli import main
from tfvaegan.errors import UserError
from tfvaegan.report.plots import read_train_log

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
LOG_COLUMNS = ["epoch", "seconds", "loss_d", "loss_g", "wasserstein", "vae_loss", "lambda1", "zsl_acc",
               "gzsl_seen", "gzsl_unseen", "gzsl_h", "eval_split"]
D2_COLUMNS = ["loss_d2", "wasserstein2"]  # every train_log.csv now; filled by transductive runs only


def write_run(root: Path, benchmark, protocol, variant, seed, zsl, h, epochs=12, log=True, features=None,
              prior=None) -> Path:
    """A run's metrics.json and train_log.csv; with a `prior` a transductive run, whose log fills D2's columns."""
    folder = root / benchmark / protocol / variant / f"seed{seed}"
    folder.mkdir(parents=True)
    setting = ({"setting": "transductive", "transductive_prior": prior, "transductive_unlabelled": "test"}
               if prior else {})
    (folder / "metrics.json").write_text(json.dumps({
        "benchmark": benchmark, "protocol": protocol, "variant": variant, "seed": seed,
        "zsl_acc": zsl, "gzsl_seen": h + 0.05, "gzsl_unseen": h - 0.05, "gzsl_h": h,
        **({"features": features} if features else {}), **setting}))
    if log:
        rng = np.random.default_rng(seed)
        with (folder / "train_log.csv").open("w", newline="") as handle:
            writer = csv.writer(handle)
            writer.writerow(LOG_COLUMNS + D2_COLUMNS)
            d2 = lambda epoch: [-10 / (epoch + 1), 2.0] if prior else ["", ""]  # noqa: E731
            for epoch in range(1, epochs + 1):
                # eval_every 2: accuracy columns and eval_split empty on epochs not evaluated; the last
                # epoch is always evaluated
                evaluated = epoch % 2 == 0 or epoch == epochs
                acc = zsl * (1 - np.exp(-epoch / 3)) + rng.normal(0, 0.01)
                writer.writerow([epoch, 1.5, -20 / (epoch + 1), 30 / (epoch + 1) + 5, 3.0, 100.0, 10.0,
                                 acc if evaluated else "", "", "", acc * 0.9 if evaluated else "",
                                 ("test" if protocol == "paper" else "val") if evaluated else ""] + d2(epoch))
            if protocol == "val":  # the final retraining on trainval: losses only, epochs restart
                for epoch in range(1, epochs // 2 + 1):
                    writer.writerow([epoch, 1.5, -18 / (epoch + 1), 28 / (epoch + 1) + 5, 3.0, 100.0, 10.0,
                                     "", "", "", "", "trainval"] + d2(epoch))
    return folder / "metrics.json"


def assert_png(path: Path) -> None:
    data = path.read_bytes()
    assert data[:8] == PNG_SIGNATURE and len(data) > 10_000


@pytest.fixture
def runs(tmp_path):
    root = tmp_path / "results"
    return [write_run(root, b, p, "tfvaegan", s, zsl, h)
            for b, zsl, h in (("cub", 0.62, 0.56), ("awa2", 0.70, 0.64), ("demo", 0.4, 0.3))
            for p in ("paper", "val") for s in (1, 2)]


def test_plots_cli_writes_both_pngs(runs, tmp_path):
    out = tmp_path / "plots"
    assert main(["plots", "--metrics", *map(str, runs), "--out-dir", str(out)]) == 0
    assert sorted(p.name for p in out.iterdir()) == ["paper_vs_ours.png", "training_curves.png"]
    assert_png(out / "paper_vs_ours.png")
    assert_png(out / "training_curves.png")


def test_plots_with_ablation_variants_and_missing_logs(tmp_path, capsys):
    root = tmp_path / "results"
    metrics = [write_run(root, "cub", "paper", v, 1, 0.6, 0.5, log=False) for v in ("tfvaegan", "baseline")]
    metrics.append(write_run(root, "cub", "val", "baseline", 1, 0.5, 0.4, log=False))
    out = tmp_path / "plots"
    assert main(["plots", "--metrics", *map(str, metrics), "--out-dir", str(out)]) == 0
    assert "train_log.csv not found" in capsys.readouterr().out
    assert_png(out / "paper_vs_ours.png")
    assert (out / "training_curves.png").read_bytes()[:8] == PNG_SIGNATURE


def test_plain_and_finetuned_runs_of_one_benchmark_are_drawn_apart(tmp_path):
    from tfvaegan.report.plots import paper_vs_ours_figure, read_train_logs, training_curves_figure
    from tfvaegan.report.tables import DEFAULT_PAPER_RESULTS, build_tables, load_paper, load_runs

    metrics = [write_run(tmp_path / "plain", "cub", "paper", "tfvaegan", 1, 0.6, 0.5),
               write_run(tmp_path / "ft", "cub", "paper", "tfvaegan", 1, 0.7, 0.6, features="finetuned")]
    runs = load_runs(metrics)
    tables = build_tables(runs, load_paper(DEFAULT_PAPER_RESULTS))
    figure = paper_vs_ours_figure(tables["zsl"], tables["gzsl"])
    zsl_axis = figure.axes[0]
    assert [t.get_text() for t in zsl_axis.get_xticklabels()] == ["CUB", "CUB fine-tuned"]
    paper_bars = zsl_axis.containers[0]  # the paper's bars: each group its own published number
    assert [round(bar.get_height(), 1) for bar in paper_bars] == [64.9, 74.3]
    curves = training_curves_figure(read_train_logs(runs))
    assert [ax.get_title() for ax in curves.axes[:2]] == ["CUB", "CUB fine-tuned"]


def test_settings_and_priors_of_one_benchmark_are_drawn_apart(tmp_path):
    from tfvaegan.report.plots import D2_LABEL, paper_vs_ours_figure, read_train_logs, training_curves_figure
    from tfvaegan.report.tables import DEFAULT_PAPER_RESULTS, build_tables, load_paper, load_runs

    metrics = [write_run(tmp_path / "l", "cub", "paper", "tfvaegan", 1, 0.8, 0.6, prior="labels"),
               write_run(tmp_path / "i", "cub", "paper", "tfvaegan", 1, 0.6, 0.5),
               write_run(tmp_path / "u", "cub", "paper", "tfvaegan", 1, 0.7, 0.6, prior="uniform"),
               write_run(tmp_path / "f", "flo", "paper", "tfvaegan", 1, 0.7, 0.6, prior="uniform")]
    runs = load_runs(metrics)
    tables = build_tables(runs, load_paper(DEFAULT_PAPER_RESULTS))
    figure = paper_vs_ours_figure(tables["zsl"], tables["gzsl"])
    zsl_axis, gzsl_axis = figure.axes[:2]
    names = ["CUB", "CUB transductive (uniform, test)", "CUB transductive (labels, test)",
             "FLO transductive (uniform, test)"]
    assert [t.get_text() for t in zsl_axis.get_xticklabels()] == names
    # the paper's bars: the transductive (known-prior) number beside both priors; none for FLO's or any H
    assert [round(bar.get_height(), 1) for bar in zsl_axis.containers[0]] == [64.9, 74.7, 74.7, 0.0]
    assert [round(bar.get_height(), 1) for bar in gzsl_axis.containers[0]] == [58.1, 0.0, 0.0, 0.0]
    assert "paper (published); transductive: known class prior" in [t.get_text() for t in figure.legends[0].texts]
    ours = [c for c in zsl_axis.containers if isinstance(c, BarContainer)][1]
    assert [round(bar.get_height(), 1) for bar in ours] == [60.0, 70.0, 80.0, 70.0]
    found = read_train_logs(runs)
    assert found[0][1]["loss_d2"].notna().all() and found[1][1]["loss_d2"].isna().all()  # empty: inductive
    curves = training_curves_figure(found)
    assert [ax.get_title() for ax in curves.axes[:4]] == names
    assert len(curves.axes[0].lines) == 1 and len(curves.axes[1].lines) == 2  # D2's loss beside D's
    assert D2_LABEL in [t.get_text() for t in curves.legends[0].get_texts()]
    out = tmp_path / "plots"
    assert main(["plots", "--metrics", *map(str, metrics), "--out-dir", str(out)]) == 0
    assert_png(out / "paper_vs_ours.png")
    assert_png(out / "training_curves.png")


def test_train_log_with_a_bad_d2_loss_is_a_clear_error(tmp_path):
    metrics = write_run(tmp_path, "cub", "paper", "tfvaegan", 1, 0.7, 0.6, prior="uniform")
    log = metrics.parent / "train_log.csv"
    lines = log.read_text().splitlines()
    lines[3] = ",".join(lines[3].split(",")[:-2] + ["abc", "2.0"])
    log.write_text("\n".join(lines) + "\n")
    with pytest.raises(UserError, match=r"train_log\.csv: line 4, column 'loss_d2': expected a number or empty, "
                                        r"found 'abc'"):
        read_train_log(log, "paper")


def test_train_log_without_required_columns_is_a_clear_error(tmp_path):
    log = tmp_path / "train_log.csv"
    log.write_text("epoch,loss_d\n0,1.0\n")
    with pytest.raises(UserError, match=r"train_log\.csv: header.*missing \['eval_split'"):
        read_train_log(log)


# train_log.csv files written verbatim by `python -m tfvaegan run --dataset TOY --set nepoch=5 --set eval_every=2`
# (tests/toy.py, TINY config), paper and val protocol: epochs not evaluated have an empty eval_split.
EVAL_EVERY_2_LOGS = {
    "paper": """\
epoch,seconds,loss_d,loss_g,wasserstein,vae_loss,lambda1,zsl_acc,gzsl_seen,gzsl_unseen,gzsl_h,eval_split
1,13.491515885998524,29.396644592285156,0.09415391087532043,1.8591734170913696,43.983619689941406,1.7985891103744507,,,,,
2,6.539381254999171,-3.5346591472625732,0.011615974828600883,3.705652952194214,42.1825065612793,0.3234921991825104,0.45,0.16666666666666666,0.08333333333333333,0.1111111111111111,test
3,0.15735716500057606,2.094183921813965,-0.9532721042633057,-1.9457361698150635,42.081573486328125,0.05818293243646622,,,,,
4,0.23883289299919852,0.8663832545280457,-0.881138026714325,-0.8047813773155212,39.45802307128906,0.010464717634022236,0.5,0.8333333333333334,0.05833333333333333,0.10903426791277257,test
5,0.24165670799993677,0.721534013748169,-0.7653553485870361,-0.7060964107513428,39.27216339111328,0.0018821725388988853,0.3833333333333333,0.17592592592592593,0.16666666666666666,0.17117117117117117,test
""",
    "val": """\
epoch,seconds,loss_d,loss_g,wasserstein,vae_loss,lambda1,zsl_acc,gzsl_seen,gzsl_unseen,gzsl_h,eval_split
1,2.601138207999611,44.15481948852539,0.06645210832357407,1.052604079246521,44.15067672729492,3.186309576034546,,,,,
2,2.470786591999058,-2.3289616107940674,0.21810628473758698,4.407895088195801,43.14930725097656,1.0152567625045776,0.5,1.0,0.23529411764705882,0.38095238095238093,val
3,8.042792508997081,-3.4183132648468018,-0.0679522380232811,3.4648525714874268,41.790931701660156,0.3234921991825104,,,,,
4,2.908913808001671,2.273345947265625,-0.9900725483894348,-2.1585142612457275,42.469932556152344,0.10307461023330688,0.4285714285714286,1.0,0.25,0.4,val
5,2.018362355996942,0.7284486293792725,-0.8325533866882324,-0.6304003596305847,39.91794204711914,0.03284275531768799,0.48214285714285715,0.5476190476190477,0.25,0.34328358208955223,val
1,9.22698567900079,29.396644592285156,0.09415391087532043,1.8591734170913696,43.983619689941406,1.7985891103744507,,,,,trainval
2,1.0178061409969814,-3.5346591472625732,0.011615974828600883,3.705652952194214,42.1825065612793,0.3234921991825104,,,,,trainval
3,1.1811187849998532,2.094183921813965,-0.9532721042633057,-1.9457361698150635,42.081573486328125,0.05818293243646622,,,,,trainval
4,0.9924373819994798,0.8663832545280457,-0.881138026714325,-0.8047813773155212,39.45802307128906,0.010464717634022236,,,,,trainval
""",
}
FINAL_RETRAINING_LABEL = "loss of the final retraining (val protocol)"


def write_logged_run(root: Path, protocol: str, log_text: str, seed: int = 7) -> Path:
    metrics = write_run(root, "toy", protocol, "tfvaegan", seed, 0.5, 0.2, log=False)
    metrics.with_name("train_log.csv").write_text(log_text)
    return metrics


def loss_lines(fig):
    """(x data, line style) of every line of the critic-loss panel (first row, first column)."""
    return [(list(line.get_xdata()), line.get_linestyle()) for line in fig.axes[0].get_lines()]


def legend_labels(fig):
    return [text.get_text() for legend in fig.legends for text in legend.get_texts()]


@pytest.mark.parametrize("protocol, expected_lines, final_retraining", [
    # The paper run: one solid loss line over all five epochs, evaluated or not.
    ("paper", [([1, 2, 3, 4, 5], "-")], False),
    # The val protocol: the selection run solid, the final retraining on trainval dotted.
    ("val", [([1, 2, 3, 4, 5], "-"), ([1, 2, 3, 4], ":")], True),
])
def test_eval_every_2_log_draws_one_loss_line_per_run(tmp_path, protocol, expected_lines, final_retraining):
    from tfvaegan.report.plots import read_train_logs, training_curves_figure
    from tfvaegan.report.tables import load_runs

    metrics = write_logged_run(tmp_path, protocol, EVAL_EVERY_2_LOGS[protocol])
    log = read_train_log(metrics.with_name("train_log.csv"), protocol)
    selection = "test" if protocol == "paper" else "val"
    assert list(log.eval_split) == [selection] * 5 + ["trainval"] * (4 if protocol == "val" else 0)
    fig = training_curves_figure(read_train_logs(load_runs([metrics])))
    assert loss_lines(fig) == expected_lines
    assert (FINAL_RETRAINING_LABEL in legend_labels(fig)) == final_retraining
    # The accuracy panel still shows only the evaluated epochs.
    accuracy = fig.axes[2].get_lines()
    assert [list(line.get_xdata()) for line in accuracy] == [[2, 4, 5], [2, 4, 5]]


def test_empty_train_log_is_one_error_and_writes_nothing(runs, tmp_path, capsys):
    runs[3].with_name("train_log.csv").write_text("")
    out = tmp_path / "plots"
    assert main(["plots", "--metrics", *map(str, runs), "--out-dir", str(out)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "Traceback" not in err
    assert f"{runs[3].with_name('train_log.csv')}: header: expected columns" in err and "empty file" in err
    assert not out.exists()  # paper_vs_ours.png is not written before the logs are checked


@pytest.mark.parametrize("protocol, edit, message", [
    # The last epochs of a run have no eval_split: no run they could belong to.
    ("paper", lambda text: text[:-len("test\n")] + "\n",
     r"line 6, column 'eval_split': expected the run's last epoch to be evaluated"),
    ("paper", lambda text: text.replace(",test", ",val"), r"line 3, column 'eval_split': expected one of \['test'\]"),
    ("val", lambda text: text.replace("trainval", "test"), r"line 7, column 'eval_split': expected one of "
                                                           r"\['val', 'trainval'\]"),
    ("paper", lambda text: text.replace("-3.5346591472625732", "abc"),
     r"line 3, column 'loss_d': expected a number or empty, found 'abc'"),
    ("paper", lambda text: text.replace("\n3,", "\n,"), r"line 4, column 'epoch': expected a number, found ''"),
    ("paper", lambda text: text.splitlines(keepends=True)[0], r"expected at least one epoch row"),
])
def test_bad_train_log_is_one_clear_error(tmp_path, capsys, protocol, edit, message):
    import re

    metrics = write_logged_run(tmp_path / "results", protocol, edit(EVAL_EVERY_2_LOGS[protocol]))
    out = tmp_path / "plots"
    assert main(["plots", "--metrics", str(metrics), "--out-dir", str(out)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and re.search(message, err), err
    assert f"{metrics.with_name('train_log.csv')}: " in err
    assert not out.exists()


# --------------------------------------------------------------------------- features_2d.png (classify)
def _unseen_features(n_classes: int, dim: int = 16, real_per_class: int = 30, syn_per_class: int = 150):
    """Clustered real features of classes 100, 101, ... and synthetic ones around the same centres."""
    rng = np.random.default_rng(0)
    centres = rng.normal(size=(n_classes, dim)) * 4
    classes = np.arange(100, 100 + n_classes)
    real_y, syn_y = np.repeat(classes, real_per_class), np.repeat(classes, syn_per_class)
    real_x = centres[real_y - 100] + rng.normal(size=(len(real_y), dim))
    syn_x = centres[syn_y - 100] + 1.5 * rng.normal(size=(len(syn_y), dim))
    return real_x.astype(np.float32), real_y, syn_x.astype(np.float32), syn_y, classes


def test_features_2d_draws_the_first_unseen_classes_real_and_synthetic(tmp_path):
    from tfvaegan.report.plots import FEATURES_2D_CLASSES, FEATURES_2D_POINTS, features_2d_figure, write_features_2d

    real_x, real_y, syn_x, syn_y, classes = _unseen_features(12)
    names = [f"name {i}" for i in range(112)]
    fig = features_2d_figure(real_x, real_y, syn_x, syn_y, classes, names, title="demo")
    ax = fig.axes[0]
    labels = [text.get_text() for text in ax.get_legend().get_texts()]
    assert labels == [f"name {c}" for c in classes[:FEATURES_2D_CLASSES]]  # 10 of the 12, by index
    # per class one cloud of real dots, one of synthetic crosses, at most FEATURES_2D_POINTS points each
    sizes = [len(collection.get_offsets()) for collection in ax.collections]
    assert sizes == [30, FEATURES_2D_POINTS] * FEATURES_2D_CLASSES
    assert "PC1" in ax.get_xlabel() and "%" in ax.get_xlabel()
    path = write_features_2d(tmp_path / "features_2d.png", real_x, real_y, syn_x, syn_y, classes, names)
    assert_png(path)
    # deterministic: the same inputs give the same file; without names the class index stands in
    again = write_features_2d(tmp_path / "again.png", real_x, real_y, syn_x, syn_y, classes, names)
    assert again.read_bytes() == path.read_bytes()
    few = features_2d_figure(*_unseen_features(3))
    assert [t.get_text() for t in few.axes[0].get_legend().get_texts()] == ["class 100", "class 101", "class 102"]


def test_features_2d_refuses_a_class_without_synthetic_features():
    from tfvaegan.report.plots import features_2d_figure

    real_x, real_y, syn_x, syn_y, classes = _unseen_features(4)
    keep = syn_y != 102
    with pytest.raises(UserError, match="synthetic features of every unseen class shown, found none of class 102"):
        features_2d_figure(real_x, real_y, syn_x[keep], syn_y[keep], classes)


def test_principal_axes_are_the_directions_of_largest_spread_with_a_fixed_sign():
    from tfvaegan.report.plots import principal_axes

    rng = np.random.default_rng(1)
    x = rng.normal(size=(500, 4)) * np.array([10.0, 3.0, 1.0, 0.1])
    _, axes, explained = principal_axes(x)
    assert np.allclose(np.abs(axes), np.eye(4)[:2], atol=0.05)
    assert (axes[np.arange(2), np.abs(axes).argmax(axis=1)] > 0).all()  # the largest loading positive
    assert explained[0] > explained[1] > 0 and explained.sum() <= 1
    assert np.allclose(principal_axes(-x)[1], axes)  # the sign does not follow the data's
