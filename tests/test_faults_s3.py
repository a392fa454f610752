"""The fault tests of ``tests/test_faults.py`` once more, with the sweep in a bucket (issue 13).

One sweep, the tiny one, with ``--storage s3://...`` on moto's S3 server (127.0.0.1), run by the
console script on a three-node local cluster (``ray.cluster_utils.Cluster``: a head with no CPUs
and two 1-CPU nodes) whose nodes have separate working folders (each its own Ray temp dir and
``TMPDIR``): a fine-tune that lands on another node than its pre-training can find its
p-checkpoint only through the bucket. Into that one sweep, in this order, while the first driver
runs (``submit --address``):

1. the process running pre-training is SIGKILLed once it has a resume checkpoint: Tune retries
   the trial, which goes on from that checkpoint;
2. the analysis actor is killed once it has refitted twice: Ray restarts it and it answers for
   the whole store;
3. the node running pre-training's retry is removed once the retry has checkpointed again;
4. the driver is SIGKILLed once pre-training has started a third time (after the node loss);
5. a finished job's summary shard in the bucket is cut in half.

Then ``tsweep status`` (from the bucket URI) reports the damage and moves nothing; ``tsweep
resume`` runs exactly the unfinished jobs and the damaged one, pre-training from its checkpoint;
``tsweep status`` and ``tsweep gaps --json`` read the finished sweep from the bucket. The sweep
must end as an undisturbed run of the same jobs ends (``faultkit.assert_sweep_matches_baseline``:
one summary per job, no eval row lost or doubled, the same losses and fit), with nothing of it on
any node's local disk. The undisturbed run is the same jobs run one by one in this process, with
no Ray, one thread like a Ray worker's, on local disk.

Budget: one sweep, one resume, one baseline; about 3 minutes on an idle 2-core machine.
"""

from __future__ import annotations

import json
import shutil
import signal
import socket
import subprocess
import tempfile
from pathlib import Path

import pytest
from faultkit import (
    TINY,
    actor_state,
    assert_sweep_matches_baseline,
    attempts,
    baseline_of,
    cluster_address_file,
    gcs,
    has_resume,
    kill_driver,
    local_bucket,
    subprocess_env,
    summaries,
    sweep_files_under,
    trial_process,
    tsweep_cmd,
    wait_for,
    wait_for_state_api,
    withdraw_cluster_address,
)

from tsweep.core.layout import SweepLayout, join
from tsweep.core.store import Store
from tsweep.orchestrator.plan import expand
from tsweep.sweeps import load_sweep
from tsweep.workers import checkpoints

pytest.importorskip("moto.server", reason="the test extra installs moto[server]")

pytestmark = pytest.mark.cluster

BUCKET = "faults"
POLL_S = 0.2  # polls of the bucket: each is a few LIST/GET requests to the local server
CLI_TIMEOUT_S = 300
# The first event waits for the driver to start, join and schedule, and for a worker to start
# DeepSpeed (it builds its shared-memory op): minutes on a loaded 2-core machine. Bounded by the
# driver's life as well, so a driver that fails ends the wait at once.
FIRST_S = 480


def _resume_step(layout: SweepLayout, job_id: str) -> int:
    """The step of the job's newest published resume state (-1 if none)."""
    from tsweep.workers import checkpoints

    tags = checkpoints.resume_tags(join(layout.job_dir(job_id), "resume"))
    return checkpoints._tag_step(tags[0]) if tags else -1


@pytest.fixture(scope="module")
def sweep():
    return load_sweep(TINY)


@pytest.fixture(scope="module")
def baseline(sweep, tmp_path_factory):
    """The tiny sweep's jobs run undisturbed, one by one in this process, on local disk."""
    import torch

    from tsweep.workers.runner import run_job

    layout = sweep.layout(str(tmp_path_factory.mktemp("baseline")))
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # as in a Ray worker (OMP_NUM_THREADS=1): the same arithmetic
    try:
        for job in sorted(expand(sweep, layout).jobs, key=lambda j: j.kind != "pretrain"):
            run_job(job, sweep, layout.sweep_dir)
    finally:
        torch.set_num_threads(threads)
    from faultkit import refit

    layout.files.write_text(layout.latest_fit, json.dumps(refit(sweep, layout)))
    return baseline_of(sweep, layout)


@pytest.fixture(scope="module")
def bucket():
    with local_bucket(BUCKET) as found:
        yield found


