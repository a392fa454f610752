"""The fitter's behaviour beyond point estimates: interval coverage, warm starts, warnings."""

import numpy as np
import pytest

from tsweep.analysis import fitter
from tsweep.analysis.laws import get_law
from tsweep.analysis.records import Estimate

HERN = {"k": 1.9e4, "alpha": 0.18, "beta": 0.38}  # Hernandez et al. 2021, text -> python
N = np.repeat([1e6, 3e6, 1e7, 3e7, 1e8], 6)
DF = np.tile([1e5, 3e5, 1e6, 3e6, 1e7, 3e7], 5)


def _hernandez_data(seed, noise=0.1, n=N, df=DF):
    rng = np.random.default_rng(seed)
    y = get_law("hernandez").predict(HERN, N=n, D_F=df) * np.exp(noise * rng.standard_normal(n.size))
    return {"N": n, "D_F": df, "D_T": y}


def _coverage(draws, noise, base):
    hits = {k: 0 for k in HERN}
    widths = []
    for i in range(draws):
        res = fitter.fit("hernandez", _hernandez_data(base + i, noise=noise), bootstrap=200, seed=i)
        for k, v in HERN.items():
            lo, hi = res.ci95[k]
            hits[k] += lo <= v <= hi
        widths.append(res.ci95["alpha"][1] - res.ci95["alpha"][0])
    return hits, float(np.median(widths))


def test_bootstrap_intervals_cover_the_truth_about_95_percent_of_the_time():
    """Noise inside the Huber delta (1e-3), so the fit is least squares: 100 draws, and each
    parameter's 95% interval must cover the truth in 85-99% of them (measured ~91-97%)."""
    draws = 100
    hits, _ = _coverage(draws, noise=5e-4, base=1000)
    for h in hits.values():
        assert 0.85 <= h / draws <= 0.99, hits
    assert 0.9 <= sum(hits.values()) / (draws * len(HERN)) <= 0.98, hits


def test_coverage_with_noise_far_outside_the_huber_delta():
    """10% noise: the fit is a median regression, whose row bootstrap runs a little
    conservative (~96-99% measured); it must not undercover, and must stay informative."""
    draws = 60
    hits, alpha_width = _coverage(draws, noise=0.1, base=3000)
    assert sum(hits.values()) / (draws * len(HERN)) >= 0.9, hits
    assert all(h / draws >= 0.85 for h in hits.values()), hits
    assert alpha_width < 0.1  # alpha = 0.18: an interval that says something


def test_intervals_shrink_with_less_noise():
    wide = fitter.fit("hernandez", _hernandez_data(1, noise=0.2), bootstrap=200)
    narrow = fitter.fit("hernandez", _hernandez_data(1, noise=0.02), bootstrap=200)
    for k in ("alpha", "beta"):
        w = wide.ci95[k][1] - wide.ci95[k][0]
        n = narrow.ci95[k][1] - narrow.ci95[k][0]
        assert n < 0.3 * w


def test_bootstrap_is_reproducible_by_seed_and_varies_with_it():
    d = _hernandez_data(3)
    a = fitter.fit("hernandez", d, bootstrap=100, seed=7)
    b = fitter.fit("hernandez", d, bootstrap=100, seed=7)
    c = fitter.fit("hernandez", d, bootstrap=100, seed=8)
    assert a.ci95 == b.ci95 and a.ci95 != c.ci95


def test_warm_start_reaches_the_cold_optimum_after_adding_a_run():
    law = get_law("chinchilla")
    truth = {"A": 60.0, "B": 80.0, "E": 1.7, "alpha": 0.3, "beta": 0.25}
    rng = np.random.default_rng(0)
    n, d = np.meshgrid(np.geomspace(1e5, 1e8, 6), np.geomspace(1e6, 1e9, 8), indexing="ij")
    data = {"N": n.ravel(), "D": d.ravel()}
    data["loss"] = law.predict(truth, **data) * np.exp(0.01 * rng.standard_normal(n.size))
    before = fitter.fit(law, data)
    more = {k: np.append(v, x) for (k, v), x in zip(data.items(), (3e6, 2e8, 2.6), strict=True)}
    cold = fitter.fit(law, more)
    warm = fitter.fit(law, more, warm_start=before)
    assert warm.loss == pytest.approx(cold.loss, rel=1e-6)
    for k in truth:
        assert warm.params[k] == pytest.approx(cold.params[k], rel=1e-3)


