"""The tiny sweep end to end, run as users run it: the ``tsweep`` console script on a real local
Ray cluster (plan, Tune, DeepSpeed workers, the Arrow store, the analysis actor, gaps), once in a
pipe, where it must print a progress line per finished job, and once in a pseudo-terminal, where
it must draw the live table. Then a resume that runs nothing. The piped run adds replicates to the
tiny sweep (a fine-tune re-run from its checkpoint, a pre-training run re-run with one fine-tune):
they run through the same scheduler, and the store tells them apart."""

import json
import os
import pty
import re
import select
import subprocess
import time
from pathlib import Path

import pytest

from tsweep.analysis.actor import read_latest
from tsweep.analysis.noise import replicate_noise
from tsweep.analysis.transfer import transfer_report
from tsweep.cli import main
from tsweep.core.layout import SweepLayout
from tsweep.core.store import Store
from tsweep.orchestrator.plan import expand
from tsweep.sweeps import load_sweep

TINY = Path(__file__).parent / "data" / "tiny.yaml"
TIMEOUT_S = 600
# One cell re-run from the grid's last checkpoint, and the same cell from a replicate pre-training
# run that saves that checkpoint only: 3 jobs more than the tiny sweep's 8, each a second or two.
REPLICATES = """
replicates:
  finetune: {source: prose, size: nano, cells: [{p: 96k, f: 2k}]}
  pretrain: {source: prose, size: nano, cells: [{p: 96k, f: 2k}]}
"""

pytestmark = pytest.mark.cluster


def _env(**extra) -> dict:
    return {**os.environ, "PYTHONUNBUFFERED": "1", "RAY_USAGE_STATS_ENABLED": "0", **extra}


@pytest.fixture(scope="module")
def piped(tmp_path_factory):
    """`tsweep submit` of the tiny sweep with replicates, its output in a pipe: (result, storage
    root, sweep file)."""
    root = tmp_path_factory.mktemp("runs")
    path = root / "tiny.yaml"
    path.write_text(TINY.read_text() + REPLICATES)
    proc = subprocess.run(
        ["tsweep", "submit", str(path), "--storage", str(root)],
        capture_output=True,
        text=True,
        timeout=TIMEOUT_S,
        env=_env(),
    )
    return proc, root, path


def test_the_console_script_runs_the_sweep_and_prints_progress_lines(piped):
    proc, _, path = piped
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    sweep = load_sweep(path)
    n_jobs = len(expand(sweep).jobs)
    lines = [ln for ln in proc.stdout.splitlines() if ln.startswith(f"[{sweep.name}] done ")]
    assert len(lines) == n_jobs, proc.stdout  # a line per finished job instead of silence
    last = lines[-1]
    assert f"{n_jobs}/{n_jobs} jobs" in last and "ETA" in last and "| G: " in last
    assert re.search(r"\| ETA (\d+s|\d+m|\?) \|", lines[0])
    assert "Transfer report: sweep tiny" in proc.stdout  # the gap table at the end
    # Tune's results read each trial's metrics from its JSON log, which tsweep keeps (run.sweep_tuner)
    assert "Failed to fetch metrics" not in proc.stdout + proc.stderr


def test_the_store_holds_one_summary_per_job_and_no_duplicate_eval_rows(piped):
    _, root, path = piped
    sweep = load_sweep(path)
    layout = sweep.layout(str(root))
    graph = expand(sweep, layout)
    store = Store(layout.store_root)
    summaries = store.read_summaries().to_pylist()
    assert sorted(r["job_id"] for r in summaries) == sorted(j.job_id for j in graph.jobs)
    assert all(r["status"] == "ok" for r in summaries), [(r["job_id"], r["status"], r["reason"]) for r in summaries]
    evals = store.read_evals().to_pylist()
    assert {r["job_id"] for r in evals} == {j.job_id for j in graph.jobs}
    keys = [(r["job_id"], r["step"]) for r in evals]
    assert len(keys) == len(set(keys)), "duplicate eval rows"
    for job in graph.pretrain:
        for p in job.checkpoints:
            assert os.path.isfile(os.path.join(job.p_checkpoint(p), "model.safetensors"))
    # the replicates ran, each row saying which run of its cell it is
    by_id = {j.job_id: j for j in graph.jobs}
    assert len(graph.replicates) == 3
    for r in summaries:
        job = by_id[r["job_id"]]
        assert (r["seed"], r["replicate"], r["lineage"]) == (job.seed, job.replicate, job.lineage)
    noise = replicate_noise(store.read_summaries())
    assert noise is not None and noise.within is not None and noise.within.df == 1


