"""The transfer report on summary tables generated from known laws, and its pieces."""

import dataclasses
import json
import math

import numpy as np
import pyarrow as pa
import pytest

from tsweep.analysis import scratch
from tsweep.analysis.laws import get_law
from tsweep.analysis.report import TransferReport
from tsweep.analysis.synthetic import (
    BARNETT_TRUTH, DEFAULT_DESIGN, DEFAULT_TRUTHS, HERNANDEZ_TRUTH, SCRATCH_TRUTH, Truths, synthetic_summary,
)
from tsweep.analysis.transfer import row_noise, transfer_report
from tsweep.core.store import SUMMARY_SCHEMA

BOOT = 100


@pytest.fixture(scope="module")
def hern_report():
    return transfer_report(synthetic_summary(mode="hernandez", seed=1), bootstrap=BOOT, seed=0)


@pytest.fixture(scope="module")
def barnett_report():
    return transfer_report(synthetic_summary(mode="barnett", seed=1, noise=0.01), bootstrap=BOOT, seed=0)


def _source(report, name):
    return next(s for s in report.sources if s.source == name)


# ------------------------------------------------------------------ Hernandez et al. 2021
@pytest.mark.parametrize("src", ["text", "code"])
def test_recovers_the_known_dt_law(hern_report, src):
    truth = HERNANDEZ_TRUTH[src]
    s = _source(hern_report, src)
    assert s.hernandez is not None and s.n_dt_runs >= 10
    for name in ("k", "alpha", "beta"):
        est = getattr(s, name)
        assert est.identified, (name, est)
        lo, hi = est.ci95
        assert lo <= truth[name] <= hi, (name, est)
    assert s.alpha.value == pytest.approx(truth["alpha"], abs=0.05)
    assert s.beta.value == pytest.approx(truth["beta"], abs=0.06)
    assert abs(math.log(s.k.value / truth["k"])) < math.log(3)


def test_multiplier_matches_the_generating_law(hern_report):
    s = _source(hern_report, "text")
    t = HERNANDEZ_TRUTH["text"]
    at = s.multiplier_at
    assert at["basis"] == "law" and at["N"] == max(r.n_params for r in s.runs if r.flag == "ok")
    true_m = 1 + t["k"] * at["D_F"] ** (t["alpha"] - 1) * at["N"] ** t["beta"]
    lo, hi = s.multiplier.ci95
    assert lo <= true_m <= hi and s.multiplier.value == pytest.approx(true_m, rel=0.2)
    interpolated = [r for r in s.runs if r.flag == "ok" and not r.extrapolated]
    assert len(interpolated) >= 8
    for r in interpolated:  # per run, read off the measured scratch curve
        m = 1 + t["k"] * r.d_f ** (t["alpha"] - 1) * r.n_params ** t["beta"]
        assert r.multiplier == pytest.approx(m, rel=0.3)


def test_per_size_plateaus_are_the_scratch_laws_limits(hern_report):
    for c in hern_report.curves:
        truth = SCRATCH_TRUTH["E"] + SCRATCH_TRUTH["A"] * c.n_params ** -SCRATCH_TRUTH["alpha"]
        assert c.plateau.identified
        lo, hi = c.plateau.ci95
        assert lo <= truth <= hi, (c.size, c.plateau, truth)


def test_only_final_checkpoint_fine_tunes_enter_the_dt_law(hern_report):
    s = _source(hern_report, "text")
    assert {r.pretrain_tokens for r in s.runs} == {int(1e9)}
    assert s.n_runs == 80 and len(s.runs) == 16


# A scratch curve that reaches its plateau inside the measured range, so D(N) is identified.
FAST = Truths({"A": 60.0, "B": 2e4, "E": 1.7, "alpha": 0.3, "beta": 0.7}, BARNETT_TRUTH, HERNANDEZ_TRUTH)
FAST_DESIGN = dataclasses.replace(DEFAULT_DESIGN, scratch_d=tuple(np.geomspace(1e5, 1e9, 7)),
                                  finetune_d=(3e4, 1e5, 1e6, 1e7, 1e8), sources=("text",))


@pytest.fixture(scope="module")
def fast_report():
    return transfer_report(synthetic_summary(FAST_DESIGN, mode="hernandez", truths=FAST, seed=2), bootstrap=BOOT)