def test_warns_when_an_axis_is_not_spanned():
    one_n = _hernandez_data(0, n=np.full(6, 1e7), df=DF[:6])
    res = fitter.fit("hernandez", one_n)
    assert any("beta" in w and "not identified: N takes 1 distinct value" in w for w in res.warnings), res.warnings
    ok = fitter.fit("hernandez", _hernandez_data(0))
    assert not any("not identified" in w for w in ok.warnings)


def test_warns_when_the_estimate_or_interval_hits_a_bound():
    # no gap in the data (G = 0): G sits on its lower bound and its interval is one-sided
    law = get_law("barnett")
    p, f = np.meshgrid(np.geomspace(1e7, 1e10, 5), np.geomspace(1e5, 1e8, 6), indexing="ij")
    data = {"p": p.ravel(), "f": f.ravel()}
    data["loss"] = law.predict({"A": 3e5, "alpha": 0.5, "G": 0.0, "beta": 0.3, "E": 1.7}, **data)
    res = fitter.fit(law, data, bootstrap=50)
    assert res.params["G"] < 1e-3
    assert any(w.startswith("G:") and "bound" in w for w in res.warnings), res.warnings


def test_rows_that_cannot_be_logged_are_dropped_with_a_warning():
    d = _hernandez_data(0)
    d["D_T"] = d["D_T"].copy()
    d["D_T"][:3] = [0.0, -1.0, np.nan]
    res = fitter.fit("hernandez", d)
    assert res.n_points == N.size - 3
    assert any("3 rows dropped: D_T" in w for w in res.warnings)
    with pytest.raises(fitter.FitError, match="missing"):
        fitter.fit("hernandez", {"N": N, "D_T": d["D_T"]})


def test_group_bootstrap_resamples_whole_groups():
    w = fitter.resample_weights(6, 200, 0, groups=np.array([0, 0, 0, 1, 1, 1]))
    assert np.all(w[:, 0] == w[:, 1]) and np.all(w[:, 3] == w[:, 5])
    assert set(np.unique(w[:, 0])) <= {0.0, 1.0, 2.0} and np.all(w.sum(axis=1) == 6)
    rows = fitter.resample_weights(6, 200, 0)
    assert np.all(rows.sum(axis=1) == 6) and not np.all(rows[:, 0] == rows[:, 1])


def test_vectorised_bootstrap_refits_match_lbfgs_resample_by_resample():
    law = get_law("hernandez")
    d = _hernandez_data(5)
    logx, logy, _, _ = fitter.prepare(law, d)
    theta0 = np.array(fitter.fit(law, d).theta)
    w = fitter.resample_weights(logy.size, 20, 1)
    batch = fitter.bootstrap_thetas(law, theta0, logx, logy, w)
    for i in range(w.shape[0]):
        _, f = fitter._lbfgs(law, theta0, logx, logy, w[i], fitter.HUBER_DELTA)
        fb = fitter.objective(law, batch[i], logx, logy, w[i])[0]
        assert fb <= f * (1 + 1e-6)


@pytest.mark.parametrize("scheme", ["rows", "wild", "parametric"])
def test_a_fit_records_and_names_its_resampling_scheme(scheme):
    data = _hernandez_data(3, noise=0.05)
    res = fitter.fit("hernandez", data, bootstrap=20, seed=0, resample=scheme, groups=np.repeat(np.arange(5), 6))
    assert res.resample == scheme and res.to_json()["resample"] == scheme
    assert fitter.FitResult.from_json(res.to_json()).resample == scheme
    text = fitter.format_fit(res)
    assert f"intervals: bias-corrected percentile {fitter.RESAMPLE_SCHEMES[scheme]}, 20 resamples" in text
    assert ("over rows" in text) == (scheme == "rows")
    point = fitter.fit("hernandez", data)
    assert point.resample is None and "resample" not in point.to_json() and "intervals" not in fitter.format_fit(point)


