"""A sweep submitted through the Ray Jobs API to a real multi-process cluster with token auth on.

The cluster is what ``ray start`` makes on a real head and worker: a head (2 CPUs, dashboard on
127.0.0.1) and one worker node joining it, each its own set of processes, in a private temp dir
on fixed free ports, with ``RAY_AUTH_MODE=token`` and a fresh token in ``RAY_AUTH_TOKEN``. The
test then does what a user does from a laptop: ``tsweep submit tests/data/tiny.yaml --address
http://127.0.0.1:PORT --follow``, which prints the driver's progress lines and gap table until the
Ray job ends and exits 0, re-attaches with ``tsweep follow``, and reads the results with ``tsweep
status`` and ``tsweep gaps``. The token must work, be required, and never show in tsweep's
output. A sweep folder submitted by path is where the remote driver writes, and a job stopped
on the cluster ends ``tsweep follow`` with exit code 3.

The cluster needs tsweep importable and the ``tsweep`` console script on its PATH, which a CI
run from a fresh clone has after ``pip install -e ".[test]"``; when this checkout is not
installed, the test gives the ``ray start`` processes the same through PYTHONPATH and a
``tsweep`` shim. Teardown stops only this test's Ray processes (``ray stop`` would stop every
Ray cluster on the machine), found by their temp dir and GCS port.
"""

from __future__ import annotations

import json
import os
import re
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import textwrap
from pathlib import Path

import psutil
import pytest

from tsweep.core.store import Store
from tsweep.orchestrator.plan import expand
from tsweep.sweeps import load_sweep

pytestmark = pytest.mark.cluster

REPO = Path(__file__).resolve().parents[1]
TINY = REPO / "tests" / "data" / "tiny.yaml"
JOB_TIMEOUT_S = 360


def _free_ports(n: int) -> list[int]:
    socks = []
    try:
        for _ in range(n):
            s = socket.socket()
            s.bind(("127.0.0.1", 0))
            socks.append(s)
        return [s.getsockname()[1] for s in socks]
    finally:
        for s in socks:
            s.close()


def _stop_cluster(temp_dir: str, gcs_port: int) -> None:
    """SIGTERM, then SIGKILL, every process of this cluster and their children; nothing else."""
    me = {os.getpid(), *(p.pid for p in psutil.Process().parents())}
    roots = []
    for p in psutil.process_iter(["cmdline"]):
        cmd = p.info["cmdline"] or []
        if p.pid in me or not cmd:
            continue
        if any(temp_dir in a for a in cmd) or any(re.search(rf"[:=]{gcs_port}$", a) for a in cmd):
            roots.append(p)
    procs = {}
    for r in roots:
        procs[r.pid] = r
        try:
            procs.update({c.pid: c for c in r.children(recursive=True)})
        except psutil.Error:
            pass
    procs = [p for p in procs.values() if p.pid not in me]
    for sig in (signal.SIGTERM, signal.SIGKILL):
        for p in procs:
            try:
                p.send_signal(sig)
            except psutil.Error:
                pass
        _, procs = psutil.wait_procs(procs, timeout=5)
        if not procs:
            break


def _run(cmd: list[str], env: dict, timeout: float = 120, check: bool = True, **kw) -> subprocess.CompletedProcess:
    r = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=timeout, **kw)
    if check and r.returncode != 0:
        raise AssertionError(f"{' '.join(cmd)} exited {r.returncode}:\n{r.stdout[-3000:]}\n{r.stderr[-3000:]}")
    return r


def _tsweep() -> list[str]:
    exe = shutil.which("tsweep")
    return [exe] if exe else [sys.executable, "-m", "tsweep.cli"]


