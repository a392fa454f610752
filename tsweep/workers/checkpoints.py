"""A job's checkpoints: annealed weights at p, resume state, and the count of attempts.

Under the job's ``job_dir`` (a path or URI, always through :class:`tsweep.core.layout.Files`):

- ``p-{tokens}/``: the model's weights at a pre-training checkpoint p, written with
  transformers' ``save_pretrained`` (``config.json`` + ``model.safetensors``), so any
  p-checkpoint loads with ``AutoModelForCausalLM.from_pretrained`` and fine-tunes read it
  without unpickling anything.
- ``resume/{tag}/``: DeepSpeed's own engine checkpoint (weights, optimizer, schedule, tsweep's
  loop state in its client state), one folder per save, the last :data:`KEEP_RESUME` kept.
- ``attempts``: how many times the job has started (the ``attempt`` column of its rows).

Every checkpoint folder ends with a ``manifest.json`` written last: each file's size and
SHA-256. A folder is *published* once its manifest is there and every size matches, which is
how a reader tells a finished checkpoint from one a pre-empted node left half-uploaded,
truncated or emptied: the driver checks sizes (one listing) before it releases fine-tunes from
a p-checkpoint, and re-runs the pre-training whose p-checkpoint fails; a job checks every hash
of what it downloaded before it loads it. A resume folder that fails (or that DeepSpeed cannot
load) is skipped for the one before it, and with none left the job starts from step 0.

Loading runs no pickled code: p-checkpoints are safetensors, and resume state goes through
:func:`weights_only` (``torch.load(weights_only=True)`` with an allowlist of the three plain
DeepSpeed records a ZeRO checkpoint holds) instead of DeepSpeed's ``torch.load(weights_only=
False)``, so whoever can write the bucket cannot run code on the workers.

Why not Ray's checkpoint persistence (``ray.train.report(checkpoint=...)``)? Ray keeps a
checkpoint per trial of one Tune experiment and hands it back only to that trial's retries;
tsweep's checkpoints are addressed by job id instead, because they must outlive the experiment
(``tsweep resume`` and a restarted driver run a new one), and because fine-tunes on other nodes
find their parent's p-checkpoint by its content address, not through Tune. The copy itself is
pyarrow's (``copy_files``), as in Ray.

DeepSpeed and transformers write local folders; on an object store a folder is written to a
local temporary folder first and uploaded, its manifest last.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
import tempfile
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

from tsweep.core.job import Job
from tsweep.core.layout import Files, join, local_path, without_query

if TYPE_CHECKING:
    import torch
    from deepspeed import DeepSpeedEngine

log = logging.getLogger(__name__)

WEIGHTS_FILE = "model.safetensors"
MANIFEST = "manifest.json"
# Resume states kept per job: the newest and the one before it, so a save cut short (or a file
# damaged since) falls back one checkpoint interval rather than to step 0 (tsweep's choice).
KEEP_RESUME = 2
_HASH_CHUNK = 1 << 22


# ------------------------------------------------------------------ manifests
def _digests(folder: str) -> dict[str, dict[str, Any]]:
    """Size and SHA-256 of every file under a local folder, by path relative to it."""
    out = {}
    for base, _, names in os.walk(folder):
        for name in names:
            path = os.path.join(base, name)
            rel = os.path.relpath(path, folder)
            if rel == MANIFEST:
                continue
            h = hashlib.sha256()
            with open(path, "rb") as f:
                while chunk := f.read(_HASH_CHUNK):
                    h.update(chunk)
            out[rel] = {"size": os.path.getsize(path), "sha256": h.hexdigest()}
    return out


def _manifest(folder: str) -> dict[str, Any] | None:
    """A published folder's manifest (``files``: name -> size, sha256), or None if it has none
    that parses."""
    files = Files(folder)
    try:
        m = json.loads(files.read_text(join(folder, MANIFEST)))
    except (FileNotFoundError, ValueError, UnicodeDecodeError):
        return None
    if not isinstance(m, dict) or not isinstance(m.get("files"), dict) or not m["files"]:
        return None
    ok = all(
        isinstance(v, dict) and isinstance(v.get("size"), int) and isinstance(v.get("sha256"), str)
        for v in m["files"].values()
    )
    return m if ok else None


def published(folder: str) -> bool:
    """Whether ``folder`` holds a whole checkpoint: a manifest, and every file it lists at its
    size (a listing and one small read; :func:`verify` checks the bytes)."""
    m = _manifest(folder)
    if m is None:
        return False
    files = Files(folder)
    base = files.fs_path(folder)
    sizes = {os.path.relpath(i.path, base): i.size for i in files.list_files(folder)}
    return all(sizes.get(name) == meta["size"] for name, meta in m["files"].items())


def verify(local: str, manifest: dict[str, Any]) -> str | None:
    """Why the local copy of a checkpoint differs from its manifest; None when it matches."""
    have = _digests(local)
    for name, meta in manifest["files"].items():
        got = have.get(name)
        if got is None:
            return f"{name} is missing"
        if got != meta:
            return f"{name} is {got['size']} bytes with another hash than the {meta['size']} published"
    return None


def _write_manifest(folder: str, digests: dict[str, dict[str, Any]], **extra: Any) -> None:
    Files(folder).write_text(join(folder, MANIFEST), json.dumps({**extra, "files": digests}, indent=1, sort_keys=True))


# ------------------------------------------------------------------ folders
@contextmanager
def writing_dir(dest: str) -> Iterator[str]:
    """A local folder to write a checkpoint into; on success it is published as ``dest`` with its
    manifest: one rename locally, or an upload with the manifest last, replacing what was there."""
    local = local_path(dest)
    parent = os.path.dirname(local.rstrip("/")) if local else None
    if parent:
        os.makedirs(parent, exist_ok=True)
    tmp = tempfile.mkdtemp(prefix=f".{os.path.basename(without_query(dest).rstrip('/'))}.", dir=parent)
    try:
        yield tmp
        digests = _digests(tmp)
        if local:
            with open(os.path.join(tmp, MANIFEST), "w") as f:
                json.dump({"files": digests}, f, indent=1, sort_keys=True)
            if os.path.exists(local):
                old = f"{local}.old-{uuid.uuid4().hex[:8]}"
                os.rename(local, old)
                os.rename(tmp, local)
                shutil.rmtree(old, ignore_errors=True)
            else:
                os.rename(tmp, local)
        else:
            unpublish(dest)
            Files(dest).upload_dir(tmp, dest)
            _write_manifest(dest, digests)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


@contextmanager
def reading_dir(src: str) -> Iterator[str]:
    """A local folder holding what ``src`` holds (``src`` itself when it is local)."""
    local = local_path(src)
    if local:
        yield local
        return
    tmp = _staging_dir()
    try:
        Files(src).download_dir(src, tmp)
        yield tmp
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


@contextmanager
def verified_dir(src: str) -> Iterator[str]:
    """:func:`reading_dir` of a published checkpoint whose every byte matches its manifest;
    :class:`CorruptCheckpointError` (naming the file) otherwise."""
    manifest = _manifest(src)
    if manifest is None:
        raise CorruptCheckpointError(f"{without_query(src)}: no readable {MANIFEST} (never published, or damaged)")
    with reading_dir(src) as local:
        why = verify(local, manifest)
        if why is not None:
            raise CorruptCheckpointError(f"{without_query(src)}: {why}")
        yield local


class CorruptCheckpointError(RuntimeError):
    """A checkpoint whose files do not match its manifest."""


def unpublish(folder: str) -> None:
    """Withdraw a published checkpoint found corrupt (its manifest goes first), so that the
    driver sees it missing and rebuilds it."""
    files = Files(folder)
    files.delete_file(join(folder, MANIFEST))
    files.delete_dir(folder)


def scratch_dir(job: Job) -> str:
    """A folder every rank of ``job`` sees, for state kept for a moment (a pre-training branch's
    snapshot): beside the job's checkpoints when they are on a local or shared disk, else under
    the node's temporary folder (multi-node jobs then need a shared disk for this)."""
    path = _scratch_path(job)
    os.makedirs(path, exist_ok=True)
    return path


