"""`python -m tfvaegan <stage>`: thin argument parsing over the stage modules.

A stage module joins the command line by defining `add_cli(subparsers)`, which adds its
sub-command(s) with `set_defaults(func=...)`; `func(args)` returns the exit status.
"""
from __future__ import annotations

import argparse
import importlib
import os
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
    user_errors: tuple[type[BaseException], ...] = (UserError, ConfigError)
    try:
        from tfvaegan.data import DataError
        user_errors += (DataError,)
    except ImportError:
        pass
    if os.environ.get("TFVAEGAN_DEBUG"):  # developers want the traceback of every error
        user_errors = ()
    try:
        return int(args.func(args) or 0)
    except user_errors as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except (OSError, UnicodeDecodeError, ValueError) as exc:
        message = None if os.environ.get("TFVAEGAN_DEBUG") else _path_error(exc, args)
        if message is None:
            raise
        print(f"error: {message}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130


def exception_first_line(exc: BaseException, limit: int = 160) -> str:
    """'Type: first sentence' of a library's exception, for one-line messages that quote it (torch's
    load errors, for one, run to paragraphs of advice)."""
    text = (str(exc).strip().splitlines() or [""])[0].split(". ")[0]
    text = text if len(text) <= limit else text[:limit] + "..."
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


# OS errors that a wrong path given by the user causes; others (EIO, ENOMEM, ...) keep their traceback.
_PATH_ERRORS = (FileNotFoundError, FileExistsError, IsADirectoryError, NotADirectoryError, PermissionError)


def _path_error(exc: BaseException, args: argparse.Namespace) -> str | None:
    """One line for an error that a user path caused, or None for anything that may be a bug."""
    if isinstance(exc, _PATH_ERRORS) and exc.filename is not None:
        target = f"{exc.filename} -> {exc.filename2}" if exc.filename2 is not None else f"{exc.filename}"
        return f"{target}: {exc.strerror}"
    if isinstance(exc, _PATH_ERRORS):  # raised by our own code with a message of its own
        return str(exc)
    if isinstance(exc, UnicodeDecodeError):
        return (f"a text input: expected {exc.encoding} text, found byte {exc.object[exc.start]:#04x} "
                f"at offset {exc.start} (a binary file, or another encoding?)")
    if isinstance(exc, ValueError) and str(exc) == "embedded null byte":
        culprits = [f"--{k.replace('_', '-')}" for k, v in vars(args).items() if isinstance(v, str) and "\0" in v]
        return f"{', '.join(culprits) or 'a path'}: expected a path, found one containing a NUL byte"
    return None
