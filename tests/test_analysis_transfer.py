"""The transfer report on summary tables generated from known laws."""

import json
import math

import numpy as np
import pyarrow as pa
import pytest

from tsweep.analysis.synthetic import BARNETT_TRUTH, HERNANDEZ_TRUTH, SCRATCH_TRUTH, synthetic_summary
from tsweep.analysis.transfer import effective_data, interpolate_d_e, transfer_flags, transfer_report
from tsweep.core.store import SUMMARY_SCHEMA


@pytest.fixture(scope="module")
def hern_report():
    return transfer_report(synthetic_summary(mode="hernandez", seed=1), bootstrap=200, seed=0)


@pytest.fixture(scope="module")
def barnett_report():
    return transfer_report(synthetic_summary(mode="barnett", seed=1), bootstrap=200, seed=0)


def _source(report, name):
    return next(s for s in report.sources if s.source == name)


@pytest.mark.parametrize("src", ["text", "code"])
def test_recovers_the_known_dt_law(hern_report, src):
    truth = HERNANDEZ_TRUTH[src]
    s = _source(hern_report, src)
    assert s.hernandez is not None and s.n_dt_runs >= 10
    for name in ("k", "alpha", "beta"):
        est = getattr(s, name)
        lo, hi = est.ci95
        assert lo <= truth[name] <= hi, (name, est)
    assert s.alpha.value == pytest.approx(truth["alpha"], abs=0.03)
    assert s.beta.value == pytest.approx(truth["beta"], abs=0.03)
    assert abs(math.log(s.k.value / truth["k"])) < math.log(2)


def test_multiplier_matches_the_generating_law(hern_report):
    s = _source(hern_report, "text")
    t = HERNANDEZ_TRUTH["text"]
    at = s.multiplier_at
    assert at["basis"] == "law" and at["N"] == max(r.n_params for r in s.runs if r.flag == "ok")
    true_m = 1 + t["k"] * at["D_F"] ** (t["alpha"] - 1) * at["N"] ** t["beta"]
    lo, hi = s.multiplier.ci95
    assert lo <= true_m <= hi and s.multiplier.value == pytest.approx(true_m, rel=0.15)
    for r in s.runs:  # per run, measured against the fitted scratch law
        if r.flag == "ok":
            m = 1 + t["k"] * r.d_f ** (t["alpha"] - 1) * r.n_params ** t["beta"]
            assert r.multiplier == pytest.approx(m, rel=0.3)


def test_scratch_law_is_recovered_with_intervals(hern_report):
    sc = hern_report.scratch
    assert sc is not None and sc.n_points == 24 and sc.ci95 is not None
    for name in ("E", "alpha", "beta"):
        lo, hi = sc.ci95[name]
        assert lo <= SCRATCH_TRUTH[name] <= hi


def test_only_final_checkpoint_fine_tunes_enter_the_dt_law(hern_report):
    s = _source(hern_report, "text")
    assert {r.pretrain_tokens for r in s.runs} == {int(1e9)}
    assert s.n_runs == 80 and len(s.runs) == 16


@pytest.mark.parametrize("src", ["text", "code"])
def test_recovers_the_known_transfer_gap(barnett_report, src):
    s = _source(barnett_report, src)
    truth = BARNETT_TRUTH[src]["G"]
    assert s.gap_size == "l"  # the largest size with a gap fit
    lo, hi = s.G.ci95
    assert lo <= truth <= hi
    assert s.G.value == pytest.approx(truth, rel=0.15)
    assert set(s.barnett) == {"xs", "s", "m", "l"} and all(f is not None for f in s.barnett.values())


def test_gap_ordering_is_resolved(barnett_report):
    text, code = _source(barnett_report, "text").G, _source(barnett_report, "code").G
    assert code.ci95[1] < text.ci95[0]  # G = 10 vs G = 40: intervals do not overlap


def test_report_json_is_the_gaps_contract(hern_report):
    j = json.loads(json.dumps(hern_report.to_json(), allow_nan=False))
    assert j["n_rows"] == 192 and j["n_used"] == 184
    assert j["left_out"] == {"pretrain job (enters only through its fine-tunes)": 8}
    s = j["sources"][0]
    for key in ("source", "G", "k", "alpha", "beta", "multiplier", "n_runs", "warnings"):
        assert key in s
    assert set(s["k"]) == {"value", "ci95"}
    table = hern_report.format_table()
    assert "text" in table and "code" in table and "G [95% CI]" in table


def _with_bad_rows(table: pa.Table) -> pa.Table:
    rows = table.to_pylist()
    bad = []
    for i, status in enumerate(["diverged", "diverged", "failed"]):
        r = dict(rows[-1 - i], job_id=f"bad{i}", status=status, best_eval_loss=None if status == "failed" else 9.9)
        bad.append(r)
    bad.append(dict(rows[-4], job_id="noloss", best_eval_loss=None))
    return pa.concat_tables([table, pa.Table.from_pylist(bad, schema=SUMMARY_SCHEMA)])


