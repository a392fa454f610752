"""What the fault tests share (``tests/test_faults.py`` on local disk, ``tests/test_faults_s3.py``
in a bucket): finding and killing a job's process inside the test's own Ray cluster, waiting on
events inside a sweep, and the checks every faulted sweep ends with.

Every read of a sweep goes through its :class:`SweepLayout` (``pyarrow.fs``), so the same helpers
read a sweep folder on disk and one under ``s3://...``.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import psutil
import pytest

from tsweep.core.layout import SweepLayout, join
from tsweep.core.store import Store
from tsweep.orchestrator.plan import expand

REPO = Path(__file__).resolve().parents[1]
TINY = REPO / "tests" / "data" / "tiny.yaml"
LOSS_REL = 2e-3  # a resumed job matches a clean one this closely (tests/test_worker.py)
FIT_REL = 2e-2
WAIT_S = 180  # bound on every wait for an event inside a sweep


def has_resume(layout: SweepLayout, job_id: str) -> bool:
    """Whether the job has published a resume state (its manifest written last, so complete)."""
    from tsweep.workers import checkpoints

    return bool(checkpoints.resume_tags(join(layout.job_dir(job_id), "resume")))


def wait_for(pred, what: str, timeout: float = WAIT_S, poll: float = 0.05, alive=None):
    """Poll ``pred`` until true; fail with ``what`` after ``timeout`` s (or once ``alive()`` is false)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        v = pred()
        if v:
            return v
        if alive is not None and not alive():
            raise AssertionError(f"the process under test ended while waiting for {what}")
        time.sleep(poll)
    raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}")


def gcs(address: str | None = None) -> str:
    """The cluster to ask, named explicitly: the state API would otherwise refuse to choose when
    other Ray clusters run on the machine. Default: the one this process is connected to."""
    if address:
        return address
    import ray

    return ray.get_runtime_context().gcs_address


def trial_process(job_id: str, address: str | None = None) -> psutil.Process | None:
    """The Ray worker process running ``job_id``'s trial in this test's cluster: one of its live
    actors (Ray's state API) whose working directory is the trial's own, which tsweep names by
    job id (Tune runs each trial in ``.../working_dirs/{trial dirname}``)."""
    from ray.util.state import list_actors

    for actor in list_actors(address=gcs(address), filters=[("state", "=", "ALIVE")], detail=True, limit=10_000):
        try:
            proc = psutil.Process(actor.pid)
            if os.path.basename(proc.cwd()) == job_id:
                return proc
        except (psutil.Error, TypeError):
            continue
    return None


def wait_for_state_api(address: str | None = None, timeout: float = 120) -> None:
    """Until Ray's state API answers: it goes through the dashboard, which a loaded machine
    starts seconds after the head (asked earlier, it raises ConnectionError)."""
    from ray.util.state import list_nodes

    def answers() -> bool:
        try:
            return bool(list_nodes(address=gcs(address)))
        except (ConnectionError, RuntimeError):
            return False

    wait_for(answers, "Ray's state API (the dashboard) to answer", timeout=timeout, poll=1)


def actor_state(actor_id: str, address: str | None = None):
    from ray.util.state import list_actors

    found = list_actors(address=gcs(address), filters=[("actor_id", "=", actor_id)], detail=True)
    assert len(found) == 1, f"actor {actor_id}: {found}"
    return found[0]


def attempts(layout: SweepLayout, job_id: str) -> int:
    path = join(layout.job_dir(job_id), "attempts")
    return int(layout.files.read_text(path) or 0) if layout.files.exists(path) else 0


def summaries(layout: SweepLayout) -> dict[str, dict]:
    return {r["job_id"]: r for r in Store(layout.store_root).read_summaries().to_pylist()}


def eval_keys(layout: SweepLayout) -> set[tuple[str, int]]:
    ev = Store(layout.store_root).read_evals()
    return set(zip(ev.column("job_id").to_pylist(), ev.column("step").to_pylist(), strict=True))


def read_latest(layout: SweepLayout) -> dict:
    return json.loads(layout.files.read_text(layout.latest_fit))


def refit(sweep, layout: SweepLayout) -> dict:
    """What a fresh fit of this store gives, with no warm start and no actor."""
    from tsweep.analysis.actor import finite
    from tsweep.analysis.transfer import transfer_report

    table = Store(layout.store_root).read_summaries()
    return finite(transfer_report(table, bootstrap=sweep.fit.bootstrap, seed=sweep.fit.seed).to_json())


