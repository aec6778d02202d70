"""`python -m tfvaegan plots`: paper_vs_ours.png and training_curves.png from per-run results.

paper_vs_ours: per benchmark, the published number beside ours under each protocol (mean ± sample
std over seeds), for ZSL top-1 and GZSL H; a benchmark's rows of other features, setting or prior are
groups of their own ('CUB fine-tuned', 'CUB transductive (uniform)'), as the tables' rows are.
training_curves: per benchmark (grouped the same way), critic (and a transductive run's critic D2)
and generator losses and per-epoch accuracy from the train_log.csv next to each metrics.json;
accuracy lines are labelled with the split they were measured on (test in the paper protocol, val in
the val protocol's selection run).
features_2d (one run's, written by `classify` beside its metrics.json): the real test features of the first
unseen classes and the synthetic features of the same classes, projected on the real ones' first two
principal components.
"""
from __future__ import annotations

import io
import math
from pathlib import Path
from typing import Sequence

import matplotlib

matplotlib.use("Agg")  # files only: no display on clusters and CI
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
from matplotlib.lines import Line2D  # noqa: E402

from tfvaegan.errors import UserError  # noqa: E402
from tfvaegan.report.tables import (  # noqa: E402
    FEATURES,
    FULL_MODEL_VARIANT,
    METHOD_ORDER,
    PRIORS,
    UNLABELLED,
    SETTINGS,
    Run,
    bench_label,
    benchmark_sort_key,
    build_tables,
    load_paper_or_default,
    load_runs,
)
from tfvaegan.fileio import write_atomic

TRAIN_LOG = "train_log.csv"
LOSS_PANELS = (("loss_d", "critic loss"), ("loss_g", "generator loss"))
# Transductive training's second critic D2 (train_log.csv columns empty for inductive runs, absent in
# older files): drawn in the critic panel, dash-dotted.
D2_LOSS, D2_STYLE, D2_LABEL = "loss_d2", "-.", "critic D2's loss (transductive)"
ACCURACY_LINES = (("zsl_acc", "-", "ZSL top-1"), ("gzsl_h", "--", "GZSL H"))
PAPER_COLOUR = "0.55"
PROTOCOL_COLOURS = {"paper": "tab:orange", "val": "tab:blue"}
DPI = 130


def _colours(names: Sequence[str], several_variants: bool) -> dict[str, str]:
    """One protocol, one colour; with several variants each series needs its own."""
    if several_variants:
        return {name: f"C{i}" for i, name in enumerate(names)}
    return {name: PROTOCOL_COLOURS.get(name.split(" ")[0], "C2") for name in names}


def _empty_figure(message: str):
    fig, ax = plt.subplots(figsize=(6, 2))
    ax.axis("off")
    ax.text(0.5, 0.5, message, ha="center", va="center", wrap=True)
    return fig


