"""The one filesystem every byte of a sweep goes through: ``pyarrow.fs``, local or remote, retried.

:class:`Files` is addressed by the same strings users give (a local path or a URI with its query,
:mod:`tsweep.core.paths`). Endpoint and credentials come from the URI's query or the standard
environment variables, exactly as pyarrow and Ray read them: ``s3://bucket/tsweep?
endpoint_override=host:9000&scheme=http`` or ``AWS_ENDPOINT_URL``, ``AWS_ACCESS_KEY_ID``,
``AWS_SECRET_ACCESS_KEY``, ``AWS_DEFAULT_REGION`` (``GOOGLE_APPLICATION_CREDENTIALS`` for
``gs://``).

Reads and writes retry transient errors (throttling such as S3's SLOW_DOWN, a dropped
connection) with doubling backoff (:func:`retrying`); an error that persists, or one that retrying
cannot fix (access denied, no such bucket), is a one-line :class:`StorageUnavailable` naming the
path. A missing file is never retried: it is an answer, not a failure.
"""

from __future__ import annotations

import errno
import logging
import os
import re
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from functools import lru_cache
from typing import TypedDict, TypeVar
from urllib.parse import urlsplit, urlunsplit

import pyarrow.fs as pafs

from tsweep.core import paths
from tsweep.core.errors import StorageUnavailable, first_line
from tsweep.core.paths import without_query

log = logging.getLogger(__name__)

T = TypeVar("T")

# Transient I/O is tried this many times in all, sleeping BACKOFF_S, then twice that, ... in
# between: the exponential backoff AWS asks of S3 clients ("Retry behavior", AWS SDKs and Tools
# reference guide). The numbers are tsweep's choice: 0.25 + 0.5 + 1 + 2 s rides out a throttling
# burst and still fails a dead endpoint within seconds.
TRIES = 5
BACKOFF_S = 0.25
# The filesystem's answers, passed to the caller as they are (never retried).
_ANSWERS = (FileNotFoundError, FileExistsError, IsADirectoryError, NotADirectoryError)
# Errors no retry fixes, as they appear in pyarrow's messages: the AWS SDK for C++'s error names
# (ACCESS_DENIED, NO_SUCH_BUCKET, ...) and S3's own error codes (AccessDenied, NoSuchBucket; the
# Amazon S3 API reference, "Error responses"), and an HTTP 403 from an S3-compatible server.
_PERMANENT_AWS = re.compile(
    r"ACCESS_DENIED|NO_SUCH_BUCKET|INVALID_ACCESS_KEY|SIGNATURE_DOES_NOT_MATCH|"
    r"AccessDenied|NoSuchBucket|Forbidden|response code: 403",
    re.IGNORECASE,
)


# Errors of a path itself that no retry fixes (the operating system's errno, which pyarrow's
# local filesystem passes on): a name past the file-name length, a symlink loop, a read-only
# filesystem, a path through a file.
_PERMANENT_ERRNOS = frozenset({errno.ENAMETOOLONG, errno.ELOOP, errno.EROFS, errno.ENOTDIR, errno.EISDIR})


def is_transient(exc: BaseException) -> bool:
    """An I/O error that a retry may fix (throttling, a dropped connection, a timeout)."""
    return (
        isinstance(exc, OSError)
        and not isinstance(exc, (*_ANSWERS, PermissionError))
        and exc.errno not in _PERMANENT_ERRNOS
        and not _PERMANENT_AWS.search(str(exc))
    )


def retrying(fn: Callable[[], T], what: str, *, tries: int = TRIES) -> T:
    """``fn()``, retried on transient I/O errors; persistent ones become :class:`StorageUnavailable`
    naming ``what``. Answers (a missing file, an existing one) pass through at once, and so does
    any error that is not an ``OSError`` (a parse error, a bug)."""
    t0 = time.monotonic()
    for i in range(tries):
        try:
            return fn()
        except _ANSWERS:
            raise
        except OSError as exc:
            if not is_transient(exc):
                raise StorageUnavailable(f"{without_query(what)}: {first_line(exc)}") from None
            if i == tries - 1:
                spent = f"{tries} tries over {time.monotonic() - t0:.0f} s"
                raise StorageUnavailable(f"{without_query(what)}: {first_line(exc)} ({spent})") from None
            log.warning("storage: %s: %s; retrying", without_query(what), first_line(exc))
            time.sleep(BACKOFF_S * 2**i)
    raise AssertionError("unreachable: the last try returns or raises")


def _with_delayed_open(endpoint: str) -> str:
    """An ``s3://`` endpoint with pyarrow's ``allow_delayed_open=true`` unless it says otherwise.

    pyarrow's S3FileSystem then opens an upload only once its first part is full: a file smaller
    than a part (every store shard, lease and fit is) goes up in one PutObject instead of a
    three-request multipart upload. It also keeps tsweep off the multipart path whose completion
    moto 5.2.1's server answers malformed (getmoto/moto#10055)."""
    u = urlsplit(endpoint)
    if u.scheme != "s3" or "allow_delayed_open" in u.query:
        return endpoint
    query = "&".join(filter(None, [u.query, "allow_delayed_open=true"]))
    return urlunsplit((u.scheme, u.netloc, "", query, ""))


# Endpoints kept per process: a process talks to one or two (tsweep's choice, with room to spare).
@lru_cache(maxsize=32)
def _filesystem(endpoint: str) -> pafs.FileSystem:
    """One filesystem per endpoint (:func:`tsweep.core.paths.endpoint`) per process: an S3 client
    is costly to make, and a process talks to one or two endpoints."""
    if endpoint == "local":
        return pafs.LocalFileSystem()
    try:
        return pafs.FileSystem.from_uri(_with_delayed_open(endpoint))[0]
    except (ValueError, OSError) as exc:
        raise StorageUnavailable(f"{without_query(endpoint)}: cannot open this storage: {first_line(exc)}") from None


