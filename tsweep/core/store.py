"""The Arrow store: every evaluation and every finished job, as typed rows with one versioned schema.

Layout under a sweep's folder (``{storage_root}/{sweep_name}/store``)::

    eval/{job_id}/{first_step:010d}-{last_step:010d}.parquet   eval points, flushed at each checkpoint
    summary/{job_id}.parquet                                   one row when a job ends
    quarantine/...                                             shards that failed to read, set aside

Why this shape:
- Append-only shards, each written to a temporary name and renamed into place, so a reader
  (``pyarrow.dataset`` or :func:`read_evals`) never sees half a file and a crash leaves at most a
  stray ``.tmp``.
- A job's eval rows are flushed together with its checkpoint, so after a resume from that
  checkpoint the rows before it are on disk exactly once and the rows after it are re-created:
  no duplicates and nothing lost.
- One summary file per job id: a job re-run after a failure overwrites its own summary, so the
  store holds exactly one summary row per job by construction. A job is *done* when its summary
  exists with a final status; this is what resume skips.
- Paths may be local or any URI pyarrow's filesystems understand (``s3://``, ``gs://``), so a
  store on shared storage works from the head, the workers and a laptop alike.

Every byte goes through the sweep's :class:`tsweep.core.layout.Files`. Ray-free: workers, the
analysis code and tests call it with no cluster.
"""

from __future__ import annotations

import logging
import os
import time
import uuid
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

import pyarrow as pa
import pyarrow.fs as pafs
import pyarrow.parquet as pq

from tsweep.core.layout import Files

log = logging.getLogger(__name__)

SCHEMA_VERSION = 1

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
]

