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
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
import threading
from pathlib import Path
from typing import Any, Callable

import numpy as np
import pyarrow as pa
from filelock import FileLock

FORMAT_VERSION = 1
LOCK_TIMEOUT_S = 3600.0  # a builder of a large corpus may hold the lock this long

_open_lock = threading.Lock()
_opened: dict[str, "Entry"] = {}


def cache_root(cache_dir: str | os.PathLike | None = None) -> Path:
    """``cache_dir``, else ``$TSWEEP_DATA_CACHE``, else ``~/.cache/tsweep/data``."""
    root = cache_dir or os.environ.get("TSWEEP_DATA_CACHE") or "~/.cache/tsweep/data"
    return Path(os.path.expanduser(str(root))).resolve()


def content_key(prefix: str, obj: Any) -> str:
    """A readable, content-addressed entry name: ``prefix-<32 hex>`` of the JSON of ``obj``."""
    body = json.dumps({"format": FORMAT_VERSION, "content": obj}, sort_keys=True, default=str)
    safe = "".join(ch if ch.isalnum() or ch in "+-_." else "_" for ch in prefix)[:48]
    return f"{safe}-{hashlib.blake2b(body.encode(), digest_size=16).hexdigest()}"


class Entry:
    """A finished cache entry: memory-mapped arrays and tables, and its ``meta.json``."""

    def __init__(self, path: Path):
        self.path = path
        self.meta: dict = json.loads((path / "meta.json").read_text())
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


def lookup(root: Path, key: str) -> Entry | None:
    path = root / key
    if str(path) in _opened:
        return _opened[str(path)]
    return open_entry(path) if (path / "meta.json").is_file() else None


def get_or_build(root: Path, key: str, build: Callable[[Path], dict]) -> Entry:
    """The entry ``key``, building it with ``build(tmpdir) -> meta`` once per node if missing."""
    found = lookup(root, key)
    if found is not None:
        return found
    root.mkdir(parents=True, exist_ok=True)
    with FileLock(str(root / f".{key}.lock"), timeout=LOCK_TIMEOUT_S):
        found = lookup(root, key)
        if found is not None:
            return found
        for stale in root.glob(f".tmp-{key}-*"):  # left by a builder that died holding this lock
            shutil.rmtree(stale, ignore_errors=True)
        tmp = Path(tempfile.mkdtemp(prefix=f".tmp-{key}-", dir=root))
        os.chmod(tmp, 0o755)  # mkdtemp's 0700 would hide a shared node cache from other users
        try:
            meta = build(tmp)
            (tmp / "meta.json").write_text(json.dumps({"key": key, **meta}, indent=1, sort_keys=True))
            os.rename(tmp, root / key)
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
    return open_entry(root / key)
