"""A content-addressed cache of Arrow IPC files, shared by every process on a node.

An entry is a directory ``<root>/<key>/`` of Arrow IPC (Feather v2) files plus ``meta.json``.
Its key hashes everything its content depends on (corpus spec, tokenizer, source-file
fingerprints, the eval selection, format versions), so an entry is never updated in place: a
changed input is a different key. Entries are built in a temporary sibling directory under a
per-key :class:`filelock.FileLock` and published with one atomic ``rename``; a reader that sees
the directory sees it complete, and of several processes that miss at once one builds while
the others wait on the lock and then read. A builder that crashes leaves only its temporary
directory, which the next builder of that key removes.

Token arrays are one column in one record batch, so opening one is a zero-copy, read-only
``numpy`` view of a memory map: jobs on a node share the page cache, not copies. Large arrays
are written from a raw temporary file through a memory map, never held in memory whole.

Security. An entry keeps its sources' privacy: built from anything that is not world-readable
at the source (a private ``files`` corpus, a hub dataset, a mixture with such a part) it is a
0700 folder of 0600 files; otherwise 0755/0644, so one node cache serves every job. Scratch a
build leaves (names starting with '.', such as ``datasets``' own plain-text Arrow copy) is
deleted before the entry is published. ``meta.json`` records the BLAKE2b digest of every file,
and an entry is verified against it when a process first opens it: a damaged entry is set
aside and rebuilt. Keys are predictable (a hash of the inputs), so an entry is trusted only if
it belongs to this user (or root) and nobody else may write it: another user's entry under the
same key is never read, and this user's copy is built under ``.u{uid}/`` instead.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
import stat
import tempfile
import threading
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
from filelock import FileLock

log = logging.getLogger(__name__)

# 2: entries carry digests of their files and keep their sources' permissions.
FORMAT_VERSION = 2
LOCK_TIMEOUT_S = 3600.0  # a builder of a large corpus may hold the lock this long
_DIGEST_CHUNK = 1 << 22

_open_lock = threading.Lock()
_opened: dict[str, Entry] = {}


def cache_root(cache_dir: str | os.PathLike[str] | None = None) -> Path:
    """``cache_dir``, else ``$TSWEEP_DATA_CACHE``, else ``~/.cache/tsweep/data``."""
    root = cache_dir or os.environ.get("TSWEEP_DATA_CACHE") or "~/.cache/tsweep/data"
    return Path(os.path.expanduser(str(root))).resolve()


def content_key(prefix: str, obj: Any) -> str:
    """A readable, content-addressed entry name: ``prefix-<32 hex>`` of the JSON of ``obj``."""
    body = json.dumps({"format": FORMAT_VERSION, "content": obj}, sort_keys=True, default=str)
    safe = "".join(ch if ch.isalnum() or ch in "+-_." else "_" for ch in prefix)[:48]
    return f"{safe}-{hashlib.blake2b(body.encode(), digest_size=16).hexdigest()}"


class CorruptEntryError(Exception):
    """A cache entry that fails its digests, or that this user cannot trust."""


def _digest(path: Path) -> str:
    h = hashlib.blake2b(digest_size=32)
    with open(path, "rb") as f:
        while chunk := f.read(_DIGEST_CHUNK):
            h.update(chunk)
    return h.hexdigest()


def _untrusted(path: Path) -> str | None:
    """Why ``path`` (an entry folder or file) may have been written by someone else; None if not."""
    st = path.lstat()
    if stat.S_ISLNK(st.st_mode):
        return "a symbolic link"
    if st.st_uid not in (os.getuid(), 0):
        return f"owned by uid {st.st_uid}"
    if st.st_mode & (stat.S_IWGRP | stat.S_IWOTH):
        return "writable by others"
    return None


class Entry:
    """A finished cache entry: memory-mapped arrays and tables, and its ``meta.json``, verified
    against its digests when opened (:class:`CorruptEntryError` if it fails)."""

    def __init__(self, path: Path):
        self.path = path
        for p in (path, *(q for q in path.iterdir())):
            why = _untrusted(p)
            if why is not None:
                raise CorruptEntryError(f"{p} is {why}")
        try:
            self.meta: dict[str, Any] = json.loads((path / "meta.json").read_text())
            digests = self.meta["digests"]
            names = {q.name for q in path.iterdir()} - {"meta.json"}
            if set(digests) != names:
                raise CorruptEntryError(f"{path}: files {sorted(names)} but digests of {sorted(digests)}")
            for name, want in digests.items():
                if _digest(path / name) != want:
                    raise CorruptEntryError(f"{path / name} does not match its digest")
        except (OSError, ValueError, KeyError, TypeError, AttributeError) as exc:
            raise CorruptEntryError(f"{path}: unreadable meta.json or files ({type(exc).__name__}: {exc})") from None
        self._arrays: dict[str, np.ndarray] = {}

    def array(self, name: str) -> np.ndarray:
        """Column 0 of ``name.arrow`` as a read-only, memory-mapped numpy array."""
        arr = self._arrays.get(name)
        if arr is None:
            arr = self._arrays[name] = _numpy(_batch(self.path / f"{name}.arrow").column(0))
        return arr

    def columns(self, name: str) -> dict[str, np.ndarray]:
        batch = _batch(self.path / f"{name}.arrow")
        return {f.name: _numpy(batch.column(i)) for i, f in enumerate(batch.schema)}


def _batch(path: Path) -> pa.RecordBatch:
    # The map stays open for as long as any array views it (Arrow buffers own the mapping).
    return pa.ipc.open_file(pa.memory_map(str(path), "r")).get_batch(0)


def _numpy(col: pa.Array) -> np.ndarray:
    """Zero-copy view of a null-free primitive column (``to_numpy`` would import pandas)."""
    dtype = np.dtype(col.type.to_pandas_dtype())
    buf = col.buffers()[1]
    if buf is None or len(col) == 0:
        return np.zeros(0, dtype)
    return np.frombuffer(buf, dtype=dtype, count=len(col), offset=col.offset * dtype.itemsize)


def write_columns(path: Path, **columns: np.ndarray) -> None:
    """One record batch of plain numeric columns, written zero-copy from the given arrays."""
    arrays, names = [], []
    for name, arr in columns.items():
        arr = np.ascontiguousarray(arr)
        typ = pa.from_numpy_dtype(arr.dtype)
        buf = pa.py_buffer(arr) if len(arr) else pa.py_buffer(b"")
        arrays.append(pa.Array.from_buffers(typ, len(arr), [None, buf]))
        names.append(name)
    batch = pa.record_batch(arrays, names=names)
    with pa.OSFile(str(path), "wb") as sink, pa.ipc.new_file(sink, batch.schema) as writer:
        writer.write_batch(batch)


class TokenSink:
    """Appends token chunks to a raw file; :meth:`close` turns it into ``<name>.arrow``."""

    def __init__(self, directory: Path, name: str, dtype: np.dtype):
        self.directory, self.name, self.dtype = directory, name, np.dtype(dtype)
        self._raw_path = directory / f".{name}.raw"
        self._raw = open(self._raw_path, "wb")
        self.n = 0

    def write(self, chunk: np.ndarray) -> None:
        if len(chunk):
            np.ascontiguousarray(chunk, dtype=self.dtype).tofile(self._raw)
            self.n += len(chunk)

    def close(self) -> int:
        self._raw.close()
        if self.n:
            data = np.memmap(self._raw_path, dtype=self.dtype, mode="r", shape=(self.n,))
            write_columns(self.directory / f"{self.name}.arrow", tokens=data)
            del data
        else:
            write_columns(self.directory / f"{self.name}.arrow", tokens=np.zeros(0, self.dtype))
        self._raw_path.unlink()
        return self.n


def open_entry(path: Path) -> Entry:
    key = str(path)
    with _open_lock:
        entry = _opened.get(key)
        if entry is None:
            entry = _opened[key] = Entry(path)
    return entry


def _slot(root: Path, key: str) -> Path:
    """Where this user's entry ``key`` lives: ``root/key``, unless another user's entry (or
    anything not this user's) holds that name; then ``root/.u{uid}/key``."""
    path = root / key
    try:
        st = path.lstat()
    except FileNotFoundError:
        return path
    if st.st_uid in (os.getuid(), 0) and stat.S_ISDIR(st.st_mode):
        return path
    return root / f".u{os.getuid()}" / key


def lookup(root: Path, key: str) -> Entry | None:
    """The verified entry ``key``; None when it is missing or fails verification."""
    path = _slot(root, key)
    if str(path) in _opened:
        return _opened[str(path)]
    if not (path / "meta.json").is_file():
        return None
    try:
        return open_entry(path)
    except CorruptEntryError as exc:
        log.warning("data cache: %s; rebuilding it", exc)
        return None


def _seal(tmp: Path, private: bool) -> dict[str, str]:
    """Drop a build's scratch ('.'-names), set the entry's permissions, and digest its files."""
    for p in tmp.iterdir():
        if p.name.startswith("."):
            shutil.rmtree(p) if p.is_dir() and not p.is_symlink() else p.unlink()
    os.chmod(tmp, 0o700 if private else 0o755)
    digests = {}
    for p in tmp.iterdir():
        if not p.is_file() or p.is_symlink():
            raise CorruptEntryError(f"cache entry builds hold plain files only, got {p.name}")
        os.chmod(p, 0o600 if private else 0o644)
        digests[p.name] = _digest(p)
    return digests


def get_or_build(
    root: Path, key: str, build: Callable[[Path], dict[str, Any]], *, private: Callable[[], bool] = lambda: False
) -> Entry:
    """The entry ``key``, building it with ``build(tmpdir) -> meta`` once per node if missing;
    ``private()``, asked only when building: some input is not world-readable at its source
    (0700/0600, module docstring)."""
    found = lookup(root, key)
    if found is not None:
        return found
    path = _slot(root, key)
    home = path.parent
    home.mkdir(parents=True, exist_ok=True)
    if home != root:
        os.chmod(home, 0o700)
    with FileLock(str(home / f".{key}.lock"), timeout=LOCK_TIMEOUT_S):
        found = lookup(root, key)
        if found is not None:
            return found
        if path.exists():  # failed verification: out of the way first (open maps of it stay valid)
            os.rename(path, home / f".bad-{key}-{uuid.uuid4().hex[:8]}")
        for stale in [*home.glob(f".tmp-{key}-*"), *home.glob(f".bad-{key}-*")]:  # and builders that died
            shutil.rmtree(stale, ignore_errors=True)
        tmp = Path(tempfile.mkdtemp(prefix=f".tmp-{key}-", dir=home))
        try:
            meta = build(tmp)
            is_private = private()
            digests = _seal(tmp, is_private)
            (tmp / "meta.json").write_text(
                json.dumps({"key": key, **meta, "digests": digests}, indent=1, sort_keys=True)
            )
            os.chmod(tmp / "meta.json", 0o600 if is_private else 0o644)
            os.rename(tmp, path)
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
    return open_entry(path)