def test_the_live_fit_equals_a_cold_refit_and_scratch_curves_never_rise(piped):
    _, root, path = piped
    layout = load_sweep(path).layout(str(root))
    live = read_latest(layout.sweep_dir)
    assert live is not None and live.n_jobs_finished == len(expand(load_sweep(path)).jobs)
    cold = transfer_report(Store(layout.store_root).read_summaries(), bootstrap=live.bootstrap, seed=live.seed)
    assert [s.source for s in live.sources] == [s.source for s in cold.sources]
    for a, b in zip(live.sources, cold.sources, strict=True):
        for name in ("G", "k", "multiplier"):
            ea, eb = getattr(a, name), getattr(b, name)
            assert ea.identified == eb.identified, (name, ea, eb)
            if ea.identified:
                assert ea.value == pytest.approx(eb.value, rel=1e-3)
    for curve in live.curves:  # the best loss for more data is never worse (runs reach their minimum)
        assert curve.monotone, (curve.size, curve.loss)
    assert len(list(Path(layout.plots_dir).glob("*.png"))) == 7  # one per figure, learning curves among them


def test_gaps_json_and_a_resume_that_runs_nothing(piped, capsys):
    _, root, path = piped
    sweep = load_sweep(path)
    assert main(["gaps", sweep.name, "--storage", str(root), "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert {s["source"] for s in out["sources"]} == {"prose"}
    again = subprocess.run(
        ["tsweep", "resume", sweep.name, "--storage", str(root)],
        capture_output=True,
        text=True,
        timeout=TIMEOUT_S,
        env=_env(),
    )
    assert again.returncode == 0, again.stderr[-2000:]
    n = len(expand(sweep).jobs)
    assert f"{n} jobs planned, {n} already done, 0 run" in again.stdout
    assert Store(SweepLayout(sweep.sweep_dir(str(root))).store_root).read_summaries().num_rows == n


def _run_in_pty(argv: list[str], env: dict, timeout: float) -> tuple[int, str]:
    """Run ``argv`` with a pseudo-terminal as its stdout/stderr; (exit code, everything it drew)."""
    pid, fd = pty.fork()
    if pid == 0:  # the child: exec the console script
        os.execvpe(argv[0], argv, env)
    out, deadline = [], time.monotonic() + timeout
    while time.monotonic() < deadline:
        ready, _, _ = select.select([fd], [], [], 1.0)
        if ready:
            try:
                chunk = os.read(fd, 65536)
            except OSError:  # the child closed the terminal
                break
            if not chunk:
                break
            out.append(chunk.decode("utf-8", errors="replace"))
    else:
        os.kill(pid, 9)
    _, status = os.waitpid(pid, 0)
    return os.waitstatus_to_exitcode(status), "".join(out)


def test_in_a_terminal_it_draws_the_live_table(tmp_path):
    """The README's command as a person runs it: a terminal, no flags. A smaller sweep than the
    tiny one (one fine-tune budget) keeps this to seconds of training."""
    small = tmp_path / "small.yaml"
    text = TINY.read_text().replace("finetune_tokens: [2k, 4k]", "finetune_tokens: [2k]")
    small.write_text(text.replace("name: tiny", "name: tiny-terminal"))
    code, drawn = _run_in_pty(
        ["tsweep", "submit", str(small), "--storage", str(tmp_path / "runs")],
        _env(TERM="xterm", COLUMNS="160"),
        TIMEOUT_S,
    )
    assert code == 0, drawn[-3000:]
    assert "\x1b[" in drawn  # redrawn in place with terminal control sequences, not printed line by line
    text = re.sub(r"\x1b\[[0-9;?]*[A-Za-z]", "", drawn)
    assert "running job" in text and "tok/s" in text  # the live table's header
    assert re.search(r"\d+/\d+ jobs: \d+ running", text), text[-2000:]
    assert "] done " not in text  # no progress lines in a terminal: the table shows progress


def test_a_corpus_too_small_is_refused_in_one_line_once_ray_is_up(tmp_path):
    """The corpora are counted while Ray starts (``run._start_ray_checking_data``): a budget the
    target's corpus cannot hold is refused after Ray is up, and must still read as any refusal
    does: exit 2, one line naming it, nothing written, and the cluster started for it gone."""
    import psutil

    root = tmp_path / "runs"
    before = {p.pid for p in psutil.process_iter(["name"]) if p.info["name"] in ("raylet", "gcs_server")}
    proc = subprocess.run(
        ["tsweep", "submit", str(TINY), "--storage", str(root), "--set", "eval.tokens=50M", "--no-live"],
        capture_output=True,
        text=True,
        timeout=TIMEOUT_S,
        env=_env(),
    )
    lines = proc.stderr.strip().splitlines()
    assert proc.returncode == 2 and len(lines) == 1, proc.stderr[-2000:]
    assert "eval.tokens" in lines[0] and "Traceback" not in proc.stderr
    assert not root.exists()
    deadline = time.time() + 30
    while time.time() < deadline:  # the node's processes end once the driver is gone
        left = {p.pid for p in psutil.process_iter(["name"]) if p.info["name"] in ("raylet", "gcs_server")} - before
        if not left:
            break
        time.sleep(0.5)
    assert not left, f"Ray processes left running: {left}"
