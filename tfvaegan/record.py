"""The run record's vocabulary: the headline metrics every run reports (metrics.json, train_log.csv, the
tables, the split means, the search's validation scores), how a fraction is shown to a person, and the
one-line progress messages the stages print. Torch-free, on the ground floor: every room may use it.
"""
from __future__ import annotations

import sys

# A run's headline numbers, as fractions in metrics.json: ZSL per-class top-1, then GZSL's seen and
# unseen per-class top-1 and their harmonic mean (GZSL ones are null for a ZSL-only benchmark).
HEADLINE_METRICS = ("zsl_acc", "gzsl_seen", "gzsl_unseen", "gzsl_h")
GZSL_METRICS = HEADLINE_METRICS[1:]


def percent(value: float | None, unit: str = "") -> str:
    """A fraction as a percentage with one decimal ("12.3", or "12.3%" with unit="%"); "-" for None."""
    return "-" if value is None else f"{100 * value:.1f}{unit}"


def log(message: str, stage: str = "") -> None:
    """A progress line on stderr (the workflow's logs/<rule>/... files), flushed at once."""
    print(f"{stage}: {message}" if stage else message, file=sys.stderr, flush=True)
