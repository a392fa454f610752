"""The law registry: analytic Jacobians, parameter maps, and recovery of known parameters."""

import numpy as np
import pytest

from tsweep.analysis import fitter
from tsweep.analysis.laws import LAWS, get_law

# Truths per law with an input grid that spans every axis the law needs.
CASES = {
    # Besiroglu et al. 2024's Chinchilla estimates, on a Chinchilla-scale grid.
    "chinchilla": (
        {"A": 482.0, "B": 2085.0, "E": 1.817, "alpha": 0.348, "beta": 0.366},
        {"N": np.geomspace(7e7, 1.6e10, 7), "D": np.geomspace(5e9, 5e11, 7)},
    ),
    # Kaplan et al. 2020, Table 2.
    "kaplan": (
        {"N_c": 6.4e13, "D_c": 1.8e13, "alpha_N": 0.076, "alpha_D": 0.103},
        {"N": np.geomspace(1e6, 1e10, 7), "D": np.geomspace(1e7, 1e11, 7)},
    ),
    # Hernandez et al. 2021, text -> python.
    "hernandez": (
        {"k": 1.9e4, "alpha": 0.18, "beta": 0.38},
        {"N": np.geomspace(1e6, 1e8, 5), "D_F": np.geomspace(1e5, 1e8, 6)},
    ),
    "barnett": (
        {"A": 3.16e5, "alpha": 0.5, "G": 40.0, "beta": 0.3, "E": 1.7},
        {"p": np.geomspace(1e7, 1e10, 6), "f": np.geomspace(1e5, 1e8, 7)},
    ),
}


def _grid_table(name, noise, seed):
    law = get_law(name)
    truth, axes = CASES[name]
    a, b = law.inputs
    ga, gb = np.meshgrid(axes[a], axes[b], indexing="ij")
    data = {a: ga.ravel(), b: gb.ravel()}
    y = law.predict(truth, **data)
    rng = np.random.default_rng(seed)
    data[law.response] = y * np.exp(noise * rng.standard_normal(y.size))
    return law, truth, data


def test_registry_has_the_four_laws_and_rejects_unknown_names():
    assert set(LAWS) >= {"chinchilla", "kaplan", "hernandez", "barnett"}
    with pytest.raises(KeyError, match="known laws"):
        get_law("nope")


@pytest.mark.parametrize("name", sorted(CASES))
def test_jacobian_matches_finite_differences(name):
    law = get_law(name)
    rng = np.random.default_rng(0)
    logx = {v: rng.uniform(5, 20, 9) for v in law.inputs}
    lo, hi = np.array(law.bounds).T
    theta = law.grid()[rng.choice(len(law.grid()), 4)] + rng.normal(0, 0.1, (4, law.n_params))
    theta = np.clip(theta, lo + 0.05, hi - 0.05)
    _, jac = law.log_predict(theta, logx)
    eps = 1e-6
    for k in range(law.n_params):
        d = np.zeros(law.n_params)
        d[k] = eps
        num = (law.log_predict(theta + d, logx)[0] - law.log_predict(theta - d, logx)[0]) / (2 * eps)
        np.testing.assert_allclose(jac[..., k], num, atol=1e-6, rtol=1e-5)


@pytest.mark.parametrize("name", sorted(CASES))
def test_params_round_trip_and_predict_is_the_formula(name):
    law = get_law(name)
    truth, axes = CASES[name]
    back = law.as_dict(law.from_params(truth))
    for k, v in truth.items():
        assert back[k] == pytest.approx(v, rel=1e-12)
    x = {v: axes[v][:3] for v in law.inputs}
    p = truth
    formulas = {
        "chinchilla": lambda: p["E"] + p["A"] / x["N"] ** p["alpha"] + p["B"] / x["D"] ** p["beta"],
        "kaplan": lambda: ((p["N_c"] / x["N"]) ** (p["alpha_N"] / p["alpha_D"]) + p["D_c"] / x["D"]) ** p["alpha_D"],
        "hernandez": lambda: p["k"] * x["D_F"] ** p["alpha"] * x["N"] ** p["beta"],
        "barnett": lambda: (p["A"] * x["p"] ** -p["alpha"] + p["G"]) * x["f"] ** -p["beta"] + p["E"],
    }
    np.testing.assert_allclose(law.predict(truth, **x), formulas[name](), rtol=1e-10)


# Tolerances: relative, per parameter, at 0.5% log-normal noise. Scale factors (A, B, N_c, ...)
# trade off against their exponents, so they get looser bounds than the exponents.
TOL = {
    "chinchilla": {"E": 0.02, "alpha": 0.05, "beta": 0.05, "A": 0.4, "B": 0.4},
    "kaplan": {"alpha_N": 0.03, "alpha_D": 0.02, "N_c": 0.5, "D_c": 0.3},
    "hernandez": {"k": 0.05, "alpha": 0.02, "beta": 0.02},
    "barnett": {"alpha": 0.03, "G": 0.03, "beta": 0.02, "E": 0.02, "A": 0.1},
}


@pytest.mark.parametrize("name", sorted(CASES))
def test_recovers_known_parameters_from_noisy_data(name):
    law, truth, data = _grid_table(name, noise=0.005, seed=1)
    res = fitter.fit(law, data)
    assert res.converged
    for k, tol in TOL[name].items():
        assert res.params[k] == pytest.approx(truth[k], rel=tol), (k, res.params)


@pytest.mark.parametrize("name", sorted(CASES))
def test_noise_free_data_are_fitted_exactly(name):
    law, _, data = _grid_table(name, noise=0.0, seed=0)
    res = fitter.fit(law, data)
    pred = law.predict(res.params, **{v: data[v] for v in law.inputs})
    np.testing.assert_allclose(pred, data[law.response], rtol=2e-3)