def test_d_n_is_where_the_curve_comes_within_one_percent_of_its_plateau(fast_report):
    t = FAST.scratch
    for c in fast_report.curves:
        plateau = t["E"] + t["A"] * c.n_params ** -t["alpha"]
        d_n = (t["B"] / (scratch.PLATEAU_TOLERANCE * plateau)) ** (1 / t["beta"])
        assert c.data_limit.identified, c
        lo, hi = c.data_limit.ci95
        assert lo <= d_n <= hi, (c.size, c.data_limit, d_n)
        assert c.basis == "D(N)" and c.low_data_max == pytest.approx(0.1 * c.data_limit.value)


def test_low_data_rule_is_hernandez(fast_report):
    limits = {c.size: c.low_data_max for c in fast_report.curves}
    runs = _source(fast_report, "text").runs
    assert {r.flag for r in runs} >= {"ok", "high_data"}
    for r in runs:
        if r.flag in ("ok", "no_transfer"):
            assert r.d_f <= limits[r.size]
        if r.flag == "high_data":
            assert r.d_f > limits[r.size]


# ------------------------------------------------------------------ Barnett 2024, joint over sources
@pytest.mark.parametrize("src", ["text", "code"])
def test_recovers_the_known_transfer_gap(barnett_report, src):
    s = _source(barnett_report, src)
    truth = BARNETT_TRUTH[src]
    assert s.gap_size == "l"  # the largest size with G identified
    lo, hi = s.G.ci95
    assert lo <= truth["G"] <= hi and s.G.value == pytest.approx(truth["G"], rel=0.25)
    g_loss = truth["G"] * s.f_ref ** -truth["beta"]
    lo, hi = s.G_loss.ci95
    assert s.f_ref == max(DEFAULT_DESIGN.finetune_d) and lo <= g_loss <= hi
    assert {g.size for g in barnett_report.gaps} == {"xs", "s", "m", "l"}
    assert all(g.sources == ("code", "text") and g.fit is not None for g in barnett_report.gaps)


def test_the_difference_between_sources_is_a_statement_with_an_interval(barnett_report):
    (c,) = barnett_report.comparisons
    assert (c.a, c.b, c.size) == ("code", "text", "l")
    lo, hi = c.dG.ci95
    truth = BARNETT_TRUTH["code"]["G"] - BARNETT_TRUTH["text"]["G"]
    assert lo <= truth <= hi and hi < 0
    assert c.statement() == "code transfers better than text (smaller gap)"
    assert c.dG_loss.ci95[1] < 0


def test_shared_beta_and_e_are_one_value_per_size(barnett_report):
    for g in barnett_report.gaps:
        assert g.beta.identified and g.beta.ci95[0] <= 0.3 <= g.beta.ci95[1]
        assert g.fit.law == "barnett_joint:2"


# ------------------------------------------------------------------ honesty
def test_report_json_round_trips_through_the_typed_report(hern_report):
    j = json.loads(json.dumps(hern_report.to_json(), allow_nan=False))
    back = TransferReport.from_json(j)
    assert back.to_json() == j
    assert back.sources[0].k == hern_report.sources[0].k
    assert j["n_rows"] == 192 and j["n_used"] == 184
    assert j["left_out"] == {"pretrain job (enters only through its fine-tunes)": 8}
    s = j["sources"][0]
    for key in ("source", "G", "k", "alpha", "beta", "multiplier", "n_runs", "warnings"):
        assert key in s
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


def test_too_little_data_gives_null_and_says_why():
    tiny = dataclasses.replace(DEFAULT_DESIGN, sizes={"s": 1_000_000}, scratch_d=(1e6, 1e7), pretrain_p=(1e9,),
                               finetune_d=(1e5, 1e6), sources=("text",))
    r = transfer_report(synthetic_summary(tiny, mode="hernandez"), bootstrap=50)
    assert r.scratch is None and any("global scratch law not fitted" in w for w in r.warnings)
    (c,) = r.curves
    assert c.plateau.value is None and "2 distinct scratch D" in c.plateau.reason
    s = r.sources[0]
    for e in (s.k, s.alpha, s.G, s.G_loss, s.multiplier):
        assert e.value is None and e.reason.startswith("not identified")
    assert "p takes 1 distinct value(s), needs >= 3" in s.G.reason
    assert all(run.flag == "regime_unknown" for run in s.runs if np.isfinite(run.d_e))
    j = s.to_json()
    assert j["G"]["value"] is None and j["G"]["reason"] and j["k"]["value"] is None


