"""Where a sweep's files live, and the one filesystem every byte goes through.

A sweep's folder is ``{storage_root}/{sweep_name}/``, a local path or a URI (``s3://``,
``gs://``, ``file://``). Endpoint and credentials come from the URI's query or the standard
environment variables, exactly as pyarrow and Ray read them: ``s3://bucket/tsweep?
endpoint_override=host:9000&scheme=http`` or ``AWS_ENDPOINT_URL``, ``AWS_ACCESS_KEY_ID``,
``AWS_SECRET_ACCESS_KEY``, ``AWS_DEFAULT_REGION`` (``GOOGLE_APPLICATION_CREDENTIALS`` for
``gs://``). A URI's query stays at the end of every path built under it (:func:`join`), so a
job's checkpoint folder carries its endpoint to whichever node runs it::

    sweep.yaml                 the validated sweep, as submitted (``status``/``resume`` read it)
    lease.json                 the driver that holds the sweep now (``tsweep.orchestrator.lease``)
    store/                     the Arrow store (see ``tsweep.core.store``)
    checkpoints/{job_id}/      p-{tokens}/ annealed weights that fine-tunes start from; resume/;
                               attempts (how many times the job started)
    fits/latest.json           the analysis actor's latest report; fits/history.jsonl every refit
    plots/*.png                figures; report.html and summary.md beside them
    tune/                      Ray Tune's experiment folder (train/ for multi-worker jobs' Ray Train runs)

:class:`SweepLayout` owns those names; :class:`Files` is the filesystem behind them
(``pyarrow.fs``, one instance per endpoint and process), addressed by the same strings users
give. Nothing else in tsweep builds a sweep path by hand or calls ``os``/``open`` on one.

Reads and writes retry transient errors (throttling such as S3's SLOW_DOWN, a dropped
connection) with doubling backoff; an error that persists, or one that retrying cannot fix
(access denied, no such bucket), is a one-line :class:`StorageUnavailable` naming the path. A
missing file is never retried: it is an answer, not a failure.
"""

from __future__ import annotations

import logging
import os
import re
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import lru_cache
from typing import TypeVar
from urllib.parse import urlsplit, urlunsplit

import pyarrow.fs as pafs

from tsweep.core.errors import StorageUnavailable

log = logging.getLogger(__name__)

T = TypeVar("T")

# Transient I/O is retried this many times in all, sleeping BACKOFF_S, then twice that, ... in
# between (tsweep's choice: 0.25 + 0.5 + 1 + 2 s rides out a throttling burst, the exponential
# backoff AWS asks of S3 clients, and still fails a dead endpoint within seconds).
TRIES = 5
BACKOFF_S = 0.25
# The filesystem's answers, passed to the caller as they are; and S3's error codes that no retry fixes.
_ANSWERS = (FileNotFoundError, FileExistsError, IsADirectoryError, NotADirectoryError)
_PERMANENT_AWS = re.compile(
    r"ACCESS_DENIED|NO_SUCH_BUCKET|INVALID_ACCESS_KEY|SIGNATURE_DOES_NOT_MATCH|"
    r"AccessDenied|NoSuchBucket|Forbidden|response code: 403",
    re.IGNORECASE,
)


def is_uri(path: str) -> bool:
    return "://" in path


def join(base: str, *parts: str) -> str:
    """``base/part/...`` for a path or a URI (a URI's query string stays at the end)."""
    tail = "/".join(p.strip("/") for p in parts if p and p.strip("/"))
    if not tail:
        return base
    if is_uri(base):
        u = urlsplit(base)
        return urlunsplit((u.scheme, u.netloc, f"{u.path.rstrip('/')}/{tail}", u.query, u.fragment))
    return f"{base.rstrip('/')}/{tail}"


def without_query(path: str) -> str:
    """``path`` without a URI's query (for messages and comparisons)."""
    if not is_uri(path):
        return path
    u = urlsplit(path)
    return urlunsplit((u.scheme, u.netloc, u.path, "", ""))


def resolve_root(root: str) -> str:
    """A storage root as tsweep stores it: URIs as given, local paths absolute (``~`` expanded)."""
    return root if is_uri(root) else os.path.abspath(os.path.expanduser(root))


def local_path(path: str) -> str | None:
    """The local path behind ``path`` (a plain path or ``file://``), or None for a remote URI."""
    if not is_uri(path):
        return os.path.abspath(os.path.expanduser(path))
    return urlsplit(path).path if path.startswith("file://") else None