@pytest.fixture(scope="module")
def cluster():
    temp_dir = tempfile.mkdtemp(prefix="tsr-", dir="/tmp")  # short: Ray's socket paths have a length limit
    token = secrets.token_hex(32)
    gcs, dash, client, head_agent, worker_agent, head_metrics, worker_metrics = _free_ports(7)
    env = {k: v for k, v in os.environ.items() if not k.startswith("RAY_")}
    env.update(
        RAY_AUTH_MODE="token",
        RAY_AUTH_TOKEN=token,
        RAY_USAGE_STATS_ENABLED="0",
        PYTHONUNBUFFERED="1",
        PYTHONPATH=os.pathsep.join([str(REPO), *filter(None, [os.environ.get("PYTHONPATH")])]),
    )
    if shutil.which("tsweep") is None:  # not pip-installed: what `pip install -e .` would put on PATH
        bin_dir = Path(temp_dir, "bin")
        bin_dir.mkdir()
        shim = bin_dir / "tsweep"
        shim.write_text(f'#!/bin/sh\nexec "{sys.executable}" -m tsweep.cli "$@"\n')
        shim.chmod(0o755)
        env["PATH"] = f"{bin_dir}{os.pathsep}{env.get('PATH', '')}"
    ray_bin = shutil.which("ray") or "ray"
    # Each node its own temp dir, as on separate machines: nodes sharing one would share the
    # unpacked job working_dir, and the worker node's runtime-env GC would delete it from under
    # the job's driver (whose cwd it is) when its own trials end.
    common = ["--node-ip-address", "127.0.0.1", "--disable-usage-stats"]
    head_dir, worker_dir = os.path.join(temp_dir, "head"), os.path.join(temp_dir, "worker")
    try:
        _run(
            [
                ray_bin,
                "start",
                "--head",
                f"--port={gcs}",
                "--dashboard-host=127.0.0.1",
                f"--dashboard-port={dash}",
                f"--ray-client-server-port={client}",
                f"--dashboard-agent-listen-port={head_agent}",
                f"--metrics-export-port={head_metrics}",
                "--num-cpus=2",
                f"--temp-dir={head_dir}",
                *common,
            ],
            env,
            timeout=180,
        )
        _run(
            [
                ray_bin,
                "start",
                f"--address=127.0.0.1:{gcs}",
                "--num-cpus=1",
                f"--dashboard-agent-listen-port={worker_agent}",
                f"--metrics-export-port={worker_metrics}",
                f"--temp-dir={worker_dir}",
                *common,
            ],
            env,
            timeout=180,
        )
        yield {
            "env": env,
            "token": token,
            "gcs": f"127.0.0.1:{gcs}",
            "dashboard": f"http://127.0.0.1:{dash}",
            "temp_dir": temp_dir,
        }
    finally:
        _stop_cluster(temp_dir, gcs)
        shutil.rmtree(temp_dir, ignore_errors=True)


# Runs with the cluster's auth environment: Ray reads the auth mode and token once per process.
WAIT_JOB = textwrap.dedent(
    """
    import json, sys, time
    from ray.job_submission import JobStatus, JobSubmissionClient
    from ray.util.state import list_nodes
    address, job_id, timeout, gcs = sys.argv[1], sys.argv[2], float(sys.argv[3]), sys.argv[4]
    client = JobSubmissionClient(address)
    deadline = time.monotonic() + timeout
    status = client.get_job_status(job_id)
    while status not in {JobStatus.SUCCEEDED, JobStatus.FAILED, JobStatus.STOPPED} and time.monotonic() < deadline:
        time.sleep(1)
        status = client.get_job_status(job_id)
    if status not in {JobStatus.SUCCEEDED, JobStatus.FAILED, JobStatus.STOPPED}:
        client.stop_job(job_id)
    nodes = [n.state for n in list_nodes(address=gcs)]
    print(json.dumps({"status": str(status.value), "logs": client.get_job_logs(job_id), "nodes": nodes}))
    """
)

NO_TOKEN = textwrap.dedent(
    """
    import sys
    from ray.job_submission import JobSubmissionClient
    try:
        JobSubmissionClient(sys.argv[1]).list_jobs()
    except Exception as exc:
        print(type(exc).__name__)
    else:
        print("ACCEPTED")
    """
)


