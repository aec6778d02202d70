"""The errors a user can cause, and the one-line texts that quote a library's exception in them.

Every message names the file, the key, what was expected and what was found. The CLI prints a
UserError (ConfigError and DataError are kinds of it) as one line with exit status 2; anything
else is a bug and keeps its traceback. LeakError is never the user's doing: it means a validation
split or a selection touched test data.
"""
from __future__ import annotations


class UserError(Exception):
    """An error the user can fix; printed as one line, exit status 2."""


class ConfigError(UserError, ValueError):
    """A configuration a user wrote is invalid; the message names the file, key, expected and found."""


class DataError(UserError, ValueError):
    """A data file is missing or malformed; the message names the file, the key, expected and found."""


class LeakError(RuntimeError):
    """A validation split or a selection touched test data: a bug, never a user error."""


def exception_first_line(exc: BaseException, limit: int = 160) -> str:
    """'Type: first sentence' of a library's exception, for one-line messages that quote it (torch's
    load errors, for one, run to paragraphs of advice)."""
    text = (str(exc).strip().splitlines() or [""])[0].split(". ")[0]
    text = text if len(text) <= limit else text[:limit] + "..."
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


def exception_in_one_line(exc: BaseException) -> str:
    """'Type: whole message' of a library's exception with its line breaks folded (scipy, h5py and
    PIL say what is wrong with a file in short texts worth quoting whole)."""
    return f"{type(exc).__name__}: {' '.join(str(exc).split()) or '(no message)'}"
