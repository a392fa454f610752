"""The source registry: a corpus spec's ``kind`` picks the builder of its documents.

A source knows three things about a spec (Levanter/torchtitan-style small registry):

- ``preflight(name, spec)``: cheap checks before any build (files exist, the hub answers);
- ``fingerprint(name, spec)``: a string that changes whenever the documents would (file paths,
  sizes and mtimes; the interpreter; the generator version), part of the cache key;
- ``documents(name, spec, workdir)``: the documents, as ``str``, in a deterministic order
  (scratch files under ``workdir`` go in '.'-named paths: they are deleted, never cached);
- ``private(name, spec)``: whether anything behind the documents is not world-readable (its
  cache entries are then private to their owner).

The built-in sources are listed here explicitly (no registration as an import side effect).
Mixtures are not sources: they combine the training streams of other corpora (see
``tsweep.data.sweepdata``). Add a kind with :func:`register_source`; its spec class goes in
``tsweep.core.dataspec``.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any, Protocol

from tsweep.core.errors import DataError
from tsweep.data.sources import FilesSource, HubSource, StdlibSource
from tsweep.data.synthetic import SyntheticSource


class Source(Protocol):
    """``spec`` is the corpus spec of the source's own kind (a class of ``tsweep.core.dataspec``),
    which each source names in its own signatures; the registry picks the source by that kind."""

    def preflight(self, name: str, spec: Any) -> None: ...

    def fingerprint(self, name: str, spec: Any) -> str: ...

    def documents(self, name: str, spec: Any, workdir: Path) -> Iterator[str]: ...

    def private(self, name: str, spec: Any) -> bool: ...


SOURCES: dict[str, Source] = {
    "stdlib": StdlibSource(),
    "synthetic": SyntheticSource(),
    "files": FilesSource(),
    "hub": HubSource(),
}


def register_source(kind: str, source: Source) -> None:
    """Make ``kind`` build its documents with ``source``."""
    SOURCES[kind] = source


def get_source(kind: str) -> Source:
    try:
        return SOURCES[kind]
    except KeyError:
        raise DataError(f"no data source is registered for corpus kind {kind!r}; known: {sorted(SOURCES)}") from None
