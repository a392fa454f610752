"""The one error the data layer raises: a :class:`DataError` with a one-line message."""

from __future__ import annotations


class DataError(ValueError):
    """Data a sweep names cannot be provided.

    The message is one line that names the corpus (or source, pattern, tokenizer) and the numbers
    involved, e.g. ``source 'prose': pretrain.tokens = 5,000,000 but its training split has
    2,093,114 tokens``. It subclasses ``ValueError`` so the CLI can treat it like a sweep error
    (print it, exit 2).
    """
