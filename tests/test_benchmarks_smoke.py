"""The scheduling, trial-overhead and store-ingest benchmarks run at a tiny size and end with their
one figure (a last line ``NAME VALUE``), and that figure is what it says: each test records what the
benchmark measured (by wrapping the function that measures it) and checks the figure against a
value computed here from those measurements, and against bounds that follow from what is measured
(a makespan is at least the schedule's lower bound; a span timed inside a call is shorter than the
call)."""

import importlib.util
import logging
import math
import re
import sys
import time
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parents[1] / "benchmarks"
LAST = re.compile(r"^([a-z_]+) (\S+)$")


def _load(name: str):
    if str(BENCH) not in sys.path:
        sys.path.insert(0, str(BENCH))
    spec = importlib.util.spec_from_file_location(name, BENCH / f"{name}.py")
    mod = importlib.util.module_from_spec(spec)
    sys.modules[name] = mod  # by name, so that Ray can pickle its functions by value
    spec.loader.exec_module(mod)
    return mod


def _figure(out: str, name: str) -> float:
    last = out.strip().splitlines()[-1]
    m = LAST.match(last)
    assert m, f"last line is not 'NAME VALUE': {last!r}"
    assert m.group(1) == name
    value = float(m.group(2))
    assert math.isfinite(value)
    return value


@pytest.fixture(scope="module")
def ray_cluster():
    import ray

    started = not ray.is_initialized()
    if started:
        ray.init(
            num_cpus=2,
            include_dashboard=False,
            log_to_driver=False,
            logging_level=logging.WARNING,
            namespace="tsweep-bench-test",
        )
    yield
    if started:
        ray.shutdown()


def _spy(calls: list, fn):
    """``fn``, recording each call's arguments, result and the wall time of the whole call."""

    def wrapped(*args, **kwargs):
        t0 = time.perf_counter()
        out = fn(*args, **kwargs)
        calls.append({"args": args, "kwargs": kwargs, "out": out, "elapsed": time.perf_counter() - t0})
        return out

    return wrapped


def _keeping_results(grids: list, make_tuner):
    """``run.sweep_tuner``, with each Tuner's ``fit`` keeping the ResultGrid it returns."""

    def wrapped(*args, **kwargs):
        tuner = make_tuner(*args, **kwargs)
        fit = tuner.fit

        def fit_and_keep():
            grids.append(fit())
            return grids[-1]

        tuner.fit = fit_and_keep
        return tuner

    return wrapped


def _most_at_once(spans: list[tuple[float, float]]) -> int:
    """The largest number of the ``(start, end)`` spans that overlap at one moment."""
    edges = sorted([(s, 1) for s, _ in spans] + [(e, -1) for _, e in spans], key=lambda x: (x[0], x[1]))
    most = now = 0
    for _, step in edges:
        now += step
        most = max(most, now)
    return most


@pytest.mark.cluster
def test_scheduling_tiny(ray_cluster, capsys, monkeypatch):
    bench = _load("scheduling")
    jobs = bench.build_jobs(bench.TINY_SWEEP)
    scale, slots = 0.02, 2
    dur = bench.durations(jobs, bench.LB_S * scale, slots)
    # The lower bound, from the graph: the longest chain (a fine-tune starts when its parent passes
    # its checkpoint p, at p / tokens of the parent's time) and the work per slot. The stand-ins'
    # times are scaled so that it is LB_S * scale.
    by_id = {j.job_id: j for j in jobs}
    chain = max(
        dur[j.job_id] + (dur[j.parent] * j.pretrain_tokens / by_id[j.parent].data_tokens if j.parent else 0.0)
        for j in jobs
    )
    lb = max(chain, sum(dur.values()) / slots)
    assert lb == pytest.approx(bench.LB_S * scale) == pytest.approx(bench.lower_bound(jobs, dur, slots))
    # The zero-overhead simulation of the release rule is a list schedule: between the lower
    # bound and Graham's bound for list scheduling under precedence (work per slot + the chain).
    assert lb - 1e-9 <= bench.simulate(jobs, dur, slots) <= sum(dur.values()) / slots + chain + 1e-9

    # what the benchmark measured: its Tune run (wall time, spans) and that run's results per job
    from tsweep.orchestrator import run as run_mod

    runs: list = []
    grids: list = []
    monkeypatch.setattr(bench, "tune_run", _spy(runs, bench.tune_run))
    monkeypatch.setattr(run_mod, "sweep_tuner", _keeping_results(grids, run_mod.sweep_tuner))
    t0 = time.perf_counter()
    res = bench.main(scale=scale, sweep=bench.TINY_SWEEP, slots=slots, naive=False)
    elapsed = time.perf_counter() - t0
    ratio = _figure(capsys.readouterr().out, "scheduling_makespan_ratio")

    (run,) = [c["out"] for c in runs]  # naive=False: tsweep's one Tune run only
    (grid,) = grids
    span = {r.config["job"]["job_id"]: (r.metrics["t_start"], r.metrics["t_end"]) for r in grid}
    assert run["n"] == len(grid) == len(span) == len(jobs)
    for j in jobs:  # every stand-in slept its job's time; a fine-tune started once its parent passed p
        start, end = span[j.job_id]
        assert end - start >= dur[j.job_id] - 1e-3, j.label
        if j.parent:
            at_p = span[j.parent][0] + dur[j.parent] * j.pretrain_tokens / by_id[j.parent].data_tokens
            assert start >= at_p - 1e-3, f"{j.label} started {at_p - start:.3f} s before its checkpoint"
    assert _most_at_once(list(span.values())) <= slots
    # the figure: that run's makespan over the lower bound; no schedule beats the bound, and the
    # makespan was timed inside the call
    assert res["tsweep_s"] == run["wall"] and res["lower_bound_s"] == pytest.approx(lb)
    assert ratio == pytest.approx(run["wall"] / lb, abs=1e-3)
    assert 1.0 <= ratio <= elapsed / lb