def paper_vs_ours_figure(zsl: pd.DataFrame, gzsl: pd.DataFrame):
    """Grouped bars per benchmark from the zsl and gzsl tables: paper, then ours per protocol (and variant when
    several are shown)."""
    def shown(frame: pd.DataFrame) -> pd.DataFrame:
        # The complete model is what the paper's main table reports; ablations go to ablation.csv.
        full = frame[frame.variant == FULL_MODEL_VARIANT]
        full = (full if len(full) else frame).copy()
        # the plain and fine-tuned, inductive and transductive (per prior and unlabelled set) rows of one
        # benchmark, and each method's, are groups of bars of their own, each beside its own paper value (a
        # transductive one: the known-prior number)
        full["benchmark"] = [bench_label(b, f, s, p, u, m) for b, f, s, p, u, m in
                             zip(full.benchmark, full.features, full.setting, full.prior, full.unlabelled,
                                 full.method)]
        return full

    zsl, gzsl = shown(zsl), shown(gzsl)
    # the paper's transductive numbers are known-prior ones, whatever the prior of our row beside them
    paper_label = "paper (published)" + ("; transductive: known class prior" if
                                         (zsl.setting == "transductive").any() else "")
    several_variants = zsl.variant.nunique() > 1
    series = sorted({(p, v) for p, v in zip(zsl.protocol, zsl.variant)},
                    key=lambda pv: (pv[0] != "paper", pv[1] != FULL_MODEL_VARIANT, pv))
    benchmarks = list(dict.fromkeys(zsl.benchmark))
    panels = (("ZSL top-1 accuracy (%)", zsl, "top1_mean", "top1_std", "paper_top1"),
              ("GZSL harmonic mean H (%)", gzsl, "h_mean", "h_std", "paper_h"))
    names = [f"{p} protocol" + (f", {v}" if several_variants else "") for p, v in series]
    colours = _colours(names, several_variants)
    width = 0.8 / (len(series) + 1)
    fig, axes = plt.subplots(2, 1, figsize=(max(6.5, 0.75 * len(benchmarks) * (len(series) + 1)), 7.5))
    x = np.arange(len(benchmarks))
    for ax, (title, frame, mean_col, std_col, paper_col) in zip(axes, panels):
        table = frame.set_index(["benchmark", "protocol", "variant"])
        paper_values = [frame.loc[frame.benchmark == b, paper_col].max() for b in benchmarks]
        bars = ax.bar(x - 0.4 + width / 2, np.nan_to_num(paper_values), width, color=PAPER_COLOUR,
                      hatch="//", edgecolor="white", label=paper_label)
        _label_bars(ax, bars, paper_values, missing="no paper\nvalue")
        for i, ((protocol, variant), name) in enumerate(zip(series, names), start=1):
            means, stds, ns = [], [], []
            for b in benchmarks:
                row = table.loc[(b, protocol, variant)] if (b, protocol, variant) in table.index else None
                means.append(math.nan if row is None else row[mean_col])
                stds.append(math.nan if row is None else row[std_col])
                ns.append(0 if row is None else int(row["n_seeds"]))
            bars = ax.bar(x - 0.4 + width * (i + 0.5), np.nan_to_num(means), width,
                          yerr=np.nan_to_num(stds), capsize=3, color=colours[name],
                          label=f"ours, {name} (mean ± std, n={max(ns)})")
            _label_bars(ax, bars, means, stds)
        ax.set_xticks(x, benchmarks)
        ax.set_xlim(-0.5 - 0.3 / len(benchmarks), len(benchmarks) - 0.5 + 0.3 / len(benchmarks))
        ax.set_title(title)
        ax.set_ylim(0, 105)
        ax.grid(axis="y", alpha=0.3)
        if frame.empty:
            ax.text(0.5, 0.5, "no run reported this metric", transform=ax.transAxes, ha="center")
    handles, labels = axes[0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="lower center", ncol=min(2, len(labels)), frameon=False,
               bbox_to_anchor=(0.5, -0.07), fontsize=9)
    who = "TF-VAEGAN" if set(zsl.method) <= {"tfvaegan"} else "The lineage (each method beside its own paper)"
    fig.suptitle(f"{who}, ours vs the paper\n(paper protocol: epochs chosen on the test set; "
                 "val protocol: on a validation split)", fontsize=10)
    fig.tight_layout()
    return fig


def _label_bars(ax, bars, values: Sequence[float], errors: Sequence[float] | None = None,
                missing: str = "") -> None:
    """Each bar's value above it (above its error bar, so the two do not overlap)."""
    errors = np.nan_to_num(errors) if errors is not None else np.zeros(len(values))
    for bar, value, error in zip(bars, values, errors):
        present = value is not None and not math.isnan(value)
        if present or missing:
            ax.annotate(f"{value:.1f}" if present else missing,
                        (bar.get_x() + bar.get_width() / 2, bar.get_height() + error),
                        xytext=(0, 2), textcoords="offset points", ha="center", va="bottom", fontsize=7)


# eval_split values a run's train_log.csv may hold, by protocol: the paper run is evaluated on test;
# the val protocol's selection run on val, then its final retraining on trainval (losses only).
EVAL_SPLITS = {"paper": ("test",), "val": ("val", "trainval")}
EVALUATED_SPLITS = ("test", "val")  # drawn solid; the final retraining dotted


