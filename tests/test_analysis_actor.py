"""The analysis actor as a plain class (no cluster), its files, and the plots it feeds."""

import json
import os

import pytest

from tsweep.analysis import actor as actor_mod
from tsweep.analysis.actor import AnalysisActor, read_history, read_latest
from tsweep.analysis.plots import write_plots
from tsweep.analysis.synthetic import synthetic_summary
from tsweep.core.jsonio import finite
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
    for r in rows[100:]:
        store.write_summary(r)
    second = a.refit()
    assert first["n_jobs_finished"] == 100 and second["n_jobs_finished"] == len(rows)
    on_disk = read_latest(sweep_dir)
    assert finite(on_disk.to_json()) == second == a.latest()
    hist = read_history(sweep_dir)
    assert [h["n_jobs_finished"] for h in hist] == [100, len(rows)]
    assert {s["source"] for s in hist[-1]["sources"]} == {"text", "code"}
    assert hist[-1]["sources"][0]["G"]["ci95"] is not None
    assert not [f for f in os.listdir(os.path.join(sweep_dir, "fits")) if f.endswith(".tmp")]


def test_a_restarted_actor_rebuilds_from_fits_and_store(tmp_path, rows):
    sweep_dir, _ = _sweep(tmp_path, rows)
    a = AnalysisActor(sweep_dir, bootstrap=20, seed=0)
    before = a.refit()
    b = AnalysisActor(sweep_dir, bootstrap=20, seed=0)
    assert b.latest() == before
    assert "scratch" in b._warm and "gap/l" in b._warm and "plateau/l" in b._warm
    after = b.refit()
    g = lambda rep: {s["source"]: s["G"]["value"] for s in rep["sources"]}  # noqa: E731
    assert g(before) and all(v is not None for v in g(before).values())
    for src, v in g(before).items():
        assert g(after)[src] == pytest.approx(v, rel=1e-4)


def test_statuses_diverged_count_as_finished_failed_do_not(tmp_path, rows):
    bad = [dict(rows[-1], job_id="x1", status="diverged"), dict(rows[-2], job_id="x2", status="failed")]
    sweep_dir, _ = _sweep(tmp_path, rows + bad)
    out = AnalysisActor(sweep_dir, bootstrap=0, seed=0).refit()
    assert out["n_jobs_finished"] == len(rows) + 1
    assert out["left_out"]["status=diverged"] == 1 and out["left_out"]["status=failed"] == 1


def _boom(*args, **kwargs):
    raise RuntimeError("synthetic failure")


def test_a_failing_fit_is_recorded_and_keeps_the_previous_report(tmp_path, rows, monkeypatch):
    sweep_dir, store = _sweep(tmp_path, rows[:-1])
    a = AnalysisActor(sweep_dir, bootstrap=0, seed=0)
    good = a.refit()
    store.write_summary(rows[-1])  # new rows: a refit is due, and fails
    monkeypatch.setattr(actor_mod, "transfer_report", _boom)
    out = a.refit()
    assert "synthetic failure" in out["error"] and out["latest"] == good
    assert finite(read_latest(sweep_dir).to_json()) == good
    last = json.loads(open(os.path.join(sweep_dir, "fits", "history.jsonl")).read().splitlines()[-1])
    assert "synthetic failure" in last["error"]


def test_a_refit_of_the_rows_it_already_fitted_returns_that_report_without_fitting(tmp_path, rows, monkeypatch):
    """The driver's final refit after a live refit that saw every job: the same answer, no
    second bootstrap, no second history line; a new row, or a restarted actor, fits again."""
    sweep_dir, store = _sweep(tmp_path, rows[:-1])
    a = AnalysisActor(sweep_dir, bootstrap=10, seed=0)
    live = a.refit()
    with monkeypatch.context() as m:
        m.setattr(actor_mod, "transfer_report", _boom)
        assert a.refit() == live == a.latest()  # the store read again: the same rows
    assert len(read_history(sweep_dir)) == 1
    store.write_summary(rows[-1])
    assert a.refit()["n_rows"] == live["n_rows"] + 1
    restarted = AnalysisActor(sweep_dir, bootstrap=10, seed=0)
    monkeypatch.setattr(actor_mod, "transfer_report", _boom)
    assert "synthetic failure" in restarted.refit()["error"]  # it never saw these rows fitted


def test_rows_key_ignores_row_order_and_sees_any_changed_value():
    import pyarrow as pa

    table = synthetic_summary(mode="barnett", seed=4)
    key = actor_mod.rows_key(table)
    assert actor_mod.rows_key(table.take(list(range(table.num_rows))[::-1])) == key
    losses = table.column("best_eval_loss").to_pylist()
    changed = table.set_column(
        table.column_names.index("best_eval_loss"), "best_eval_loss", pa.array([losses[0] + 1e-12, *losses[1:]])
    )
    assert actor_mod.rows_key(changed) != key
    assert actor_mod.rows_key(table.slice(1)) != key


def test_an_empty_store_gives_an_honest_empty_report(tmp_path):
    sweep_dir = str(tmp_path / "empty")
    out = AnalysisActor(sweep_dir, bootstrap=10, seed=0).refit()
    assert out["scratch"] is None and out["sources"] == [] and out["n_rows"] == 0
    assert any("no ok fine-tune runs yet" in w for w in out["warnings"])
    paths = write_plots(sweep_dir)
    assert len(paths) == 7 and all(os.path.getsize(p) > 1000 for p in paths)
    assert all(os.path.getsize(p[: -len("png")] + "svg") > 1000 for p in paths)


