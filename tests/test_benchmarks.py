"""Every benchmark under ``benchmarks/`` runs here at its tiny size (``main(tiny=True)``, the same
code as its full run with smaller numbers), and its figure is checked for what it means: each
check records what the benchmark measured (by wrapping the function that measures it), recomputes
the figure from those measurements, holds it to bounds that follow from what is measured (a
makespan is at least its lower bound; jobs that ran inside a wall time, at most one per core, sum
to at most cores x that time), and compares a result with a reference computed apart (two runs
of the same training give the same losses; a fit recovers the law it was drawn from).

A benchmark with no check here fails :func:`test_every_benchmark_is_checked`; a benchmark that
breaks (the demo job it looks up renamed, say) fails its check. Every figure is printed with the
machine that gave it (``benchmarks/_machine.py``), which each check also reads back.
"""

import importlib.util
import logging
import math
import os
import re
import statistics
import subprocess
import sys
import time
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parents[1] / "benchmarks"
LAST = re.compile(r"^([a-z_]+) (\S+)$")
REF = re.compile(r"^reference speed: .* ([\d,]+) tokens/s$")


def _load(name: str):
    if str(BENCH) not in sys.path:
        sys.path.insert(0, str(BENCH))
    spec = importlib.util.spec_from_file_location(name, BENCH / f"{name}.py")
    mod = importlib.util.module_from_spec(spec)
    sys.modules[name] = mod  # by name, so that Ray can pickle its functions by value
    spec.loader.exec_module(mod)
    return mod


def _spy(calls: list, fn):
    """``fn``, recording each call's arguments, result and the wall time of the whole call."""

    def wrapped(*args, **kwargs):
        t0 = time.perf_counter()
        out = fn(*args, **kwargs)
        calls.append({"args": args, "kwargs": kwargs, "out": out, "elapsed": time.perf_counter() - t0})
        return out

    return wrapped


class Run:
    """A benchmark's tiny run: its output, and the machine it measured (spied on)."""

    def __init__(self, name: str, monkeypatch):
        self.name, self.bench = name, _load(name)
        self.machines: list = []
        machine = sys.modules["_machine"]
        monkeypatch.setattr(machine, "reference", _spy(self.machines, machine.reference))

    def main(self, capsys, **kwargs):
        self.result = self.bench.main(tiny=True, **kwargs)
        self.out = capsys.readouterr().out
        return self.result

    def figure(self, name: str | None = None) -> float:
        """The value of the last line, ``NAME VALUE``, after the machine's lines."""
        lines = self.out.strip().splitlines()
        m = LAST.match(lines[-1])
        assert m, f"last line is not 'NAME VALUE': {lines[-1]!r}"
        assert m.group(1) == (name or self.name)
        value = float(m.group(2))
        assert math.isfinite(value)
        self._machine_printed(lines)
        return value

    def _machine_printed(self, lines: list[str]) -> None:
        """The machine's lines: its CPU model and the reference speed that was measured, once."""
        (call,) = self.machines
        assert call["kwargs"] == {"tiny": True}
        machine = call["out"]
        (cpu,) = [s for s in lines if s.startswith("machine: ")]
        assert machine.cpu == sys.modules["_machine"].cpu_model() and machine.cpu in cpu
        assert f"{os.cpu_count()} logical CPUs" in cpu
        (ref,) = [REF.match(s) for s in lines if s.startswith("reference speed: ")]
        assert ref and float(ref.group(1).replace(",", "")) == pytest.approx(machine.ref_tokens_per_s, abs=0.5)
        assert 100 < machine.ref_tokens_per_s < 1e8  # a 150k-parameter model on one core


@pytest.fixture(scope="module")
def _ray_for_the_module():
    """Shut down, at the module's end, whatever cluster its tests left connected."""
    yield
    import ray

    ray.shutdown()


@pytest.fixture
def ray_cluster(_ray_for_the_module):
    """A 2-CPU local cluster, started once and kept for the module's tests (a benchmark that
    starts its own, as ``object_store`` must, shuts it down first)."""
    import ray

    if not ray.is_initialized():
        ray.init(
            num_cpus=2,
            include_dashboard=False,
            log_to_driver=False,
            logging_level=logging.WARNING,
            namespace="tsweep-bench-test",
        )