def baseline_of(sweep, layout: SweepLayout) -> dict:
    """What the fault tests compare with, from an undisturbed run's folder."""
    return {
        "layout": layout,
        "eval_keys": eval_keys(layout),
        "best": {j: r["best_eval_loss"] for j, r in summaries(layout).items()},
        "latest": read_latest(layout),
    }


_VOLATILE = {"timestamp", "n_jobs_finished"}


def assert_json_close(a, b, rel: float, path: str = "fit") -> None:
    if isinstance(a, dict) and isinstance(b, dict):
        ka, kb = set(a) - _VOLATILE, set(b) - _VOLATILE
        assert ka == kb, f"{path}: keys differ: {sorted(ka ^ kb)}"
        for k in sorted(ka):
            assert_json_close(a[k], b[k], rel, f"{path}.{k}")
    elif isinstance(a, list) and isinstance(b, list):
        assert len(a) == len(b), f"{path}: {len(a)} vs {len(b)} items"
        for i, (x, y) in enumerate(zip(a, b, strict=False)):
            assert_json_close(x, y, rel, f"{path}[{i}]")
    elif isinstance(a, float) or isinstance(b, float):
        assert a is not None and b is not None, f"{path}: {a!r} vs {b!r}"
        assert a == pytest.approx(b, rel=rel, abs=1e-9), f"{path}: {a!r} vs {b!r}"
    else:
        assert a == b, f"{path}: {a!r} vs {b!r}"


def assert_sweep_matches_baseline(sweep, layout: SweepLayout, baseline: dict) -> None:
    """The checks every fault test ends with: one ok summary row per job, nothing set aside, no
    lost or duplicated (job_id, step) eval rows, the undisturbed run's best losses, and a
    ``fits/latest.json`` equal to a refit of the store and to the undisturbed run's."""
    graph = expand(sweep)
    store = Store(layout.store_root)
    rows = store.read_summaries().to_pylist()
    ids = sorted(r["job_id"] for r in rows)
    assert ids == sorted(j.job_id for j in graph.jobs), "not exactly one summary row per job"
    assert {r["status"] for r in rows} == {"ok"}, [(r["job_id"], r["status"], r["reason"]) for r in rows]
    assert store.quarantined() == [], "unreadable shards left in the store"
    ev = store.read_evals()
    keys = list(zip(ev.column("job_id").to_pylist(), ev.column("step").to_pylist(), strict=True))
    assert len(keys) == len(set(keys)), "duplicate (job_id, step) eval rows"
    assert set(keys) == baseline["eval_keys"], "eval rows lost or added compared with an undisturbed run"
    for r in rows:
        assert r["best_eval_loss"] == pytest.approx(baseline["best"][r["job_id"]], rel=LOSS_REL), r["job_id"]
    latest = read_latest(layout)
    assert latest["n_jobs_finished"] == len(graph.jobs)
    assert_json_close(latest, refit(sweep, layout), FIT_REL, "latest.json vs a refit of its store")
    assert_json_close(latest, baseline["latest"], FIT_REL, "latest.json vs the undisturbed run")


def run_in_background(fn, *args):
    """Run ``fn`` in a daemon thread; returns (thread, box) where box holds 'result' or 'error'."""
    box: dict = {}

    def target():
        try:
            box["result"] = fn(*args)
        except BaseException as exc:
            box["error"] = exc

    t = threading.Thread(target=target, daemon=True)
    t.start()
    return t, box


def join_thread(t: threading.Thread, box: dict, what: str, timeout: float = WAIT_S):
    t.join(timeout)
    assert not t.is_alive(), f"{what} still running after {timeout} s"
    if "error" in box:
        raise box["error"]
    return box.get("result")


def kill_tree(proc: psutil.Process, sig=signal.SIGKILL) -> None:
    procs = [proc]
    try:
        procs += proc.children(recursive=True)
    except psutil.Error:
        pass
    for p in procs:
        try:
            p.send_signal(sig)
        except psutil.Error:
            pass
    psutil.wait_procs(procs, timeout=10)


def kill_driver(proc, grace_s: float = 20) -> None:
    """SIGKILL a ``tsweep`` driver started with ``start_new_session``; whatever of its descendants
    is left after a grace period (Ray's processes share a local driver's fate) is killed too, so
    that no orphaned trial writes into the store while the test goes on."""
    if proc.poll() is not None:  # it ended on its own (and is reaped): nothing left to kill
        return
    driver = psutil.Process(proc.pid)
    try:
        descendants = driver.children(recursive=True)
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=30)
        _, alive = psutil.wait_procs(descendants, timeout=grace_s)
        for p in alive:
            kill_tree(p)
    finally:
        if proc.poll() is None:
            kill_tree(driver)


def tsweep_cmd() -> list[str]:
    exe = shutil.which("tsweep")
    return [exe] if exe else [sys.executable, "-m", "tsweep"]


