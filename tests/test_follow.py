"""Watching a sweep without a cluster at hand: the follower of a remote driver's log across
dropped connections, pipe-mode progress lines, and ``tsweep status`` on a sweep whose jobs are
still running (or were interrupted). No Ray cluster: the follower is driven by a scripted Jobs
API client (the cluster run is in ``test_remote.py``), the status by a store built with the
Store API."""

from __future__ import annotations

import io
import json
import time
from pathlib import Path
from types import SimpleNamespace

import pytest

from tsweep.cli import main
from tsweep.core.errors import UsageError
from tsweep.core.records import Progress
from tsweep.core.store import SCHEMA_VERSION, Store
from tsweep.orchestrator import follow as fl
from tsweep.orchestrator import lease as leases
from tsweep.orchestrator.plan import expand
from tsweep.orchestrator.run import save_sweep
from tsweep.orchestrator.status import sweep_status
from tsweep.sweeps import load_sweep

TINY = Path(__file__).parent / "data" / "tiny.yaml"
LOG = "".join(f"[tiny] done job{i} | {i}/5 jobs | ETA ? | G: not yet\n" for i in range(1, 6)) + "gap table\n"


class ScriptedJobs:
    """The three Jobs API calls the follower makes, over a log written in ``chunks``: each stream
    starts from the log's first byte, as Ray's does; ``drops`` streams raise after their second
    chunk, as a websocket closed by a network failure does; the job ends once the last chunk was
    streamed, with ``final`` as its status."""

    def __init__(self, chunks: list[str], *, drops: int = 1, final: str = "SUCCEEDED", missing: bool = False):
        self.chunks, self.drops, self.final, self.missing = chunks, drops, final, missing
        self.streams = 0
        self.produced = 0  # chunks the driver has written so far

    def get_job_status(self, job_id):
        if self.missing:
            raise RuntimeError(f"Request failed with status code 404: Job {job_id} does not exist.")
        return self.final if self.produced == len(self.chunks) else "RUNNING"

    def get_job_logs(self, job_id):
        return "".join(self.chunks[: self.produced])

    async def tail_job_logs(self, job_id):
        self.streams += 1
        drop = self.streams <= self.drops
        for i, chunk in enumerate(self.chunks):
            self.produced = max(self.produced, i + 1)
            yield chunk
            if drop and i == 1 + (self.streams - 1):  # each dropped stream gets one chunk further
                raise RuntimeError("WebSocket connection closed unexpectedly with close code 1006")


def _chunks() -> list[str]:
    lines = LOG.splitlines(keepends=True)
    return [lines[0][:10], lines[0][10:] + lines[1], *lines[2:]]  # a chunk may end mid-line


def test_a_dropped_log_stream_is_resumed_without_a_line_twice_or_lost():
    client, out, err, sleeps = ScriptedJobs(_chunks(), drops=2), io.StringIO(), io.StringIO(), []
    code = fl.Follower(client, "raysubmit_1", out=out, err=err, sleep=sleeps.append).run()
    assert code == 0
    assert out.getvalue() == LOG  # exactly the driver's log: nothing printed twice, nothing lost
    assert client.streams == 3
    assert sleeps == [fl.BACKOFF_S, 2 * fl.BACKOFF_S]  # backing off between tries
    assert err.getvalue().count("reconnecting in") == 2 and "close code 1006" in err.getvalue()


@pytest.mark.parametrize("final, code", [("FAILED", 1), ("STOPPED", fl.EXIT_STOPPED)])
def test_exit_code_follows_the_jobs_final_status(final, code):
    out = io.StringIO()
    assert (
        fl.Follower(
            ScriptedJobs(_chunks(), drops=0, final=final), "j", out=out, err=io.StringIO(), sleep=lambda s: None
        ).run()
        == code
    )
    assert out.getvalue() == LOG


def test_an_unreachable_cluster_is_given_up_on_with_the_reattach_command():
    class Down:
        def get_job_status(self, job_id):
            raise ConnectionError("Failed to connect to Ray at address: http://127.0.0.1:9")

    now = [0.0]

    def sleep(s):
        now[0] += s

    err = io.StringIO()
    follower = fl.Follower(Down(), "j", out=io.StringIO(), err=err, sleep=sleep, clock=lambda: now[0], give_up_s=100)
    assert follower.run() == fl.EXIT_LOST
    assert follower.reconnects == 8 and now[0] == 1 + 2 + 4 + 8 + 16 + 30 + 30 + 30  # doubling, capped
    assert "stopped following" in err.getvalue().splitlines()[-1]


