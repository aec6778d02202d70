"""The search's figure (trials.png): the validation metric of every trial against each searched key.

One panel per key, one point per trial, the best trial starred. Numeric values are drawn on a
numeric axis, logarithmic when they are positive and span a factor of 10 or more (a learning-rate
range, say); other values (true/false, names, null) as categories.
"""
from __future__ import annotations

import math
from typing import Any, Sequence

from tfvaegan.report.plots import figure_png, plt

BEST_COLOUR = "tab:red"
TRIAL_COLOUR = "tab:blue"
PANELS_PER_ROW = 3


def _numeric(values: Sequence[Any]) -> bool:
    return all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in values)


def trials_figure(trials: Sequence[dict], scores: Sequence[float], metric: str, best: str):
    """`trials`: trial.json records (their `settings` and `trial`); `scores`: their validation metric."""
    keys = list(trials[0]["settings"])
    columns = min(len(keys), PANELS_PER_ROW)
    rows = math.ceil(len(keys) / columns)
    fig, axes = plt.subplots(rows, columns, figsize=(3.8 * columns, 3.2 * rows), squeeze=False, sharey=True)
    percent = [100 * s for s in scores]
    for index, key in enumerate(keys):
        ax = axes[index // columns][index % columns]
        values = [t["settings"][key] for t in trials]
        if _numeric(values):
            x = values
            if min(values) > 0 and max(values) >= 10 * min(values):
                ax.set_xscale("log")
        else:
            categories = sorted({repr(v) for v in values})
            x = [categories.index(repr(v)) for v in values]
            ax.set_xticks(range(len(categories)), [c.strip("'") for c in categories])
            ax.set_xlim(-0.5, len(categories) - 0.5)
        is_best = [t["trial"] == best for t in trials]
        ax.scatter([v for v, b in zip(x, is_best) if not b], [p for p, b in zip(percent, is_best) if not b],
                   color=TRIAL_COLOUR, alpha=0.7, label="trial")
        ax.scatter([v for v, b in zip(x, is_best) if b], [p for p, b in zip(percent, is_best) if b],
                   color=BEST_COLOUR, marker="*", s=160, zorder=3, label="best trial")
        ax.set_xlabel(key)
        ax.grid(alpha=0.3)
        if index % columns == 0:
            ax.set_ylabel(f"validation {metric} (%)")
    for index in range(len(keys), rows * columns):
        axes[index // columns][index % columns].axis("off")
    handles, labels = axes[0][0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="lower center", ncol=2, frameon=False, bbox_to_anchor=(0.5, -0.06))
    fig.suptitle(f"Search: {len(trials)} trials, each scored on the validation split only", fontsize=10)
    fig.tight_layout()
    return fig


def trials_png(trials: Sequence[dict], scores: Sequence[float], metric: str, best: str) -> bytes:
    return figure_png(trials_figure(trials, scores, metric, best))
