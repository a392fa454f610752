"""A job's checkpoints: annealed weights at p, resume state, and the count of attempts.

Two kinds of checkpoint, both under the job's ``job_dir`` (a path or URI, through
:class:`tsweep.core.layout.Files`):

- ``p-{tokens}/``: the model's weights at a pre-training checkpoint p, written with
  transformers' ``save_pretrained`` (``config.json`` + ``model.safetensors``), so any
  p-checkpoint loads with ``AutoModelForCausalLM.from_pretrained`` and fine-tunes read it
  without unpickling anything. Written into a hidden temporary folder and published with one
  rename (or one upload), since the scheduler releases fine-tunes as soon as it exists.
- ``resume/``: DeepSpeed's own engine checkpoint (weights, optimizer, schedule) plus tsweep's
  loop state, kept so a job whose process dies resumes where it stopped.

DeepSpeed and transformers write local folders; on an object store the folder is written to a
local temporary folder first and uploaded.
"""

from __future__ import annotations

import os
import shutil
import tempfile
import uuid
from contextlib import contextmanager
from typing import Iterator

import pyarrow.fs as pafs

from tsweep.core.layout import Files, is_uri

WEIGHTS_FILE = "model.safetensors"


def _local(path: str) -> str | None:
    """The local path behind ``path``, or None when it lives on a remote filesystem."""
    if not is_uri(path):
        return path
    return path[len("file://"):] if path.startswith("file://") else None


@contextmanager
def writing_dir(dest: str) -> Iterator[str]:
    """A local folder to write into; on success it becomes ``dest`` in one step (a rename, or an
    upload for a remote ``dest``), replacing what was there."""
    local = _local(dest)
    parent = os.path.dirname(local.rstrip("/")) if local else None
    if parent:
        os.makedirs(parent, exist_ok=True)
    tmp = tempfile.mkdtemp(prefix=f".{os.path.basename(dest.rstrip('/'))}.", dir=parent)
    try:
        yield tmp
        if local:
            if os.path.exists(local):
                old = f"{local}.old-{uuid.uuid4().hex[:8]}"
                os.rename(local, old)
                os.rename(tmp, local)
                shutil.rmtree(old, ignore_errors=True)
            else:
                os.rename(tmp, local)
        else:
            files = Files(dest)
            files.delete_dir(dest)
            files.upload_dir(tmp, dest)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


@contextmanager
def shared_dir(dest: str) -> Iterator[str]:
    """A local folder that several ranks write into together (DeepSpeed's resume state): ``dest``
    itself when local; a temporary folder whose files are uploaded (added, nothing removed) when
    remote."""
    local = _local(dest)
    if local:
        os.makedirs(local, exist_ok=True)
        yield local
        return
    tmp = tempfile.mkdtemp(prefix="tsweep-ckpt-")
    try:
        yield tmp
        Files(dest).upload_dir(tmp, dest)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def prune_tags(resume: str, keep: str) -> None:
    """Remove every tag folder of a resume state but ``keep`` (the one ``latest`` names)."""
    files = Files(resume)
    sel = files.fs.get_file_info(pafs.FileSelector(files.fs_path(resume), allow_not_found=True))
    for info in sel:
        if info.type == pafs.FileType.Directory and info.base_name != keep:
            files.fs.delete_dir(info.path)


@contextmanager
def reading_dir(src: str) -> Iterator[str]:
    """A local folder holding what ``src`` holds (``src`` itself when it is local)."""
    local = _local(src)
    if local:
        yield local
        return
    tmp = tempfile.mkdtemp(prefix="tsweep-ckpt-")
    try:
        Files(src).download_dir(src, tmp)
        yield tmp
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def scratch_dir(job) -> str:
    """A folder every rank of ``job`` sees, for state kept for a moment (a pre-training branch's
    snapshot): beside the job's checkpoints when they are on a local or shared disk, else under
    the node's temporary folder (multi-node jobs then need a shared disk for this)."""
    local = _local(job.job_dir)
    path = f"{local.rstrip('/')}/branch" if local else os.path.join(tempfile.gettempdir(), "tsweep-branch", job.job_id)
    os.makedirs(path, exist_ok=True)
    return path


def exists(path: str) -> bool:
    return Files(path).exists(path)


def weights_exist(path: str) -> bool:
    """Whether a published p-checkpoint folder holds its weights."""
    return Files(path).is_file(f"{path.rstrip('/')}/{WEIGHTS_FILE}")


def remove(path: str) -> None:
    local = _local(path)
    if local:
        shutil.rmtree(local, ignore_errors=True)
    else:
        Files(path).delete_dir(path)


def next_attempt(job_dir: str) -> int:
    """Count starts of a job (0 for the first); the counter lives beside its checkpoints."""
    files = Files(job_dir)
    path = f"{job_dir.rstrip('/')}/attempts"
    n = int(files.read_text(path).strip() or 0) if files.exists(path) else 0
    files.write_text(path, str(n + 1))
    return n