def _own_cluster() -> None:
    """Leave the suite's cluster, for a benchmark that starts its own as its full run does."""
    import ray

    ray.shutdown()


# ------------------------------------------------------------------ worker_throughput
def _largest_demo_pretrain():
    """The demo's largest pre-training job, found here apart from the benchmark: the size of the
    most parameters on the first source that is not scratch."""
    from tsweep.api import shipped_sweep_path
    from tsweep.core.sizes import get_size
    from tsweep.sweeps import load_sweep

    demo = load_sweep(shipped_sweep_path("demo"))
    size = max(demo.model_sizes, key=lambda s: get_size(s).n_params)
    return size, next(s for s in demo.sources if s != "scratch")


def check_worker_throughput(capsys, monkeypatch):
    import torch

    from tsweep.core.cadence import pretrain_eval_steps
    from tsweep.core.sizes import get_size
    from tsweep.sweeps import load_sweep
    from tsweep.workers.training import Training

    run = Run("worker_throughput", monkeypatch)
    b = run.bench
    workers, bares, steps = [], [], []
    monkeypatch.setattr(b, "worker_run", _spy(workers, b.worker_run))
    monkeypatch.setattr(b, "bare_run", _spy(bares, b.bare_run))
    train_step = Training.train_step

    def counted(self, step):
        steps.append(step)
        return train_step(self, step)

    monkeypatch.setattr(Training, "train_step", counted)
    threads = torch.get_num_threads()
    try:
        res = run.main(capsys)
    finally:
        torch.set_num_threads(threads)
    ratio = run.figure()
    job, sweep = res["job"], res["sweep"]
    assert (job.kind, job.size, job.source) == ("pretrain", *_largest_demo_pretrain())
    # one rung per demo size, smallest first, each with one worker and two bare runs (eager, fused)
    demo_sizes = sorted(load_sweep(b.shipped_sweep_path("demo")).model_sizes, key=lambda s: get_size(s).n_params)
    assert [r["job"].size for r in res["rungs"]] == demo_sizes
    assert len(workers) == len(demo_sizes) and len(bares) == 2 * len(demo_sizes)
    per_step = sweep.train.batch_size * sweep.train.seq_len
    w, bare, fused = res["worker"][0], res["bare"][0], res["fused"][0]
    # the worker's tokens are every step it trained, its cooldown branches' included
    assert len(steps) == sum(r["job"].max_steps + b.branch_steps(r["job"], sweep) for r in res["rungs"])
    assert b.branch_steps(job, sweep) > 0
    assert w["tokens"] == (job.max_steps + b.branch_steps(job, sweep)) * per_step
    assert w["evals"] == len(pretrain_eval_steps(interval=sweep.eval.interval_steps, max_steps=job.max_steps)) + 1
    assert len(bare["losses"]) == len(fused["losses"]) == job.max_steps
    for r in res["rungs"]:
        # the same run: the worker's training loss at each evaluation is the bare fused loop's at
        # that step, and the fused loop's first 40 losses are the eager loop's within 1e-4
        assert len(r["worker"][0]["train_loss"]) >= 3 and r["loss_gap"] <= 1e-6
        assert (
            r["first_steps_gap"] == pytest.approx(b.first_steps_gap(r["fused"][0], r["bare"][0]), abs=0)
            and r["first_steps_gap"] <= b.FIRST_STEPS_TOL
        )
    assert ratio == pytest.approx(w["tokens_per_s"] / bare["tokens_per_s"], abs=1e-3)
    # the worker does the bare loop's work and more, with a faster optimizer step: not several
    # times faster, and not several times slower
    assert 0.25 <= ratio <= 3.0
    (cpu_ratio,) = res["cpu_ratios"]  # the same per CPU-second, start-up included on both sides
    assert cpu_ratio == pytest.approx(w["tokens_per_cpu_s"] / bare["tokens_per_cpu_s"])
    assert 0.1 <= cpu_ratio <= 3.0
    (gain,) = res["fused_gain"]
    assert gain == pytest.approx(fused["tokens_per_s"] / bare["tokens_per_s"])


