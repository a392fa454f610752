"""The analysis actor as a plain class (no cluster), its files, and the plots it feeds."""

import json
import os

import pytest

from tsweep.analysis import actor as actor_mod
from tsweep.analysis.actor import AnalysisActor, read_history, read_latest
from tsweep.analysis.plots import write_plots
from tsweep.analysis.synthetic import synthetic_summary
from tsweep.core.store import Store


@pytest.fixture(scope="module")
def rows():
    return synthetic_summary(mode="barnett", seed=4).to_pylist()


def _sweep(tmp_path, rows):
    sweep_dir = str(tmp_path / "sweep")
    store = Store(os.path.join(sweep_dir, "store"))
    for r in rows:
        store.write_summary(r)
    return sweep_dir, store


def test_refit_writes_latest_and_appends_history(tmp_path, rows):
    sweep_dir, store = _sweep(tmp_path, rows[:100])
    a = AnalysisActor(sweep_dir, bootstrap=20, seed=0)
    assert a.latest() is None
    first = a.refit()
    assert a.refit() is first  # nothing new in the store: no refit, no history line
    for r in rows[100:]:
        store.write_summary(r)
    second = a.refit()
    assert first.n_jobs_finished == 100 and second.n_jobs_finished == len(rows)
    on_disk = read_latest(sweep_dir)
    assert on_disk.to_json() == second.to_json() == a.latest().to_json()
    hist = read_history(sweep_dir)
    assert [h["n_jobs_finished"] for h in hist] == [100, len(rows)]
    assert {s["source"] for s in hist[-1]["sources"]} == {"text", "code"}
    assert hist[-1]["sources"][0]["G"]["ci95"] is not None
    assert not [f for f in os.listdir(os.path.join(sweep_dir, "fits")) if f.endswith(".tmp")]


def test_a_latest_json_of_another_format_is_ignored_not_fatal(tmp_path, rows):
    sweep_dir, _ = _sweep(tmp_path, rows[:10])
    fits = os.path.join(sweep_dir, "fits")
    os.makedirs(fits)
    with open(os.path.join(fits, "latest.json"), "w") as f:
        json.dump({"sources": [{"source": "x", "G": {"value": 1.0}}]}, f)  # an older report's shape
    assert read_latest(sweep_dir) is None and AnalysisActor(sweep_dir).latest() is None


def test_a_restarted_actor_rebuilds_from_fits_and_store(tmp_path, rows):
    sweep_dir, _ = _sweep(tmp_path, rows)
    a = AnalysisActor(sweep_dir, bootstrap=0, seed=0)
    before = a.refit()
    b = AnalysisActor(sweep_dir, bootstrap=0, seed=0)
    assert b.latest().to_json() == before.to_json()
    assert {"scratch", "curve/l", "gap/l/code|text", "hernandez/text"} <= set(b.latest().warm_starts())
    after = b.refit()
    g = lambda rep: {s.source: s.G.value for s in rep.sources}  # noqa: E731
    for src, v in g(before).items():
        assert g(after)[src] == pytest.approx(v, rel=1e-4)


def test_statuses_diverged_count_as_finished_failed_do_not(tmp_path, rows):
    bad = [dict(rows[-1], job_id="x1", status="diverged"), dict(rows[-2], job_id="x2", status="failed")]
    sweep_dir, _ = _sweep(tmp_path, rows + bad)
    out = AnalysisActor(sweep_dir, bootstrap=0, seed=0).refit()
    assert out.n_jobs_finished == len(rows) + 1
    assert out.left_out["status=diverged"] == 1 and out.left_out["status=failed"] == 1


def test_a_failing_fit_is_recorded_and_keeps_the_previous_report(tmp_path, rows, monkeypatch):
    sweep_dir, _ = _sweep(tmp_path, rows)
    a = AnalysisActor(sweep_dir, bootstrap=0, seed=0)
    good = a.refit()

    def boom(*args, **kwargs):
        raise RuntimeError("synthetic failure")

    monkeypatch.setattr(actor_mod, "transfer_report", boom)
    store = Store(os.path.join(sweep_dir, "store"))
    store.write_summary(dict(rows[-1], job_id="one-more"))  # something new, so the actor refits
    out = a.refit()
    assert out is good and "synthetic failure" in a.last_error
    assert read_latest(sweep_dir).to_json() == good.to_json()
    last = json.loads(open(os.path.join(sweep_dir, "fits", "history.jsonl")).read().splitlines()[-1])
    assert "synthetic failure" in last["error"]


def test_an_empty_store_gives_an_honest_empty_report(tmp_path):
    sweep_dir = str(tmp_path / "empty")
    out = AnalysisActor(sweep_dir, bootstrap=10, seed=0).refit()
    assert out.scratch is None and out.sources == () and out.n_rows == 0
    assert any("scratch law not fitted" in w for w in out.warnings)
    paths = write_plots(sweep_dir)
    assert len(paths) == 3 and all(os.path.getsize(p) > 1000 for p in paths)


def test_plots_are_written_from_the_store_and_history(tmp_path, rows):
    sweep_dir, store = _sweep(tmp_path, rows[:120])
    a = AnalysisActor(sweep_dir, bootstrap=10, seed=0)
    a.refit()
    for r in rows[120:]:
        store.write_summary(r)
    a.refit()
    paths = write_plots(sweep_dir)
    assert [os.path.basename(p) for p in paths] == ["loss_vs_finetune.png", "dt_vs_df.png", "gap_history.png"]
    for p in paths:
        assert p.startswith(os.path.join(sweep_dir, "plots")) and os.path.getsize(p) > 5000


@pytest.mark.cluster
def test_named_ray_actor_is_a_singleton_and_refits(tmp_path, rows):
    ray = pytest.importorskip("ray")
    from tsweep.analysis.actor import start_analysis_actor

    sweep_dir, _ = _sweep(tmp_path, rows)
    started_here = not ray.is_initialized()
    if started_here:
        ray.init(num_cpus=1, include_dashboard=False, log_to_driver=False)
    try:
        kw = dict(sweep_dir=sweep_dir, bootstrap=0, seed=0)
        a = start_analysis_actor("analysis:test", "tsweep-test", **kw)
        b = start_analysis_actor("analysis:test", "tsweep-test", **kw)
        assert a._actor_id == b._actor_id
        out = ray.get(a.refit.remote(), timeout=120)
        assert out.n_jobs_finished == len(rows)
        assert ray.get(b.latest.remote()).to_json() == out.to_json()
        ray.kill(a)
    finally:
        if started_here:
            ray.shutdown()


def test_the_live_view_reads_the_typed_report(tmp_path, rows):
    import io

    from tsweep.orchestrator.progress import LiveProgress

    sweep_dir, _ = _sweep(tmp_path, rows)
    report = AnalysisActor(sweep_dir, bootstrap=0, seed=0).refit()
    view = LiveProgress("synthetic", [], os.path.join(sweep_dir, "fits", "latest.json"), live=False,
                        stream=io.StringIO())
    assert view.gap_summary() == "G: not yet identified"
    view._poll_fit()
    assert view.latest_fit.to_json() == report.to_json()
    text = report.source("text").G
    assert f"text {text.format()}" in view.gap_summary()
