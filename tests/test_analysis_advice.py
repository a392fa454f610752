"""``tsweep advise`` as a decision, on a real run of the demo grid ``tsweep demo`` ships.

The table is ``tests/data/demo_synthetic/summary.parquet`` (synthetic sources d0.6 and d0.9 of a
synthetic target, pico and mini, p = 125k..2M, f = 1k..16k, scratch 1k..256k). Its mini gap law
puts the fine-tuned floor E near 2.32 and mini's from-scratch plateau near 2.20: the floors
disagree, so the report withdraws the gaps there and advice reads the gap law only where it was
measured. The three targets ask three different questions: 2.4 is met already (inside the
measured f range), 2.30 lies under the gap law's floor (which the disagreement leaves undecided)
but within the measured from-scratch curve, and 2.25 lies past the measured scratch budgets.
Every expectation below is checked against the law it comes from, not against printed text.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest

from tsweep.analysis.advice import DESIGN_REACH, Device, Route, _status, advice, finetune_tokens, format_advice
from tsweep.analysis.laws import get_law
from tsweep.analysis.transfer import transfer_report

TABLE = Path(__file__).parent / "data" / "demo_synthetic" / "summary.parquet"
# Enough refits for a 95% interval (its ends are the 3rd and 98th of 100 sorted answers), few
# enough that the report fits in seconds.
BOOTSTRAP = 100
CPU = Device("CPU core", 1.0)


@pytest.fixture(scope="module")
def demo():
    table = pq.read_table(TABLE)
    return table, transfer_report(table, bootstrap=BOOTSTRAP)


def _entries(demo, x, **kw):
    table, report = demo
    return {e["source"]: e for e in advice(report, table, x, device=CPU, **kw)}


def _route(entry, name):
    return next(o for o in entry["options"] if o["route"] == name)


def _measured(table, **where):
    rows = [r for r in table.to_pylist() if r["status"] == "ok" and all(r[k] == v for k, v in where.items())]
    return {(r["pretrain_tokens"], r["data_tokens"]): r["best_eval_loss"] for r in rows}


def test_a_met_target_gets_the_smallest_budget_not_the_current_one(demo):
    table, report = demo
    entries = _entries(demo, 2.4)
    d06 = entries["d0.6"]
    assert d06["met"] and d06["size"] == "mini"
    ft = _route(d06, "target data")
    assert ft["status"] == "ok"
    # smaller than the 16k the sweep used, and what the law itself says at that budget
    assert 1e3 < ft["tokens"] < d06["f"]
    gap = report.gap_fit("mini")
    prm = gap.source_params("d0.6")
    assert float(get_law("barnett").predict(prm, p=d06["p"], f=ft["tokens"])) == pytest.approx(2.4, rel=1e-9)
    lo, hi = ft["ci95"]
    assert lo < ft["tokens"] < hi and hi / lo < 100
    # the store agrees: at 4k target tokens from this checkpoint the measured loss is above 2.4, at 16k below
    measured = _measured(table, source="d0.6", size="mini")
    assert measured[(d06["p"], 4000)] > 2.4 > measured[(d06["p"], 16000)]
    assert 4000 < ft["tokens"] < 16000
    # the cost: 6 N per token trained, at least one pass over the tokens it names
    assert ft["cost"]["flops_new"] >= 6 * d06["n_params"] * ft["tokens"]
    assert ft["cost"]["flops"] == pytest.approx(ft["cost"]["flops_new"] + 6 * d06["n_params"] * d06["p"])
    assert ft["cost"]["device_hours"] > ft["cost"]["device_hours_new"] > 0


def test_the_unidentified_pre_training_term_gives_no_answer(demo):
    _, report = demo
    gap = report.gap_fit("mini")
    for name, e in _entries(demo, 2.4).items():
        s = gap.sources.index(name)
        pre = _route(e, "pre-training")
        assert not gap.fit.identified(f"A_{s}")  # the report calls it not identified ...
        assert pre["status"] == "not identified" and pre["tokens"] is None and "A not identified" in pre["reason"]
        assert e["double"]["pre-training"]["value"] is None  # ... and so does every answer built on it
        assert e["double"]["target data"]["value"] > 0


def test_under_the_fine_tune_floor_no_point_value_and_the_scratch_route_with_its_cost(demo):
    table, report = demo
    entries = _entries(demo, 2.30)
    curve = next(c for c in report.curves if c.size == "mini")
    for e in entries.values():
        # under the gap law's floor, which disagrees with the from-scratch plateau: whether more
        # target data reaches 2.30 is what the floor decides, so the route has no answer, and says why
        ft = _route(e, "target data")
        assert ft["tokens"] is None and ft["status"] == "not identified"
        assert "past the measured f range" in ft["reason"] and "floors disagree at mini" in ft["reason"]
        assert e["cheapest"] == "from scratch"
    sc = _route(entries["d0.6"], "from scratch")
    assert sc["status"] == "ok"
    d = sc["tokens"]
    assert float(get_law("plateau").predict(curve.fit.params, D=d)) == pytest.approx(2.30, rel=1e-9)
    # inside the design: past the 64k run (2.335), near the 256k run (2.304, within 0.2% of 2.30)
    scratch = _measured(table, kind="scratch", size="mini")
    assert scratch[(0, 64000)] > 2.30 and scratch[(0, 256000)] == pytest.approx(2.30, rel=0.002)
    assert 64000 < d < DESIGN_REACH * 256000
    assert sc["cost"]["flops"] >= 6 * curve.n_params * d and sc["cost"]["device_hours"] > 0
    lo, hi = sc["cost_ci95"]["flops"]
    assert lo <= sc["cost"]["flops"] <= hi
    text = format_advice(list(entries.values()), 2.30)
    assert "from scratch" in text and "FLOPs" in text and "CPU core-hours" in text


def test_past_the_measured_scratch_budgets_the_scratch_route_says_why_not(demo):
    _, report = demo
    curve = next(c for c in report.curves if c.size == "mini")
    prm = curve.fit.params
    point = float(finetune_tokens(prm["B"], prm["beta"], prm["E"], 2.25))
    assert point > DESIGN_REACH * max(curve.d)  # the law's own answer lies past the design ...
    for e in _entries(demo, 2.25).values():
        sc = _route(e, "from scratch")
        assert sc["status"] == "beyond the design" and sc["tokens"] is None  # ... so it is not printed
        assert "outside the measured D range" in sc["reason"]
        assert sc["ci95"][0] > max(curve.d)
        assert e["cheapest"] is None


def test_the_target_corpus_bounds_an_answer(demo):
    sc = _route(_entries(demo, 2.30, corpus_tokens=1.5e5)["d0.6"], "from scratch")
    assert sc["status"] == "beyond the design" and "target corpus" in sc["reason"] and sc["tokens"] is None


def test_a_wide_interval_is_undetermined_and_a_far_point_beyond_the_design():
    rng = np.random.default_rng(0)
    measured = (1e3, 1.6e4)
    wide = Route("target data", "f", {}, point=8e3, draws=8e3 * np.exp(rng.normal(0, 2.0, 400)))
    assert _status(wide, measured, None)[0] == "undetermined"  # ends ~ e^(+-3.9): ~2500x apart
    # 10% of the draws cannot reach the target: the interval's top is "unreachable"
    some_fail = np.where(rng.random(400) < 0.1, np.inf, 8e3 * np.exp(rng.normal(0, 0.1, 400)))
    status, reason = _status(Route("target data", "f", {}, point=8e3, draws=some_fail), measured, None)
    assert status == "undetermined" and "of bootstrap draws reach it" in reason
    tight = Route("target data", "f", {}, point=8e3, draws=8e3 * np.exp(rng.normal(0, 0.1, 400)))
    assert _status(tight, measured, None) == ("ok", None)
    far = Route("target data", "f", {}, point=DESIGN_REACH * 1.6e4 * 1.01, draws=tight.draws)
    assert _status(far, measured, None)[0] == "beyond the design"
    below = Route("target data", "f", {}, point=1e3 / DESIGN_REACH / 1.01, draws=tight.draws)
    assert _status(below, measured, None)[0] == "beyond the design"
    assert _status(tight, measured, 5e3)[0] == "beyond the design"  # past the corpus


def test_a_source_without_a_gap_law_is_still_weighed_against_scratch():
    table = pq.read_table(Path(__file__).parent / "data" / "demo" / "summary.parquet")
    report = transfer_report(table, bootstrap=0)
    for e in advice(report, table, 2.0, device=CPU):
        assert "no identified gap law" in e["note"]
        assert [o["route"] for o in e["options"]] == ["from scratch"]
        assert e["options"][0]["status"] in ("ok", "undetermined", "beyond the design", "unreachable", "not identified")