EVAL_SCHEMA = pa.schema(
    _KEY_FIELDS
    + [
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
    _KEY_FIELDS
    + [
        pa.field("status", pa.string(), nullable=False),  # ok | diverged | failed
        pa.field("reason", pa.string()),
        pa.field("best_eval_loss", pa.float64()),
        pa.field("best_step", pa.int64()),
        pa.field("best_tokens", pa.int64()),  # tokens seen at the best (early-stopped) eval
        pa.field("tokens_seen", pa.int64(), nullable=False),
        pa.field("data_chars", pa.int64()),  # characters behind data_tokens (Hernandez counts characters)
        pa.field("epochs", pa.float64()),
        pa.field("wall_time_s", pa.float64(), nullable=False),
        pa.field("flops", pa.float64(), nullable=False),  # 6 * N * tokens_seen (Kaplan 2020, eq. 2.1)
        pa.field("finished_at", pa.timestamp("ms", tz="UTC"), nullable=False),
    ],
    metadata={b"tsweep.schema_version": str(SCHEMA_VERSION).encode(), b"tsweep.table": b"summary"},
)

# Statuses that end a job for good: resume skips them. A diverged run would diverge again.
FINAL_STATUSES = frozenset({"ok", "diverged", "unconverged"})


@dataclass(frozen=True)
class Store:
    """The store of one sweep, rooted at ``root`` (a local path or a filesystem URI)."""

    root: str

    @property
    def _fs(self) -> tuple[pafs.FileSystem, str]:
        files = Files(self.root)
        return files.fs, files.fs_path(self.root)

    # ---------------------------------------------------------------- writing
    def write_evals(self, job_id: str, rows: list[Mapping]) -> str | None:
        """Write one shard of eval rows for ``job_id``; the name covers its step range.

        Writing the same step range twice (a retry that redoes the same evaluations)
        replaces the shard, so retries are idempotent.
        """
        if not rows:
            return None
        steps = [int(r["step"]) for r in rows]
        name = f"eval/{job_id}/{min(steps):010d}-{max(steps):010d}.parquet"
        return self._write(name, pa.Table.from_pylist(list(rows), schema=EVAL_SCHEMA))

    def drop_evals_after(self, job_id: str, step: int) -> int:
        """Remove eval shards that start after ``step``: used when a job resumes from a checkpoint
        at ``step``, so rows written after that checkpoint (and about to be redone) never double."""
        fs, base = self._fs
        removed = 0
        for info in self._list(f"eval/{job_id}"):
            first = int(os.path.basename(info.path).split("-")[0])
            if first > step:
                fs.delete_file(info.path)
                removed += 1
        return removed

    def write_summary(self, row: Mapping) -> str:
        """Write (or replace) the one summary row of a job."""
        row = dict(row)
        row.setdefault("finished_at", _now_ms())
        table = pa.Table.from_pylist([row], schema=SUMMARY_SCHEMA)
        return self._write(f"summary/{row['job_id']}.parquet", table)

    def _write(self, name: str, table: pa.Table) -> str:
        fs, base = self._fs
        path = f"{base}/{name}"
        fs.create_dir(os.path.dirname(path), recursive=True)
        if isinstance(fs, pafs.LocalFileSystem):
            # A leading "." keeps pyarrow.dataset discovery (ignore_prefixes) off half-written files.
            tmp = f"{os.path.dirname(path)}/.{os.path.basename(path)}.{uuid.uuid4().hex[:8]}.tmp"
            pq.write_table(table, tmp, filesystem=fs)
            fs.move(tmp, path)  # atomic rename on POSIX
        else:  # object stores: a PUT is atomic already
            pq.write_table(table, path, filesystem=fs)
        return path

    # ---------------------------------------------------------------- reading
    def _list(self, sub: str) -> list[pafs.FileInfo]:
        fs, base = self._fs
        sel = pafs.FileSelector(f"{base}/{sub}", allow_not_found=True, recursive=True)
        return sorted(
            (i for i in fs.get_file_info(sel) if i.type == pafs.FileType.File and i.path.endswith(".parquet")),
            key=lambda i: i.path,
        )

    def _read_all(self, sub: str, schema: pa.Schema) -> pa.Table:
        fs, base = self._fs
        tables = []
        for info in self._list(sub):
            try:
                t = pq.read_table(info.path, filesystem=fs, schema=schema)
            except Exception as exc:  # truncated or foreign file: set it aside, never crash a reader
                self._quarantine(info.path, exc)
                continue
            tables.append(t)
        if not tables:
            return schema.empty_table()
        return pa.concat_tables(tables)

    def _quarantine(self, path: str, exc: Exception) -> None:
        fs, base = self._fs
        rel = os.path.relpath(path, base)
        dest = f"{base}/quarantine/{rel}.{int(time.time())}"
        log.warning("store: unreadable shard %s (%s); moved to %s", path, exc, dest)
        try:
            fs.create_dir(os.path.dirname(dest), recursive=True)
            fs.move(path, dest)
        except Exception:  # another reader moved it first
            pass

    def read_evals(self, job_ids: Iterable[str] | None = None) -> pa.Table:
        if job_ids is None:
            return self._read_all("eval", EVAL_SCHEMA)
        parts = [self._read_all(f"eval/{j}", EVAL_SCHEMA) for j in job_ids]
        return pa.concat_tables(parts) if parts else EVAL_SCHEMA.empty_table()

    def read_summaries(self) -> pa.Table:
        return self._read_all("summary", SUMMARY_SCHEMA)

    def finished_job_ids(self, *, verify_evals: bool = True) -> set[str]:
        """Jobs whose summary carries a final status and whose shards all read back: resume skips these.

        With ``verify_evals`` every eval shard is read, so a truncated one is found, set aside,
        and its job counted as unfinished (it re-runs and rewrites its rows)."""
        if verify_evals:
            self.read_evals()
        t = self.read_summaries()
        damaged = self.damaged_job_ids()
        return {
            j
            for j, s in zip(t.column("job_id").to_pylist(), t.column("status").to_pylist())
            if s in FINAL_STATUSES and j not in damaged
        }

    def damaged_job_ids(self) -> set[str]:
        """Jobs with a shard in quarantine that no later run of the job has replaced."""
        fs, base = self._fs
        out = set()
        for path in self.quarantined():
            rel = os.path.relpath(path, f"{base}/quarantine").split(os.sep)
            out.add(rel[1] if rel[0] == "eval" else rel[1].split(".")[0])
        return out

    def start_fresh(self, job_id: str) -> None:
        """A job starting from step 0: drop its old eval shards and its quarantine entries."""
        fs, base = self._fs
        for sub in (f"eval/{job_id}", f"quarantine/eval/{job_id}"):
            fs.delete_dir_contents(f"{base}/{sub}", missing_dir_ok=True)
        for path in self.quarantined():
            if os.path.basename(path).startswith(f"{job_id}.parquet"):
                fs.delete_file(path)

    def quarantined(self) -> list[str]:
        """Paths of shards set aside as unreadable."""
        fs, base = self._fs
        sel = pafs.FileSelector(f"{base}/quarantine", allow_not_found=True, recursive=True)
        return sorted(i.path for i in fs.get_file_info(sel) if i.type == pafs.FileType.File)


def _now_ms():
    import datetime as _dt

    return _dt.datetime.now(_dt.timezone.utc)