def subprocess_env(**extra: str) -> dict:
    env = {k: v for k, v in os.environ.items() if k not in {"RAY_ADDRESS"}}
    env["PYTHONPATH"] = os.pathsep.join([str(REPO), *filter(None, [env.get("PYTHONPATH")])])
    env["PYTHONUNBUFFERED"] = "1"
    env.update(extra)
    return env


def submit_in_background(sweep_file: Path, root: Path, cwd: Path):
    """``tsweep submit SWEEP_FILE --storage ROOT --no-live`` in its own session (so that
    :func:`kill_driver` takes its local Ray cluster with it), its output in ``cwd/submit.log``:
    (the process, the open log file)."""
    log = open(cwd / "submit.log", "w")
    proc = subprocess.Popen(
        [*tsweep_cmd(), "submit", str(sweep_file), "--storage", str(root), "--no-live"],
        cwd=cwd,
        env=subprocess_env(),
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    return proc, log


def resume(sweep_name: str, root: Path, cwd: Path, timeout: float = 300) -> subprocess.CompletedProcess:
    """``tsweep resume SWEEP --storage ROOT --no-live``, as a user runs it after a driver died."""
    return subprocess.run(
        [*tsweep_cmd(), "resume", sweep_name, "--storage", str(root), "--no-live"],
        cwd=cwd,
        env=subprocess_env(),
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def cluster_address_file() -> Path:
    """Where ``ray.cluster_utils.Cluster`` advertises its address: {Ray's default temp dir}/
    ray_current_cluster, whatever temp dir its nodes use. It writes there without creating the
    folder, which exists only once some Ray session used the default temp dir on this machine
    (a fresh machine running one cluster test alone has none): make it before a Cluster starts."""
    system_tmp = os.environ.get("RAY_TMPDIR") or os.environ.get("TMPDIR") or "/tmp"  # Ray's order (Linux)
    return Path(system_tmp, "ray", "ray_current_cluster")


def withdraw_cluster_address(address: str) -> None:
    """``ray.cluster_utils.Cluster`` advertises itself in :func:`cluster_address_file`, where any
    ray.init() on this machine would find and join it: withdraw that at once."""
    addr_file = cluster_address_file()
    if addr_file.exists() and addr_file.read_text().strip() == address:
        addr_file.unlink()


@contextlib.contextmanager
def local_bucket(bucket: str = "sweeps"):
    """A fresh bucket on an S3-compatible server (moto's server mode, as Ray's own storage tests
    use) listening on 127.0.0.1: yields (storage URI under it, environment for subprocesses).
    The credentials go into this process's environment too, so that the Ray nodes it starts and
    the ``pyarrow.fs`` filesystems it opens find them where they look by default."""
    import boto3
    from moto.server import ThreadedMotoServer

    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0)
    server.start()
    host, port = server.get_host_and_port()
    creds = {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing", "AWS_DEFAULT_REGION": "us-east-1"}
    os.environ.update(creds)
    env = {**os.environ, **creds, "PYTHONUNBUFFERED": "1", "RAY_USAGE_STATS_ENABLED": "0"}
    boto3.client("s3", endpoint_url=f"http://{host}:{port}", region_name="us-east-1").create_bucket(Bucket=bucket)
    try:
        yield f"s3://{bucket}/tsweep?endpoint_override={host}:{port}&scheme=http&region=us-east-1", env
    finally:
        server.stop()


# What tsweep writes into a sweep folder, by name: none of it may land on a node's local disk
# when the sweep lives in a bucket (tsweep.core.layout lists the folder; checkpoints.MANIFEST).
SWEEP_FILE_NAMES = {
    "sweep.yaml",
    "lease.json",
    "latest.json",
    "history.jsonl",
    "attempts",
    "manifest.json",
    "report.html",
    "summary.md",
    "latest",
}
SWEEP_FILE_SUFFIXES = (".parquet", ".safetensors", "model_states.pt", "optim_states.pt", ".png")


def sweep_files_under(folder: Path, names: tuple[str, ...] = ()) -> list[Path]:
    """Files under ``folder`` that are a sweep's own (by name), or lie in a folder named after the
    sweep's URI or one of ``names`` (a bucket, a sweep)."""
    found = []
    for p in Path(folder).rglob("*"):
        if not p.is_file():
            continue
        if (
            p.name in SWEEP_FILE_NAMES
            or p.name.endswith(SWEEP_FILE_SUFFIXES)
            or any(part.startswith("s3:") or part in names for part in p.relative_to(folder).parts[:-1])
        ):
            found.append(p)
    return found