def read_train_log(path: Path, protocol: str | None = None) -> pd.DataFrame:
    """train_log.csv with accuracies in percent and every row's run segment in `eval_split`.

    Epochs that were not evaluated (eval_every > 1) have an empty `eval_split`; they belong to the
    run of the next evaluated row (a run's last epoch is always evaluated; the final retraining of
    the val protocol writes `trainval` on every row), so the column is back-filled. A file that
    cannot be read, lacks columns, holds a non-number, ends on rows of no run or names a split the
    run's `protocol` does not evaluate on is a one-line error. `loss_d2` (transductive runs; empty
    otherwise, absent in older files) is read as a number where present.
    """
    needed = {"epoch", "eval_split"} | {c for c, _ in LOSS_PANELS} | {c for c, _, _ in ACCURACY_LINES}
    try:
        frame = pd.read_csv(path, dtype=str, keep_default_na=False)
    except pd.errors.EmptyDataError:
        raise UserError(f"{path}: header: expected columns {sorted(needed)}, found an empty file") from None
    except (pd.errors.ParserError, UnicodeDecodeError) as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise UserError(f"{path}: expected a CSV file with columns {sorted(needed)} ({first})") from None
    except OSError as exc:
        raise UserError(f"{path}: cannot read the training log ({exc.strerror or exc})") from None
    missing = sorted(needed - set(frame.columns))
    if missing:
        raise UserError(f"{path}: header: expected columns {sorted(needed)}, missing {missing}")
    if frame.empty:
        raise UserError(f"{path}: expected at least one epoch row after the header, found none")
    optional = [D2_LOSS] if D2_LOSS in frame.columns else []
    for column in ["epoch"] + [c for c, _ in LOSS_PANELS] + [c for c, _, _ in ACCURACY_LINES] + optional:
        text = frame[column].str.strip()
        numbers = pd.to_numeric(text.where(text != "", None), errors="coerce")
        # An empty cell (no accuracy on an epoch not evaluated) or "nan" (a diverged loss) is a missing
        # value; anything else must be a number, and every row needs its epoch.
        bad = numbers.isna() if column == "epoch" else numbers.isna() & ~text.str.lower().isin(["", "nan"])
        if bad.any():
            row = int(np.flatnonzero(bad.to_numpy())[0])
            raise UserError(f"{path}: line {row + 2}, column '{column}': expected a number"
                            f"{'' if column == 'epoch' else ' or empty'}, found {frame[column].iloc[row]!r}")
        frame[column] = numbers
    for column, _, _ in ACCURACY_LINES:
        frame[column] = 100 * frame[column]
    split = frame["eval_split"].str.strip()
    split = split.where(split != "", None)
    allowed = EVAL_SPLITS.get(protocol, tuple(dict.fromkeys(s for v in EVAL_SPLITS.values() for s in v)))
    wrong = split.notna() & ~split.isin(allowed)
    if wrong.any():
        row = int(np.flatnonzero(wrong.to_numpy())[0])
        what = f" for the {protocol} protocol" if protocol in EVAL_SPLITS else ""
        raise UserError(f"{path}: line {row + 2}, column 'eval_split': expected one of {list(allowed)}{what} "
                        f"or empty, found {split.iloc[row]!r}")
    split = split.bfill()
    if split.isna().any():
        row = int(np.flatnonzero(split.isna().to_numpy())[0])
        raise UserError(f"{path}: line {row + 2}, column 'eval_split': expected the run's last epoch to be "
                        f"evaluated (a non-empty eval_split on or after this line), found only empty values")
    frame["eval_split"] = split
    return frame


def read_train_logs(runs: Sequence[Run]) -> list[tuple[Run, pd.DataFrame]]:
    """The train_log.csv beside each metrics.json, all read and checked; runs without one are named."""
    found = []
    for run in runs:
        log = run.path.parent / TRAIN_LOG
        if log.is_file():
            found.append((run, read_train_log(log, run.protocol)))
        else:
            print(f"note: {log} not found; {run.benchmark}/{run.protocol}/{run.variant}/seed{run.seed} has no curves")
    return found