def test_rows_not_ok_are_left_out_and_counted():
    base = synthetic_summary(mode="barnett", seed=2)
    r = transfer_report(_with_bad_rows(base), bootstrap=0)
    assert r.left_out["status=diverged"] == 2 and r.left_out["status=failed"] == 1
    assert r.left_out["no finite best_eval_loss"] == 1
    assert r.n_rows == base.num_rows + 4 and r.n_used == 184
    clean = transfer_report(base, bootstrap=0)
    assert _source(r, "text").G.value == pytest.approx(_source(clean, "text").G.value, rel=1e-6)


def test_too_little_data_gives_none_and_says_why():
    t = synthetic_summary(mode="hernandez", sizes={"s": 1_000_000}, scratch_d=(1e6, 1e7), pretrain_p=(1e9,),
                          finetune_d=(1e5, 1e6), sources=("text",))
    r = transfer_report(t, bootstrap=50)
    assert r.scratch is None and any("scratch law not fitted" in w for w in r.warnings)
    s = r.sources[0]
    assert s.k is None and s.alpha is None and s.multiplier is None and s.G is None
    assert any("gap law not fitted" in w for w in s.warnings)
    assert all(run.flag == "no_scratch_law" and math.isnan(run.d_t) for run in s.runs)
    j = s.to_json()
    assert j["G"] is None and j["k"] is None


def test_dt_law_needs_two_sizes():
    t = synthetic_summary(mode="hernandez", sizes={"s": 1_000_000}, sources=("text",),
                          scratch_d=(1e6, 4e6, 1.6e7, 6.4e7, 2.56e8, 1e9))
    r = transfer_report(t, bootstrap=0)
    s = r.sources[0]
    assert r.scratch is not None and s.hernandez is None and s.k is None
    assert any("D_T law not fitted" in w for w in s.warnings)
    assert s.multiplier is not None and s.multiplier_at["basis"] == "measured"


def test_effective_data_inverts_the_scratch_law():
    n, d = np.array([1e6, 1e7]), np.array([3e6, 4e8])
    p = SCRATCH_TRUTH
    loss = p["E"] + p["A"] / n ** p["alpha"] + p["B"] / d ** p["beta"]
    np.testing.assert_allclose(effective_data(p, n, loss), d, rtol=1e-9)
    floor = p["E"] + p["A"] / n ** p["alpha"]
    assert np.all(np.isnan(effective_data(p, n, floor - 0.01)))


def test_flag_rule():
    p = SCRATCH_TRUTH
    n = np.full(4, 1e6)
    d_f = np.array([1e5, 1e5, 1e5, 1e12])
    floor = p["E"] + p["A"] / 1e6 ** p["alpha"]
    scratch_at = lambda d: floor + p["B"] / d ** p["beta"]  # noqa: E731
    loss = np.array([scratch_at(1e7), scratch_at(1e4), floor - 0.1, scratch_at(1e13)])
    d_t, flags = transfer_flags(p, n, d_f, loss)
    assert list(flags) == ["ok", "no_transfer", "beyond_plateau", "high_data"]
    assert d_t[0] == pytest.approx(1e7 - 1e5, rel=1e-9) and d_t[1] < 0


def test_interpolation_cross_check():
    d = np.array([1e6, 1e7, 1e8])
    loss = np.array([4.0, 3.0, 2.5])
    assert interpolate_d_e(d, loss, 3.0) == pytest.approx(1e7)
    mid = interpolate_d_e(d, loss, 2.75)
    assert 1e7 < mid < 1e8
    assert math.isnan(interpolate_d_e(d, loss, 2.0)) and math.isnan(interpolate_d_e(d[:1], loss[:1], 4.0))


def test_interpolated_d_e_agrees_with_the_law_on_clean_data():
    r = transfer_report(synthetic_summary(mode="hernandez", noise=0.0), bootstrap=0)
    checked = 0
    for s in r.sources:
        for run in s.runs:
            if math.isfinite(run.d_e_interp) and math.isfinite(run.d_e):
                assert abs(math.log(run.d_e / run.d_e_interp)) < math.log(1.5)
                checked += 1
    assert checked >= 10


def test_warm_started_report_matches_cold():
    t = synthetic_summary(mode="barnett", seed=3)
    cold = transfer_report(t, bootstrap=0)
    warm = transfer_report(t, bootstrap=0, warm=cold.warm_starts())
    for a, b in zip(cold.sources, warm.sources):
        assert a.G.value == pytest.approx(b.G.value, rel=1e-4)