def test_a_log_stream_that_never_opens_is_given_up_on_though_status_answers():
    """The dashboard's HTTP answers but its websocket never delivers (a proxy that drops
    upgrades): the follower gives up after give_up_s instead of retrying forever."""

    class NoStream(ScriptedJobs):
        async def tail_job_logs(self, job_id):
            self.streams += 1
            raise RuntimeError("WebSocket handshake failed")
            yield  # an async generator, as the real one is

    now = [0.0]

    def sleep(s):
        now[0] += s

    err = io.StringIO()
    follower = fl.Follower(
        NoStream(_chunks()), "j", out=io.StringIO(), err=err, sleep=sleep, clock=lambda: now[0], give_up_s=100
    )
    assert follower.run() == fl.EXIT_LOST
    assert "stopped following" in err.getvalue().splitlines()[-1]


def test_ctrl_c_detaches_and_says_how_to_reattach():
    class Interrupted(ScriptedJobs):
        async def tail_job_logs(self, job_id):
            yield self.chunks[0]
            raise KeyboardInterrupt

    out, err = io.StringIO(), io.StringIO()
    code = fl.follow("raysubmit_2", "http://127.0.0.1:8265", out=out, err=err, client=Interrupted(_chunks(), drops=0))
    assert code == fl.EXIT_DETACHED and out.getvalue() == _chunks()[0]
    assert err.getvalue().strip().endswith("re-attach with: tsweep follow raysubmit_2 --address http://127.0.0.1:8265")


def test_an_unknown_job_is_one_line_exit_2(capsys):
    with pytest.raises(UsageError, match="no Ray job 'nope'"):
        fl.Follower(ScriptedJobs([], missing=True), "nope", out=io.StringIO(), err=io.StringIO()).run()
    assert main(["follow", "x", "--address", "ftp://h"]) == 2
    assert main(["submit", str(TINY), "--follow"]) == 2  # --follow needs a dashboard address
    err = capsys.readouterr().err.splitlines()
    assert len(err) == 2 and "--address" in err[0] and "--follow: needs --address http://" in err[1]


def test_pipe_progress_prints_running_jobs_periodically():
    from tsweep.orchestrator import progress as pm

    jobs = expand(load_sweep(TINY)).jobs
    out = io.StringIO()
    lp = pm.LiveProgress("tiny", jobs, "/nonexistent/fits/latest.json", live=False, stream=out)
    trial = SimpleNamespace(trial_id="t1", config={"job": jobs[0].to_dict()})
    lp.setup()
    lp.on_trial_start(0, [], trial)
    p = Progress(
        job_id=jobs[0].job_id,
        label=jobs[0].label,
        kind=jobs[0].kind,
        step=10,
        tokens_seen=5120,
        eval_loss=3.5,
        tokens_per_s=1000.0,
    )
    lp.on_trial_result(0, [], trial, p.to_metrics())
    lp.on_step_end(0, [])
    assert out.getvalue() == ""  # less than periodic_s (a minute) since the start
    lp.periodic_s = 0.0
    lp._last_draw = 0.0
    lp.on_step_end(0, [])
    lp.on_trial_complete(0, [], trial)
    lines = out.getvalue().splitlines()
    assert lines[0] == (
        f"[tiny] running: {jobs[0].label} eval 3.5000, 5,120 tokens, 1,000 tok/s | 0/{len(jobs)} jobs: "
        f"1 running, {len(jobs) - 1} pending, 0 failed | ETA ? | G: not yet"
    )
    assert lines[1].startswith(f"[tiny] done {jobs[0].label} | 1/{len(jobs)} jobs")


def _key(job, sweep):
    return dict(
        schema_version=SCHEMA_VERSION,
        sweep=sweep.name,
        job_id=job.job_id,
        kind=job.kind,
        source=job.source,
        target=sweep.target,
        size=job.size,
        n_params=1000,
        data_tokens=job.data_tokens,
        pretrain_tokens=job.pretrain_tokens,
        attempt=0,
    )


