"""The adaptive design: its choices in isolation (on simulated sweeps at the demo's laws), and a
tiny adaptive sweep through the console script whose driver is killed and resumed.

In isolation (no cluster): the seed design can identify the gap law and runs parents first; a
choice comes from the grid, narrows an open target, respects the batch and the budget, and is a
pure function of the report; the design stops on a met goal and on a spent budget.

End to end: ``tsweep submit`` of ``tests/data/tiny_adaptive.yaml`` in a pipe, SIGKILLed once some
of its chosen jobs have finished, then ``tsweep resume``: the design's log continues (no job chosen
twice, the chosen-but-unfinished jobs run), every chosen job has exactly one summary and no other
job has one, the design stops on its goal or its budget, and ``tsweep status`` lists the jobs it
never chose as not chosen.
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc
import pytest
from faultkit import kill_driver, resume, submit_in_background, subprocess_env, summaries, tsweep_cmd, wait_for

from tsweep.analysis.design import Candidate, Goal, calibrate, choose, read_decisions, seed_design, targets
from tsweep.analysis.transfer import transfer_report
from tsweep.analysis.worlds import design_worlds, draw
from tsweep.core.layout import SweepLayout
from tsweep.orchestrator.plan import expand
from tsweep.sweeps import load_sweep

ROOT = Path(__file__).resolve().parents[1]
DEMO = ROOT / "tsweep" / "sweeps" / "demo.yaml"
TINY_ADAPTIVE = Path(__file__).parent / "data" / "tiny_adaptive.yaml"


# ------------------------------------------------------------------ the design in isolation
def _world_id(c: Candidate) -> str:
    """The simulated world's row id of a grid fine-tune of the demo (tsweep.analysis.worlds.draw)."""
    return f"f-{c.source}-{c.size}-{c.p:.0f}-{c.f:.0f}-r0"


@pytest.fixture(scope="module")
def demo():
    """The demo's plan as the design sees it, its default goal, and one simulated full table."""
    sweep = load_sweep(DEMO)
    pool = [Candidate.of(j) for j in expand(sweep).jobs]
    goal = Goal.of(sweep.design, sweep.model_sizes, pool)
    return pool, goal, draw(design_worlds()["demo"], seed=3)


def _report(table: pa.Table, pool: list[Candidate], chosen: set[str], bootstrap: int = 60):
    ids = {_world_id(c) for c in pool if c.job_id in chosen and c.kind == "finetune" and c.replicate == 0}
    rows = table.filter(pc.is_in(table.column("job_id"), value_set=pa.array(sorted(ids))))
    return transfer_report(rows, bootstrap=bootstrap, seed=0)


def test_the_seed_design_can_identify_the_gap_law_and_runs_parents_first(demo):
    pool, goal, _ = demo
    seed = seed_design(pool, goal)
    assert goal.sizes == ("mini",)
    by_id = {c.job_id: c for c in pool}
    tunes = [c for c in seed if c.kind == "finetune" and c.replicate == 0]
    for source in ("d0.6", "d0.9"):
        mine = [c for c in tunes if c.source == source and c.size == "mini"]
        # three checkpoints and three budgets per source (what the report needs before a source enters
        # the joint fit), six points: enough for A, alpha, G besides the shared beta, E
        assert len({c.p for c in mine}) == 3 and len({c.f for c in mine}) == 3 and len(mine) == 6, mine
    assert not [c for c in seed if c.kind == "scratch"], "the goal needs no scratch curve"
    assert all(c.replicate == 0 or c in seed for c in pool if c.replicate), "declared replicates run in the seed"
    grid_cells = {(c.source, c.size, c.p, c.f) for c in seed if c.kind == "finetune" and c.replicate == 0}
    for c in seed:
        if c.kind == "finetune" and c.replicate:  # each with the grid's run of its cell: a pair
            assert (c.source, c.size, c.p, c.f) in grid_cells, c.label
    position = {c.job_id: i for i, c in enumerate(seed)}
    for c in seed:
        if c.parent:
            assert c.parent in position and position[c.parent] < position[c.job_id], c.label
            assert by_id[c.parent].kind == "pretrain"
    share = sum(c.cost for c in seed) / sum(c.cost for c in pool)
    assert 0.15 < share < 0.4, share  # mini's two pre-training runs are most of it


def test_a_choice_narrows_an_open_target_within_batch_and_budget(demo):
    pool, goal, table = demo
    goal = Goal(goal.sizes, half_width=0.1, order=True, budget=goal.budget)  # after the seed, still open
    chosen = {c.job_id for c in seed_design(pool, goal)}
    report = _report(table, pool, chosen)
    spent = sum(c.cost for c in pool if c.job_id in chosen)
    picks, why = choose(report, goal, pool, chosen, batch=3, spent=spent)
    assert why is None and 1 <= len(picks) <= 3
    by_id = {c.job_id: c for c in pool}
    for d in picks:
        c = by_id[d.job_id]
        assert d.job_id not in chosen and c.kind == "finetune" and c.size == "mini", c.label
    assert len({d.job_id for d in picks}) == len(picks), "a batch picks a job once"
    again, _ = choose(report, goal, pool, chosen, batch=3, spent=spent)
    assert [d.job_id for d in again] == [d.job_id for d in picks], "the same report gives the same choice"
    grid_next = [c.job_id for c in pool if c.job_id not in chosen][:3]
    assert [d.job_id for d in picks] != grid_next, "the design does not just follow the grid's order"
    # a budget with room for one more fine-tune of mini and no more
    one = min(by_id[d.job_id].cost for d in picks)
    tight = Goal(goal.sizes, goal.half_width, goal.order, budget=spent + one)
    picks, why = choose(report, tight, pool, chosen, batch=3, spent=spent)
    assert sum(by_id[d.job_id].cost for d in picks) <= one + 1e-6
    assert choose(report, tight, pool, chosen | {d.job_id for d in picks}, batch=3, spent=spent + one) == (
        [],
        "budget spent",
    )


