"""A tiny sweep end to end through a real local Ray cluster on CPU: plan, Tune, DeepSpeed
workers, the Arrow store, the analysis actor, gaps; then a resume that runs nothing."""

import json
import os
from pathlib import Path

import pytest

from tsweep.cli import main
from tsweep.orchestrator.plan import expand
from tsweep.core.store import Store
from tsweep.sweeps.schema import load_sweep, parse_sweep

TINY = Path(__file__).parent / "data" / "tiny.yaml"

pytestmark = pytest.mark.cluster


@pytest.fixture(scope="module")
def ray_cluster():
    import ray

    from tsweep.orchestrator.run import init_ray

    url = init_ray(None, num_cpus=2)
    yield url
    ray.shutdown()


def test_tiny_sweep_end_to_end(ray_cluster, tmp_path, capsys):
    from tsweep.orchestrator.run import run_sweep

    d = load_sweep(TINY).model_dump(mode="json")
    d["model_sizes"] = ["nano", "micro"]  # two sizes: enough scratch runs for the from-scratch law
    sweep = parse_sweep(d)
    layout = sweep.layout(str(tmp_path))
    graph = expand(sweep, layout)
    res = run_sweep(sweep, layout=sweep.layout(str(tmp_path)), live=False)
    assert res.failed == [] and res.blocked == {}
    assert res.ran == len(graph.jobs) and res.skipped == 0

    store = Store(layout.store_root)
    summaries = store.read_summaries().to_pylist()
    assert sorted(r["job_id"] for r in summaries) == sorted(j.job_id for j in graph.jobs)  # one row per job
    assert all(r["status"] == "ok" for r in summaries)
    evals = store.read_evals().to_pylist()
    assert {r["job_id"] for r in evals} == {j.job_id for j in graph.jobs}
    keys = [(r["job_id"], r["step"]) for r in evals]
    assert len(keys) == len(set(keys)), "duplicate eval rows"

    # the analysis actor refit on every finished job and left an honest fit behind
    latest = json.loads(Path(layout.fits_dir, "latest.json").read_text())
    history = [json.loads(line) for line in Path(layout.fits_dir, "history.jsonl").read_text().splitlines()]
    finished = [h["n_jobs_finished"] for h in history]
    assert finished == sorted(finished) and finished[-1] == len(graph.jobs)  # refits that coalesce, in order
    assert res.report is not None and res.report.n_jobs_finished == len(graph.jobs)
    E = latest["scratch"]["params"]["E"]  # a number with its interval, or null and why
    assert (E["value"] is not None and E["value"] > 0) or E["reason"].startswith("not identified")
    for png in res.plots:
        assert os.path.getsize(png) > 1000

    capsys.readouterr()
    assert main(["gaps", sweep.name, "--storage", str(tmp_path), "--json"]) == 0
    printed = capsys.readouterr().out
    out = json.loads(printed)
    assert {s["source"] for s in out["sources"]} == {"prose"}

    # resubmitting finds every job done and runs nothing
    again = run_sweep(sweep, layout=sweep.layout(str(tmp_path)), live=False)
    assert again.ran == 0 and again.skipped == len(graph.jobs)
    assert store.read_summaries().num_rows == len(graph.jobs)