def test_worker_throughput_fails_when_the_job_it_looks_up_is_gone(monkeypatch):
    """Renaming what the benchmark looks up breaks it loudly (one line), not silently."""
    b = _load("worker_throughput")
    monkeypatch.setattr(b, "LOOKUP_KIND", "pre-training")
    with pytest.raises(LookupError, match="the demo sweep plans no 'pre-training' job to benchmark"):
        b.main(tiny=True)


# ------------------------------------------------------------------ scheduling
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


def check_scheduling(capsys, monkeypatch):
    from tsweep.orchestrator import run as run_mod

    run = Run("scheduling", monkeypatch)
    bench = run.bench
    tiny = bench.TINY
    jobs = bench.build_jobs(tiny["sweep"])
    scale, slots = tiny["scale"], tiny["slots"]
    dur = bench.durations(jobs, bench.LB_S * scale, slots)
    # The lower bound, from the graph: the longest chain (a fine-tune starts when its parent passes
    # its checkpoint p, at p / tokens of the parent's time) and the work per slot.
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

    runs: list = []
    grids: list = []
    monkeypatch.setattr(bench, "tune_run", _spy(runs, bench.tune_run))
    monkeypatch.setattr(run_mod, "sweep_tuner", _keeping_results(grids, run_mod.sweep_tuner))
    t0 = time.perf_counter()
    res = run.main(capsys)
    elapsed = time.perf_counter() - t0
    ratio = run.figure("scheduling_makespan_ratio")

    ts, n1, n2 = (c["out"] for c in runs)  # tsweep's one run, then the two phases
    grid = grids[0]
    span = {r.config["job"]["job_id"]: (r.metrics["t_start"], r.metrics["t_end"]) for r in grid}
    assert ts["n"] == len(grid) == len(span) == len(jobs) == n1["n"] + n2["n"]
    for j in jobs:  # every stand-in slept its job's time; a fine-tune started once its parent passed p
        start, end = span[j.job_id]
        assert end - start >= dur[j.job_id] - 1e-3, j.label
        if j.parent:
            at_p = span[j.parent][0] + dur[j.parent] * j.pretrain_tokens / by_id[j.parent].data_tokens
            assert start >= at_p - 1e-3, f"{j.label} started {at_p - start:.3f} s before its checkpoint"
    assert _most_at_once(list(span.values())) <= slots
    # the figure: that run's makespan over the lower bound; no schedule beats the bound, and the
    # makespan was timed inside the call
    assert res["tsweep_s"] == ts["wall"] and res["lower_bound_s"] == pytest.approx(lb)
    assert res["naive_s"] == pytest.approx(n1["wall"] + n2["wall"]) and res["naive_s"] >= lb
    assert ratio == pytest.approx(ts["wall"] / lb, abs=1e-3)
    assert 1.0 <= ratio <= elapsed / lb


def test_scheduling_graph_is_the_300_job_sweep():
    bench = _load("scheduling")
    jobs = bench.build_jobs()
    assert len(jobs) == 300
    assert {j.kind for j in jobs} == {"pretrain", "finetune", "scratch"}


# ------------------------------------------------------------------ trial_overhead
def check_trial_overhead(capsys, monkeypatch):
    run = Run("trial_overhead", monkeypatch)
    bench = run.bench
    raw: list = []
    ts: list = []
    monkeypatch.setattr(bench, "run_raw", _spy(raw, bench.run_raw))
    monkeypatch.setattr(bench, "run_tsweep", _spy(ts, bench.run_tsweep))
    res = run.main(capsys)
    ratio = run.figure("trial_overhead_ratio")
    small, n = bench.TINY["small"], bench.TINY["n"]
    # one Tune run per side and size, each run's fit() timed inside its call
    assert [c["args"][0] for c in raw] == [c["args"][0] for c in ts] == [small, n]
    for c in raw + ts:
        assert 0 < c["out"] <= c["elapsed"]
    r, t = raw[-1]["out"], ts[-1]["out"]
    # the figure: tsweep's seconds per trial over raw Tune's at n trials, from those two runs
    assert res["per_trial"] == {"raw": pytest.approx(r / n), "tsweep": pytest.approx(t / n)}
    assert ratio == pytest.approx(t / r, abs=1e-3)
    assert res["marginal"]["tsweep"] == pytest.approx((t - ts[0]["out"]) / (n - small))
    assert 0.2 <= ratio <= 10  # the same empty trials, run by the same Tune


