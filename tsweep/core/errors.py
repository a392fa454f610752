"""The one error family for bad input.

Every problem a user can fix (a broken sweep YAML, a missing corpus, an unreachable cluster, a
table with the wrong columns) raises a :class:`UsageError` subclass whose message is one line
that names what is wrong. The CLI prints it and exits with code 2, with no traceback and
nothing written; the Python API lets it propagate as an ordinary exception.
"""

from __future__ import annotations


class UsageError(ValueError):
    """Bad input: the message is one line naming the field, file or value at fault."""


class SweepError(UsageError):
    """An invalid sweep, e.g. ``finetune_tokens[2]: must be a positive integer, got -5``."""


class DataError(UsageError):
    """Data a sweep names cannot be provided.

    The message names the corpus (or source, pattern, tokenizer) and the numbers involved, e.g.
    ``source 'prose': pretrain.tokens = 5,000,000 but its training split has 2,093,114 tokens``.
    """


class ModelUnavailable(UsageError):
    """A pre-trained model that cannot be loaded here (offline, unknown name, no such revision)."""


class StoreError(UsageError):
    """A store that tsweep cannot read as it is (another schema version, missing columns)."""


class StorageUnavailable(UsageError):
    """Storage that kept failing after retries, or refuses access: the message names the path
    and the filesystem's own error, e.g. ``s3://b/x/store/summary/j.parquet: AWS Error
    SLOW_DOWN (5 tries over 6 s)``. Nothing was changed by the command that hit it."""


class SweepBusy(UsageError):
    """A sweep folder that another driver holds the lease of (``tsweep.orchestrator.lease``)."""
