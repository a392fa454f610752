"""Where a sweep's files live, and the one filesystem every byte goes through.

A sweep's folder is ``{storage_root}/{sweep_name}/``, a local path or a URI (``s3://``,
``gs://``, ``file://``; endpoint and credentials from the URI's query or the standard
environment variables, as pyarrow and Ray read them)::

    sweep.yaml                 the validated sweep, as submitted (``status``/``resume`` read it)
    store/                     the Arrow store (see ``tsweep.core.store``)
    checkpoints/{job_id}/      p-{tokens}/ annealed weights that fine-tunes start from; resume/
    fits/latest.json           the analysis actor's latest report; fits/history.jsonl every refit
    plots/*.png                figures; report.html and summary.md beside them
    tune/                      Ray Tune's experiment folder

:class:`SweepLayout` owns those names; :class:`Files` is the filesystem behind them
(``pyarrow.fs``), addressed by the same strings users give. Nothing else in tsweep builds a
sweep path by hand or calls ``os``/``open`` on one.
"""

from __future__ import annotations

import os
import uuid
from dataclasses import dataclass, field
from functools import cached_property
from urllib.parse import urlsplit, urlunsplit

import pyarrow.fs as pafs


def is_uri(path: str) -> bool:
    return "://" in path


def join(base: str, *parts: str) -> str:
    """``base/part/...`` for a path or a URI (a URI's query string stays at the end)."""
    if not parts:
        return base
    tail = "/".join(p.strip("/") for p in parts if p)
    if is_uri(base):
        u = urlsplit(base)
        return urlunsplit((u.scheme, u.netloc, f"{u.path.rstrip('/')}/{tail}", u.query, u.fragment))
    return f"{base.rstrip('/')}/{tail}"


def resolve_root(root: str) -> str:
    """A storage root as tsweep stores it: URIs as given, local paths absolute (``~`` expanded)."""
    return root if is_uri(root) else os.path.abspath(os.path.expanduser(root))


@dataclass(frozen=True)
class Files:
    """One ``pyarrow.fs`` filesystem, addressed by full paths or URIs under one root."""

    root: str

    @cached_property
    def _fs_and_base(self) -> tuple[pafs.FileSystem, str]:
        if is_uri(self.root):
            return pafs.FileSystem.from_uri(self.root)
        return pafs.LocalFileSystem(), resolve_root(self.root)

    @property
    def fs(self) -> pafs.FileSystem:
        return self._fs_and_base[0]

    @property
    def is_local(self) -> bool:
        return isinstance(self.fs, pafs.LocalFileSystem)

    def fs_path(self, path: str) -> str:
        """The filesystem's own path for ``path`` (a full path or URI under this root)."""
        if is_uri(path):
            if path.startswith("file://"):
                return urlsplit(path).path
            u = urlsplit(path)
            return f"{u.netloc}{u.path}".rstrip("/")
        return os.path.abspath(os.path.expanduser(path))

    # ------------------------------------------------------------ reading
    def exists(self, path: str) -> bool:
        return self.fs.get_file_info(self.fs_path(path)).type != pafs.FileType.NotFound

    def is_file(self, path: str) -> bool:
        return self.fs.get_file_info(self.fs_path(path)).type == pafs.FileType.File

    def read_bytes(self, path: str) -> bytes:
        with self.fs.open_input_stream(self.fs_path(path)) as f:
            return f.read()

    def read_text(self, path: str) -> str:
        return self.read_bytes(path).decode("utf-8")

    def list_files(self, path: str, *, recursive: bool = True) -> list[pafs.FileInfo]:
        """Files (not folders) under ``path``, sorted by path; empty if it does not exist."""
        sel = pafs.FileSelector(self.fs_path(path), allow_not_found=True, recursive=recursive)
        return sorted((i for i in self.fs.get_file_info(sel) if i.type == pafs.FileType.File), key=lambda i: i.path)

    # ------------------------------------------------------------ writing
    def makedirs(self, path: str) -> None:
        self.fs.create_dir(self.fs_path(path), recursive=True)

    def write_bytes(self, path: str, data: bytes) -> None:
        """Write ``data`` so that a reader sees the old file or the new one, never half of it:
        a hidden temporary name then a rename on local disk; one PUT on an object store."""
        p = self.fs_path(path)
        parent = os.path.dirname(p)
        self.fs.create_dir(parent, recursive=True)
        if self.is_local:
            tmp = f"{parent}/.{os.path.basename(p)}.{uuid.uuid4().hex[:8]}.tmp"
            with self.fs.open_output_stream(tmp) as f:
                f.write(data)
            self.fs.move(tmp, p)
        else:
            with self.fs.open_output_stream(p) as f:
                f.write(data)

    def write_text(self, path: str, text: str) -> None:
        self.write_bytes(path, text.encode("utf-8"))

    def append_text(self, path: str, text: str) -> None:
        """Append a line (local files); object stores have no append, so they rewrite the object."""
        p = self.fs_path(path)
        self.fs.create_dir(os.path.dirname(p), recursive=True)
        if self.is_local:
            with self.fs.open_append_stream(p) as f:
                f.write(text.encode("utf-8"))
        else:
            old = self.read_bytes(path) if self.exists(path) else b""
            self.write_bytes(path, old + text.encode("utf-8"))

    def delete_file(self, path: str) -> None:
        self.fs.delete_file(self.fs_path(path))

    def delete_dir(self, path: str) -> None:
        """Remove a folder and everything under it; nothing if it is not there."""
        p = self.fs_path(path)
        if self.fs.get_file_info(p).type != pafs.FileType.NotFound:
            self.fs.delete_dir(p)

    def move(self, src: str, dest: str) -> None:
        self.fs.create_dir(os.path.dirname(self.fs_path(dest)), recursive=True)
        self.fs.move(self.fs_path(src), self.fs_path(dest))

    def upload_dir(self, local_dir: str, dest: str) -> None:
        """Copy a local folder to ``dest`` (replacing what is there)."""
        pafs.copy_files(local_dir, self.fs_path(dest), source_filesystem=pafs.LocalFileSystem(),
                        destination_filesystem=self.fs)

    def download_dir(self, src: str, local_dir: str) -> None:
        pafs.copy_files(self.fs_path(src), local_dir, source_filesystem=self.fs,
                        destination_filesystem=pafs.LocalFileSystem())


@dataclass(frozen=True)
class SweepLayout:
    """The names of a sweep's files under ``sweep_dir`` (a path or URI), and its :class:`Files`."""

    sweep_dir: str
    files: Files = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "sweep_dir", resolve_root(self.sweep_dir))
        object.__setattr__(self, "files", Files(self.sweep_dir))

    @classmethod
    def under(cls, storage_root: str, sweep_name: str) -> "SweepLayout":
        return cls(join(resolve_root(storage_root), sweep_name))

    def path(self, *parts: str) -> str:
        return join(self.sweep_dir, *parts)

    @property
    def is_local(self) -> bool:
        return not is_uri(self.sweep_dir) or self.sweep_dir.startswith("file://")

    @property
    def sweep_yaml(self) -> str:
        return self.path("sweep.yaml")

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

    def job_dir(self, job_id: str) -> str:
        return self.path("checkpoints", job_id)

    def exists(self) -> bool:
        return self.files.exists(self.sweep_yaml)