def test_a_fit_from_before_the_scheme_was_recorded_says_so():
    res = fitter.fit("hernandez", _hernandez_data(4, noise=0.05), bootstrap=10, seed=0)
    old = {k: v for k, v in res.to_json().items() if k != "resample"}
    again = fitter.FitResult.from_json(old)
    assert again.resample is None and again.to_json() == old
    assert "bias-corrected percentile bootstrap (scheme not recorded), 10 resamples" in fitter.format_fit(again)


def test_one_percentile_interval_at_ci_level():
    rng = np.random.default_rng(0)
    x = rng.standard_normal((400, 3))
    tail = 100 * (1 - fitter.CI_LEVEL) / 2
    lo, hi = fitter.percentile_interval(x, axis=0)
    assert np.array_equal(lo, np.percentile(x, tail, axis=0)) and np.array_equal(
        hi, np.percentile(x, 100 - tail, axis=0)
    )
    # non-finite draws are left out, column by column
    y = x.copy()
    y[:7, 1] = np.nan
    y[7:9, 1] = np.inf
    lo_y, _ = fitter.percentile_interval(y, axis=0)
    assert lo_y[1] == np.percentile(x[9:, 1], tail) and lo_y[0] == lo[0]
    assert fitter.percentile_ci(y[:, 1]) == (lo_y[1], np.percentile(x[9:, 1], 100 - tail))
    assert fitter.percentile_ci([1.0, np.nan]) is None and fitter.percentile_ci(None) is None


def test_the_bias_corrected_interval_moves_to_meet_a_biased_estimator():
    """An estimator biased low by half its spread in log space, whose bootstrap refits show the
    same bias about it (theta_hat = truth e^(-0.05 + 0.1 z), theta* = theta_hat e^(-0.05 + 0.1 z*)):
    the plain percentile interval covers the truth in 83% of draws, the bias-corrected one in 95%. About its
    median the rule is the plain percentile interval, and an estimate past every draw reads the
    draws' end."""
    rng = np.random.default_rng(0)
    truth, n_sim, n_boot = 1.0, 400, 999
    est = truth * np.exp(-0.05 + 0.1 * rng.standard_normal(n_sim))
    covered = {"plain": 0, "bias-corrected": 0}
    for e in est:
        boot = e * np.exp(-0.05 + 0.1 * rng.standard_normal(n_boot))
        for name, center in (("plain", None), ("bias-corrected", e)):
            lo, hi = fitter.percentile_ci(boot, center=center)
            covered[name] += lo <= truth <= hi
    assert covered["plain"] / n_sim < 0.88
    assert 0.92 <= covered["bias-corrected"] / n_sim <= 0.98
    x = rng.standard_normal(401)
    assert fitter.percentile_ci(x, center=float(np.median(x))) == pytest.approx(fitter.percentile_ci(x), abs=1e-12)
    lo, hi = fitter.percentile_ci(np.arange(100.0), center=1e3)
    assert 98 <= lo <= hi == pytest.approx(99)
    # an estimate outside its own interval (nearly every refit on one side) is not printed
    far = Estimate.from_samples(1e3, np.arange(100.0))
    assert not far.identified and "lie almost all below the estimate" in (far.reason or "")
    assert Estimate.from_samples(50.0, np.arange(100.0)).identified
    lo_c, hi_c = fitter.percentile_interval(np.stack([x, 2 * x], axis=1), axis=0, center=[x[0], 2 * x[0]])
    assert (lo_c[0], hi_c[0]) == pytest.approx(fitter.percentile_ci(x, center=float(x[0])))
    assert lo_c[1] == pytest.approx(2 * lo_c[0]) and hi_c[1] == pytest.approx(2 * hi_c[0])