def _tree(root: Path) -> dict:
    return {str(p): (p.stat().st_mtime_ns, p.stat().st_size) for p in root.rglob("*")}


def test_status_lists_started_jobs_as_running_or_interrupted_and_writes_nothing(tmp_path, capsys):
    sweep = load_sweep(TINY)
    layout = sweep.layout(str(tmp_path))
    save_sweep(sweep, layout)
    graph = expand(sweep, layout)
    done, started = graph.jobs[0], graph.jobs[1]
    store = Store(layout.store_root)
    store.write_evals(
        done.job_id,
        [
            {
                **_key(done, sweep),
                "step": 4,
                "tokens_seen": 2048,
                "epoch": 1.0,
                "train_loss": 3.0,
                "eval_loss": 3.25,
                "wall_time_s": 2.0,
            }
        ],
    )
    store.write_summary(
        {
            **_key(done, sweep),
            "status": "ok",
            "reason": None,
            "best_eval_loss": 3.25,
            "best_step": 4,
            "best_tokens": 2048,
            "tokens_seen": 2048,
            "data_chars": None,
            "epochs": 1.0,
            "wall_time_s": 2.0,
            "flops": 1e9,
        }
    )
    # two shards, as a job flushes them at its checkpoints: 1024 tokens in the last 0.5 s
    store.write_evals(
        started.job_id,
        [
            {
                **_key(started, sweep),
                "step": s,
                "tokens_seen": s * 512,
                "epoch": s / 8,
                "train_loss": 3.5,
                "eval_loss": 4.0 - s / 10,
                "wall_time_s": s / 4,
            }
            for s in (2, 4)
        ],
    )
    store.write_evals(
        started.job_id,
        [
            {
                **_key(started, sweep),
                "step": 6,
                "tokens_seen": 3072,
                "epoch": 0.75,
                "train_loss": 3.4,
                "eval_loss": 3.4,
                "wall_time_s": 1.5,
            }
        ],
    )

    with leases.acquire(layout, settle_s=0.0):  # a live driver
        before = _tree(tmp_path)
        st = sweep_status(sweep, layout)
        assert _tree(tmp_path) == before  # read-only: the lease's heartbeat is the driver's, not status's
    rows = {r["job_id"]: r for r in st["jobs"]}
    assert rows[done.job_id]["state"] == "ok"
    assert {k: rows[started.job_id][k] for k in ("state", "eval_loss", "step", "tokens_seen", "tokens_per_s")} == {
        "state": "running",
        "eval_loss": 3.4,
        "step": 6,
        "tokens_seen": 3072,
        "tokens_per_s": 2048.0,
    }
    assert st["driver"]["state"] == "running"
    assert st["counts"] == {"ok": 1, "running": 1, "missing": len(graph.jobs) - 2}
    assert (
        f"running: {started.label} ({started.job_id}): eval 3.4000 at step 6, 3,072 tokens, 2,048 tok/s" in st["text"]
    )

    # the driver gone (its lease released, or left stale by a killed process): interrupted
    before = _tree(tmp_path)
    assert main(["status", str(layout.sweep_dir), "--json"]) == 0
    st = json.loads(capsys.readouterr().out)
    assert _tree(tmp_path) == before
    assert {r["job_id"]: r["state"] for r in st["jobs"]}[started.job_id] == "interrupted"
    assert st["driver"]["state"] == "none"
    layout.files.write_text(
        layout.lease,
        json.dumps(
            {
                "holder": "head:1",
                "host": "head",
                "pid": 1,
                "started": 0.0,
                "heartbeat": time.time() - 2 * leases.STALE_S,
                "token": "t",
            }
        ),
    )
    before = _tree(tmp_path)
    assert main(["status", str(layout.sweep_dir)]) == 0
    text = capsys.readouterr().out
    assert _tree(tmp_path) == before
    assert f"interrupted: {started.label} ({started.job_id}): eval 3.4000 at step 6" in text
    assert "its driver is gone: head:1" in text and "no heartbeat for 60 s" in text
    assert f"{len(graph.jobs) - 1} job(s) not finished: `tsweep resume tiny`" in text