def test_submit_through_jobs_api_with_token_auth(cluster, tmp_path):
    sweep = load_sweep(TINY)
    graph = expand(sweep)
    storage = tmp_path / "runs"
    env, token = cluster["env"], cluster["token"]
    outputs = []

    # auth is on: a client without the token is turned away (HOME: no ~/.ray/auth_token either)
    no_token = {**{k: v for k, v in env.items() if k != "RAY_AUTH_TOKEN"}, "HOME": str(tmp_path)}
    r = _run([sys.executable, "-c", NO_TOKEN, cluster["dashboard"]], no_token, timeout=60)
    assert r.stdout.strip() == "AuthenticationError", r.stdout + r.stderr

    # the user's side: only the token in the environment, as a CI secret would be given; the
    # console script submits and follows the driver's output to the end of the Ray job
    user = {k: v for k, v in env.items() if k != "RAY_AUTH_MODE"}
    followed = _run(
        [*_tsweep(), "submit", str(TINY), "--address", cluster["dashboard"], "--storage", str(storage), "--follow"],
        user,
        timeout=JOB_TIMEOUT_S + 60,
        check=False,
        cwd=tmp_path,
    )
    outputs += [followed.stdout, followed.stderr]
    m = re.search(r"submitted tiny as Ray job (\S+) to ", followed.stdout)
    assert m, followed.stdout + followed.stderr
    job_id = m.group(1)

    r = _run(
        [sys.executable, "-c", WAIT_JOB, cluster["dashboard"], job_id, str(JOB_TIMEOUT_S), cluster["gcs"]],
        env,
        timeout=JOB_TIMEOUT_S + 60,
    )
    job = json.loads(r.stdout.strip().splitlines()[-1])
    outputs.append(job["logs"])
    assert job["status"] == "SUCCEEDED", f"Ray job {job_id}: {job['status']}\n{job['logs'][-4000:]}"
    assert followed.returncode == 0, followed.stdout[-3000:] + followed.stderr[-3000:]
    assert job["nodes"].count("ALIVE") == 2, job["nodes"]
    assert f"{len(graph.jobs)} jobs planned, 0 already done, {len(graph.jobs)} run" in job["logs"]
    # what was followed is the driver's whole log, once: a progress line per job, then the gap table
    assert followed.stdout.endswith(job["logs"]) and followed.stdout.count(job["logs"]) == 1
    assert followed.stdout.count(f"[{sweep.name}] done ") == len(graph.jobs), followed.stdout[-3000:]
    assert f"Transfer report: sweep {sweep.name}" in followed.stdout
    # re-attaching to an ended job prints its log and exits with its status
    again = _run([*_tsweep(), "follow", job_id, "--address", cluster["dashboard"]], user, timeout=120, cwd=tmp_path)
    assert again.stdout == job["logs"]

    # the store is complete: one summary row per job, every job's evals, no duplicates
    store = Store(str(storage / sweep.name / "store"))
    summaries = store.read_summaries().to_pylist()
    assert sorted(r["job_id"] for r in summaries) == sorted(j.job_id for j in graph.jobs)
    assert {r["status"] for r in summaries} == {"ok"}
    ev = store.read_evals()
    keys = list(zip(ev.column("job_id").to_pylist(), ev.column("step").to_pylist(), strict=True))
    assert len(keys) == len(set(keys)) and {k[0] for k in keys} == {j.job_id for j in graph.jobs}

    # results read back by name, from this machine
    r = _run([*_tsweep(), "status", sweep.name, "--storage", str(storage)], user, cwd=tmp_path)
    outputs += [r.stdout, r.stderr]
    assert f"{sweep.name}: {len(graph.jobs)} jobs: ok {len(graph.jobs)}" in r.stdout, r.stdout
    r = _run([*_tsweep(), "gaps", sweep.name, "--storage", str(storage), "--json"], user, cwd=tmp_path)
    outputs += [r.stderr]
    gaps = json.loads(r.stdout)
    assert gaps["n_jobs_finished"] == len(graph.jobs)
    assert [s["source"] for s in gaps["sources"]] == ["prose"]
    outputs.append(r.stdout)

    # the token never shows: not in anything tsweep printed, the job's log, or the sweep's files
    for text in outputs:
        assert token not in text
    for path in (storage / sweep.name).rglob("*"):
        if path.is_file():
            assert token.encode() not in path.read_bytes(), f"token written to {path}"


def test_submit_without_token_fails_cleanly(cluster, tmp_path):
    """No token: a one-line error and a non-zero exit, no job submitted."""
    env = {**{k: v for k, v in cluster["env"].items() if k != "RAY_AUTH_TOKEN"}, "HOME": str(tmp_path)}
    r = _run(
        [*_tsweep(), "submit", str(TINY), "--address", cluster["dashboard"], "--storage", str(tmp_path / "r")],
        env,
        check=False,
        cwd=tmp_path,
        timeout=120,
    )
    assert r.returncode != 0
    assert "Traceback" not in r.stderr, r.stderr[-3000:]
    assert "token" in r.stderr.lower()
    assert cluster["token"] not in r.stdout + r.stderr


STOP_JOB = textwrap.dedent(
    """
    import json, sys, time
    from ray.job_submission import JobSubmissionClient
    client = JobSubmissionClient(sys.argv[1])
    entrypoint = client.get_job_info(sys.argv[2]).entrypoint
    client.stop_job(sys.argv[2])
    print(json.dumps({"entrypoint": entrypoint}))
    """
)