@lru_cache(maxsize=32)
def _filesystem(endpoint: str) -> pafs.FileSystem:
    """One filesystem per endpoint (scheme, host and query) per process: an S3 client is costly
    to make, and a process talks to one or two endpoints."""
    if endpoint == "local":
        return pafs.LocalFileSystem()
    u = urlsplit(endpoint)
    if u.scheme == "s3" and "allow_delayed_open" not in u.query:
        # Open an upload only once its first part is full: a file smaller than a part (every store
        # shard, lease and fit is) goes up in one PutObject instead of a three-request multipart
        # upload (pyarrow's S3FileSystem option). It also keeps tsweep off the multipart path
        # whose completion moto 5.2.1's server answers malformed (getmoto/moto#10055).
        endpoint = urlunsplit(
            (u.scheme, u.netloc, "", "&".join(filter(None, [u.query, "allow_delayed_open=true"])), "")
        )
    try:
        return pafs.FileSystem.from_uri(endpoint)[0]
    except (ValueError, OSError) as exc:
        raise StorageUnavailable(f"{without_query(endpoint)}: cannot open this storage: {_first_line(exc)}") from None


def _endpoint(path: str) -> str:
    if not is_uri(path) or path.startswith("file://"):
        return "local"
    u = urlsplit(path)
    return urlunsplit((u.scheme, u.netloc, "", u.query, ""))


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0][:300] if text else type(exc).__name__


def is_transient(exc: BaseException) -> bool:
    """An I/O error that a retry may fix (throttling, a dropped connection, a timeout)."""
    return (
        isinstance(exc, OSError)
        and not isinstance(exc, (*_ANSWERS, PermissionError))
        and not _PERMANENT_AWS.search(str(exc))
    )


def retrying(fn: Callable[[], T], what: str, *, tries: int = TRIES) -> T:
    """``fn()``, retried on transient I/O errors; persistent ones become :class:`StorageUnavailable`
    naming ``what``. Answers (a missing file, a parse error) pass through at once."""
    t0 = time.monotonic()
    for i in range(tries):
        try:
            return fn()
        except OSError as exc:
            if isinstance(exc, _ANSWERS):
                raise
            if not is_transient(exc):
                raise StorageUnavailable(f"{without_query(what)}: {_first_line(exc)}") from None
            if i == tries - 1:
                raise StorageUnavailable(
                    f"{without_query(what)}: {_first_line(exc)} ({tries} tries over {time.monotonic() - t0:.0f} s)"
                ) from None
            log.warning("storage: %s: %s; retrying", without_query(what), _first_line(exc))
            time.sleep(BACKOFF_S * 2**i)
    raise AssertionError("unreachable")