def _scratch_path(job: Job) -> str:
    return job.layout.local_branch_dir or os.path.join(tempfile.gettempdir(), "tsweep-branch", job.job_id)


STAGING_PREFIX = "tsweep-ckpt-"


def _staging_dir() -> str:
    """A fresh local folder for a checkpoint on its way to or from a remote store, named by this
    process's id so that :func:`clear_stale_staging` can tell a dead process's leftover."""
    return tempfile.mkdtemp(prefix=f"{STAGING_PREFIX}{os.getpid()}-")


def clear_stale_staging() -> None:
    """Remove the staging folders that processes killed mid-transfer left in this node's
    temporary folder (a process killed by SIGKILL or with its node's power cannot remove its own)."""
    root = tempfile.gettempdir()
    try:
        names = os.listdir(root)
    except OSError:
        return
    for name in names:
        pid = staging_owner(name)
        if pid is not None and not process_alive(pid):
            shutil.rmtree(os.path.join(root, name), ignore_errors=True)


def staging_owner(name: str) -> int | None:
    """The process id in a staging folder's name (None: not a staging folder)."""
    pid = name[len(STAGING_PREFIX) :].split("-", 1)[0]
    return int(pid) if name.startswith(STAGING_PREFIX) and pid.isdigit() else None


def process_alive(pid: int) -> bool:
    """Whether ``pid`` runs: a killed process its parent has not reaped yet (a zombie) is dead,
    so the retry that starts the moment its predecessor was killed clears its leftover."""
    import psutil

    try:
        return bool(psutil.Process(pid).status() != psutil.STATUS_ZOMBIE)
    except psutil.NoSuchProcess:
        return False


