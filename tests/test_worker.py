"""One job's training, with no cluster: rows land in the store; a killed worker resumes exactly."""

import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from tsweep.core.layout import SweepLayout
from tsweep.orchestrator.plan import expand
from tsweep.core.store import Store
from tsweep.sweeps.schema import load_sweep, parse_sweep
from tsweep.core.cadence import eval_steps
from tsweep.workers.runner import run_job

TINY = Path(__file__).parent / "data" / "tiny.yaml"


@pytest.fixture(scope="module")
def sweep():
    return load_sweep(TINY)


def _job(sweep, kind, root, i=0):
    """The i-th job of ``kind``, planned into the sweep folder ``root``."""
    return [j for j in expand(sweep, SweepLayout(str(root))).jobs if j.kind == kind][i]


def test_scratch_job_writes_evals_and_summary(sweep, tmp_path):
    job = _job(sweep, "scratch", tmp_path)
    reports = []
    summary = run_job(job, sweep, str(tmp_path), report=reports.append)
    assert summary["status"] == "ok"
    store = Store(SweepLayout(str(tmp_path)).store_root)
    ev = store.read_evals().to_pylist()
    steps = [r["step"] for r in ev]
    assert steps == sorted(set(steps)) and steps[0] == 0
    assert len(ev) == sum(not r.done for r in reports)
    assert min(r["eval_loss"] for r in ev) == pytest.approx(summary["best_eval_loss"])
    assert ev[-1]["eval_loss"] < ev[0]["eval_loss"]  # it learned something
    assert store.finished_job_ids() == {job.job_id}
    seq = sweep.train.seq_len
    assert summary["epochs"] == pytest.approx(summary["tokens_seen"] / (-(-job.data_tokens // seq) * seq))


def test_pretrain_saves_checkpoints_and_finetune_starts_from_them(sweep, tmp_path):
    pre = _job(sweep, "pretrain", tmp_path)
    run_job(pre, sweep, str(tmp_path))
    layout = SweepLayout(str(tmp_path))
    for p in pre.checkpoints:
        assert os.path.exists(os.path.join(pre.p_checkpoint(p), "model.safetensors"))
    assert not os.path.exists(pre.resume_dir)  # resume state is cleaned up
    graph = expand(sweep, layout)
    ft = [j for j in graph.children(pre.job_id) if j.pretrain_tokens == max(pre.checkpoints)][0]
    scratch = [j for j in graph.jobs if j.kind == "scratch" and j.data_tokens == ft.data_tokens][0]
    s_ft = run_job(ft, sweep, str(tmp_path))
    s_sc = run_job(scratch, sweep, str(tmp_path))
    # Starting from pre-trained weights, the first evaluation is already better than random init.
    ev = Store(layout.store_root).read_evals().to_pylist()
    first = {r["job_id"]: r["eval_loss"] for r in ev if r["step"] == 0}
    assert first[ft.job_id] < first[scratch.job_id]
    assert s_ft["status"] == s_sc["status"] == "ok"
    # Pre-training is evaluated at step 0, doubling steps and its end, no more.
    want = {0} | eval_steps(kind="pretrain", interval=sweep.eval.interval_steps, max_steps=pre.max_steps)
    assert sorted(r["step"] for r in ev if r["job_id"] == pre.job_id) == sorted(want)


def test_eval_schedule_is_dense_for_early_stopping_and_doubling_for_pretraining():
    assert eval_steps(kind="finetune", interval=16, max_steps=50) == {16, 32, 48, 50}
    assert eval_steps(kind="scratch", interval=10, max_steps=30) == {10, 20, 30}
    assert eval_steps(kind="pretrain", interval=25, max_steps=410) == {25, 50, 100, 200, 400, 410}
    assert eval_steps(kind="pretrain", interval=25, max_steps=20) == {20}  # shorter than one interval: its end
    # the share of steps evaluated falls as a pre-training run grows
    assert len(eval_steps(kind="pretrain", interval=25, max_steps=25 * 2**10)) == 11


KILLABLE = textwrap.dedent(
    """
    import sys
    from tsweep.core.layout import SweepLayout
    from tsweep.orchestrator.plan import expand
    from tsweep.sweeps.schema import load_sweep
    from tsweep.workers.runner import run_job
    sweep = load_sweep(sys.argv[1])
    job = [j for j in expand(sweep, SweepLayout(sys.argv[2])).jobs if j.kind == "pretrain"][0]
    run_job(job, sweep, sys.argv[2])
    """
)


def test_killed_worker_resumes_from_checkpoint(sweep, tmp_path):
    """SIGKILL a real worker process mid-training; the retry resumes and matches a clean run."""
    clean = run_job(_job(sweep, "pretrain", tmp_path / "clean"), sweep, str(tmp_path / "clean"))

    killed_dir = tmp_path / "killed"
    job = _job(sweep, "pretrain", killed_dir)
    layout = SweepLayout(str(killed_dir))
    script = tmp_path / "worker.py"
    script.write_text(KILLABLE)
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1])}
    proc = subprocess.Popen([sys.executable, str(script), str(TINY), str(killed_dir)], env=env)
    latest = Path(job.resume_dir) / "latest"
    deadline = time.time() + 120
    while not latest.exists() and proc.poll() is None and time.time() < deadline:
        time.sleep(0.05)
    assert latest.exists(), "the worker never saved a checkpoint"
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    store = Store(layout.store_root)
    assert job.job_id not in store.finished_job_ids()

    resumed = run_job(job, sweep, str(killed_dir))
    assert resumed["attempt"] == 1
    assert resumed["best_eval_loss"] == pytest.approx(clean["best_eval_loss"], rel=2e-3)
    steps = store.read_evals().column("step").to_pylist()
    clean_steps = Store(SweepLayout(str(tmp_path / "clean")).store_root).read_evals().column("step").to_pylist()
    assert sorted(steps) == sorted(clean_steps), "eval rows lost or duplicated across the kill"


def test_divergence_ends_job_as_diverged(tmp_path):
    d = load_sweep(TINY).model_dump(mode="json")
    d["train"]["lr"] = 50.0
    d["train"]["grad_clip"] = 1e6
    sweep = parse_sweep(d)
    summary = run_job(_job(sweep, "scratch", tmp_path, 2), sweep, str(tmp_path))
    assert summary["status"] == "diverged"
    assert "loss" in summary["reason"]
    assert Store(SweepLayout(str(tmp_path)).store_root).read_summaries().column("status").to_pylist() == ["diverged"]