@pytest.fixture(scope="module")
def folders():
    """Each node's own working folder (short paths: Ray's sockets live under them), plus the
    drivers' and the read commands' working folders. Scanned for sweep files at the end."""
    top = Path(tempfile.mkdtemp(prefix="tsf-"))
    names = ("head", "n1", "n2", "driver", "reader")
    out = {n: top / n for n in names}
    for p in out.values():
        (p / "tmp").mkdir(parents=True)
    yield out
    shutil.rmtree(top, ignore_errors=True)


@pytest.fixture(scope="module")
def cluster(bucket, folders):
    import ray
    from ray.cluster_utils import Cluster

    def node(name: str, cpus: int) -> dict:
        return {
            "num_cpus": cpus,
            "temp_dir": str(folders[name] / "ray"),
            "env_vars": {"TMPDIR": str(folders[name] / "tmp")},
        }

    ray.shutdown()
    cluster_address_file().parent.mkdir(parents=True, exist_ok=True)
    # The dashboard (the state API behind it) on a free port: on a shared machine Ray's default
    # 8265 may belong to another cluster, and then this one's dashboard never comes up.
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        dashboard_port = s.getsockname()[1]
    c = Cluster(
        initialize_head=True,
        head_node_args={
            **node("head", 0),
            "include_dashboard": True,
            "dashboard_host": "127.0.0.1",
            "dashboard_port": dashboard_port,
        },
    )
    try:
        withdraw_cluster_address(c.address)
        workers = [c.add_node(**node(n, 1)) for n in ("n1", "n2")]
        c.wait_for_nodes()
        ray.init(address=c.address, log_to_driver=False)
        wait_for_state_api()
        yield c, workers
    finally:
        ray.shutdown()
        c.shutdown()


def _cli(args: list[str], env: dict, cwd: Path, timeout: float = CLI_TIMEOUT_S) -> subprocess.CompletedProcess:
    return subprocess.run([*tsweep_cmd(), *args], capture_output=True, text=True, timeout=timeout, env=env, cwd=cwd)