@pytest.mark.cluster
def test_pending_trials_fill_the_cluster_once(ray_cluster):
    # The benchmarks run under run.sweep_tuner's pending-trial limit: one wave of the cluster's slots.
    from tsweep.orchestrator.run import max_pending_trials

    sched = _load("scheduling")
    jobs = sched.build_jobs(sched.TINY_SWEEP)
    assert max_pending_trials(jobs) == 2  # 2 CPUs, 1 CPU a job
    assert max_pending_trials([j.__class__(**{**j.to_dict(), "cpus": 0.5}) for j in jobs]) == 4
    assert max_pending_trials([]) == 2


# ------------------------------------------------------------------ store_ingest
def check_store_ingest(capsys, monkeypatch):
    run = Run("store_ingest", monkeypatch)
    bench = run.bench
    phases: list = []
    monkeypatch.setattr(bench, "phase", _spy(phases, bench.phase))
    res = run.main(capsys)
    rate = run.figure("store_ingest_rows_per_s")
    assert [p["args"][0] for p in phases] == [False, True]  # round 0: without the reader, then with it
    tiny = bench.TINY
    rows = tiny["writers"] * tiny["shards"] * bench.ROWS_PER_SHARD
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


# ------------------------------------------------------------------ object_store
def check_object_store(capsys, monkeypatch):
    from tsweep.orchestrator.plan import expand
    from tsweep.sweeps import load_sweep, with_overrides

    run = Run("object_store", monkeypatch)
    bench = run.bench
    _own_cluster()  # its workers must start after the bucket's credentials are in the environment
    res = run.main(capsys)
    ratio = run.figure("object_store_walltime_ratio")
    jobs = expand(with_overrides(load_sweep(bench.TINY_YAML), bench.TINY_CUT)).jobs
    (local,), (bucket,) = res["best"]["local"], res["best"]["bucket"]
    # both stores hold every job, with the same results: the same seeds train the same models
    assert len(local) == len(jobs) and local.keys() == bucket.keys()
    assert res["loss_gap"] == 0.0 and all(math.isfinite(v) for v in local.values())
    walls = res["walls"]
    assert ratio == pytest.approx(statistics.median(walls["bucket"]) / statistics.median(walls["local"]), abs=1e-3)
    assert 0.3 <= ratio <= 10  # the same sweep; HTTP to a server on this machine costs, but not 10x


# ------------------------------------------------------------------ demo_walltime
def check_demo_walltime(capsys, monkeypatch):
    from tsweep.api import shipped_sweep_path
    from tsweep.orchestrator.plan import expand
    from tsweep.sweeps import load_sweep, with_overrides

    run = Run("demo_walltime", monkeypatch)
    _own_cluster()  # `tsweep demo` starts one: two would share the cores
    res = run.main(capsys)
    wall = run.figure("demo_wall_time_s")
    over = float(run.out.strip().splitlines()[-2].split()[-1])
    planned = expand(with_overrides(load_sweep(shipped_sweep_path("demo")), run.bench.tiny_sets())).jobs
    assert res["jobs"] == len(planned)  # every job of the cut demo ran and wrote its summary
    assert wall == pytest.approx(res["wall_s"], abs=0.06)
    assert over == pytest.approx(res["wall_s"] / (res["core_s"] / res["cores"]), abs=1e-3)
    # the jobs trained inside the demo's wall time, on at most the cluster's CPUs (their own and
    # lent ones; a lent CPU comes back within a claim and a step, hence the margin), and never on
    # fewer threads than their own
    assert over >= 0.97
    assert res["core_s"] >= res["job_s"] * 0.99
    # Ray and the first engine start before the first job trains, and the report comes after the
    # last one: both inside the command's wall time
    assert 0 < res["before_first_job_s"] < res["wall_s"] and 0 < res["after_last_job_s"] < res["wall_s"]
    assert res["idle_core_s_between"] > -0.03 * res["core_s"]
    assert "d0.6" in res["drawn"]  # it drew its table and ended with the gap report