@dataclass(frozen=True)
class Files:
    """The ``pyarrow.fs`` filesystem behind ``root``, addressed by full paths or URIs under it."""

    root: str

    @property
    def fs(self) -> pafs.FileSystem:
        return _filesystem(_endpoint(self.root))

    @property
    def is_local(self) -> bool:
        return isinstance(self.fs, pafs.LocalFileSystem)

    def fs_path(self, path: str) -> str:
        """The filesystem's own path for ``path`` (a full path or URI under this root)."""
        local = local_path(path)
        if local is not None:
            return local
        u = urlsplit(path)
        return f"{u.netloc}{u.path}".rstrip("/")

    def ray_storage(self, path: str) -> dict:
        """Ray's ``RunConfig`` storage for ``path``: ``storage_path``, plus this very filesystem as
        ``storage_filesystem`` when remote, so a URI's endpoint and credentials reach Ray as they are."""
        if self.is_local:
            return {"storage_path": self.fs_path(path)}
        return {"storage_path": self.fs_path(path), "storage_filesystem": self.fs}

    def _info(self, path: str) -> pafs.FileInfo:
        return retrying(lambda: self.fs.get_file_info(self.fs_path(path)), path)

    # ------------------------------------------------------------ reading
    def exists(self, path: str) -> bool:
        return self._info(path).type != pafs.FileType.NotFound

    def is_file(self, path: str) -> bool:
        return self._info(path).type == pafs.FileType.File

    def size(self, path: str) -> int | None:
        """The size of a file in bytes; None if there is no file at ``path``."""
        info = self._info(path)
        return info.size if info.type == pafs.FileType.File else None

    def read_bytes(self, path: str) -> bytes:
        def read() -> bytes:
            with self.fs.open_input_stream(self.fs_path(path)) as f:
                return f.read()

        return retrying(read, path)

    def read_text(self, path: str) -> str:
        return self.read_bytes(path).decode("utf-8")

    def _select(self, path: str, recursive: bool) -> list[pafs.FileInfo]:
        sel = pafs.FileSelector(self.fs_path(path), allow_not_found=True, recursive=recursive)
        return retrying(lambda: self.fs.get_file_info(sel), path)

    def list_files(self, path: str, *, recursive: bool = True) -> list[pafs.FileInfo]:
        """Files (not folders) under ``path``, sorted by path; empty if it does not exist."""
        return sorted((i for i in self._select(path, recursive) if i.type == pafs.FileType.File), key=lambda i: i.path)

    def list_dirs(self, path: str) -> list[str]:
        """Names of the folders directly under ``path``, sorted; empty if it does not exist."""
        return sorted(i.base_name for i in self._select(path, False) if i.type == pafs.FileType.Directory)

    # ------------------------------------------------------------ writing
    def makedirs(self, path: str) -> None:
        retrying(lambda: self.fs.create_dir(self.fs_path(path), recursive=True), path)

    def write_bytes(self, path: str, data: bytes) -> None:
        """Write ``data`` so that a reader sees the old file or the new one, never half of it:
        a hidden temporary name then a rename on local disk; one PUT on an object store."""
        p = self.fs_path(path)
        parent = os.path.dirname(p)

        def write() -> None:
            self.fs.create_dir(parent, recursive=True)
            if self.is_local:
                tmp = f"{parent}/.{os.path.basename(p)}.{uuid.uuid4().hex[:8]}.tmp"
                with self.fs.open_output_stream(tmp) as f:
                    f.write(data)
                self.fs.move(tmp, p)
            else:
                with self.fs.open_output_stream(p) as f:
                    f.write(data)

        retrying(write, path)

    def write_text(self, path: str, text: str) -> None:
        self.write_bytes(path, text.encode("utf-8"))

    def append_text(self, path: str, text: str) -> None:
        """Append a line (local files); object stores have no append, so they rewrite the object."""
        if self.is_local:
            p = self.fs_path(path)

            def append() -> None:
                self.fs.create_dir(os.path.dirname(p), recursive=True)
                with self.fs.open_append_stream(p) as f:
                    f.write(text.encode("utf-8"))

            retrying(append, path)
        else:
            old = self.read_bytes(path) if self.exists(path) else b""
            self.write_bytes(path, old + text.encode("utf-8"))

    def delete_file(self, path: str) -> None:
        """Remove a file; nothing if it is not there (someone else removed it first)."""
        try:
            retrying(lambda: self.fs.delete_file(self.fs_path(path)), path)
        except FileNotFoundError:
            pass

    def delete_dir(self, path: str) -> None:
        """Remove a folder and everything under it; nothing if it is not there."""
        if self.exists(path):
            try:
                retrying(lambda: self.fs.delete_dir(self.fs_path(path)), path)
            except FileNotFoundError:
                pass

    def move(self, src: str, dest: str) -> None:
        def move() -> None:
            self.fs.create_dir(os.path.dirname(self.fs_path(dest)), recursive=True)
            self.fs.move(self.fs_path(src), self.fs_path(dest))

        retrying(move, src)

    def upload_dir(self, local_dir: str, dest: str) -> None:
        """Copy a local folder's files to ``dest`` (adding to, or replacing, what is there)."""
        retrying(
            lambda: pafs.copy_files(
                local_dir, self.fs_path(dest), source_filesystem=pafs.LocalFileSystem(), destination_filesystem=self.fs
            ),
            dest,
        )

    def download_dir(self, src: str, local_dir: str) -> None:
        retrying(
            lambda: pafs.copy_files(
                self.fs_path(src), local_dir, source_filesystem=self.fs, destination_filesystem=pafs.LocalFileSystem()
            ),
            src,
        )


@dataclass(frozen=True)
class SweepLayout:
    """The names of a sweep's files under ``sweep_dir`` (a path or URI), and its :class:`Files`."""

    sweep_dir: str
    files: Files = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "sweep_dir", resolve_root(self.sweep_dir))
        object.__setattr__(self, "files", Files(self.sweep_dir))

    @classmethod
    def under(cls, storage_root: str, sweep_name: str) -> SweepLayout:
        return cls(join(resolve_root(storage_root), sweep_name))

    def path(self, *parts: str) -> str:
        return join(self.sweep_dir, *parts)

    def contains(self, path: str) -> bool:
        """Whether ``path`` lies inside this sweep's folder."""
        return without_query(path).startswith(without_query(self.sweep_dir).rstrip("/") + "/")

    @property
    def is_local(self) -> bool:
        return local_path(self.sweep_dir) is not None

    @property
    def sweep_yaml(self) -> str:
        return self.path("sweep.yaml")

    @property
    def lease(self) -> str:
        return self.path("lease.json")

    @property
    def store_root(self) -> str:
        return self.path("store")

    @property
    def fits_dir(self) -> str:
        return self.path("fits")

    @property
    def latest_fit(self) -> str:
        return self.path("fits", "latest.json")

    @property
    def fit_history(self) -> str:
        return self.path("fits", "history.jsonl")

    @property
    def plots_dir(self) -> str:
        return self.path("plots")

    def plot(self, name: str) -> str:
        return self.path("plots", name)

    @property
    def summary_md(self) -> str:
        return self.path("summary.md")

    @property
    def report_html(self) -> str:
        return self.path("report.html")

    @property
    def tune_dir(self) -> str:
        return self.path("tune")

    @property
    def train_dir(self) -> str:
        return self.path("train")

    def job_dir(self, job_id: str) -> str:
        return self.path("checkpoints", job_id)

    def exists(self) -> bool:
        return self.files.exists(self.sweep_yaml)