def training_curves_figure(found: Sequence[tuple[Run, pd.DataFrame]]):
    """One column per benchmark from read_train_logs' (run, log) pairs: critic loss, generator loss and
    per-epoch accuracy of every run."""
    if not found:
        return _empty_figure(f"no {TRAIN_LOG} next to the metrics files")
    order = {run.label: (*benchmark_sort_key(run.benchmark), FEATURES.index(run.features),
                         SETTINGS.index(run.setting), PRIORS.index(run.prior), UNLABELLED.index(run.unlabelled),
                         METHOD_ORDER.index(run.method))
             for run, _ in found}
    benchmarks = sorted(order, key=order.get)
    several_variants = len({run.variant for run, _ in found}) > 1
    names = sorted({_run_series(run, several_variants) for run, _ in found},
                   key=lambda n: (not n.startswith("paper"), n))
    colours = _colours(names, several_variants)
    fig, axes = plt.subplots(len(LOSS_PANELS) + 1, len(benchmarks), figsize=(max(6.0, 3.6 * len(benchmarks)), 8),
                             sharex="col", squeeze=False)
    for col, benchmark in enumerate(benchmarks):
        for run, log in (item for item in found if item[0].label == benchmark):
            colour = colours[_run_series(run, several_variants)]
            # One line per run segment: the paper run, or the val protocol's selection run (eval_split
            # val) and then its final retraining on trainval, whose epochs restart at the beginning.
            for split, part in log.groupby("eval_split", sort=False):
                style = "-" if split in EVALUATED_SPLITS else ":"
                for row, (column, _) in enumerate(LOSS_PANELS):
                    axes[row][col].plot(part["epoch"], part[column], style, color=colour, alpha=0.8, lw=1)
                if _has_d2(part):
                    axes[0][col].plot(part["epoch"], part[D2_LOSS], D2_STYLE, color=colour, alpha=0.8, lw=1)
            for column, style, _ in ACCURACY_LINES:
                evaluated = log.dropna(subset=[column])
                axes[-1][col].plot(evaluated["epoch"], evaluated[column], style, color=colour, alpha=0.8,
                                   lw=1, marker="." if len(evaluated) < 30 else None)
        axes[0][col].set_title(benchmark)
        for row, (_, label) in enumerate(LOSS_PANELS):
            axes[row][col].set_ylabel(label)
            axes[row][col].grid(alpha=0.3)
        axes[-1][col].set_ylabel("accuracy (%) on eval_split")
        axes[-1][col].set_xlabel("generator epoch")
        axes[-1][col].grid(alpha=0.3)
    handles = [Line2D([], [], color=colours[n], label=n) for n in names]
    handles += [Line2D([], [], color="black", ls=style, label=label) for _, style, label in ACCURACY_LINES]
    if any((~log["eval_split"].isin(EVALUATED_SPLITS)).any() for _, log in found):
        handles.append(Line2D([], [], color="black", ls=":", label="loss of the final retraining (val protocol)"))
    if any(_has_d2(log) for _, log in found):
        handles.append(Line2D([], [], color="black", ls=D2_STYLE, label=D2_LABEL))
    fig.legend(handles=handles, loc="lower center", ncol=min(4, len(handles)), frameon=False,
               bbox_to_anchor=(0.5, -0.07))
    fig.suptitle("Training curves (one line per seed)", fontsize=10)
    fig.tight_layout()
    return fig


def _has_d2(log: pd.DataFrame) -> bool:
    return D2_LOSS in log.columns and bool(log[D2_LOSS].notna().any())


def _run_series(run: Run, several_variants: bool) -> str:
    split = "test" if run.protocol == "paper" else "val"
    return f"{run.protocol} protocol (accuracy on {split})" + (f", {run.variant}" if several_variants else "")


def figure_png(fig) -> bytes:
    """The figure as PNG bytes (closed afterwards): written whole, or not at all, by the caller."""
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=DPI, bbox_inches="tight")
    plt.close(fig)
    return buffer.getvalue()


# features_2d.png: at most this many unseen classes (the first, by index), each with at most this many real and
# as many synthetic points (the first of each), so that the figure stays legible and takes a second to draw.
FEATURES_2D_CLASSES = 10
FEATURES_2D_POINTS = 100


def principal_axes(x: np.ndarray, k: int = 2) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """PCA of the rows of x by SVD: (mean, k components as rows, the share of x's variance each explains). Each
    component's sign is fixed (its largest loading positive), so that equal data give an equal picture. Fewer
    than k components (fewer rows, or columns) are padded with zeros."""
    x = np.asarray(x, dtype=np.float64)
    mean = x.mean(axis=0)
    _, singular, vt = np.linalg.svd(x - mean, full_matrices=False)
    n = min(k, len(vt))
    components, explained = np.zeros((k, x.shape[1])), np.zeros(k)
    components[:n] = vt[:n] * np.sign(vt[np.arange(n), np.abs(vt[:n]).argmax(axis=1)])[:, None]
    total = float((singular ** 2).sum())
    if total > 0:
        explained[:n] = singular[:n] ** 2 / total
    return mean, components, explained


