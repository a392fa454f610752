"""The Arrow store: every evaluation and every finished job, as typed rows with one versioned schema.

Layout under a sweep's folder (``{storage_root}/{sweep_name}/store``)::

    eval/{job_id}/{first_step:010d}-{last_step:010d}.parquet   eval points, flushed at each checkpoint
    summary/{job_id}.parquet                                   one row when a job ends
    quarantine/{eval|summary}/...                              shards the driver set aside as unreadable

Why this shape:
- Append-only shards, each written to a temporary name and renamed into place (one PUT on an
  object store), so a reader (``pyarrow.dataset`` or :func:`Store.read_evals`) never sees half a
  file and a crash leaves at most a stray hidden ``.tmp``.
- A job's eval rows are flushed together with its checkpoint, so after a resume from that
  checkpoint the rows before it are on disk exactly once and the rows after it are re-created:
  no duplicates and nothing lost.
- One summary file per job id: a job re-run after a failure overwrites its own summary, so the
  store holds exactly one summary row per job by construction. A job is *done* when its summary
  exists with a final status; this is what resume skips.
- Paths may be local or any URI pyarrow's filesystems understand (``s3://``, ``gs://``), so a
  store on shared storage works from the head, the workers and a laptop alike.

Reading is read-only and tells damage from weather. Each shard's bytes are fetched through
:class:`tsweep.core.files.Files`, which retries transient I/O (throttling, a dropped
connection) and never takes it for damage; the bytes are then parsed in memory, so a parse
failure can only mean the file itself is malformed (truncated, emptied, not Parquet). Such a
shard is left out of what a reader returns and listed in :attr:`Store.unreadable`; only the
driver, through :meth:`Store.check` with ``set_aside=True``, moves it under ``quarantine/``
(and its job then re-runs). ``status``, ``gaps`` and the analysis actor change nothing.

The schema version is a gate: a shard written under a version this tsweep does not read (a later
one, :data:`READABLE_VERSIONS`), a file that is not a tsweep shard, or one that lacks a
non-nullable column (or holds one of another type) is a one-line :class:`StoreError` naming the
file, never rows read back as nulls. Nullable columns a shard lacks read back as null: that is how
a later version adds one (version 2's replicate columns read back as null from version 1).

Ray-free: workers, the analysis code and tests call it with no cluster.
"""

from __future__ import annotations

import datetime as _dt
import logging
import os
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.fs as pafs
import pyarrow.parquet as pq

from tsweep.core.errors import StoreError
from tsweep.core.files import Files
from tsweep.core.paths import join, without_query

log = logging.getLogger(__name__)

# The version every shard is written under. Bump it when a column is removed, renamed or changes
# type or meaning, or when rows an older tsweep would misread appear; a new nullable column alone
# needs no bump (old shards read it back as null).
# 1: the first.
# 2: seed, replicate and lineage: a store may hold several runs of one cell (replicates), which
#    a version-1 reader would take for separate points of the grid.
SCHEMA_VERSION = 2
# The versions this tsweep reads: a version-1 shard has no replicate columns, and reads back with
# a null seed (not recorded) and null replicate and lineage, which mean 0: a run of the grid.
READABLE_VERSIONS = (1, 2)

_KEY_FIELDS = [
    pa.field("schema_version", pa.int16(), nullable=False),
    pa.field("sweep", pa.string(), nullable=False),
    pa.field("job_id", pa.string(), nullable=False),
    pa.field("kind", pa.string(), nullable=False),  # pretrain | finetune | scratch
    pa.field("source", pa.string(), nullable=False),  # pre-training source; "scratch" for scratch jobs
    pa.field("target", pa.string(), nullable=False),
    pa.field("size", pa.string(), nullable=False),  # size-ladder name
    pa.field("n_params", pa.int64(), nullable=False),  # non-embedding parameters N
    # D_F for a fine-tune, D for a scratch run, the pre-training budget for a pre-train job.
    pa.field("data_tokens", pa.int64(), nullable=False),
    # Barnett's p: pre-training tokens behind the starting checkpoint (0 for scratch and pretrain).
    pa.field("pretrain_tokens", pa.int64(), nullable=False),
    pa.field("attempt", pa.int32(), nullable=False),
    # version 2, null in version-1 shards: the job's seed (initialisation and data order), its
    # replicate index (0 a run of the grid, r >= 1 the r-th re-run of its cell with another seed)
    # and the replicate index of the pre-training run behind it (two fine-tunes of one cell and
    # one lineage start from the same checkpoint); null replicate and lineage mean 0
    pa.field("seed", pa.int64()),
    pa.field("replicate", pa.int32()),
    pa.field("lineage", pa.int32()),
]

