"""Idle cores lent to running jobs: the broker's shares, a job's thread governor, and a sweep
through the console script whose pre-training, alone on the cluster, trains on both CPUs."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

from tsweep.orchestrator.cores import STALE_S, Claim, CoreBroker, shares
from tsweep.workers.threads import ThreadGovernor

TINY = Path(__file__).parent / "data" / "tiny.yaml"


def _claim(node: str = "n", cpus: int = 1, flops: float = 1.0) -> Claim:
    return Claim(node=node, cpus=cpus, flops=flops, seen=0.0)


# ---------------------------------------------------------------- shares
def test_a_job_alone_on_a_node_gets_every_cpu():
    assert shares({"n": 2}, {"a": _claim()}) == {"a": 2}
    assert shares({"n": 8}, {"a": _claim(cpus=2)}) == {"a": 8}


def test_a_full_node_lends_nothing_and_an_unknown_node_keeps_its_own():
    assert shares({"n": 2}, {"a": _claim(), "b": _claim()}) == {"a": 1, "b": 1}
    assert shares({}, {"a": _claim(cpus=3)}) == {"a": 3}
    # Ray oversubscribed (more claimed than the node has): nobody is lent, nobody loses its own
    assert shares({"n": 1}, {"a": _claim(), "b": _claim()}) == {"a": 1, "b": 1}


def test_spare_cpus_go_to_the_most_planned_flops_first_then_round_robin():
    claims = {"small": _claim(flops=1.0), "big": _claim(flops=9.0), "mid": _claim(flops=5.0)}
    assert shares({"n": 4}, claims) == {"big": 2, "mid": 1, "small": 1}
    assert shares({"n": 7}, claims) == {"big": 3, "mid": 2, "small": 2}


def test_nodes_lend_only_their_own_cpus():
    claims = {"a": _claim(node="x"), "b": _claim(node="y"), "c": _claim(node="y")}
    assert shares({"x": 4, "y": 2}, claims) == {"a": 4, "b": 1, "c": 1}


# ---------------------------------------------------------------- the broker
class Clock:
    def __init__(self) -> None:
        self.t = 0.0

    def __call__(self) -> float:
        return self.t


def test_a_new_job_takes_its_cpu_back_and_a_released_one_gives_it_away():
    looked_up = []
    broker = CoreBroker(clock=Clock(), lookup=lambda node: looked_up.append(node) or 2)
    assert broker.claim("pre", "n", 1, 9.0) == 2
    assert broker.claim("ft", "n", 1, 1.0) == 1
    assert broker.claim("pre", "n", 1, 9.0) == 1
    broker.release("ft")
    assert broker.claim("pre", "n", 1, 9.0) == 2
    assert looked_up == ["n"]  # a node's CPUs are looked up once


def test_a_job_that_stops_claiming_is_forgotten():
    clock = Clock()
    broker = CoreBroker({"n": 2}, clock=clock)
    broker.claim("dead", "n", 1, 9.0)
    assert broker.claim("live", "n", 1, 1.0) == 1
    clock.t = STALE_S + 0.1
    assert broker.claim("live", "n", 1, 1.0) == 2
    assert set(broker.claims) == {"live"}


# ---------------------------------------------------------------- the governor
class Lender:
    def __init__(self, shares: list[int | Exception]) -> None:
        self.shares = shares
        self.released = 0

    def claim(self) -> int:
        share = self.shares.pop(0) if len(self.shares) > 1 else self.shares[0]
        if isinstance(share, Exception):
            raise share
        return share

    def release(self) -> None:
        self.released += 1


def _governor(lender: Lender | None, set_to: list[int], clock: Clock) -> ThreadGovernor:
    return ThreadGovernor(1, lender, claim_s=0.01, clock=clock, set_threads=set_to.append)


def _wait_for(gov: ThreadGovernor, wanted: int) -> None:
    import time

    deadline = time.monotonic() + 5.0
    while gov.wanted != wanted and time.monotonic() < deadline:
        time.sleep(0.005)
    assert gov.wanted == wanted


def test_the_governor_applies_its_share_between_steps_and_counts_core_seconds():
    clock, set_to = Clock(), []
    gov = _governor(Lender([2]), set_to, clock)
    _wait_for(gov, 2)
    assert set_to == []  # the claiming thread never sets torch's threads itself
    clock.t = 3.0
    assert gov.apply() == 2 and set_to == [2]
    clock.t = 5.0
    assert gov.core_seconds() == pytest.approx(1 * 3.0 + 2 * 2.0)
    gov.close()
    assert set_to == [2, 1] and gov.current == 1
    assert gov.lender is not None and gov.lender.released >= 1


def test_a_failed_claim_means_own_threads():
    clock, set_to = Clock(), []
    gov = _governor(Lender([2, RuntimeError("broker gone")]), set_to, clock)
    _wait_for(gov, 1)
    gov.apply()
    assert gov.current == 1
    gov.close()


def test_without_a_lender_the_count_never_changes():
    clock, set_to = Clock(), []
    gov = _governor(None, set_to, clock)
    clock.t = 4.0
    assert gov.apply() == 1 and gov.core_seconds() == pytest.approx(4.0)
    gov.close()
    assert set_to == []


# ---------------------------------------------------------------- a sweep, as users run it
@pytest.mark.cluster
@pytest.mark.skipif((os.cpu_count() or 1) < 2, reason="lending needs a second CPU")
def test_a_pretraining_alone_on_the_cluster_trains_on_the_idle_cpu(tmp_path):
    """One source, one fine-tune budget, one scratch run: once the scratch run and the fine-tune
    from the first checkpoint end, the pre-training runs alone and is lent the other CPU; every
    other job's core-seconds equal its wall time at least (it never trains on fewer threads)."""
    import tsweep

    sweep = tmp_path / "tiny.yaml"
    sweep.write_text(TINY.read_text())
    sets = [
        "sources=[prose]",
        "finetune_tokens=[2k]",
        "scratch_tokens=[]",
        "pretrain.tokens=400k",
        "resources.lend_idle_cores=true",
    ]
    proc = subprocess.run(
        ["tsweep", "submit", str(sweep), "--storage", str(tmp_path / "runs"), "--no-live", "--set", *sets],
        capture_output=True,
        text=True,
        timeout=600,
        env={**os.environ, "RAY_USAGE_STATS_ENABLED": "0"},
    )
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    rows = tsweep.open_sweep(str(tmp_path / "runs" / "tiny")).summaries().to_pylist()
    assert len(rows) == 4
    for r in rows:
        assert r["wall_time_s"] * 0.99 <= r["core_seconds"] <= r["wall_time_s"] * os.cpu_count() * 1.01, r
    (pre,) = [r for r in rows if r["kind"] == "pretrain"]
    assert pre["core_seconds"] >= 1.3 * pre["wall_time_s"], pre


