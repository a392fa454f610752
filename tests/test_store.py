"""The Arrow store: typed rows, atomic shards, one summary per job, damaged shards set aside."""

import glob
import os

import pyarrow.dataset as ds
import pytest

from tsweep.core.store import EVAL_SCHEMA, SCHEMA_VERSION, SUMMARY_SCHEMA, Store


def _key(job_id="j1", attempt=0):
    return dict(schema_version=SCHEMA_VERSION, sweep="s", job_id=job_id, kind="finetune", source="prose",
                target="python", size="nano", n_params=25472, data_tokens=16000, pretrain_tokens=250000, attempt=attempt)


def _evals(job_id, steps):
    return [{**_key(job_id), "step": s, "tokens_seen": s * 1024, "epoch": s / 10, "train_loss": 3.0,
             "eval_loss": 4.0 - s / 100, "wall_time_s": float(s)} for s in steps]


def _summary(job_id, status="ok", loss=3.5):
    return {**_key(job_id), "status": status, "reason": None, "best_eval_loss": loss, "best_step": 10,
            "best_tokens": 10240, "tokens_seen": 20480, "data_chars": 16000, "epochs": 1.2, "wall_time_s": 3.0,
            "flops": 1e9}


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
    with pytest.raises(Exception):
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


def test_truncated_shard_is_quarantined_and_job_unfinished(tmp_path):
    st = Store(str(tmp_path))
    st.write_evals("j", _evals("j", [0, 10]))
    st.write_summary(_summary("j"))
    st.write_summary(_summary("k"))
    shard = glob.glob(str(tmp_path / "eval" / "j" / "*.parquet"))[0]
    with open(shard, "r+b") as f:
        f.truncate(os.path.getsize(shard) // 2)
    assert st.finished_job_ids() == {"k"}
    assert st.read_evals().num_rows == 0
    assert len(st.quarantined()) == 1
    st.start_fresh("j")  # the job's re-run claims its quarantine entries
    assert st.quarantined() == []

    summ = tmp_path / "summary" / "k.parquet"
    summ.write_bytes(summ.read_bytes()[:20])
    assert "k" not in st.finished_job_ids()
    assert st.read_summaries().column("job_id").to_pylist() == ["j"]