# ------------------------------------------------------------------ fit_scale
def check_fit_scale(capsys, monkeypatch):
    run = Run("fit_scale", monkeypatch)
    bench = run.bench
    res = run.main(capsys)
    memory = run.figure("fit_scale_memory_ratio")
    (n_small, small), (n_big, big) = res["rows"]
    assert (n_small, n_big) == bench.TINY_SIZES
    # the fit recovers the law the table was drawn from (1% noise on 3,000 rows)
    for name, truth in bench.TRUTH.items():
        p = big["fit"]["params"][name]
        assert p["ci95"][0] <= p["value"] <= p["ci95"][1]
        assert p["value"] == pytest.approx(truth, rel=0.15 if name in ("A", "B") else 0.03), name
    assert (small["fit"]["n_points"], big["fit"]["n_points"]) == (n_small, n_big)
    # the figure: the child's own peak over the budget; a Python with numpy, scipy and pyarrow
    # loaded holds some tens of MiB at least
    assert memory == pytest.approx(big["peak_mib"] / bench.BUDGET_MIB, abs=1e-3)
    assert 50 < big["peak_mib"] < bench.BUDGET_MIB
    assert res["time_ratio"] == pytest.approx(big["wall"] / bench.BUDGET_S)


# ------------------------------------------------------------------ refit
def check_refit(capsys, monkeypatch):
    from tsweep.analysis.synthetic import SCRATCH_TRUTH

    run = Run("refit", monkeypatch)
    res = run.main(capsys)
    ratio = run.figure("refit_warm_over_cold")
    chin = res["results"]["chinchilla"]
    for r in res["results"].values():
        assert r["worst_rel_gap"] <= 1e-9  # a refit never ends worse than a cold fit of the same rows
        assert r["boot_failed"] == 0
    assert chin["params"]["E"] == pytest.approx(SCRATCH_TRUTH["E"], rel=0.05)
    assert ratio == pytest.approx(chin["warm"] / chin["cold"], rel=1e-3)
    assert 0.1 <= ratio <= 10  # the same grid of starts plus three: about one cold fit


