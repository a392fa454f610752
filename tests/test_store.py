"""The Arrow store: typed rows, atomic shards, one summary per job, read-only retried reads, a
schema version gate, damaged shards set aside by the driver only."""

import glob
import os

import pyarrow as pa
import pyarrow.dataset as ds
import pyarrow.parquet as pq
import pytest

from tsweep.core.store import EVAL_SCHEMA, SCHEMA_VERSION, SUMMARY_SCHEMA, Store


def _key(job_id="j1", attempt=0):
    return dict(
        schema_version=SCHEMA_VERSION,
        sweep="s",
        job_id=job_id,
        kind="finetune",
        source="prose",
        target="python",
        size="nano",
        n_params=25472,
        data_tokens=16000,
        pretrain_tokens=250000,
        attempt=attempt,
    )


def _evals(job_id, steps):
    return [
        {
            **_key(job_id),
            "step": s,
            "tokens_seen": s * 1024,
            "epoch": s / 10,
            "train_loss": 3.0,
            "eval_loss": 4.0 - s / 100,
            "wall_time_s": float(s),
        }
        for s in steps
    ]


def _summary(job_id, status="ok", loss=3.5):
    return {
        **_key(job_id),
        "status": status,
        "reason": None,
        "best_eval_loss": loss,
        "best_step": 10,
        "best_tokens": 10240,
        "tokens_seen": 20480,
        "data_chars": 16000,
        "epochs": 1.2,
        "wall_time_s": 3.0,
        "flops": 1e9,
    }


def test_rows_round_trip_with_schema(tmp_path):
    st = Store(str(tmp_path / "store"))
    st.write_evals("j1", _evals("j1", [0, 10, 20]))
    st.write_summary(_summary("j1"))
    ev = st.read_evals()
    assert ev.schema.equals(EVAL_SCHEMA, check_metadata=False)
    assert ev.num_rows == 3 and ev.column("step").to_pylist() == [0, 10, 20]
    sm = st.read_summaries()
    assert sm.schema.equals(SUMMARY_SCHEMA, check_metadata=False)
    assert sm.column("best_eval_loss").to_pylist() == [3.5]
    # readable with plain pyarrow.dataset, as a user would while the sweep runs
    assert ds.dataset(str(tmp_path / "store" / "eval"), format="parquet").count_rows() == 3


def test_one_summary_per_job_and_final_statuses(tmp_path):
    st = Store(str(tmp_path))
    st.write_summary(_summary("a", status="failed"))
    st.write_summary(_summary("a", status="ok", loss=3.1))  # the re-run replaces it
    st.write_summary(_summary("b", status="diverged"))
    st.write_summary(_summary("c", status="failed"))
    t = st.read_summaries()
    assert sorted(t.column("job_id").to_pylist()) == ["a", "b", "c"]
    assert st.finished_job_ids() == {"a", "b"}


def test_wrong_rows_are_rejected(tmp_path):
    st = Store(str(tmp_path))
    bad = _summary("x")
    del bad["tokens_seen"]
    with pytest.raises(pa.ArrowInvalid, match="'tokens_seen' is declared non-nullable"):
        st.write_summary(bad)
    assert not glob.glob(str(tmp_path / "**" / "*.parquet"), recursive=True)


def test_no_temporary_files_left(tmp_path):
    st = Store(str(tmp_path))
    st.write_evals("j", _evals("j", [1, 2]))
    assert not glob.glob(str(tmp_path / "**" / "*.tmp"), recursive=True, include_hidden=True)


def test_resume_drops_shards_after_checkpoint(tmp_path):
    st = Store(str(tmp_path))
    st.write_evals("j", _evals("j", [0, 10]))
    st.write_evals("j", _evals("j", [20, 30]))
    st.write_evals("j", _evals("j", [40]))
    assert st.drop_evals_after("j", 30) == 1
    assert st.read_evals().column("step").to_pylist() == [0, 10, 20, 30]
    # the redone range is rewritten under the same name: idempotent
    st.write_evals("j", _evals("j", [40]))
    st.write_evals("j", _evals("j", [40]))
    assert st.read_evals().column("step").to_pylist() == [0, 10, 20, 30, 40]