def test_plots_are_written_from_the_store_and_history(tmp_path, rows):
    sweep_dir, store = _sweep(tmp_path, rows[:120])
    a = AnalysisActor(sweep_dir, bootstrap=10, seed=0)
    a.refit()
    for r in rows[120:]:
        store.write_summary(r)
    a.refit()
    paths = write_plots(sweep_dir)
    assert [os.path.basename(p) for p in paths] == [
        "loss_vs_finetune.png",
        "scratch_curves.png",
        "dt_vs_df.png",
        "gaps.png",
        "loss_vs_p.png",
        "gap_history.png",
        "learning_curves.png",
    ]
    for p in paths:
        assert p.startswith(os.path.join(sweep_dir, "plots")) and os.path.getsize(p) > 5000


def test_plots_drawn_in_two_processes_are_the_same_pictures(tmp_path, rows):
    """``write_plots(processes=2)`` (the end of a run) hands a share of the figures to a second
    interpreter: the same PNG bytes as one process draws, every SVG beside them."""
    from pathlib import Path

    sweep_dir, _ = _sweep(tmp_path, rows)
    AnalysisActor(sweep_dir, bootstrap=10, seed=0).refit()
    one = write_plots(sweep_dir)
    pictures = {p: Path(p).read_bytes() for p in one}
    for p in one:
        Path(p).unlink()
        Path(p[: -len("png")] + "svg").unlink()
    assert write_plots(sweep_dir, processes=2) == one
    assert {p: Path(p).read_bytes() for p in one} == pictures
    assert all(os.path.getsize(p[: -len("png")] + "svg") > 1000 for p in one)


def test_plot_helpers_started_early_draw_or_are_stopped(tmp_path, rows):
    """A driver starts the second plotting interpreter before its final refit: used by
    ``write_plots`` (same pictures), or, when the refit fails, stopped, never left behind."""
    from tsweep.analysis.plots import start_helpers, stop_helpers

    unused = start_helpers(1)
    stop_helpers(unused)
    assert unused[0].poll() is not None
    sweep_dir, _ = _sweep(tmp_path, rows)
    AnalysisActor(sweep_dir, bootstrap=10, seed=0).refit()
    helpers = start_helpers(1)
    paths = write_plots(sweep_dir, processes=2, helpers=helpers)
    assert helpers[0].poll() == 0 and len(paths) == 7
    with pytest.raises(ValueError, match="helpers"):
        write_plots(sweep_dir, processes=3, helpers=[])


def test_plot_shares_are_whole_and_balanced():
    from tsweep.analysis.plots import DRAW_SECONDS, NAMES, shares

    two = shares(NAMES, 2)
    assert sorted(two[0] + two[1]) == sorted(NAMES) and "learning_curves" in two[0]
    loads = [sum(DRAW_SECONDS[n] for n in share) for share in two]
    assert max(loads) - min(loads) <= min(DRAW_SECONDS[n] for n in NAMES)
    assert shares(NAMES, 1) == [sorted(NAMES, key=lambda n: -DRAW_SECONDS[n])]
    assert [s for s in shares(["gaps"], 3) if s] == [["gaps"]]


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
        assert out["n_jobs_finished"] == len(rows)
        assert ray.get(b.latest.remote()) == out
        ray.kill(a)
    finally:
        if started_here:
            ray.shutdown()


def test_the_live_fit_equals_a_cold_refit_of_the_final_table(tmp_path, rows):
    """Rows arrive in a realistic finishing order (scratch runs and fine-tunes of early
    checkpoints first) and the actor refits after each batch from its previous fits; its final
    latest.json must say what a cold fit of the final table says: the same identified numbers,
    the same intervals, the same verdicts."""
    from tsweep.analysis.records import TransferReport
    from tsweep.analysis.transfer import transfer_report

    order = sorted(rows, key=lambda r: (r["kind"] != "scratch", r["pretrain_tokens"], r["data_tokens"]))
    sweep_dir, store = _sweep(tmp_path, [])
    actor = AnalysisActor(sweep_dir, bootstrap=30, seed=0)
    for lo in range(0, len(order), 40):
        for r in order[lo : lo + 40]:
            store.write_summary(r)
        actor.refit()
    live = TransferReport.from_json(read_latest(sweep_dir).to_json())
    cold = transfer_report(store.read_summaries(), bootstrap=30, seed=0)
    for a, b in zip(live.sources, cold.sources, strict=True):
        for name in ("G", "G_loss", "k", "alpha", "beta", "multiplier"):
            ea, eb = getattr(a, name), getattr(b, name)
            assert ea.identified == eb.identified, (a.source, name, ea, eb)
            if ea.identified:
                assert ea.value == pytest.approx(eb.value, rel=1e-3), (a.source, name)
                assert ea.ci95 == pytest.approx(eb.ci95, rel=2e-2), (a.source, name)


def test_refit_requests_coalesce_into_few_refits(tmp_path, rows, monkeypatch):
    """A burst of finished jobs is served by one refit after the one in progress, never by one
    refit each queued behind a slow fit."""
    import threading
    import time

    sweep_dir, _ = _sweep(tmp_path, rows)
    a = AnalysisActor(sweep_dir, bootstrap=0, seed=0)
    calls = []
    release = threading.Event()
    original = actor_mod.transfer_report

    def slow(table, **kw):
        calls.append(time.monotonic())
        release.wait(5)
        return original(table, **kw)

    monkeypatch.setattr(actor_mod, "transfer_report", slow)
    for _ in range(20):
        a.request()
    time.sleep(0.2)
    release.set()
    a._worker.join(30)
    assert 1 <= len(calls) <= 2, len(calls)
    assert read_latest(sweep_dir) is not None
