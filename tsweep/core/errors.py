"""The one error family for bad input.

Every problem a user can fix (a broken sweep YAML, a missing corpus, an unreachable cluster, a
table with the wrong columns) raises a :class:`UsageError` subclass whose message is one line
that names what is wrong. The CLI prints it and exits with code 2, with no traceback; the
Python API lets it propagate as an ordinary exception. :func:`first_line` is how the text of
the exception behind such a problem is quoted in its message; :func:`did_you_mean` is how a
mistyped name (a sweep, a command, a flag, a YAML key) is answered with the nearest known one,
and :func:`quoted` how a user's own text is quoted in a message (cut short when long).

The class names are tsweep's public API (users catch them), so they keep their names where
pep8-naming's N818 would want an ``Error`` suffix.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable


class UsageError(ValueError):
    """Bad input: the message is one line naming the field, file or value at fault."""


class SweepError(UsageError):
    """An invalid sweep, e.g. ``finetune_tokens[2]: must be a positive integer, got -5``."""


class DataError(UsageError):
    """Data a sweep names cannot be provided.

    The message names the corpus (or source, pattern, tokenizer) and the numbers involved, e.g.
    ``source 'prose': pretrain.tokens = 5,000,000 but its training split has 2,093,114 tokens``.
    """


class ModelUnavailable(UsageError):  # noqa: N818 (public name, see the module docstring)
    """A pre-trained model that cannot be loaded here (offline, unknown name, no such revision)."""


class StoreError(UsageError):
    """A store that tsweep cannot read as it is (another schema version, missing columns)."""


class StorageUnavailable(UsageError):  # noqa: N818 (public name, see the module docstring)
    """Storage that kept failing after retries, refuses access or cannot be opened: the message
    names the path and the filesystem's own error, e.g. ``s3://b/x/store/summary/j.parquet: AWS
    Error SLOW_DOWN (5 tries over 6 s)``. The command that hits it stops there; a file it was
    writing with :meth:`tsweep.core.files.Files.write_bytes` is left as it was (that write
    replaces a file whole)."""


class SweepBusy(UsageError):  # noqa: N818 (public name, see the module docstring)
    """A sweep folder that another driver holds the lease of (``tsweep.orchestrator.lease``)."""


# The most of an exception's text quoted in a one-line message: a long filesystem or Ray error
# still reads as one line of a terminal or two (tsweep's choice).
FIRST_LINE_CHARS = 300


def first_line(exc: BaseException) -> str:
    """The first line of ``exc``'s message (at most :data:`FIRST_LINE_CHARS`), or its class name
    when it has no message: what a one-line :class:`UsageError` quotes of the error behind it."""
    text = str(exc).strip()
    return text.splitlines()[0][:FIRST_LINE_CHARS] if text else type(exc).__name__


# How close a mistyped word must be to a known one for a one-line error to suggest it: difflib's
# similarity ratio (2 * matches / total length). 0.6 is difflib.get_close_matches' own default,
# which catches one or two transposed or dropped letters ("dmeo" -> "demo", "trian" -> "train",
# "finetune_token" -> "finetune_tokens") and leaves unrelated words alone.
SUGGEST_CUTOFF = 0.6
# The most of a user's own text an error message quotes whole (a path is rarely longer; a
# 300-character sweep name is still quoted within a line of a terminal or two): tsweep's choice.
QUOTE_CHARS = 120


def closest(word: str, choices: Iterable[str]) -> str | None:
    """The known choice nearest a mistyped ``word`` (:data:`SUGGEST_CUTOFF`), or None."""
    known = sorted({c for c in choices if c != word})
    close = difflib.get_close_matches(word, known, n=1, cutoff=SUGGEST_CUTOFF)
    return close[0] if close else None


def did_you_mean(word: str, choices: Iterable[str]) -> str:
    """``"; did you mean 'X'?"`` for the known choice nearest a mistyped ``word`` (the text a
    one-line error ends with), or ``""`` when none is close."""
    near = closest(word, choices)
    return f"; did you mean {near!r}?" if near is not None else ""


def quoted(text: str) -> str:
    """``text`` as a message quotes it: ``repr``, or, past :data:`QUOTE_CHARS` characters, its
    start and end (where a path's file name is) with its full length named."""
    if len(text) <= QUOTE_CHARS:
        return repr(text)
    half = QUOTE_CHARS // 2 - 10
    return f"{text[:half] + '...' + text[-half:]!r} ({len(text)} characters)"