def clear_scratch(job: Job) -> None:
    """Remove the snapshot an earlier attempt of ``job`` left in this node's :func:`scratch_dir`
    (a process killed mid-branch cannot remove its own); at a job's start none is in use."""
    shutil.rmtree(_scratch_path(job), ignore_errors=True)


def remove(path: str) -> None:
    local = local_path(path)
    if local:
        shutil.rmtree(local, ignore_errors=True)
    else:
        Files(path).delete_dir(path)


# ------------------------------------------------------------------ resume state
def _tag_step(tag: str) -> int | None:
    return int(tag[4:]) if tag.startswith("step") and tag[4:].isdigit() else None


def resume_tags(resume: str) -> list[str]:
    """Tags of the published resume states under ``resume``, newest first."""
    steps = {t: s for t in Files(resume).list_dirs(resume) if (s := _tag_step(t)) is not None}
    return sorted((t for t in steps if published(join(resume, t))), key=steps.__getitem__, reverse=True)


def save_resume(engine: DeepSpeedEngine, resume: str, step: int, state: dict[str, Any], *, lead: bool) -> None:
    """Save the engine and tsweep's loop ``state`` as tag ``step{step}`` (a collective: every rank
    writes its part), publish it with a manifest, and keep the newest :data:`KEEP_RESUME`."""
    import torch

    tag = f"step{step}"
    world = torch.distributed.get_world_size() if torch.distributed.is_initialized() else 1
    local = local_path(resume)
    staging = local or _staging_dir()
    try:
        engine.save_checkpoint(staging, tag=tag, client_state={"tsweep_state": state}, save_latest=False)
        if world > 1:
            torch.distributed.barrier()  # every rank's files are on the (shared or staging) disk
        # A shared local folder holds every rank's files: the lead hashes them all. Remote, each
        # rank hashes and uploads its own, and the lead gathers the hashes.
        mine = _digests(os.path.join(staging, tag)) if (lead or not local) else {}
        if not local:
            Files(resume).upload_dir(os.path.join(staging, tag), join(resume, tag))
        if world > 1:
            parts: list[dict[str, dict[str, Any]] | None] = [None] * world
            torch.distributed.all_gather_object(parts, mine)
            mine = {k: v for part in parts if part is not None for k, v in part.items()}
    finally:
        if not local:
            shutil.rmtree(staging, ignore_errors=True)
    if lead:
        _write_manifest(join(resume, tag), mine, tag=tag, step=step)
        keep = set(resume_tags(resume)[:KEEP_RESUME])
        files = Files(resume)
        for t in files.list_dirs(resume):
            if t not in keep:
                files.delete_dir(join(resume, t))


def load_resume(
    engine: DeepSpeedEngine, resume: str, rebuild: Callable[[], DeepSpeedEngine]
) -> tuple[dict[str, Any] | None, DeepSpeedEngine]:
    """The loop state of the newest resume state that verifies and loads, and the engine it was
    loaded into; ``(None, engine)`` when none does (the job starts from step 0).

    ``rebuild()`` makes a fresh engine: a load that fails part-way may have changed some of the
    engine's weights or optimizer state, so the next try (or step 0) starts from a fresh one.
    Every rank tries the same tags in the same order and moves on together when any rank fails.
    """
    for tag in resume_tags(resume):
        src = join(resume, tag)
        state, why, touched = _load_tag(engine, src)
        ok, touched = _agreed(state is not None, touched)
        if ok:
            return state, engine
        log.warning(
            "resume state %s cannot be used (%s); trying the one before", without_query(src), why or "another rank"
        )
        if touched:
            engine = rebuild()
    return None, engine


def _load_tag(engine: DeepSpeedEngine, src: str) -> tuple[dict[str, Any] | None, str | None, bool]:
    """Load the resume state at ``src`` into ``engine``: tsweep's loop state (None if it failed),
    why it failed, and whether the engine was touched (a load began)."""
    state, why, touched = None, None, False
    try:
        with verified_dir(src) as local:
            touched = True
            # a folder named by its tag, wherever it lies: DeepSpeed reads {load_dir}/{tag}/
            with weights_only(engine):
                path, client = engine.load_checkpoint(
                    os.path.dirname(local), tag=os.path.basename(local), load_module_strict=True
                )
            if path is None or not client or "tsweep_state" not in client:
                raise CorruptCheckpointError(f"{without_query(src)}: DeepSpeed found no checkpoint in it")
            state = client["tsweep_state"]
    except Exception as exc:
        why = f"{type(exc).__name__}: {' '.join(str(exc).split())[:300]}"
    return state, why, touched


