"""`python -m tfvaegan <stage>`: thin argument parsing over the stage modules.

A stage module joins the command line by defining `add_cli(subparsers)`, which adds its
sub-command(s) with `set_defaults(func=...)`; `func(args)` returns the exit status.
"""
from __future__ import annotations

import argparse
import importlib
import sys

# Modules that contribute sub-commands, in the order `--help` lists them.
STAGE_MODULES = (
    "tfvaegan.pipeline",   # run, train, synthesize, classify
    "tfvaegan.dataset",    # dataset build / dataset check
    "tfvaegan.extract",    # extract
    "tfvaegan.demo",       # demo
    "tfvaegan.download",   # download, verify-features
    "tfvaegan.tables",     # tables
    "tfvaegan.plots",      # plots
    "tfvaegan.splits",     # average-splits
)


class UserError(Exception):
    """An error the user can fix; printed as one line, exit status 2."""


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m tfvaegan",
        description="TF-VAEGAN zero-shot pipeline: each sub-command is one stage of the workflow.",
    )
    subparsers = parser.add_subparsers(dest="command", metavar="<stage>")
    for name in STAGE_MODULES:
        try:
            module = importlib.import_module(name)
        except ModuleNotFoundError as exc:
            if exc.name == name:  # stage not built yet in this checkout
                continue
            raise
        module.add_cli(subparsers)
    return parser


def main(argv: list[str] | None = None) -> int:
    from tfvaegan.config import ConfigError

    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    user_errors: tuple[type[BaseException], ...] = (UserError, ConfigError, FileNotFoundError)
    try:
        from tfvaegan.data import DataError
        user_errors += (DataError,)
    except ImportError:
        pass
    try:
        return int(args.func(args) or 0)
    except user_errors as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
