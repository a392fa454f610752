"""One job's training, with no cluster: rows land in the store; a killed worker resumes exactly."""

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
import torch

from tsweep.core.cadence import eval_interval, min_eval_steps, pretrain_eval_steps
from tsweep.core.layout import SweepLayout
from tsweep.core.store import Store
from tsweep.orchestrator.plan import expand
from tsweep.sweeps import load_sweep, parse_sweep
from tsweep.workers.checkpoints import resume_tags
from tsweep.workers.runner import run_job

TINY = Path(__file__).parent / "data" / "tiny.yaml"


@pytest.fixture(scope="module")
def sweep():
    return load_sweep(TINY)


def _job(sweep, kind, root, i=0):
    """The i-th job of ``kind``, planned into the sweep folder ``root``."""
    return [j for j in expand(sweep, SweepLayout(str(root))).jobs if j.kind == kind][i]


def test_scratch_job_writes_evals_and_summary(sweep, tmp_path):
    job = _job(sweep, "scratch", tmp_path)
    reports = []
    summary = run_job(job, sweep, str(tmp_path), report=reports.append)
    assert summary["status"] == "ok"
    store = Store(SweepLayout(str(tmp_path)).store_root)
    ev = store.read_evals().to_pylist()
    steps = [r["step"] for r in ev]
    assert steps == sorted(set(steps)) and steps[0] == 0
    assert len(ev) == sum(not r.done for r in reports)
    assert min(r["eval_loss"] for r in ev) == pytest.approx(summary["best_eval_loss"])
    assert ev[-1]["eval_loss"] < ev[0]["eval_loss"]  # it learned something
    assert store.finished_job_ids() == {job.job_id}
    seq = sweep.train.seq_len
    assert summary["epochs"] == pytest.approx(summary["tokens_seen"] / (-(-job.data_tokens // seq) * seq))


def test_pretrain_saves_checkpoints_and_finetune_starts_from_them(sweep, tmp_path):
    pre = _job(sweep, "pretrain", tmp_path)
    run_job(pre, sweep, str(tmp_path))
    layout = SweepLayout(str(tmp_path))
    for p in pre.checkpoints:
        assert os.path.exists(os.path.join(pre.p_checkpoint(p), "model.safetensors"))
    assert not os.path.exists(pre.resume_dir)  # resume state is cleaned up
    graph = expand(sweep, layout)
    ft = next(j for j in graph.children(pre.job_id) if j.pretrain_tokens == max(pre.checkpoints))
    scratch = next(j for j in graph.jobs if j.kind == "scratch" and j.data_tokens == ft.data_tokens)
    s_ft = run_job(ft, sweep, str(tmp_path))
    s_sc = run_job(scratch, sweep, str(tmp_path))
    # Starting from pre-trained weights, the first evaluation is already better than random init.
    ev = Store(layout.store_root).read_evals().to_pylist()
    first = {r["job_id"]: r["eval_loss"] for r in ev if r["step"] == 0}
    assert first[ft.job_id] < first[scratch.job_id]
    assert s_ft["status"] == s_sc["status"] == "ok"
    # Pre-training is evaluated at step 0, doubling steps and its end, no more.
    want = {0} | pretrain_eval_steps(interval=sweep.eval.interval_steps, max_steps=pre.max_steps)
    assert sorted(r["step"] for r in ev if r["job_id"] == pre.job_id) == sorted(want)

    # A p-checkpoint cut short (a pre-empted upload) sends its pre-training back to be rebuilt,
    # and no fine-tune is released from it; the intact one still serves its fine-tunes.
    from tsweep.orchestrator.run import jobs_to_run

    lo, hi = min(pre.checkpoints), max(pre.checkpoints)
    weights = Path(pre.p_checkpoint(lo), "model.safetensors")
    os.truncate(weights, weights.stat().st_size // 2)
    todo, available = jobs_to_run(graph, layout)
    assert pre.job_id in {j.job_id for j in todo}
    assert lo not in available.get(pre.job_id, set()) and hi in available.get(pre.job_id, set())


def test_replicates_run_from_the_checkpoint_they_name_and_their_rows_say_which(sweep, tmp_path):
    """The tiny sweep with one fine-tune replicate and one pre-training replicate, run in process:
    a fine-tune replicate starts from the very weights of its cell's grid run (the same first
    evaluation, bit for bit) and then differs (another data order); a fine-tune of the replicate
    pre-training run starts from other weights. Their rows carry seed, replicate and lineage, and
    the noise module reads within and between off them."""
    from tsweep.analysis.noise import replicate_noise

    d = sweep.model_dump(mode="json")
    d["pretrain"] = {"tokens": 24_000, "checkpoints": []}  # two pre-training runs: short ones
    cell = {"p": 24_000, "f": 2_000}
    d["replicates"] = {
        "finetune": {"source": "prose", "size": "nano", "cells": [cell]},
        "pretrain": {"source": "prose", "size": "nano", "cells": [cell]},
    }
    reps = parse_sweep(d)
    layout = SweepLayout(str(tmp_path))
    graph = expand(reps, layout)
    runs = [j for j in graph.jobs if j.kind == "pretrain"]
    fts = [j for j in graph.jobs if j.kind == "finetune" and (j.pretrain_tokens, j.data_tokens) == (24_000, 2_000)]
    assert sorted((j.replicate, j.lineage) for j in runs) == [(0, 0), (1, 1)]
    assert sorted((j.replicate, j.lineage) for j in fts) == [(0, 0), (1, 0), (1, 1)]
    for job in runs + fts:
        assert run_job(job, reps, str(tmp_path))["status"] == "ok", job.label
    store = Store(layout.store_root)
    first = {r["job_id"]: r["eval_loss"] for r in store.read_evals().to_pylist() if r["step"] == 0}
    rows = {(r["replicate"], r["lineage"]): r for r in store.read_summaries().to_pylist() if r["kind"] == "finetune"}
    by_key = {(j.replicate, j.lineage): j for j in fts}
    for key, job in by_key.items():
        assert (rows[key]["job_id"], rows[key]["seed"]) == (job.job_id, job.seed)
    grid, same, other = (by_key[k].job_id for k in ((0, 0), (1, 0), (1, 1)))
    assert first[same] == first[grid] and first[other] != first[grid]
    assert rows[1, 0]["best_eval_loss"] != rows[0, 0]["best_eval_loss"]
    noise = replicate_noise(store.read_summaries())
    assert noise is not None and noise.within is not None and noise.within.df == 1 and noise.within.sd > 0
    assert noise.between is not None and noise.between.df == 1


def test_eval_schedule_is_dense_for_early_stopping_and_doubling_for_pretraining():
    assert eval_interval(kind="finetune", interval_steps=16, steps_per_epoch=100, per_epoch=2) == 16
    assert eval_interval(kind="scratch", interval_steps=16, steps_per_epoch=10, per_epoch=2) == 5
    assert eval_interval(kind="scratch", interval_steps=16, steps_per_epoch=1.5, per_epoch=2) == 1
    assert eval_interval(kind="pretrain", interval_steps=25, steps_per_epoch=10, per_epoch=2) == 25
    # a floor in tokens: a run whose epoch is a step is not evaluated every step
    assert min_eval_steps(min_interval_tokens=4096, tokens_per_step=1024) == 4
    assert min_eval_steps(min_interval_tokens=0, tokens_per_step=1024) == 1
    assert eval_interval(kind="scratch", interval_steps=16, steps_per_epoch=1.5, per_epoch=2, min_steps=4) == 4
    assert eval_interval(kind="pretrain", interval_steps=25, steps_per_epoch=1.5, per_epoch=2, min_steps=40) == 25
    assert pretrain_eval_steps(interval=25, max_steps=410) == {25, 50, 100, 200, 400, 410}
    assert pretrain_eval_steps(interval=25, max_steps=20) == {20}  # shorter than one interval: its end
    # the share of steps evaluated falls as a pre-training run grows
    assert len(pretrain_eval_steps(interval=25, max_steps=25 * 2**10)) == 11


def _summary_and_evals(sweep, root, kind, i=0):
    job = _job(sweep, kind, root, i)
    summary = run_job(job, sweep, str(root))
    ev = Store(SweepLayout(str(root)).store_root).read_evals([job.job_id]).to_pylist()
    return job, summary, sorted(ev, key=lambda r: r["step"])


@pytest.mark.parametrize("patience_tokens", [1, 8 * 8_000])  # the epochs rule decides; then 8 epochs of the run
def test_a_run_stops_on_patience_in_data_then_cools_down_and_keeps_its_best(sweep, tmp_path, patience_tokens):
    """Fine-tunes and scratch runs: at least one epoch, a stable phase that ends once the best
    evaluation is eval.patience_epochs old and at least eval.patience_tokens, then a cooldown;
    the score is the best evaluation."""
    d = sweep.model_dump(mode="json")
    d["train"]["max_epochs"] = 200  # room to reach the over-fitting minimum
    d["eval"]["patience_epochs"] = 1
    d["eval"]["patience_tokens"] = patience_tokens
    sw = parse_sweep(d)
    job, summary, ev = _summary_and_evals(sw, tmp_path, "scratch")
    assert job.data_tokens == 8_000
    assert summary["status"] == "ok", summary["reason"]
    assert summary["best_eval_loss"] == pytest.approx(min(r["eval_loss"] for r in ev))
    steps_per_epoch = ev[-1]["step"] / ev[-1]["epoch"]
    patience = max(
        sw.eval.patience_epochs * steps_per_epoch, patience_tokens / (sw.train.batch_size * sw.train.seq_len)
    )
    stable_end = max(r["step"] for r in ev if r["step"] <= ev[-1]["step"] / (1 + sw.train.cooldown) + 1)
    assert ev[-1]["epoch"] >= sw.eval.min_epochs

    # its stable phase ended on the patience rule, not at the cap: over the last `patience` steps
    # the best evaluation improved by less than min_delta, and a patience earlier it still had
    def best_at(step):
        return min(r["eval_loss"] for r in ev if r["step"] <= step)

    assert stable_end >= patience
    assert best_at(stable_end - patience) - best_at(stable_end) < sw.eval.min_delta * best_at(stable_end)
    assert ev[-1]["epoch"] < sw.train.max_epochs


def test_a_run_that_reaches_the_epoch_cap_still_improving_is_unconverged(sweep, tmp_path):
    d = sweep.model_dump(mode="json")
    d["train"]["max_epochs"] = 1  # far too short to pass the minimum
    sw = parse_sweep(d)
    _, summary, _ev = _summary_and_evals(sw, tmp_path, "scratch", 2)  # the largest D
    assert summary["status"] == "unconverged" and "max_epochs" in summary["reason"]
    assert Store(SweepLayout(str(tmp_path)).store_root).finished_job_ids() == {
        summary["job_id"]
    }  # final: resume skips it


def test_cooldown_branches_leave_the_stable_run_exactly_as_it_was(sweep, tmp_path):
    """A p-checkpoint is a cooldown branch: taking one must not change the main run. The final
    checkpoint of a pre-training run with an intermediate p equals the one of a run without."""
    from safetensors.torch import load_file

    with_p = _job(sweep, "pretrain", tmp_path / "a")
    run_job(with_p, sweep, str(tmp_path / "a"))
    d = sweep.model_dump(mode="json")
    d["pretrain"]["checkpoints"] = []
    bare_sweep = parse_sweep(d)
    bare = _job(bare_sweep, "pretrain", tmp_path / "b")
    run_job(bare, bare_sweep, str(tmp_path / "b"))
    final = with_p.data_tokens
    a = load_file(os.path.join(with_p.p_checkpoint(final), "model.safetensors"))
    b = load_file(os.path.join(bare.p_checkpoint(final), "model.safetensors"))
    assert a.keys() == b.keys()
    for k in a:
        assert torch.equal(a[k], b[k]), k
    early = load_file(os.path.join(with_p.p_checkpoint(min(with_p.checkpoints)), "model.safetensors"))
    assert any(not torch.equal(early[k], a[k]) for k in a)  # the branch is a different model


KILLABLE = textwrap.dedent(
    """
    import sys
    from tsweep.core.layout import SweepLayout
    from tsweep.orchestrator.plan import expand
    from tsweep.sweeps import load_sweep
    from tsweep.workers.runner import run_job
    sweep = load_sweep(sys.argv[1])
    job = [j for j in expand(sweep, SweepLayout(sys.argv[2])).jobs if j.kind == "pretrain"][0]
    run_job(job, sweep, sys.argv[2])
    """
)


def test_killed_worker_resumes_from_checkpoint(sweep, tmp_path):
    """SIGKILL a real worker process mid-training; the retry resumes and matches a clean run."""
    clean = run_job(_job(sweep, "pretrain", tmp_path / "clean"), sweep, str(tmp_path / "clean"))

    killed_dir = tmp_path / "killed"
    job = _job(sweep, "pretrain", killed_dir)
    layout = SweepLayout(str(killed_dir))
    script = tmp_path / "worker.py"
    script.write_text(KILLABLE)
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1])}
    proc = subprocess.Popen([sys.executable, str(script), str(TINY), str(killed_dir)], env=env)
    deadline = time.time() + 120
    while not resume_tags(job.resume_dir) and proc.poll() is None and time.time() < deadline:
        time.sleep(0.05)
    assert resume_tags(job.resume_dir), "the worker never saved a checkpoint"
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    store = Store(layout.store_root)
    assert job.job_id not in store.finished_job_ids()

    resumed = run_job(job, sweep, str(killed_dir))
    assert resumed["attempt"] == 1
    assert resumed["best_eval_loss"] == pytest.approx(clean["best_eval_loss"], rel=2e-3)
    steps = store.read_evals().column("step").to_pylist()
    clean_steps = Store(SweepLayout(str(tmp_path / "clean")).store_root).read_evals().column("step").to_pylist()
    assert sorted(steps) == sorted(clean_steps), "eval rows lost or duplicated across the kill"


def test_divergence_ends_job_as_diverged(tmp_path):
    d = load_sweep(TINY).model_dump(mode="json")
    d["train"]["lr"] = 50.0
    d["train"]["grad_clip"] = 1e6
    sweep = parse_sweep(d)
    summary = run_job(_job(sweep, "scratch", tmp_path, 2), sweep, str(tmp_path))
    assert summary["status"] == "diverged"
    assert "loss" in summary["reason"]
    assert Store(SweepLayout(str(tmp_path)).store_root).read_summaries().column("status").to_pylist() == ["diverged"]


def test_over_fitting_is_not_divergence(tmp_path):
    """A fine-tune on 2k tokens given a long patience over-fits: its eval loss climbs far above
    where it started while its training loss falls. That is what patience is for; the run is
    ok and scored by its best evaluation, never set aside as diverged (measured on a synthetic
    design: 7 of 78 runs over 1k tokens were, with eval losses 1.5x their start)."""
    d = load_sweep(TINY).model_dump(mode="json")
    d["eval"]["patience_tokens"] = 120_000  # 60 epochs of the 2k budget past its best
    d["train"]["lr"] = 1e-2
    sweep = parse_sweep(d)
    graph = expand(sweep, SweepLayout(str(tmp_path)))
    run_job(next(j for j in graph.jobs if j.kind == "pretrain"), sweep, str(tmp_path))
    job = next(j for j in graph.jobs if j.kind == "finetune" and j.data_tokens == 2_000)
    summary = run_job(job, sweep, str(tmp_path))
    ev = sorted(
        Store(SweepLayout(str(tmp_path)).store_root).read_evals([job.job_id]).to_pylist(), key=lambda r: r["step"]
    )
    losses = [r["eval_loss"] for r in ev]
    assert max(losses) > 1.5 * losses[0], losses  # it did climb past the old divergence line
    assert summary["status"] == "ok", summary["reason"]
    assert summary["best_eval_loss"] == pytest.approx(min(losses))


@pytest.fixture(scope="module")
def clean_scratch(sweep, tmp_path_factory):
    """The first scratch job run undisturbed: its summary and its eval steps."""
    root = tmp_path_factory.mktemp("clean")
    summary = run_job(_job(sweep, "scratch", root), sweep, str(root))
    return summary, Store(SweepLayout(str(root)).store_root).read_evals().column("step").to_pylist()


@pytest.mark.parametrize("damage", ["newest", "both"])
def test_corrupt_resume_state_falls_back_to_the_one_before_or_starts_over(sweep, tmp_path, damage, clean_scratch):
    """A truncated newest resume state: the job resumes from the one before it. Both damaged
    (one truncated, one emptied): it starts from step 0. Either way it ends with every eval row
    once, as a clean run of the same job."""
    clean, clean_steps = clean_scratch
    job = _job(sweep, "scratch", tmp_path / "hurt")
    assert job.max_steps >= 100
    run_job(job, sweep, str(tmp_path / "hurt"), stop_after_steps=60)
    tags = resume_tags(job.resume_dir)
    assert len(tags) == 2, tags
    states = [Path(job.resume_dir, t, "mp_rank_00_model_states.pt") for t in tags]
    os.truncate(states[0], states[0].stat().st_size // 2)
    if damage == "both":
        os.truncate(states[1], 0)
    assert resume_tags(job.resume_dir) == ([] if damage == "both" else tags[1:])

    resumed = run_job(job, sweep, str(tmp_path / "hurt"))
    assert resumed["status"] == "ok" and resumed["attempt"] == 1
    assert resumed["best_eval_loss"] == pytest.approx(clean["best_eval_loss"], rel=2e-3)
    store = Store(SweepLayout(str(tmp_path / "hurt")).store_root)
    rows = store.read_evals().to_pylist()
    first = min(r["step"] for r in rows if r["attempt"] == 1)
    assert first == 0 if damage == "both" else 0 < first <= 60
    assert sorted(r["step"] for r in rows) == sorted(clean_steps), "eval rows lost or duplicated"


def test_staging_folders_of_dead_processes_are_cleared(tmp_path, monkeypatch):
    """A process killed mid-transfer leaves its checkpoint staging folder in the node's TMPDIR;
    the next job on the node removes it, and never a live process's."""
    import os
    import subprocess
    import sys
    import tempfile
    import time

    import psutil

    from tsweep.workers import checkpoints

    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    gone = tmp_path / f"{checkpoints.STAGING_PREFIX}{dead.stdout.strip()}-abc"
    (gone / "step40").mkdir(parents=True)
    (gone / "step40" / "mp_rank_00_model_states.pt").write_bytes(b"half")
    # killed and not yet reaped by its parent (a zombie): dead too, as when a retry starts at once
    zombie = subprocess.Popen([sys.executable, "-c", "pass"])
    while psutil.Process(zombie.pid).status() != psutil.STATUS_ZOMBIE:
        time.sleep(0.01)
    unreaped = tmp_path / f"{checkpoints.STAGING_PREFIX}{zombie.pid}-def"
    unreaped.mkdir()
    mine = checkpoints._staging_dir()
    other = tmp_path / "unrelated"
    other.mkdir()
    checkpoints.clear_stale_staging()
    zombie.wait()
    assert not gone.exists() and not unreaped.exists() and os.path.isdir(mine) and other.exists()


# ------------------------------------------------------------------ pinned results
GOLDEN = Path(__file__).parent / "data" / "worker_golden.json"


def _platform() -> dict:
    """What bitwise-equal losses depend on besides tsweep: the kernels' library versions and ISA."""
    import deepspeed
    import transformers

    return {
        "torch": torch.__version__,
        "cpu": torch.backends.cpu.get_cpu_capability(),
        "deepspeed": deepspeed.__version__,
        "transformers": transformers.__version__,
    }


def _exact(v):
    """A float as its hex form (bitwise), anything else as JSON has it."""
    return float.hex(v) if isinstance(v, float) else v


def _pinned(store, job, summary, reports):
    """A job's rows, summary, progress and p-checkpoint bytes, less wall-clock times."""
    import hashlib

    def clean(row, drop=("wall_time_s", "core_seconds", "tokens_per_s", "threads")):
        return {k: _exact(v) for k, v in sorted(row.items()) if k not in drop}

    rows = sorted(store.read_evals([job.job_id]).to_pylist(), key=lambda r: (r["attempt"], r["step"]))
    weights = {
        str(p): hashlib.sha256(Path(job.p_checkpoint(p), "model.safetensors").read_bytes()).hexdigest()
        for p in job.checkpoints
    }
    return {
        "evals": [clean(r) for r in rows],
        "summary": clean(summary),
        "progress": [clean(vars(r)) for r in reports],
        "p_checkpoints": weights,
        "deepspeed.json": json.loads(Path(job.deepspeed_file).read_text()),
        "attempts": Path(job.attempts_file).read_text(),
        "resume_left": os.path.exists(job.resume_dir),
    }


def _record_jobs(sweep, root) -> dict:
    """One tiny job of each kind, in process, one thread: pre-training (with a cooldown branch),
    a fine-tune from its last p, a scratch run, and a scratch run stopped at step 60 and resumed."""
    layout = SweepLayout(str(root))
    store = Store(layout.store_root)
    graph = expand(sweep, layout)
    pre = next(j for j in graph.jobs if j.kind == "pretrain")
    ft = next(j for j in graph.children(pre.job_id) if j.pretrain_tokens == max(pre.checkpoints))
    scratch = next(j for j in graph.jobs if j.kind == "scratch")
    out = {}
    for name, job in (("pretrain", pre), ("finetune", ft), ("scratch", scratch)):
        reports: list = []
        summary = run_job(job, sweep, str(root), report=reports.append)
        out[name] = _pinned(store, job, summary, reports)
    resumed_root = root / "resumed"
    job = next(j for j in expand(sweep, SweepLayout(str(resumed_root))).jobs if j.kind == "scratch")
    reports = []
    assert run_job(job, sweep, str(resumed_root), report=reports.append, stop_after_steps=60) == {}
    tags = resume_tags(job.resume_dir)
    summary = run_job(job, sweep, str(resumed_root), report=reports.append)
    out["scratch_resumed"] = {
        "tags": tags,
        **_pinned(Store(SweepLayout(str(resumed_root)).store_root), job, summary, reports),
    }
    return out


def test_results_are_pinned_bitwise(sweep, tmp_path):
    """The eval rows (step, tokens, losses), summaries, progress reports and p-checkpoint bytes of
    one tiny job of each kind, and of a stopped-and-resumed one, equal the recorded ones bit for
    bit: a refactor of the worker changes none of them. Losses are bitwise only for the same
    kernels, so the record holds the platform it was made on; elsewhere the test skips (record
    anew with TSWEEP_RECORD_GOLDEN=1 on the commit before a change, then compare after it)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        if os.environ.get("TSWEEP_RECORD_GOLDEN") == "1":
            GOLDEN.write_text(json.dumps({"platform": _platform(), "jobs": _record_jobs(sweep, tmp_path)}, indent=1))
            pytest.skip(f"recorded {GOLDEN.name}")
        want = json.loads(GOLDEN.read_text())
        if want["platform"] != _platform():
            pytest.skip(f"recorded on {want['platform']}, this is {_platform()}")
        got = json.loads(json.dumps(_record_jobs(sweep, tmp_path)))
    finally:
        torch.set_num_threads(threads)
    for kind, pinned in want["jobs"].items():
        for part, value in pinned.items():
            assert got[kind][part] == value, f"{kind}: {part} differs"


def test_the_workers_modules_are_the_ones_their_package_names_and_import_what_it_says():
    """``tsweep/workers/__init__.py`` names every module of the package with the package's
    modules it may import; the code holds no other module and no other import (lazy ones too)."""
    import ast
    import re

    import tsweep.workers

    pkg = Path(tsweep.workers.__file__).parent
    doc = tsweep.workers.__doc__ or ""
    declared = {
        name: {m.strip() for m in allowed.split(",") if m.strip()}
        for name, allowed in re.findall(r"^- ``(\w+)``:.*?\[imports: ([^\]]*)\]", doc, re.M | re.S)
    }
    modules = {p.stem for p in pkg.glob("*.py")} - {"__init__"}
    assert set(declared) == modules
    for name in modules:
        imported = set()
        for node in ast.walk(ast.parse((pkg / f"{name}.py").read_text())):
            if isinstance(node, ast.ImportFrom) and node.module == "tsweep.workers":
                imported |= {a.name for a in node.names}
            elif isinstance(node, ast.ImportFrom) and (node.module or "").startswith("tsweep.workers."):
                imported.add(node.module.split(".")[2])
            elif isinstance(node, ast.Import):
                imported |= {a.name.split(".")[2] for a in node.names if a.name.startswith("tsweep.workers.")}
        assert imported <= declared[name], f"{name} imports {sorted(imported - declared[name])} beyond its list"