@pytest.fixture(scope="module")
def faulted(sweep, baseline, bucket, folders, cluster):
    """The sweep with every fault, then its resume; returns what was observed along the way."""
    import ray
    from ray.util.state import list_actors

    from tsweep.analysis.actor import read_history
    from tsweep.orchestrator.run import NAMESPACE, analysis_actor_name

    uri, env = bucket
    c, workers = cluster
    layout = sweep.layout(uri)
    graph = expand(sweep, layout)
    pre = graph.pretrain[0].job_id
    rec: dict = {"layout": layout, "graph": graph, "pre": pre, "uri": uri, "env": env}
    driver_env = subprocess_env(
        **{k: env[k] for k in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_DEFAULT_REGION")},
        TMPDIR=str(folders["driver"] / "tmp"),
    )
    rec["reader_env"] = {**driver_env, "TMPDIR": str(folders["reader"] / "tmp")}
    log = open(folders["driver"] / "submit.log", "w")
    proc = subprocess.Popen(
        [*tsweep_cmd(), "submit", str(TINY), "--storage", uri, "--address", c.address, "--no-live"],
        cwd=folders["driver"],
        env=driver_env,
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    alive = lambda: proc.poll() is None  # noqa: E731
    try:
        # 1. the worker running pre-training, once it has a resume checkpoint
        wait_for(
            lambda: has_resume(layout, pre),
            "pre-training's first resume checkpoint",
            timeout=FIRST_S,
            poll=POLL_S,
            alive=alive,
        )
        p = wait_for(lambda: trial_process(pre), "the Ray worker running pre-training", timeout=30)
        rec["worker"] = {"pid": p.pid, "finished": pre in summaries(layout), "step": _resume_step(layout, pre)}
        p.send_signal(signal.SIGKILL)

        # 2. the analysis actor, once it has refitted twice
        wait_for(
            lambda: len(read_history(layout.sweep_dir)) >= 2,
            "two refits by the analysis actor",
            poll=POLL_S,
            alive=alive,
        )
        name = analysis_actor_name(sweep, layout)
        actor = ray.get_actor(name, namespace=NAMESPACE)
        actor_id = list_actors(address=gcs(), filters=[("name", "=", name), ("state", "=", "ALIVE")])[0].actor_id
        before = actor_state(actor_id)
        rec["actor"] = {"id": actor_id, "pid": before.pid, "finished_at_kill": len(summaries(layout))}
        ray.kill(actor, no_restart=False)
        state = wait_for(
            lambda: (s := actor_state(actor_id)).state == "ALIVE" and s.num_restarts >= 1 and s,
            "the analysis actor to restart",
            timeout=60,
        )
        in_store = len(summaries(layout))
        rec["actor"].update(
            restarted=state, in_store=in_store, refit=ray.get(actor.refit.remote(), timeout=120)["n_jobs_finished"]
        )

        # 3. the node running pre-training's retry, once the retry has checkpointed again
        wait_for(
            lambda: _resume_step(layout, pre) > rec["worker"]["step"],
            "the retry's own resume checkpoint",
            poll=POLL_S,
            alive=alive,
        )
        p = wait_for(lambda: trial_process(pre), "the Ray worker running the retry", timeout=30)
        raylets = {w.all_processes["raylet"][0].process.pid: w for w in workers}
        node = raylets.get(p.ppid())
        assert node is not None, "pre-training's retry is not running on a worker node"
        rec["node"] = {
            "finished": pre in summaries(layout),
            "attempts": attempts(layout, pre),
            "folder": folders[("n1", "n2")[workers.index(node)]],
            "id": node.node_id,
            "step": _resume_step(layout, pre),
        }
        c.remove_node(node, allow_graceful=False)

        # 4. the driver, once pre-training has started again after the node loss
        wait_for(lambda: attempts(layout, pre) >= 3, "pre-training to start a third time", poll=POLL_S, alive=alive)
    finally:
        rec["driver_rc_at_kill"] = proc.poll()  # None: it was still running when killed
        kill_driver(proc)
        log.close()
    rec["submit_log"] = (folders["driver"] / "submit.log").read_text()[-3000:]
    assert rec["driver_rc_at_kill"] is None, f"the driver ended before it was killed: {rec['submit_log']}"
    # the dead driver's trials die with its job; none may write into the store from here on
    wait_for(
        lambda: all(trial_process(j.job_id) is None for j in graph.jobs),
        "the dead driver's trials to end",
        timeout=60,
        poll=1,
    )
    done = {j for j, r in summaries(layout).items() if r["status"] == "ok"}
    rec["done_at_kill"] = done

    # 5. a finished job's summary shard, cut in half in the bucket
    victim = next(j.job_id for j in graph.jobs if j.job_id in done and j.kind == "scratch")
    shard = join(layout.store_root, "summary", f"{victim}.parquet")
    data = layout.files.read_bytes(shard)
    layout.files.write_bytes(shard, data[: len(data) // 2])
    rec["victim"], rec["shard"] = victim, shard
    rec["before"] = {j.job_id: attempts(layout, j.job_id) for j in graph.jobs}

    reader = folders["reader"]
    rec["status_damaged"] = _cli(["status", sweep.name, "--storage", uri, "--json"], rec["reader_env"], reader)
    rec["shard_after_status"] = layout.files.size(shard)
    rec["resume"] = _cli(
        ["resume", sweep.name, "--storage", uri, "--address", c.address, "--no-live"], driver_env, folders["driver"]
    )
    rec["after"] = {j.job_id: attempts(layout, j.job_id) for j in graph.jobs}
    rec["status"] = _cli(["status", sweep.name, "--storage", uri, "--json"], rec["reader_env"], reader)
    rec["gaps"] = _cli(["gaps", sweep.name, "--storage", uri, "--json"], rec["reader_env"], reader)

    def alive_without_removed():
        alive = {n["NodeID"] for n in ray.nodes() if n["Alive"]}
        return alive if rec["node"]["id"] not in alive else None

    rec["alive_nodes"] = wait_for(alive_without_removed, "the GCS to mark the removed node dead", timeout=90)
    return rec


def test_worker_killed_mid_job_is_retried_from_its_checkpoint(faulted):
    layout, pre = faulted["layout"], faulted["pre"]
    assert not faulted["worker"]["finished"], "pre-training finished before it could be killed"
    rows = Store(layout.store_root).read_evals([pre]).to_pylist()
    retried = [r["step"] for r in rows if r["attempt"] == 1]
    assert retried and min(retried) > 0, "the retry restarted from step 0 instead of its checkpoint"
    assert faulted["node"]["attempts"] == 2, "the killed trial was not retried exactly once before the node loss"


def test_analysis_actor_killed_is_restarted_and_rebuilds_from_the_store(faulted):
    a = faulted["actor"]
    assert a["finished_at_kill"] < len(faulted["graph"].jobs), "the sweep ended before the actor was killed"
    assert a["restarted"].num_restarts >= 1 and a["restarted"].pid != a["pid"]
    # its first refit after the restart counts every job the store held when it was asked
    assert a["refit"] >= a["in_store"] >= a["finished_at_kill"]


def test_node_removed_mid_sweep(faulted):
    assert not faulted["node"]["finished"], "pre-training finished before its node was removed"
    assert len(faulted["alive_nodes"]) == 2 and faulted["node"]["id"] not in faulted["alive_nodes"]
    layout, pre = faulted["layout"], faulted["pre"]
    rows = Store(layout.store_root).read_evals([pre]).to_pylist()
    after_loss = [r["step"] for r in rows if r["attempt"] == 2]
    assert not after_loss or min(after_loss) > faulted["worker"]["step"], "the retry after the node loss restarted"


def test_status_reports_the_cut_shard_and_moves_nothing(faulted):
    st = faulted["status_damaged"]
    assert st.returncode == 0, st.stderr[-2000:]
    report = json.loads(st.stdout)
    states = {r["job_id"]: r["state"] for r in report["jobs"]}
    assert states[faulted["victim"]] != "ok"
    assert report["quarantined"] == [] and len(report["unreadable"]) == 1, report
    assert faulted["shard_after_status"] is not None, "a read command moved the damaged shard"


def test_driver_killed_then_resume_runs_only_missing_jobs(faulted):
    r = faulted["resume"]
    assert r.returncode == 0, faulted["submit_log"] + r.stdout[-3000:] + r.stderr[-3000:]
    graph, layout, pre = faulted["graph"], faulted["layout"], faulted["pre"]
    n, done, victim = len(graph.jobs), faulted["done_at_kill"], faulted["victim"]
    assert 2 <= len(done) < n and pre not in done, done
    kept = done - {victim}
    assert f"{n} jobs planned, {len(kept)} already done, {n - len(kept)} run" in r.stdout, r.stdout[-3000:]
    before, after = faulted["before"], faulted["after"]
    for j in kept:
        assert after[j] == before[j], f"finished job {j} ran again"
    for j in set(after) - kept:
        assert after[j] == before[j] + 1, f"job {j}: attempts {before[j]} -> {after[j]}"
    rows = Store(layout.store_root).read_evals([pre]).to_pylist()
    assert min(r["step"] for r in rows if r["attempt"] == before[pre]) > 0, "pre-training did not resume"


def test_nothing_lost_or_doubled(faulted, sweep, baseline):
    assert_sweep_matches_baseline(sweep, faulted["layout"], baseline)


def test_status_and_gaps_read_the_finished_sweep_from_the_bucket(faulted):
    n = len(faulted["graph"].jobs)
    st, gaps = faulted["status"], faulted["gaps"]
    assert st.returncode == 0, st.stderr[-2000:]
    report = json.loads(st.stdout)
    assert report["counts"] == {"ok": n} and report["quarantined"] == [] and report["unreadable"] == []
    assert gaps.returncode == 0, gaps.stderr[-2000:]
    assert json.loads(gaps.stdout)["n_jobs_finished"] == n


def test_nothing_of_the_sweep_on_local_disk(faulted, folders):
    """Every node's working folder and TMPDIR, the drivers' and the readers': no sweep file."""
    found = [p for f in folders.values() for p in sweep_files_under(f, names=(BUCKET,))]
    # A pre-training branch keeps a snapshot of its stable run in its node's TMPDIR for the
    # moment of the branch, and a checkpoint passes through a staging folder there on its way to
    # the bucket; a node removed mid-branch or mid-upload takes them along with its disk (its
    # processes died with it). Anywhere else, a leftover is a leak: a later job on the node
    # clears a dead process's, and a finished upload its own.
    removed = faulted["node"]["folder"] / "tmp"

    def went_with_the_node(p: Path) -> bool:
        if not p.is_relative_to(removed):
            return False
        top = p.relative_to(removed).parts[0]
        owner = checkpoints.staging_owner(top)
        return top == "tsweep-branch" or (owner is not None and not checkpoints.process_alive(owner))

    assert [p for p in found if not went_with_the_node(p)] == [], found[:20]