class _StoragePath(TypedDict):
    storage_path: str


class RayStorage(_StoragePath, total=False):
    """Ray's ``RunConfig`` storage keywords: ``storage_path``, and ``storage_filesystem`` when remote."""

    storage_filesystem: pafs.FileSystem


@dataclass(frozen=True)
class Files:
    """The ``pyarrow.fs`` filesystem behind ``root``, addressed by full paths or URIs under it."""

    root: str

    @property
    def fs(self) -> pafs.FileSystem:
        return _filesystem(paths.endpoint(self.root))

    @property
    def is_local(self) -> bool:
        return isinstance(self.fs, pafs.LocalFileSystem)

    def fs_path(self, path: str) -> str:
        """The filesystem's own path for ``path`` (a full path or URI under this root)."""
        return paths.fs_path(path)

    def ray_storage(self, path: str) -> RayStorage:
        """Ray's ``RunConfig`` storage for ``path``: ``storage_path``, plus this very filesystem as
        ``storage_filesystem`` when remote, so a URI's endpoint and credentials reach Ray as they are."""
        if self.is_local:
            return {"storage_path": self.fs_path(path)}
        return {"storage_path": self.fs_path(path), "storage_filesystem": self.fs}

    def _info(self, path: str) -> pafs.FileInfo:
        return retrying(lambda: self.fs.get_file_info(self.fs_path(path)), path)

    # ------------------------------------------------------------ reading
    def exists(self, path: str) -> bool:
        return bool(self._info(path).type != pafs.FileType.NotFound)

    def is_file(self, path: str) -> bool:
        return bool(self._info(path).type == pafs.FileType.File)

    def size(self, path: str) -> int | None:
        """The size of a file in bytes; None if there is no file at ``path``."""
        info = self._info(path)
        return int(info.size) if info.type == pafs.FileType.File else None

    def read_bytes(self, path: str) -> bytes:
        def read() -> bytes:
            with self.fs.open_input_stream(self.fs_path(path)) as f:
                data: bytes = f.read()
                return data

        return retrying(read, path)

    def read_text(self, path: str) -> str:
        return self.read_bytes(path).decode("utf-8")

    def _select(self, path: str, recursive: bool) -> list[pafs.FileInfo]:
        sel = pafs.FileSelector(self.fs_path(path), allow_not_found=True, recursive=recursive)
        infos: list[pafs.FileInfo] = retrying(lambda: self.fs.get_file_info(sel), path)
        return infos

    def list_files(self, path: str, *, recursive: bool = True) -> list[pafs.FileInfo]:
        """Files (not folders) under ``path``, sorted by path; empty if it does not exist."""
        files = [i for i in self._select(path, recursive) if i.type == pafs.FileType.File]
        return sorted(files, key=lambda i: str(i.path))

    def list_dirs(self, path: str) -> list[str]:
        """Names of the folders directly under ``path``, sorted; empty if it does not exist."""
        return sorted(str(i.base_name) for i in self._select(path, False) if i.type == pafs.FileType.Directory)

    # ------------------------------------------------------------ writing
    def makedirs(self, path: str) -> None:
        retrying(lambda: self.fs.create_dir(self.fs_path(path), recursive=True), path)

    def write_bytes(self, path: str, data: bytes) -> None:
        """Write ``data`` so that a reader sees the old file or the new one, never half of it:
        a hidden temporary name then a rename on local disk; one PUT on an object store."""
        retrying(lambda: self._write_whole(self.fs_path(path), data), path)

    def _write_whole(self, p: str, data: bytes) -> None:
        parent = os.path.dirname(p)
        self.fs.create_dir(parent, recursive=True)
        target = f"{parent}/.{os.path.basename(p)}.{uuid.uuid4().hex[:8]}.tmp" if self.is_local else p
        with self.fs.open_output_stream(target) as f:
            f.write(data)
        if target != p:
            self.fs.move(target, p)

    def write_text(self, path: str, text: str) -> None:
        self.write_bytes(path, text.encode("utf-8"))

    def append_text(self, path: str, text: str) -> None:
        """Append ``text`` (local files); object stores have no append, so they rewrite the object."""
        if not self.is_local:
            old = self.read_bytes(path) if self.exists(path) else b""
            self.write_bytes(path, old + text.encode("utf-8"))
            return

        def append() -> None:
            p = self.fs_path(path)
            self.fs.create_dir(os.path.dirname(p), recursive=True)
            with self.fs.open_append_stream(p) as f:
                f.write(text.encode("utf-8"))

        retrying(append, path)

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
        """Rename ``src`` to ``dest``, making ``dest``'s folder first."""

        def move() -> None:
            self.fs.create_dir(os.path.dirname(self.fs_path(dest)), recursive=True)
            self.fs.move(self.fs_path(src), self.fs_path(dest))

        retrying(move, src)

    def upload_dir(self, local_dir: str, dest: str) -> None:
        """Copy a local folder's files to ``dest`` (adding to, or replacing, what is there)."""
        local, remote = pafs.LocalFileSystem(), self.fs
        retrying(
            lambda: pafs.copy_files(
                local_dir, self.fs_path(dest), source_filesystem=local, destination_filesystem=remote
            ),
            dest,
        )

    def download_dir(self, src: str, local_dir: str) -> None:
        """Copy the files under ``src`` into the local folder ``local_dir``."""
        local, remote = pafs.LocalFileSystem(), self.fs
        retrying(
            lambda: pafs.copy_files(
                self.fs_path(src), local_dir, source_filesystem=remote, destination_filesystem=local
            ),
            src,
        )