EVAL_SCHEMA = pa.schema(
    [
        *_KEY_FIELDS,
        pa.field("step", pa.int64(), nullable=False),
        pa.field("tokens_seen", pa.int64(), nullable=False),
        pa.field("epoch", pa.float64(), nullable=False),
        pa.field("train_loss", pa.float64()),
        pa.field("eval_loss", pa.float64(), nullable=False),
        pa.field("wall_time_s", pa.float64(), nullable=False),
    ],
    metadata={b"tsweep.schema_version": str(SCHEMA_VERSION).encode(), b"tsweep.table": b"eval"},
)

SUMMARY_SCHEMA = pa.schema(
    [
        *_KEY_FIELDS,
        pa.field("status", pa.string(), nullable=False),  # ok | diverged | unconverged
        pa.field("reason", pa.string()),
        pa.field("best_eval_loss", pa.float64()),
        pa.field("best_step", pa.int64()),
        pa.field("best_tokens", pa.int64()),  # tokens seen at the best (early-stopped) eval
        pa.field("tokens_seen", pa.int64(), nullable=False),
        pa.field("data_chars", pa.int64()),  # characters behind data_tokens (Hernandez counts characters)
        pa.field("epochs", pa.float64()),
        pa.field("wall_time_s", pa.float64(), nullable=False),
        # thread-seconds: wall time weighted by the torch threads the job trained on, its own CPUs
        # plus the idle ones lent to it (tsweep.workers.threads); null in shards written before it
        pa.field("core_seconds", pa.float64()),
        # training FLOPs: ModelSize.flops_per_token (6 N plus attention; Kaplan 2020, table 1) * tokens_seen
        pa.field("flops", pa.float64(), nullable=False),
        pa.field("finished_at", pa.timestamp("ms", tz="UTC"), nullable=False),
    ],
    metadata={b"tsweep.schema_version": str(SCHEMA_VERSION).encode(), b"tsweep.table": b"summary"},
)

# Statuses that end a job for good: resume skips them. A job id fixes its seed, data and recipe, so a
# diverged run would diverge again and an unconverged one would reach its epoch cap again.
FINAL_STATUSES = frozenset({"ok", "diverged", "unconverged"})


def conform(table: pa.Table, schema: pa.Schema, where: str) -> pa.Table:
    """``table`` (a whole shard) as ``schema``, or a one-line :class:`StoreError` naming ``where``
    when it is not a shard of this kind, is of a schema version this tsweep does not read, or
    lacks a column that cannot be null (or holds one of another type, or nulls in it). Columns
    that came after the shard's version read back as null."""
    version = _check_version(table, schema, where)
    index = {name: i for i, name in enumerate(table.column_names)}
    columns = [_column(table, index, f, where) for f in schema]
    versions = pc.unique(table.column("schema_version")).to_pylist()
    if any(v not in READABLE_VERSIONS or v > version for v in versions):
        raise StoreError(
            f"{where}: rows of store schema version {versions} in a version-{version} shard; "
            f"this tsweep reads versions {_versions()}"
        )
    return pa.Table.from_arrays(columns, schema=schema)


def _versions() -> str:
    return " and ".join(str(v) for v in READABLE_VERSIONS)


def _check_version(table: pa.Table, schema: pa.Schema, where: str) -> int:
    """The schema version ``table``'s metadata says it was written under; a :class:`StoreError`
    unless it is a shard of ``schema``'s kind and of a version in :data:`READABLE_VERSIONS`."""
    meta = table.schema.metadata or {}
    kind = schema.metadata[b"tsweep.table"].decode()
    version = meta.get(b"tsweep.schema_version")
    if version is None or meta.get(b"tsweep.table", b"").decode() != kind:
        raise StoreError(
            f"{where}: not a tsweep {kind} shard (no tsweep schema in its metadata); move it out of the store"
        )
    readable = {str(v).encode(): v for v in READABLE_VERSIONS}
    if version not in readable:
        raise StoreError(
            f"{where}: written under store schema version {version.decode(errors='replace')!r}; this "
            f"tsweep reads versions {_versions()}: read it with the tsweep that wrote it"
        )
    return readable[version]


def _column(table: pa.Table, index: dict[str, int], f: pa.Field, where: str) -> pa.ChunkedArray | pa.Array:
    """Column ``f`` of ``table`` (``index``: its columns' positions by name): nulls if it lacks
    a nullable one, a :class:`StoreError` if it lacks a non-nullable one or holds it with another
    type or with nulls where none may be."""
    if f.name not in index:
        if not f.nullable:
            raise StoreError(f"{where}: column {f.name!r} is missing and cannot be null")
        return pa.nulls(table.num_rows, f.type)
    col = table.column(index[f.name])
    if not col.type.equals(f.type):
        raise StoreError(f"{where}: column {f.name!r} is {col.type}, expected {f.type}")
    if not f.nullable and col.null_count:
        raise StoreError(f"{where}: column {f.name!r} holds nulls but cannot be null")
    return col