# ------------------------------------------------------------------ data_pipeline
def check_data_pipeline(capsys, monkeypatch):
    from tsweep.data.synthetic import generate

    run = Run("data_pipeline", monkeypatch)
    bench = run.bench
    res = run.main(capsys)
    fraction = run.figure("data_wait_fraction")
    w = res["wait"]
    assert w["steps_per_epoch"] == -(-bench.BUDGET // (bench.SEQ * bench.BATCH))
    assert fraction == pytest.approx((w["fetch"] + w["setup"] / w["steps_per_epoch"]) / w["step"], abs=1e-4)
    assert 0 < fraction < 1  # fetching a batch costs less than training on it
    rows = {stage: (n, dt) for stage, n, dt, _ in res["cold"]}
    docs = bench.TINY["docs"]
    # the generated corpus is the synthetic generator's, counted apart here
    assert rows[f"synthetic generation ({docs} docs)"][0] == sum(len(d) for d in generate(0, 0.3, docs))
    # a mixture's stream draws on its parts: no more tokens than both of them
    assert 0 < rows["training stream prose+c"][0] <= rows["tokenize+pack prose"][0] + rows["tokenize+pack c"][0]


# ------------------------------------------------------------------ gpu_checks
def check_gpu_checks(capsys, monkeypatch):
    """Without a GPU (the suite hides any: CUDA_VISIBLE_DEVICES is empty) the script prints one
    line and exits 0; its GPU code runs at toy sizes on the CPU in the test below."""
    env = {**os.environ, "CUDA_VISIBLE_DEVICES": ""}
    proc = subprocess.run(
        [sys.executable, str(BENCH / "gpu_checks.py")], capture_output=True, text=True, env=env, timeout=300
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    (line,) = proc.stdout.strip().splitlines()
    assert line.startswith("gpu_checks: no CUDA device") and "skipped" in line


def test_gpu_checks_code_runs_at_toy_size_on_cpu():
    """The GPU checks' measuring code (MFU, packed jobs) runs end to end at toy sizes; its
    figures only mean something on a GPU, so only what follows from the measurement is checked
    here; the two-GPU ZeRO check plans one job of two workers, a GPU each."""
    from tsweep.core.sizes import get_size
    from tsweep.orchestrator.plan import expand
    from tsweep.sweeps import parse_sweep

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
    gc = _load("gpu_checks")
    for workers in (1, 2):
        sweep = parse_sweep(gc.zero_sweep(workers, tiny=True))
        (pre,) = [j for j in expand(sweep).jobs if j.kind == "pretrain"]
        assert (pre.workers, pre.gpus, pre.size) == (workers, 1, gc.ZERO_SIZE)
        assert (sweep.deepspeed.zero_stage, sweep.deepspeed.precision) == (3, "bf16")


# ------------------------------------------------------------------ adaptive_design
def _parents_first(order, by_id) -> bool:
    seen = set()
    for j in order:
        parent = by_id[j].parent
        if parent is not None and parent not in seen:
            return False
        seen.add(j)
    return True


def check_adaptive_design(capsys, monkeypatch):
    from tsweep.analysis.design import seed_design
    from tsweep.analysis.transfer import g_estimates, transfer_report
    from tsweep.analysis.worlds import design_worlds, draw, outcome, truths
    from tsweep.api import shipped_sweep_path
    from tsweep.orchestrator.plan import expand
    from tsweep.sweeps import load_sweep

    run = Run("adaptive_design", monkeypatch)
    bench = run.bench
    res = run.main(capsys)
    lines = run.out.strip().splitlines()
    name, value = lines[-1].split()
    assert name == "adaptive_share_of_grid"
    run._machine_printed(lines)
    world = design_worlds()["demo"]
    pool = bench.demo_pool(world)
    by_id = pool.by_id
    plan = expand(load_sweep(shipped_sweep_path("demo"))).jobs
    # the pool is the demo plan itself, its costs the plan's estimates
    assert [c.job_id for c in pool.jobs] == [j.job_id for j in plan]
    assert pool.flops == pytest.approx(sum(j.est_flops for j in plan))
    seed_ids = {c.job_id for c in seed_design(pool.jobs, pool.goal)}
    shares, boot = res["shares"], res["bootstrap"]
    assert 1.0 in shares
    draws = res["worlds"]["demo"]["draws"]
    assert len(draws) == bench.TINY["draws"]
    for d in draws:
        orders = d["orders"]
        assert set(orders) == set(bench.METHODS)
        for m, order in orders.items():
            assert len(order) == len(set(order)) and set(order) <= set(by_id), m  # grid jobs, each once
            assert _parents_first(order, by_id), m  # a fine-tune only after its pre-training run
            if m != "adaptive":
                assert len(order) == len(pool.jobs), m  # every other method can spend the whole grid
            for s in shares:
                pt = d["points"][m][s]
                assert list(pt.jobs) == order[: len(pt.jobs)]  # a prefix of the method's own order
                assert pt.flops_share <= s + 1e-9
                assert pt.flops_share == pytest.approx(sum(by_id[j].cost for j in pt.jobs) / pool.flops)
        adaptive = orders["adaptive"]
        # the design starts with its seed and never spends more than the grid (its budget)
        assert set(adaptive[: len(seed_ids)]) == seed_ids
        assert set(orders["D-optimal"][: len(seed_ids)]) == seed_ids
        assert sum(by_id[j].cost for j in adaptive) <= pool.flops * (1 + 1e-9)
        assert d["stop"] in ("goal met", "budget spent", "nothing left narrows the goal")
        assert d["points"]["adaptive"][1.0].ratio == d["stopped"].ratio
        assert orders["random"] != orders["grid order"]
        # cheapest first starts with the cheapest job that needs no pre-training run
        assert by_id[orders["cheapest"][0]].cost == min(c.cost for c in pool.jobs if c.parent is None)
        # at the whole grid every method is the grid: width ratio 1, all its compute and job-seconds
        for m in bench.METHODS[1:]:
            full = d["points"][m][1.0]
            assert full.ratio == 1.0 and full.flops_share == pytest.approx(1.0)
            assert full.seconds_share == pytest.approx(1.0)
        # the grid's G, read here apart from the benchmark on the world's whole table, scores the same
        report = transfer_report(draw(world, d["seed"]), bootstrap=boot, seed=d["seed"])
        gap, truth = report.gap_fit("mini"), truths(world)
        for src in ("d0.6", "d0.9"):
            est = g_estimates(gap, src)[0] if gap is not None and src in gap.sources else None
            assert d["points"]["grid order"][1.0].outcomes[f"G/{src}/mini"] == outcome(est, truth[f"G/{src}/mini"])
        # the grid's point is the whole grid; the design's last state is where it stopped
        assert d["grid"].ratio == 1.0 and list(d["grid"].jobs) == orders["grid order"]
        assert list(d["stopped"].jobs) == adaptive
    short = res["worlds"]["demo"]["summary"]["left_short"]
    identified = sum(o in ("covered", "missed") for d in draws for o in d["grid"].outcomes.values())
    assert sum(short.values()) == identified
    # the figure: the smallest share at which the adaptive design meets the criterion in >= 80% of draws
    rates = {s: sum(d["points"]["adaptive"][s].ratio <= bench.CRITERION for d in draws) / len(draws) for s in shares}
    meeting = [s for s in sorted(shares) if rates[s] >= bench.MEETS]
    assert float(value) == (meeting[0] if meeting else math.inf)
    assert res["figure"] == float(value)


def test_adaptive_design_maps_every_row_of_the_world_to_one_job():
    """Every row of a world's table is one job of the demo plan (a third source's are cloned),
    and the pre-training runs are the jobs without a row."""
    from tsweep.analysis.worlds import design_worlds, draw

    bench = _load("adaptive_design")
    for name in ("demo", "a source equal to the target"):
        world = design_worlds()[name]
        pool, table = bench.demo_pool(world), draw(world, 0)
        rows = bench.match_rows(pool, table)
        assert sorted(rows.values()) == list(range(table.num_rows))
        assert {c.job_id for c in pool.jobs} - set(rows) == {c.job_id for c in pool.jobs if c.kind == "pretrain"}
        assert sorted({c.source for c in pool.jobs} - {"scratch"}) == world.source_names
        with pytest.raises(RuntimeError, match="match no job"):
            bench.match_rows(bench.demo_pool(design_worlds()["demo"]), draw(design_worlds()["a rising source"], 0))


# ------------------------------------------------------------------ every benchmark
CHECKS = {
    "adaptive_design": check_adaptive_design,
    "data_pipeline": check_data_pipeline,
    "demo_walltime": check_demo_walltime,
    "fit_scale": check_fit_scale,
    "gpu_checks": check_gpu_checks,
    "object_store": check_object_store,
    "refit": check_refit,
    "scheduling": check_scheduling,
    "store_ingest": check_store_ingest,
    "trial_overhead": check_trial_overhead,
    "worker_throughput": check_worker_throughput,
}
# On the suite's Ray cluster, or starting one of their own (last, since they shut the suite's
# down): marked so that one xdist worker runs them one after another (tests/conftest.py).
ON_RAY = {"scheduling", "trial_overhead"}
OWN_RAY = {"object_store", "demo_walltime"}


def test_every_benchmark_is_checked():
    scripts = {p.stem for p in BENCH.glob("*.py") if not p.stem.startswith("_")}
    assert scripts == set(CHECKS), "a benchmark with no tiny check, or a check of a benchmark that is gone"


@pytest.mark.parametrize(
    "name",
    [
        pytest.param(n, marks=pytest.mark.cluster) if n in ON_RAY | OWN_RAY else n
        for n in sorted(CHECKS, key=lambda n: n in OWN_RAY)
    ],
)
def test_benchmark_at_tiny_size(name, request, capsys, monkeypatch):
    if name in ON_RAY:
        request.getfixturevalue("ray_cluster")
    CHECKS[name](capsys, monkeypatch)
