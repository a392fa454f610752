"""A sweep that lives in an object store: the tiny sweep run by the console script with
``--storage s3://...`` against a real S3-compatible server (moto's, started here on 127.0.0.1,
stopped at the end), then read back by ``status`` and ``gaps`` from the same URI.

Everything a sweep writes must land in the bucket and nothing beside it on the local disk: the
sweep YAML, store shards, p-checkpoints (fine-tunes on other nodes find their parents there),
resume states, the attempts counters and ``fits/``. Local folders named after the URI inside a
trial's working folder were how this failed before.
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest
from faultkit import local_bucket

from tsweep.core.layout import Files, join
from tsweep.core.store import Store
from tsweep.orchestrator.plan import expand
from tsweep.sweeps import load_sweep

pytest.importorskip("moto.server", reason="the test extra installs moto[server]")

TINY = Path(__file__).parent / "data" / "tiny.yaml"
TIMEOUT_S = 600
BUCKET = "sweeps"

pytestmark = pytest.mark.cluster


@pytest.fixture(scope="module")
def s3():
    """(storage URI, environment) of a fresh bucket on a local S3 server."""
    with local_bucket(BUCKET) as found:
        yield found


@pytest.fixture(scope="module")
def ran(s3, tmp_path_factory):
    uri, env = s3
    cwd = tmp_path_factory.mktemp("cwd")
    proc = subprocess.run(
        ["tsweep", "submit", str(TINY), "--storage", uri],
        capture_output=True,
        text=True,
        timeout=TIMEOUT_S,
        env=env,
        cwd=cwd,
    )
    return proc, uri, env, cwd


def test_a_sweep_runs_with_its_storage_in_a_bucket(ran):
    proc, uri, _, cwd = ran
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    sweep = load_sweep(TINY)
    layout = sweep.layout(uri)
    graph = expand(sweep, layout)
    summaries = Store(layout.store_root).read_summaries().to_pylist()
    assert sorted(r["job_id"] for r in summaries) == sorted(j.job_id for j in graph.jobs)
    assert all(r["status"] == "ok" for r in summaries), [(r["job_id"], r["reason"]) for r in summaries]
    files = Files(uri)
    assert files.is_file(layout.sweep_yaml) and files.is_file(layout.latest_fit)
    for job in graph.pretrain:
        for p in job.checkpoints:
            assert files.is_file(join(job.p_checkpoint(p), "model.safetensors"))
    # nothing written beside the bucket: no folder named after the URI in the working folder
    assert not any(p.name.startswith(("s3:", BUCKET)) for p in Path(cwd).rglob("*")), list(Path(cwd).rglob("*"))


def test_status_and_gaps_read_the_sweep_from_the_bucket(ran):
    proc, uri, env, cwd = ran
    assert proc.returncode == 0
    st = subprocess.run(
        ["tsweep", "status", "tiny", "--storage", uri, "--json"],
        capture_output=True,
        text=True,
        timeout=120,
        env=env,
        cwd=cwd,
    )
    assert st.returncode == 0, st.stderr
    n = len(expand(load_sweep(TINY)).jobs)
    assert json.loads(st.stdout)["counts"] == {"ok": n}
    gaps = subprocess.run(
        ["tsweep", "gaps", "tiny", "--storage", uri, "--json"],
        capture_output=True,
        text=True,
        timeout=300,
        env=env,
        cwd=cwd,
    )
    assert gaps.returncode == 0, gaps.stderr
    assert json.loads(gaps.stdout)["n_jobs_finished"] == n
