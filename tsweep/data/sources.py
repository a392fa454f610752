"""The file-backed sources: ``stdlib`` (the running Python installation), ``files``, ``hub``.

Each is a :class:`tsweep.data.registry.Source` (preflight, fingerprint, documents); the
registry maps a corpus spec's ``kind`` to one of them.
"""

from __future__ import annotations

import ast
import glob
import hashlib
import os
import stat
import sys
import sysconfig
from collections.abc import Iterable, Iterator
from pathlib import Path

from tsweep.core.dataspec import FilesCorpus, HubCorpus, StdlibCorpus
from tsweep.core.errors import DataError
from tsweep.data.hub import hub_repo_reason


def _any_private(paths: list[str]) -> bool:
    """Whether any of ``paths`` is not world-readable (its cache entries must not be either)."""
    return any(not os.stat(p).st_mode & stat.S_IROTH for p in paths)


def _stat_digest(paths: list[str]) -> str:
    h = hashlib.blake2b(digest_size=16)
    for p in paths:
        st = os.stat(p)
        h.update(f"{p}\0{st.st_size}\0{st.st_mtime_ns}\n".encode())
    return h.hexdigest()


# ------------------------------------------------------------------------------- stdlib
# Folders of the standard library that hold tests or test data, not library code.
STDLIB_EXCLUDED_DIRS = frozenset({"test", "tests", "idle_test", "site-packages", "dist-packages", "__pycache__"})


def stdlib_dir() -> Path:
    return Path(sysconfig.get_paths()["stdlib"])


def include_dir() -> Path:
    return Path(sysconfig.get_paths()["include"])


def stdlib_python_files() -> list[str]:
    """Standard-library ``.py`` files, test folders excluded (``test/``, ``tests/``,
    ``idlelib/idle_test``, ``lib2to3/tests``, ``ctypes/test``, ...), sorted by path."""
    root = stdlib_dir()
    out: list[str] = []
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames[:] = [d for d in dirnames if d not in STDLIB_EXCLUDED_DIRS and not d.startswith("config-")]
        out.extend(os.path.join(dirpath, f) for f in filenames if f.endswith(".py"))
    return sorted(out, key=lambda p: os.path.relpath(p, root))


def c_header_files() -> list[str]:
    root = include_dir()
    out: list[str] = []
    for dirpath, _, filenames in os.walk(root):
        out.extend(os.path.join(dirpath, f) for f in filenames if f.endswith(".h"))
    return sorted(out, key=lambda p: os.path.relpath(p, root))


def _read(path: str) -> str:
    with open(path, "rb") as f:
        return f.read().decode("utf-8", errors="replace")


def _docstrings(source: str) -> Iterator[str]:
    try:
        tree = ast.parse(source)
    except (SyntaxError, ValueError):
        return
    for node in ast.walk(tree):
        if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)):
            doc = ast.get_docstring(node, clean=True)
            if doc:
                yield doc


def _code_only(source: str) -> str | None:
    """A module's code with its docstrings and comments removed (``ast.unparse`` of the module
    without them); None when it does not parse."""
    try:
        tree = ast.parse(source)
    except (SyntaxError, ValueError):
        return None
    for node in ast.walk(tree):
        if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)) and node.body:
            first = node.body[0]
            if (
                isinstance(first, ast.Expr)
                and isinstance(first.value, ast.Constant)
                and isinstance(first.value.value, str)
            ):
                node.body = node.body[1:] or [ast.Pass()]
    try:
        return ast.unparse(tree)
    except (ValueError, RecursionError):
        return None


class StdlibSource:
    """``python``: stdlib code files; ``pycode``: the same files with their docstrings and
    comments removed (the code alone, which English prose cannot teach); ``prose``: docstrings
    (via ``ast``) and the pydoc topics; ``c``: the CPython headers. Documents are files (or
    docstrings, or topics)."""

    def _files(self, corpus: str) -> list[str]:
        return c_header_files() if corpus == "c" else stdlib_python_files()

    def preflight(self, name: str, spec: StdlibCorpus) -> None:
        if not self._files(spec.corpus):
            where = include_dir() if spec.corpus == "c" else stdlib_dir()
            raise DataError(f"corpus {name!r}: no {spec.corpus} files under {where}")

    def fingerprint(self, name: str, spec: StdlibCorpus) -> str:
        files = self._files(spec.corpus)
        return f"stdlib-v1|{sys.version}|{len(files)}|{_stat_digest(files)}"

    def private(self, name: str, spec: StdlibCorpus) -> bool:
        return _any_private(self._files(spec.corpus))

    def documents(self, name: str, spec: StdlibCorpus, workdir: Path) -> Iterator[str]:
        files = self._files(spec.corpus)
        if spec.corpus in ("python", "c"):
            for path in files:
                yield _read(path)
            return
        if spec.corpus == "pycode":
            for path in files:
                code = _code_only(_read(path))
                if code:
                    yield code
            return
        for path in files:
            yield from _docstrings(_read(path))
        try:
            from pydoc_data.topics import topics
        except ImportError:  # some distributions strip pydoc_data
            return
        for key in sorted(topics):
            yield topics[key]


# ------------------------------------------------------------------------------- files
def expand_patterns(name: str, patterns: Iterable[str]) -> list[str]:
    files: list[str] = []
    for pattern in patterns:
        matched = sorted(p for p in glob.glob(os.path.expanduser(pattern), recursive=True) if os.path.isfile(p))
        if not matched:
            raise DataError(f"corpus {name!r}: no file matches {pattern!r} (relative to {os.getcwd()})")
        files.extend(matched)
    return list(dict.fromkeys(os.path.abspath(f) for f in files))