# ---------------------------------------------------------------- what a person sees
def test_the_live_view_and_the_lines_show_lent_threads():
    import io
    from types import SimpleNamespace

    from rich.console import Console

    from tsweep.core.records import Progress
    from tsweep.orchestrator import progress as pm
    from tsweep.orchestrator.plan import expand
    from tsweep.sweeps import load_sweep

    jobs = expand(load_sweep(TINY)).jobs
    out = io.StringIO()
    lp = pm.LiveProgress("tiny", jobs, "/nonexistent/fits/latest.json", live=False, stream=out, periodic_s=0.0)
    lp.setup()
    for i, threads in enumerate((2, 1)):
        trial = SimpleNamespace(trial_id=f"t{i}", config={"job": jobs[i].to_dict()})
        lp.on_trial_start(0, [], trial)
        p = Progress(
            job_id=jobs[i].job_id, label=jobs[i].label, kind=jobs[i].kind, step=1, tokens_seen=5, threads=threads
        )
        lp.on_trial_result(0, [], trial, p.to_metrics())
    assert lp.threads() == (2, 1)  # two jobs on their own CPU each, one CPU lent
    lp._last_draw = 0.0
    lp.on_step_end(0, [])
    line = out.getvalue().splitlines()[0]
    assert f"{jobs[0].label} eval -, 5 tokens, 0 tok/s, on 2 threads (1 lent); {jobs[1].label} eval" in line, line
    assert "on 1 threads" not in line
    console = Console(file=io.StringIO(), width=200)
    console.print(lp.render())
    assert "2 (1 lent)" in console.file.getvalue()


# ---------------------------------------------------------------- a job on lent threads
def test_a_job_trains_on_its_lent_threads_with_a_fused_optimizer(tmp_path):
    """A scratch job whose lender grants 2 threads from the start trains on 2 (its summary's
    core-seconds about twice its wall time), hands them back when it ends, and steps AdamW with
    torch's fused kernel."""
    import torch

    from tsweep.core.layout import SweepLayout
    from tsweep.core.store import Store
    from tsweep.orchestrator.plan import expand
    from tsweep.sweeps import load_sweep
    from tsweep.workers.runner import JobRunner

    sweep = load_sweep(TINY)
    job = next(j for j in expand(sweep, SweepLayout(str(tmp_path))).jobs if j.kind == "scratch")
    lender = Lender([2])
    threads = ThreadGovernor(1, lender, claim_s=0.01)
    _wait_for(threads, 2)
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        runner = JobRunner.start(job, sweep, rows=Store(SweepLayout(str(tmp_path)).store_root), threads=threads)
        assert all(g["fused"] for g in runner.training.engine.optimizer.param_groups)
        summary = runner.run()
        assert torch.get_num_threads() == 1  # handed back before the job's last report
    finally:
        threads.close()
        torch.set_num_threads(before)
    assert lender.released >= 1
    assert 1.8 * summary["wall_time_s"] <= summary["core_seconds"] <= 2.0 * summary["wall_time_s"] + 1e-6