def test_a_sweep_folder_submitted_remotely_writes_there_and_a_stopped_job_exits_3(cluster, tmp_path):
    """A sweep folder given by path (here a copy named apart from its sweep) is where the remote
    driver writes, as a local run would; a job stopped on the cluster ends ``tsweep follow`` with
    exit code 3. The job is stopped at once: nothing of it needs to run."""
    sweep = load_sweep(TINY)
    folder = tmp_path / "runs" / "tiny-copy"
    folder.mkdir(parents=True)
    (folder / "sweep.yaml").write_text(TINY.read_text())
    user = {k: v for k, v in cluster["env"].items() if k != "RAY_AUTH_MODE"}
    r = _run(
        [*_tsweep(), "submit", str(folder), "--address", cluster["dashboard"], "--storage", str(tmp_path / "r")],
        user,
        timeout=120,
        cwd=tmp_path,
    )
    job_id = re.search(r"submitted tiny as Ray job (\S+) to ", r.stdout).group(1)
    assert f"tsweep follow {job_id} --address {cluster['dashboard']}" in r.stdout
    r = _run([sys.executable, "-c", STOP_JOB, cluster["dashboard"], job_id], cluster["env"], timeout=60)
    entry = json.loads(r.stdout.strip().splitlines()[-1])["entrypoint"]
    assert entry.endswith(f"--sweep-dir {folder}") and sweep.name != folder.name, entry
    r = _run(
        [*_tsweep(), "follow", job_id, "--address", cluster["dashboard"]], user, timeout=120, check=False, cwd=tmp_path
    )
    assert r.returncode == 3, r.stdout[-2000:] + r.stderr[-2000:]
    assert "Traceback" not in r.stderr


# Runs in a fresh process, as `tsweep submit SWEEP` without --address does.
INIT_RAY = textwrap.dedent(
    """
    import json, ray
    from tsweep.orchestrator.run import init_ray
    cluster = init_ray(None, num_cpus=1)
    print(json.dumps({"local": cluster.local, "dashboard": cluster.dashboard_url,
                      "gcs": ray.get_runtime_context().gcs_address,
                      "cpus": ray.cluster_resources().get("CPU")}))
    ray.shutdown()
    """
)


def test_a_local_run_starts_its_own_cluster_beside_a_ray_start_head(tmp_path):
    """``ray.init()`` with no address joins the cluster a ``ray start --head`` on this machine
    recorded in ``{temp}/ray_current_cluster`` (and then refuses ``num_cpus``); a local run must
    start a new cluster instead. Ray looks for that record under ``$RAY_TMPDIR``, so this test's
    head and run get a private one (nobody else's cluster is seen or touched), and teardown stops
    only the processes of that temp dir."""
    root = tempfile.mkdtemp(prefix="tsl-", dir="/tmp")  # short: Ray's socket paths have a length limit
    temp_dir = os.path.join(root, "ray")  # Ray's default temp dir under RAY_TMPDIR
    client, agent, metrics = _free_ports(3)
    env = {k: v for k, v in os.environ.items() if not k.startswith("RAY_")}
    env.update(
        RAY_TMPDIR=root,
        RAY_AUTH_MODE="token",
        RAY_AUTH_TOKEN=secrets.token_hex(32),
        RAY_USAGE_STATS_ENABLED="0",
        HOME=str(tmp_path),  # no ~/.ray of the user's is read or written
        PYTHONPATH=os.pathsep.join([str(REPO), *filter(None, [os.environ.get("PYTHONPATH")])]),
    )
    head_gcs_port = 0
    try:
        _run(
            [
                shutil.which("ray") or "ray",
                "start",
                "--head",
                "--port=0",
                "--node-ip-address=127.0.0.1",
                "--num-cpus=3",
                "--include-dashboard=false",
                f"--ray-client-server-port={client}",
                f"--dashboard-agent-listen-port={agent}",
                f"--metrics-export-port={metrics}",
                f"--temp-dir={temp_dir}",
                "--disable-usage-stats",
            ],
            env,
            timeout=180,
        )
        head = Path(temp_dir, "ray_current_cluster").read_text().strip()  # what ray.init() would join
        head_gcs_port = int(head.rsplit(":", 1)[1])
        r = _run([sys.executable, "-c", INIT_RAY], env, timeout=180, cwd=tmp_path)
        got = json.loads(r.stdout.strip().splitlines()[-1])
        assert got["gcs"] != head, f"init_ray joined the `ray start` cluster at {head}"
        assert got["local"] is True and got["cpus"] == 1.0, got
        assert (got["dashboard"] or "").startswith("http://127.0.0.1:"), got
    finally:
        _stop_cluster(temp_dir, head_gcs_port or -1)
        shutil.rmtree(root, ignore_errors=True)