def _agreed(ok: bool, touched: bool) -> tuple[bool, bool]:
    """Whether every rank loaded, and whether any touched its engine: every rank moves on
    together, and rebuilds together (this rank's own answer when it is alone)."""
    import torch

    if not (torch.distributed.is_initialized() and torch.distributed.get_world_size() > 1):
        return ok, touched
    flags = torch.tensor([0 if ok else 1, 1 if touched else 0])
    torch.distributed.all_reduce(flags, op=torch.distributed.ReduceOp.MAX)
    return not flags[0].item(), bool(flags[1].item())


# DeepSpeed's records inside ZeRO optimizer states (found with torch.serialization.
# get_unsafe_globals_in_checkpoint on ZeRO 1-3, fp32 and bf16 checkpoints of DeepSpeed 0.19):
# plain data classes and an enum, nothing that runs code when rebuilt.
_DEEPSPEED_GLOBALS = (
    ("deepspeed.runtime.fp16.loss_scaler", "LossScaler"),
    ("deepspeed.runtime.zero.config", "ZeroStageEnum"),
    ("deepspeed.utils.tensor_fragment", "fragment_address"),
)


def safe_torch_load(path: str, map_location: Any = None) -> Any:
    """``torch.load`` that unpickles tensors, containers, numbers and the allowlisted DeepSpeed
    records only (``weights_only=True``): a checkpoint carrying any other object fails to load."""
    import importlib

    import torch

    allowed = [getattr(importlib.import_module(m), n) for m, n in _DEEPSPEED_GLOBALS]
    with torch.serialization.safe_globals(allowed):
        return torch.load(path, map_location=map_location, weights_only=True)


@contextmanager
def weights_only(engine: DeepSpeedEngine) -> Iterator[None]:
    """Route DeepSpeed's checkpoint reads through :func:`safe_torch_load`. DeepSpeed 0.19 reads
    every file of ``engine.load_checkpoint`` (module, ZeRO optimizer shards, client state)
    through ``engine.checkpoint_engine.load``, whose torch engine calls ``torch.load(...,
    weights_only=False)``."""
    ce = engine.checkpoint_engine
    ce.load = safe_torch_load
    try:
        yield
    finally:
        del ce.load


# ------------------------------------------------------------------ attempts
def next_attempt(job: Job) -> int:
    """Count starts of a job (0 for the first); the counter lives beside its checkpoints. A
    counter that does not parse (a torn write) counts as 0 again, with a warning."""
    files = Files(job.attempts_file)
    text = files.read_text(job.attempts_file).strip() if files.exists(job.attempts_file) else "0"
    if not text.isdigit():
        log.warning("%s: attempts counter %r does not parse; counting from 0", job.label, text[:20])
        text = "0"
    n = int(text)
    files.write_text(job.attempts_file, str(n + 1))
    return n


# ------------------------------------------------------------------ p-checkpoint weights
def _full_state_dict(engine: DeepSpeedEngine) -> dict[str, torch.Tensor] | None:
    """Full fp32 weights on the CPU; a collective under ZeRO-3 (sharded weights), after which
    only rank 0 holds them (the others get None)."""
    if engine.zero_optimization_partition_weights():
        state = engine._zero3_consolidated_16bit_state_dict()
    else:
        state = engine.module.state_dict()
    if state is None:
        return None
    return {k: (v.float() if v.is_floating_point() else v).detach().cpu().contiguous() for k, v in state.items()}


def save_weights(engine: DeepSpeedEngine, dest: str, lead: bool) -> None:
    """The model at ``dest`` as a transformers folder (``save_pretrained``), published whole."""
    state = _full_state_dict(engine)  # every rank joins the gather
    if not lead:
        return
    with writing_dir(dest) as tmp:
        engine.module.save_pretrained(tmp, state_dict=state, safe_serialization=True)


def load_weights(model: torch.nn.Module, src: str) -> None:
    """Load a p-checkpoint written by :func:`save_weights` (safetensors: no code is unpickled),
    every byte checked against its manifest first."""
    from safetensors.torch import load_file

    with verified_dir(src) as local:
        model.load_state_dict(load_file(f"{local}/{WEIGHTS_FILE}"), strict=False)