def features_2d_figure(real_x: np.ndarray, real_y: np.ndarray, syn_x: np.ndarray, syn_y: np.ndarray,
                       classes: Sequence[int], class_names: Sequence[str] | None = None, title: str = ""):
    """Real (dots) against synthetic (crosses) features of the unseen classes, coloured by class, in 2-D: the
    first FEATURES_2D_CLASSES of `classes`, at most FEATURES_2D_POINTS points of each kind per class, projected
    on the first two principal components of the real points drawn (principal_axes). PCA, not t-SNE: it is
    exact and deterministic, takes milliseconds, and keeps distances along its axes comparable, so that
    synthetic features lying off their class's real ones show as such; t-SNE is seeded-random, slow on
    thousands of points and distorts distances between clusters. A class without a real or a synthetic feature
    is refused."""
    real_y, syn_y = np.asarray(real_y).ravel(), np.asarray(syn_y).ravel()
    shown = [int(c) for c in list(classes)[:FEATURES_2D_CLASSES]]
    rows = {}
    for name, labels in (("real", real_y), ("synthetic", syn_y)):
        for c in shown:
            found = np.flatnonzero(labels == c)[:FEATURES_2D_POINTS]
            if not found.size:
                raise UserError(f"features_2d: expected {name} features of every unseen class shown, found none "
                                f"of class {c}")
            rows[name, c] = found
    real_rows = np.concatenate([rows["real", c] for c in shown])
    mean, axes_2d, explained = principal_axes(np.asarray(real_x)[real_rows])

    def project(x: np.ndarray) -> np.ndarray:
        return (np.asarray(x, dtype=np.float64) - mean) @ axes_2d.T

    fig, ax = plt.subplots(figsize=(8.5, 6))
    colours = plt.get_cmap("tab10")  # FEATURES_2D_CLASSES colours
    handles = []
    for i, c in enumerate(shown):
        colour = colours(i % colours.N)
        real, syn = project(np.asarray(real_x)[rows["real", c]]), project(np.asarray(syn_x)[rows["synthetic", c]])
        ax.scatter(real[:, 0], real[:, 1], s=14, marker="o", color=colour, alpha=0.65, linewidths=0)
        ax.scatter(syn[:, 0], syn[:, 1], s=18, marker="x", color=colour, alpha=0.45, linewidths=0.8)
        label = class_names[c] if class_names else f"class {c}"
        handles.append(Line2D([], [], ls="", marker="o", color=colour, label=label))
    ax.legend(handles=handles, loc="upper left", bbox_to_anchor=(1.01, 1.0), frameon=False, fontsize=8,
              title=f"{len(shown)} of {len(classes)} unseen classes", title_fontsize=8)
    for set_label, k in ((ax.set_xlabel, 0), (ax.set_ylabel, 1)):
        set_label(f"PC{k + 1} of the real features ({100 * explained[k]:.1f}% of their variance)")
    ax.grid(alpha=0.3)
    ax.set_title((f"{title}\n" if title else "") + "test_unseen features: real (dots) and synthetic (crosses, "
                 "synthetic.pt)", fontsize=10)
    fig.tight_layout()
    return fig


def write_features_2d(path: str | Path, *args, **kwargs) -> Path:
    """features_2d_figure written to `path` (PNG), whole or not at all."""
    data = figure_png(features_2d_figure(*args, **kwargs))
    write_atomic(path, lambda temp: Path(temp).write_bytes(data))
    return Path(path)


def make_plots(metrics: Sequence[str | Path], paper: str | Path, out_dir: str | Path) -> list[Path]:
    """`plots`: paper_vs_ours.png and training_curves.png. Every input is read and checked, and both
    figures drawn, before either file is written."""
    runs = load_runs(metrics)
    tables = build_tables(runs, load_paper_or_default(paper))
    logs = read_train_logs(runs)
    out_dir = Path(out_dir)
    images = {out_dir / "paper_vs_ours.png": figure_png(paper_vs_ours_figure(tables["zsl"], tables["gzsl"])),
              out_dir / "training_curves.png": figure_png(training_curves_figure(logs))}
    for path, data in images.items():
        write_atomic(path, lambda temp, data=data: Path(temp).write_bytes(data))
        print(f"wrote {path}")
    return list(images)