def test_the_design_stops_when_its_goal_is_met(demo):
    pool, goal, table = demo
    everything = {c.job_id for c in pool}
    report = _report(table, pool, everything)
    loose = Goal(goal.sizes, half_width=10.0, order=False, budget=goal.budget)
    state = targets(report, loose, pool, [])
    assert state and all(t.settled for t in state), state
    picks, why = choose(report, loose, pool, everything, batch=2, spent=0.0)
    assert (picks, why) == ([], "goal met")


# ------------------------------------------------------------------ a tiny adaptive sweep
@pytest.mark.cluster
def test_an_adaptive_sweep_killed_and_resumed_continues_its_design_and_stops_on_its_goal(tmp_path):
    import ray

    ray.shutdown()  # the drivers under test start their own local clusters; leave them the cores
    sweep = load_sweep(TINY_ADAPTIVE)
    root = tmp_path / "runs"
    layout = SweepLayout(sweep.sweep_dir(str(root)))
    graph = expand(sweep)
    proc, log = submit_in_background(TINY_ADAPTIVE, root, tmp_path)
    try:
        wait_for(lambda: len(summaries(layout)) >= 4, "four finished jobs", alive=lambda: proc.poll() is None)
    finally:
        kill_driver(proc)
        log.close()
    first = read_decisions(layout)
    done_before = set(summaries(layout))
    printed = (tmp_path / "submit.log").read_text()
    assert first and done_before, printed[-3000:]
    assert "design: seed design of" in printed, printed[-3000:]  # a progress line says what the design did

    r = resume(sweep.name, root, tmp_path, timeout=600)
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    lines = read_decisions(layout)
    assert lines[: len(first)] == first, "the resumed driver appends to the design's log"
    chose = [d["job_id"] for d in lines if d.get("event") == "chose"]
    assert len(chose) == len(set(chose)), "no job chosen twice"
    rows = summaries(layout)
    assert set(rows) == set(chose), "exactly the chosen jobs ran, each with one summary"
    stops = [d for d in lines if d.get("event") == "stop"]
    assert stops and stops[-1]["reason"] in ("goal met", "budget spent"), stops
    state = json.loads(Path(layout.design_state).read_text())
    assert state["spent_flops"] <= sum(j.est_flops for j in graph.jobs) * sweep.design.budget * (1 + 1e-9)
    if stops[-1]["reason"] == "goal met":
        assert all(t["state"] != "open" for t in state["targets"]), state["targets"]
    grid_order = [j.job_id for j in graph.jobs][: len(chose)]
    assert chose != grid_order, "the design's order is not the grid's"
    assert "adaptive design stopped:" in r.stdout and "design stopped:" in r.stdout, r.stdout[-2000:]
    assert f"plot: {layout.plot('design.png')}" in r.stdout, r.stdout[-2000:]  # its figure, beside the grid's

    status = subprocess.run(
        [*tsweep_cmd(), "status", sweep.name, "--storage", str(root)],
        cwd=tmp_path,
        env=subprocess_env(),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert status.returncode == 0, status.stderr
    left = len(graph.jobs) - len(chose)
    assert left > 0 and f"not chosen {left}" in status.stdout, status.stdout


def test_each_job_is_weighed_at_what_finished_runs_of_its_kind_cost(demo):
    pool, _, _ = demo
    tunes = [c for c in pool if c.kind == "finetune" and c.size == "mini" and c.replicate == 0]
    one_k = next(c for c in tunes if c.f == 1_000)
    four_k = next(c for c in tunes if c.f == 4_000)
    # one run measured at 1k tokens, at 40% of its plan bound
    weighed = {c.job_id: c for c in calibrate(pool, {one_k.job_id: 0.4 * one_k.cost})}
    same_cell = [c for c in tunes if c.f == 1_000]
    assert all(weighed[c.job_id].price == pytest.approx(0.4 * one_k.cost) for c in same_cell)
    # other budgets of the same kind and size: their bound times the measured ratio
    assert weighed[four_k.job_id].price == pytest.approx(0.4 * four_k.cost)
    # nothing measured of a kind: the plan's bound; the budget always counts the bound
    scratch = next(c for c in pool if c.kind == "scratch")
    assert weighed[scratch.job_id].price == scratch.cost
    assert all(weighed[c.job_id].cost == c.cost for c in pool)