def test_scheduling_graph_is_the_300_job_sweep():
    bench = _load("scheduling")
    jobs = bench.build_jobs()
    assert len(jobs) == 300
    assert {j.kind for j in jobs} == {"pretrain", "finetune", "scratch"}


@pytest.mark.cluster
def test_pending_trials_fill_the_cluster_once(ray_cluster):
    # The benchmarks run under run.sweep_tuner's pending-trial limit: one wave of the cluster's slots.
    from tsweep.orchestrator.run import max_pending_trials

    jobs = _load("scheduling").build_jobs(_load("scheduling").TINY_SWEEP)
    assert max_pending_trials(jobs) == 2  # 2 CPUs, 1 CPU a job
    assert max_pending_trials([j.__class__(**{**j.to_dict(), "cpus": 0.5}) for j in jobs]) == 4
    assert max_pending_trials([]) == 2


@pytest.mark.cluster
def test_trial_overhead_tiny(ray_cluster, capsys, monkeypatch):
    bench = _load("trial_overhead")
    raw: list = []
    ts: list = []
    monkeypatch.setattr(bench, "run_raw", _spy(raw, bench.run_raw))
    monkeypatch.setattr(bench, "run_tsweep", _spy(ts, bench.run_tsweep))
    res = bench.main(n=3, small=None, rounds=1, warmup=False)
    ratio = _figure(capsys.readouterr().out, "trial_overhead_ratio")
    # one Tune run of 3 trials per side, each run's fit() timed inside its call
    (r,), (t,) = raw, ts
    assert r["args"][0] == t["args"][0] == 3
    assert 0 < r["out"] <= r["elapsed"] and 0 < t["out"] <= t["elapsed"]
    # the figure: tsweep's seconds per trial over raw Tune's, from those two runs
    assert res["per_trial"] == {"raw": pytest.approx(r["out"] / 3), "tsweep": pytest.approx(t["out"] / 3)}
    assert ratio == pytest.approx(t["out"] / r["out"], abs=1e-3)


def test_store_ingest_tiny(capsys, monkeypatch):
    bench = _load("store_ingest")
    phases: list = []
    monkeypatch.setattr(bench, "phase", _spy(phases, bench.phase))
    res = bench.main(shards=20, rounds=1, writers=1, jobs=4)
    rate = _figure(capsys.readouterr().out, "store_ingest_rows_per_s")
    assert [p["args"][0] for p in phases] == [False, True]  # round 0: without the reader, then with it
    rows = 1 * 20 * bench.ROWS_PER_SHARD  # writers x shards x rows per shard
    for p in phases:
        # every row written is in the store (phase reads it back), and the timed span (writers
        # started on one signal after a 1 s settle) lies inside the call
        assert p["out"]["rows"] == rows
        assert 0 < p["out"]["seconds"] < p["elapsed"] - 1.0
    alone, shared = (p["out"] for p in phases)
    # the figure: rows over the span of the phase with the reader running
    assert rate == pytest.approx(rows / shared["seconds"], abs=0.051)
    assert res["rows_per_s_alone"] == pytest.approx(rows / alone["seconds"])
    # the reader ran beside the writers and never met a torn or unreadable shard
    assert shared["reader"] is not None and alone["reader"] is None
    assert res["read_failures"] == {"read_evals": 0, "dataset": 0} and res["quarantined"] == 0


def test_worker_gpu_figures_run_at_toy_size_on_cpu():
    """The GPU half of worker_throughput (MFU, packed jobs) runs end to end at toy sizes; its
    figures only mean something on a GPU, so only their shape is checked here."""
    from tsweep.core.sizes import get_size

    g = _load("_worker_gpu")
    m = g.mfu(smoke=True)
    assert m["tokens_per_s"] > 0 and m["device"] == "cpu" and math.isnan(m["mfu"])
    pico = get_size("pico")  # the smoke size, at sequence length 32
    assert (m["size"], m["n_params"]) == ("pico", pico.n_params)
    assert m["tflops"] == pytest.approx(m["tokens_per_s"] * pico.flops_per_token(32) / 1e12)
    assert g.peak_flops("NVIDIA H100 80GB HBM3") == 989e12 and g.peak_flops("NVIDIA H100 PCIe") == 756e12
    p = g.packing(smoke=True, k=2)
    assert p["jobs"] == 2 and p["alone_tokens_per_s"] > 0 and p["packed_tokens_per_s"] > 0
    assert p["ratio"] == pytest.approx(p["packed_tokens_per_s"] / p["alone_tokens_per_s"])