def _truncate(path, size=None):
    with open(path, "r+b") as f:
        f.truncate(os.path.getsize(path) // 2 if size is None else size)


def _tree(root):
    return sorted(str(p.relative_to(root)) for p in root.rglob("*") if p.is_file())


@pytest.mark.parametrize("size", [None, 0], ids=["truncated", "emptied"])
def test_readers_report_an_unreadable_shard_and_only_the_driver_sets_it_aside(tmp_path, size):
    st = Store(str(tmp_path))
    st.write_evals("j", _evals("j", [0, 10]))
    st.write_summary(_summary("j"))
    st.write_summary(_summary("k"))
    shard = glob.glob(str(tmp_path / "eval" / "j" / "*.parquet"))[0]
    _truncate(shard, size)
    before = _tree(tmp_path)

    reader = Store(str(tmp_path))  # status, gaps, the analysis actor: they read and change nothing
    assert reader.read_evals().num_rows == 0 and reader.unreadable.keys() == {shard}
    check = reader.check()
    assert check.finished == {"k"} and check.damaged == {"j"} and check.unreadable == [shard]
    assert check.quarantined == [] and _tree(tmp_path) == before

    driver = Store(str(tmp_path)).check(set_aside=True)
    assert driver.finished == {"k"} and driver.damaged == {"j"} and len(driver.quarantined) == 1
    assert not os.path.exists(shard)
    st.start_fresh("j")  # the job's re-run claims its quarantine entries
    assert st.quarantined() == [] and st.check().damaged == set()

    summ = tmp_path / "summary" / "k.parquet"
    summ.write_bytes(summ.read_bytes()[:20])
    assert "k" not in st.finished_job_ids()
    assert st.read_summaries().column("job_id").to_pylist() == ["j"]


def test_stray_file_in_quarantine_is_not_a_job(tmp_path):
    st = Store(str(tmp_path))
    st.write_summary(_summary("k"))
    (tmp_path / "quarantine").mkdir()
    (tmp_path / "quarantine" / "notes.txt").write_text("mine")
    (tmp_path / "quarantine" / "summary").mkdir()
    (tmp_path / "quarantine" / "summary" / "README").write_text("mine")
    assert st.damaged_job_ids() == set() and st.finished_job_ids() == {"k"}


class _Flaky:
    """A filesystem that answers the first ``fails`` reads of every shard with S3's throttling error."""

    def __init__(self, fails: int):
        import pyarrow.fs as pafs

        self.inner, self.fails, self.seen = pafs.LocalFileSystem(), fails, {}

    def open_input_stream(self, path):
        n = self.seen[path] = self.seen.get(path, 0) + 1
        if path.endswith(".parquet") and n <= self.fails:
            raise OSError(
                "When reading information for key 'x': AWS Error SLOW_DOWN during GetObject operation: "
                "Please reduce your request rate."
            )
        return self.inner.open_input_stream(path)

    def __getattr__(self, name):
        return getattr(self.inner, name)


@pytest.fixture
def flaky(monkeypatch):
    from tsweep.core import files

    def install(fails):
        fs = _Flaky(fails)
        monkeypatch.setattr(files, "_filesystem", lambda endpoint: fs)
        monkeypatch.setattr(files, "BACKOFF_S", 0.001)
        return fs

    return install


def test_transient_read_errors_are_retried_and_never_set_a_shard_aside(tmp_path, flaky):
    st = Store(str(tmp_path))
    st.write_evals("j", _evals("j", [0, 10]))
    st.write_summary(_summary("j"))
    before = _tree(tmp_path)
    fs = flaky(fails=2)  # two SLOW_DOWNs per shard, then the bytes
    check = Store(str(tmp_path)).check(set_aside=True)
    assert check.finished == {"j"} and check.damaged == set() and check.unreadable == []
    assert _tree(tmp_path) == before and check.quarantined == []
    assert max(fs.seen.values()) == 3


def test_persistent_read_errors_are_one_line_and_change_nothing(tmp_path, flaky):
    from tsweep.core.errors import StorageUnavailable, UsageError

    st = Store(str(tmp_path))
    st.write_summary(_summary("j"))
    before = _tree(tmp_path)
    flaky(fails=100)
    with pytest.raises(StorageUnavailable) as err:
        Store(str(tmp_path)).check(set_aside=True)
    msg = str(err.value)
    assert isinstance(err.value, UsageError) and "\n" not in msg
    assert "k.parquet" not in msg and "j.parquet" in msg and "SLOW_DOWN" in msg and "5 tries" in msg
    assert _tree(tmp_path) == before


def _write_raw(path, table):
    import pyarrow.parquet as pq

    os.makedirs(os.path.dirname(path), exist_ok=True)
    pq.write_table(table, path)


def test_schema_version_gate(tmp_path):
    from tsweep.core.errors import StoreError

    st = Store(str(tmp_path))
    st.write_summary(_summary("j"))
    good = pa.Table.from_pylist(
        [_summary("k") | {"finished_at": None}],
        schema=SUMMARY_SCHEMA.remove(SUMMARY_SCHEMA.get_field_index("finished_at")),
    )
    path = str(tmp_path / "summary" / "k.parquet")

    # a column that cannot be null is missing: an error naming it, not nulls
    _write_raw(path, good.replace_schema_metadata(SUMMARY_SCHEMA.metadata))
    with pytest.raises(StoreError, match="column 'finished_at' is missing"):
        st.read_summaries()

    # another schema version
    full = pa.Table.from_pylist([_summary("k") | {"finished_at": 0}], schema=SUMMARY_SCHEMA)
    _write_raw(path, full.replace_schema_metadata({**SUMMARY_SCHEMA.metadata, b"tsweep.schema_version": b"3"}))
    with pytest.raises(StoreError, match="store schema version '3'; this tsweep reads versions 1 and 2"):
        st.read_summaries()

    # not a tsweep shard at all
    _write_raw(path, pa.table({"job_id": ["k"]}))
    with pytest.raises(StoreError, match="not a tsweep summary shard"):
        Store(str(tmp_path)).check()

    # a nullable column missing reads back as null: how a later version may add one
    _write_raw(path, full.drop_columns(["reason"]).replace_schema_metadata(SUMMARY_SCHEMA.metadata))
    t = st.read_summaries()
    assert sorted(t.column("job_id").to_pylist()) == ["j", "k"] and t.column("reason").to_pylist() == [None, None]

    # a wrong type is named too
    bad = full.set_column(full.schema.get_field_index("flops"), "flops", pa.array(["lots"]))
    _write_raw(path, bad.replace_schema_metadata(SUMMARY_SCHEMA.metadata))
    with pytest.raises(StoreError, match="column 'flops' is string, expected double"):
        st.read_summaries()


def test_a_version_1_store_still_reads_and_its_runs_are_runs_of_the_grid(tmp_path):
    """The demo's results as tsweep wrote them before replicates (store schema version 1, no
    seed, replicate or lineage column) read back whole, those columns null (a run of the grid);
    a version-1 shard whose rows claim a later version is refused."""
    from pathlib import Path

    from tsweep.core.errors import StoreError

    old = pq.read_table(Path(__file__).parent / "data" / "demo" / "summary.parquet")
    assert old.schema.metadata[b"tsweep.schema_version"] == b"1" and "replicate" not in old.column_names
    st = Store(str(tmp_path))
    for i in range(old.num_rows):
        _write_raw(str(tmp_path / "summary" / f"{i}.parquet"), old.slice(i, 1))
    t = st.read_summaries()
    assert t.num_rows == old.num_rows and not st.unreadable
    losses = dict(zip(old.column("job_id").to_pylist(), old.column("best_eval_loss").to_pylist(), strict=True))
    assert dict(zip(t.column("job_id").to_pylist(), t.column("best_eval_loss").to_pylist(), strict=True)) == losses
    for name in ("seed", "replicate", "lineage"):
        assert t.column(name).null_count == t.num_rows, name
    st.write_summary(_summary("new") | {"seed": 7, "replicate": 1, "lineage": 0})
    row = next(r for r in st.read_summaries().to_pylist() if r["job_id"] == "new")
    assert (row["schema_version"], row["seed"], row["replicate"], row["lineage"]) == (SCHEMA_VERSION, 7, 1, 0)
    lying = old.slice(0, 1).set_column(0, "schema_version", pa.array([2], pa.int16()))
    _write_raw(str(tmp_path / "summary" / "0.parquet"), lying.replace_schema_metadata(old.schema.metadata))
    with pytest.raises(StoreError, match="rows of store schema version \\[2\\] in a version-1 shard"):
        st.read_summaries()