def test_one_scale_rule():
    assert fitter.scale_reason(1.0, 99.0) is None
    assert fitter.scale_reason(1.0, 101.0) == "its 95% interval [1, 101] spans more than 100x"
    assert fitter.scale_reason(0.0, 1.0) == "its 95% interval [0, 1] spans more than 100x"


# ------------------------------------------------------------------ noise that changes with f
def _grouped_noise(rng, gamma, *, groups=60, within=0.005, between=0.002):
    """Residual-like noise on the demo's four f per checkpoint: an offset per group and a run term
    at within (f / f0)^gamma, f0 the geometric mean f."""
    f = np.tile([1e3, 2e3, 4e3, 16e3], groups)
    g = np.repeat(np.arange(groups), 4)
    x = np.log(f)
    sd = within * np.exp(gamma * (x - x.mean()))
    return rng.normal(0, between, groups)[g] + sd * rng.standard_normal(f.size), x, g


@pytest.mark.parametrize("gamma", [0.0, 0.33, -0.25])
def test_the_noise_slope_in_f_is_recovered_from_residuals_within_checkpoints(gamma):
    rng = np.random.default_rng(3)
    est = [fitter.noise_trend(*_grouped_noise(rng, gamma)) for _ in range(40)]
    # 60 groups of 4: a standard error near 0.07 per table; the mean of 40 within 0.05
    assert abs(np.mean(est) - gamma) < 0.05, (np.mean(est), gamma)
    assert np.std(est) < 0.15


def test_the_noise_slope_is_zero_where_it_cannot_be_measured():
    r = np.array([0.01, -0.01, 0.02, -0.02])
    assert fitter.noise_trend(r, np.zeros(4)) == 0.0  # x does not vary
    assert fitter.noise_trend(r, np.log([1e3, 2e3, 4e3, 8e3]), np.arange(4)) == 0.0  # every row alone


def test_parametric_noise_follows_the_measured_slope_row_by_row():
    rng = np.random.default_rng(5)
    r, x, g = _grouped_noise(rng, 0.4, groups=400, between=0.0)
    scale = fitter.noise_scales(x, fitter.noise_trend(r, x, g))
    ys = fitter.parametric_responses(np.zeros(r.size), r, 3, 400, 0, g, scale=scale)
    sd_lo, sd_hi = ys[:, x == x.min()].std(), ys[:, x == x.max()].std()
    # (16k / 1k)^0.4 = 3.0
    assert 2.4 < sd_hi / sd_lo < 3.7, sd_hi / sd_lo
    flat = fitter.parametric_responses(np.zeros(r.size), r, 3, 400, 0, g)
    assert 0.8 < flat[:, x == x.max()].std() / flat[:, x == x.min()].std() < 1.25


def test_the_within_noise_and_its_standard_errors_match_their_spread_over_tables():
    rng = np.random.default_rng(11)
    fits = [fitter.within_noise(r, x, 0, g) for r, x, g in (_grouped_noise(rng, 0.3) for _ in range(60))]
    sd0 = np.array([w.sd0 for w in fits])
    gamma = np.array([w.gamma for w in fits])
    # the noise at the mean log f: within (the simulated scale there is 0.005 by construction)
    assert abs(np.mean(sd0) / 0.005 - 1) < 0.06, np.mean(sd0)
    se_log, se_gamma = np.mean([w.se_log_sd0 for w in fits]), np.mean([w.se_gamma for w in fits])
    assert 0.6 < np.std(np.log(sd0)) / se_log < 1.6, (np.std(np.log(sd0)), se_log)
    assert 0.6 < np.std(gamma) / se_gamma < 1.6, (np.std(gamma), se_gamma)


def test_noise_given_per_resample_and_row_is_drawn_at_those_scales():
    noise = np.tile([[0.01], [0.03]], (1, 500))  # two resamples, 500 rows each
    ys = fitter.parametric_responses(np.zeros(500), np.zeros(500), 2, 2, 0, noise=noise)
    assert 0.008 < ys[0].std() < 0.012 and 0.025 < ys[1].std() < 0.035