class FilesSource:
    """Local text / jsonl / parquet files by glob, read through ``datasets``.

    ``text``: one document per file (``sample_by: document``), per blank-line paragraph, or per
    line; ``json`` (jsonl) and ``parquet``: one document per row's ``text_field``.
    """

    def preflight(self, name: str, spec: FilesCorpus) -> None:
        expand_patterns(name, spec.paths)

    def fingerprint(self, name: str, spec: FilesCorpus) -> str:
        files = expand_patterns(name, spec.paths)
        return f"files-v1|{len(files)}|{_stat_digest(files)}"

    def private(self, name: str, spec: FilesCorpus) -> bool:
        return _any_private(expand_patterns(name, spec.paths))

    def documents(self, name: str, spec: FilesCorpus, workdir: Path) -> Iterator[str]:
        import datasets

        files = expand_patterns(name, spec.paths)
        kwargs = {"sample_by": spec.sample_by} if spec.format == "text" else {}
        bars = not datasets.is_progress_bar_enabled() if hasattr(datasets, "is_progress_bar_enabled") else None
        datasets.disable_progress_bars()
        try:
            # cache_dir inside the entry's build directory under a '.' name: the cache deletes
            # datasets' own (plain-text) Arrow copy before it publishes the entry.
            ds = datasets.load_dataset(
                spec.format, data_files=files, split="train", cache_dir=str(workdir / ".hf"), **kwargs
            )
        except Exception as exc:
            raise DataError(
                f"corpus {name!r}: cannot read {len(files)} {spec.format} file(s) ({files[0]}, ...): "
                f"{type(exc).__name__}: {_first_line(exc)}"
            ) from None
        finally:
            if bars is False:
                datasets.enable_progress_bars()
        field = "text" if spec.format == "text" else spec.text_field
        if field not in ds.column_names:
            raise DataError(f"corpus {name!r}: no field {field!r} in {spec.format} files; columns: {ds.column_names}")
        for batch in ds.iter(batch_size=1024):
            for text in batch[field]:
                if text is not None:
                    yield str(text)


# ------------------------------------------------------------------------------- hub
class HubSource:
    """A dataset read through ``datasets.load_dataset(..., streaming=True)``: a hub name, or a
    local folder of data files that ``datasets`` reads (jsonl, csv, parquet, text).

    Always streamed: documents go from the hub (or the folder) straight into tsweep's token
    cache, the only copy. Without streaming, ``datasets`` would download the raw files into the
    hub cache and convert them into an Arrow copy in its datasets cache before tsweep tokenised
    them into a third. The fingerprint is the spec itself (pin ``revision`` for reproducible
    sweeps), and for a local folder also its files' sizes and times. Offline (a flag, or a probe
    of the dataset's hub page, ``tsweep.data.hub``) a hub name fails its preflight within
    seconds with one line; a cache entry built earlier still serves, offline included. A local
    folder needs no network.
    """

    @staticmethod
    def _local(spec: HubCorpus) -> bool:
        return os.path.isdir(os.path.expanduser(spec.name))

    @staticmethod
    def _local_files(spec: HubCorpus) -> list[str]:
        root = os.path.expanduser(spec.name)
        return sorted(os.path.join(d, f) for d, _, fs in os.walk(root) for f in fs if not f.startswith("."))

    def preflight(self, name: str, spec: HubCorpus) -> None:
        if self._local(spec):
            if not self._local_files(spec):
                raise DataError(f"corpus {name!r}: dataset folder {spec.name!r} holds no files")
            return
        why = hub_repo_reason(spec.name, "dataset", spec.revision)
        if why is not None:
            raise DataError(f"corpus {name!r}: hub dataset {spec.name!r} cannot be loaded: {why}")

    def fingerprint(self, name: str, spec: HubCorpus) -> str:
        local = "|" + _stat_digest(self._local_files(spec)) if self._local(spec) else ""
        return f"hub-v1|{spec.model_dump_json()}{local}"

    def private(self, name: str, spec: HubCorpus) -> bool:
        """A hub dataset always (it may be gated or private, which tsweep cannot tell offline); a
        local folder when any of its files is not world-readable."""
        return _any_private(self._local_files(spec)) if self._local(spec) else True

    def documents(self, name: str, spec: HubCorpus, workdir: Path) -> Iterator[str]:
        import datasets

        self.preflight(name, spec)
        where = os.path.expanduser(spec.name) if self._local(spec) else spec.name
        what = f"dataset {spec.name!r} (config {spec.config!r}, split {spec.split!r})"
        try:
            ds = datasets.load_dataset(where, spec.config, split=spec.split, revision=spec.revision, streaming=True)
            for i, row in enumerate(ds):
                if spec.max_documents is not None and i >= spec.max_documents:
                    break
                if spec.text_field not in row:
                    raise DataError(f"corpus {name!r}: no field {spec.text_field!r} in {what}; fields: {sorted(row)}")
                if row[spec.text_field] is not None:
                    yield str(row[spec.text_field])
        except DataError:
            raise
        except Exception as exc:  # a stream can fail on any row: the connection, a corrupt file
            raise DataError(f"corpus {name!r}: cannot read {what}: {type(exc).__name__}: {_first_line(exc)}") from None


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0][:300] if text else ""
