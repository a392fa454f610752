"""The scheduling, trial-overhead and store-ingest benchmarks import and run at a tiny size, and
end with their one figure: a last line ``NAME VALUE`` with VALUE a float."""

import importlib.util
import logging
import math
import re
import sys
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


@pytest.mark.cluster
def test_scheduling_tiny(ray_cluster, capsys):
    bench = _load("scheduling")
    jobs = bench.build_jobs(bench.TINY_SWEEP)
    dur = bench.durations(jobs, 1.0, bench.SLOTS)
    # The zero-overhead simulation can never beat the lower bound.
    assert bench.simulate(jobs, dur, bench.SLOTS) >= bench.lower_bound(jobs, dur, bench.SLOTS) - 1e-9
    res = bench.main(scale=0.02, sweep=bench.TINY_SWEEP, slots=2, naive=False)
    ratio = _figure(capsys.readouterr().out, "scheduling_makespan_ratio")
    assert ratio == pytest.approx(res["ratio"], rel=1e-2) and ratio >= 1.0


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
def test_trial_overhead_tiny(ray_cluster, capsys):
    bench = _load("trial_overhead")
    res = bench.main(n=3, small=None, rounds=1, warmup=False)
    ratio = _figure(capsys.readouterr().out, "trial_overhead_ratio")
    assert ratio == pytest.approx(res["ratio"], rel=1e-2) and ratio > 0


def test_store_ingest_tiny(capsys):
    bench = _load("store_ingest")
    res = bench.main(shards=20, rounds=1, writers=1, jobs=4)
    rate = _figure(capsys.readouterr().out, "store_ingest_rows_per_s")
    assert rate == pytest.approx(res["rows_per_s"], rel=1e-2) and rate > 0


def test_worker_gpu_figures_run_at_toy_size_on_cpu():
    """The GPU half of worker_throughput (MFU, packed jobs) runs end to end at toy sizes; its
    figures only mean something on a GPU, so only their shape is checked here."""
    g = _load("_worker_gpu")
    m = g.mfu(smoke=True)
    assert m["tokens_per_s"] > 0 and m["device"] == "cpu" and math.isnan(m["mfu"])
    assert g.peak_flops("NVIDIA H100 80GB HBM3") == 989e12 and g.peak_flops("NVIDIA H100 PCIe") == 756e12
    p = g.packing(smoke=True, k=2)
    assert p["jobs"] == 2 and p["alone_tokens_per_s"] > 0 and p["packed_tokens_per_s"] > 0