@dataclass(frozen=True)
class StoreCheck:
    """What :meth:`Store.check` found by reading every shard."""

    summaries: pa.Table
    finished: set[str]  # a final summary and every shard readable: resume skips these
    damaged: set[str]  # a shard unreadable, or set aside and not yet replaced: resume re-runs these
    unreadable: list[str]  # shards that do not parse, still in place
    quarantined: list[str]  # shards set aside under quarantine/
    evals: pa.Table | None = None  # every readable eval row (read for the check anyway)


@dataclass
class Store:
    """The store of one sweep, rooted at ``root`` (a local path or a filesystem URI)."""

    root: str
    # shard path -> why it cannot be read; filled by reads, set aside only by check(set_aside=True)
    unreadable: dict[str, str] = field(default_factory=dict, compare=False)

    @property
    def files(self) -> Files:
        return Files(self.root)

    def _path(self, *parts: str) -> str:
        return join(self.root, *parts)

    # ---------------------------------------------------------------- writing
    # Rows are records of EVAL_SCHEMA's or SUMMARY_SCHEMA's columns, typed by the schema itself:
    # pyarrow checks every value against its column as the shard is built.
    def write_evals(self, job_id: str, rows: Sequence[Mapping[str, Any]]) -> str | None:
        """Write one shard of eval rows for ``job_id``; the name covers its step range.

        Writing the same step range twice (a retry that redoes the same evaluations)
        replaces the shard, so retries are idempotent.
        """
        if not rows:
            return None
        steps = [int(r["step"]) for r in rows]
        name = f"{min(steps):010d}-{max(steps):010d}.parquet"
        return self._write(self._path("eval", job_id, name), pa.Table.from_pylist(list(rows), schema=EVAL_SCHEMA))

    def drop_evals_after(self, job_id: str, step: int) -> int:
        """Remove eval shards that start after ``step``: used when a job resumes from a checkpoint
        at ``step``, so rows written after that checkpoint (and about to be redone) never double."""
        removed = 0
        for info in self._list(self._path("eval", job_id)):
            first = _first_step(info.base_name)
            if first is not None and first > step:
                self.files.delete_file(self._uri(info.path))
                removed += 1
        return removed

    def write_summary(self, row: Mapping[str, Any]) -> str:
        """Write (or replace) the one summary row of a job."""
        row = dict(row)
        row.setdefault("finished_at", _dt.datetime.now(_dt.timezone.utc))
        table = pa.Table.from_pylist([row], schema=SUMMARY_SCHEMA)
        return self._write(self._path("summary", f"{row['job_id']}.parquet"), table)

    def _write(self, path: str, table: pa.Table) -> str:
        sink = pa.BufferOutputStream()
        pq.write_table(table, sink)
        # Files writes a hidden temporary name then renames (one PUT remotely): pyarrow.dataset
        # discovery (ignore_prefixes) never picks up a half-written file.
        self.files.write_bytes(path, sink.getvalue().to_pybytes())
        return path

    # ---------------------------------------------------------------- reading
    def _uri(self, fs_path: str) -> str:
        """A path from a listing, as a path or URI under this store's root (its query kept)."""
        base = self.files.fs_path(self.root)
        return join(self.root, os.path.relpath(fs_path, base))

    def _list(self, path: str) -> list[pafs.FileInfo]:
        return [
            i
            for i in self.files.list_files(path)
            if i.base_name.endswith(".parquet") and not i.base_name.startswith(".")
        ]

    def _read_shard(self, path: str, schema: pa.Schema) -> pa.Table | None:
        """One shard, conformed to ``schema``; None if it vanished or does not parse."""
        try:
            data = self.files.read_bytes(path)  # transient errors are retried in there
        except FileNotFoundError:  # replaced or dropped between the listing and the read
            return None
        try:
            # one file: ParquetFile, not read_table's dataset discovery (2.5x the time on the
            # demo's 829 shards, the same table)
            table = pq.ParquetFile(pa.BufferReader(data)).read()
        except (pa.ArrowException, ValueError) as exc:  # the bytes are all here: the file is malformed
            self.unreadable[path] = " ".join(str(exc).split())[:200] or type(exc).__name__
            log.warning("store: unreadable shard %s (%s)", without_query(path), self.unreadable[path])
            return None
        return conform(table, schema, without_query(path))

    def _read_all(self, path: str, schema: pa.Schema) -> pa.Table:
        tables = [t for info in self._list(path) if (t := self._read_shard(self._uri(info.path), schema)) is not None]
        return pa.concat_tables(tables) if tables else schema.empty_table()

    def read_evals(self, job_ids: Iterable[str] | None = None) -> pa.Table:
        if job_ids is None:
            return self._read_all(self._path("eval"), EVAL_SCHEMA)
        parts = [self._read_all(self._path("eval", j), EVAL_SCHEMA) for j in job_ids]
        return pa.concat_tables(parts) if parts else EVAL_SCHEMA.empty_table()

    def read_summaries(self) -> pa.Table:
        return self._read_all(self._path("summary"), SUMMARY_SCHEMA)

    def check(self, *, set_aside: bool = False) -> StoreCheck:
        """Read every shard (eval shards too, so that a truncated one is found): which jobs are
        finished and which are damaged. ``set_aside`` (the driver, before it plans what to run)
        moves unreadable shards under ``quarantine/``; without it nothing changes."""
        self.unreadable.clear()
        evals, summaries = self.read_evals(), self.read_summaries()
        if set_aside:
            self._set_aside_unreadable()
        damaged = self.damaged_job_ids()
        return StoreCheck(
            summaries=summaries,
            finished=_finished(summaries, damaged),
            damaged=damaged,
            unreadable=sorted(self.unreadable),
            quarantined=self.quarantined(),
            evals=evals,
        )

    def summary_job_ids(self) -> set[str]:
        """Jobs with a summary shard, from one listing (no shard is read)."""
        return {info.base_name[: -len(".parquet")] for info in self._list(self._path("summary"))}

    def finished_job_ids(self) -> set[str]:
        """Jobs that resume skips (reads every shard; changes nothing)."""
        return self.check().finished

    def _set_aside_unreadable(self) -> None:
        """Move every shard this store's reads found unreadable under ``quarantine/``."""
        for path in sorted(self.unreadable):
            self._quarantine(path)
        self.unreadable.clear()

    def _quarantine(self, path: str) -> None:
        rel = os.path.relpath(self.files.fs_path(path), self.files.fs_path(self.root))
        dest = self._path("quarantine", f"{rel}.{int(time.time())}")
        log.warning("store: setting aside unreadable shard %s as %s", without_query(path), without_query(dest))
        try:
            self.files.move(path, dest)
        except FileNotFoundError:  # replaced or dropped since it was read
            pass

    def damaged_job_ids(self) -> set[str]:
        """Jobs with a shard that does not parse: still in place (found by this store's reads) or
        set aside under quarantine/ and not yet replaced by a later run of the job."""
        out = {
            job for path in self.unreadable if (job := _job_of(self.files.fs_path(path), self.files.fs_path(self.root)))
        }
        qroot = self.files.fs_path(self._path("quarantine"))
        for info in self.files.list_files(self._path("quarantine")):
            job = _job_of(info.path, qroot)
            if job:
                out.add(job)
        return out

    def start_fresh(self, job_id: str) -> None:
        """A job starting from step 0: drop its old eval shards and its quarantine entries."""
        for sub in (("eval", job_id), ("quarantine", "eval", job_id)):
            self.files.delete_dir(self._path(*sub))
        for info in self.files.list_files(self._path("quarantine", "summary")):
            if info.base_name.startswith(f"{job_id}.parquet"):
                self.files.delete_file(self._uri(info.path))

    def quarantined(self) -> list[str]:
        """Paths of shards set aside as unreadable."""
        return [self._uri(i.path) for i in self.files.list_files(self._path("quarantine"))]


def _finished(summaries: pa.Table, damaged: set[str]) -> set[str]:
    """Jobs whose summary has a final status and none of whose shards is damaged."""
    job_ids = summaries.column("job_id").to_pylist()
    statuses = summaries.column("status").to_pylist()
    return {j for j, s in zip(job_ids, statuses, strict=True) if s in FINAL_STATUSES and j not in damaged}


def _first_step(name: str) -> int | None:
    """The first step an eval shard's name covers; None for a file tsweep did not name."""
    head = name.split("-")[0]
    return int(head) if head.isdigit() else None


def _job_of(path: str, base: str) -> str | None:
    """The job an (eval or summary) shard path under ``base`` belongs to; None for a stray file."""
    rel = os.path.relpath(path, base).split(os.sep)
    if len(rel) == 3 and rel[0] == "eval":
        return rel[1]
    if len(rel) == 2 and rel[0] == "summary" and ".parquet" in rel[1]:
        return rel[1].split(".parquet")[0]
    return None