def test_a_design_with_two_p_values_cannot_produce_g():
    two_p = dataclasses.replace(DEFAULT_DESIGN, pretrain_p=(1e8, 1e9))
    r = transfer_report(synthetic_summary(two_p, mode="barnett", finetunes_only=True), bootstrap=0)
    for s in r.sources:
        assert s.G.value is None and "p takes 2 distinct value(s), needs >= 3" in s.G.reason


def test_a_run_keeps_its_bootstrap_noise_as_other_runs_finish():
    a = row_noise(np.array(["x", "y", "z"]), 50, seed=3)
    b = row_noise(np.array(["w", "y", "x"]), 50, seed=3)
    np.testing.assert_array_equal(a[:, 0], b[:, 2])
    np.testing.assert_array_equal(a[:, 1], b[:, 1])
    assert not np.array_equal(a[:, 0], row_noise(np.array(["x"]), 50, seed=4)[:, 0])


def test_noise_is_measured_from_the_fits_residuals():
    r = transfer_report(synthetic_summary(mode="barnett", noise=0.02, seed=5), bootstrap=0)
    assert r.noise == pytest.approx(0.02, rel=0.2) and r.noise_dof > 100


# ------------------------------------------------------------------ D_E off the measured curve
def test_d_e_interpolates_the_measured_curve_in_log_log():
    d = np.array([1e6, 1e7, 1e8])
    logl = np.log([4.0, 3.0, 2.5])
    d_e, out = scratch.effective_data(d, logl, np.log([3.0, 4.0, 2.5]), None)
    np.testing.assert_allclose(d_e, [1e7, 1e6, 1e8], rtol=1e-12)
    assert list(out) == [scratch.INTERPOLATED] * 3
    mid, _ = scratch.effective_data(d, logl, np.log([2.75]), None)
    t = (math.log(3.0) - math.log(2.75)) / (math.log(3.0) - math.log(2.5))
    assert mid[0] == pytest.approx(math.exp(math.log(1e7) + t * math.log(10)), rel=1e-12)
    beyond, out = scratch.effective_data(d, logl, np.log([2.0]), None)
    assert math.isnan(beyond[0]) and out[0] == scratch.NO_LAW


def test_d_e_extrapolates_with_the_per_size_law_anchored_at_the_last_run():
    law = get_law("plateau")
    truth = {"L_inf": 1.5, "B": 200.0, "b": 0.5}
    d = np.geomspace(1e4, 1e6, 5)
    logl = np.log(law.predict(truth, D=d))
    theta = law.from_params(truth)
    target = np.log(law.predict(truth, D=np.array([1e7, 1e3])))
    d_e, out = scratch.effective_data(d, logl, target, theta)
    np.testing.assert_allclose(d_e, [1e7, 1e3], rtol=1e-9)
    assert list(out) == [scratch.EXTRAPOLATED] * 2
    at_plateau, out = scratch.effective_data(d, logl, np.log([1.5]), theta)
    assert math.isnan(at_plateau[0]) and out[0] == scratch.BEYOND_PLATEAU


def test_a_scratch_curve_that_rises_is_made_monotone_before_it_is_read():
    d = np.array([1.6e4, 6.4e4, 2.56e5, 1e6])
    loss = np.array([2.49, 1.90, 1.52, 1.86])  # the demo's micro: the 1M run stopped at 0.6 epochs
    assert scratch.rises(d, loss) == [(2.56e5, 1e6)]
    ld, ll = scratch.monotone_curve(d, np.log(loss))
    assert np.all(np.diff(ll) < 0) and np.exp(ld).tolist() == pytest.approx([1.6e4, 6.4e4, 2.56e5])
    np.testing.assert_allclose(scratch.isotonic_decreasing([3.0, 2.0, 1.0, 2.0]), [3.0, 2.0, 1.5, 1.5])


def test_data_limit_is_where_the_data_term_is_one_percent_of_the_plateau():
    law = get_law("plateau")
    theta = law.from_params({"L_inf": 2.0, "B": 100.0, "b": 0.5})
    d_n = float(scratch.data_limit(theta))
    assert 100.0 * d_n**-0.5 == pytest.approx(0.01 * 2.0, rel=1e-12)


def test_warm_started_report_matches_cold():
    t = synthetic_summary(mode="barnett", seed=3)
    cold = transfer_report(t, bootstrap=0)
    warm = transfer_report(t, bootstrap=0, warm=cold)
    for a, b in zip(cold.sources, warm.sources):
        assert a.G.value == pytest.approx(b.G.value, rel=1e-4)
    assert DEFAULT_TRUTHS.barnett is BARNETT_TRUTH
