"""Noise measured from replicate runs (tsweep.analysis.noise) on simulated summary tables whose
noise is known: a per-run term (within) and an offset per annealed checkpoint (between) shared by
all of that checkpoint's fine-tunes, on the demo's grid with the demo's replicate design."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from tsweep.analysis.noise import replicate_noise
from tsweep.sweeps import load_sweep, shipped_sweeps

DEMO = next(p for p in shipped_sweeps() if p.name == "demo.yaml")
P = [125_000, 500_000, 1_000_000, 2_000_000, 4_000_000]
F = [1_000, 2_000, 4_000, 16_000]
TABLES = 200


def _demo_design() -> tuple[list[tuple[int, int]], list[tuple[int, int]]]:
    """The shipped demo's replicate cells (fine-tune replicates, pre-training replicate's cells)."""
    reps = load_sweep(DEMO).replicates
    assert reps.finetune is not None and reps.pretrain is not None
    return [(c.p, c.f) for c in reps.finetune.cells], [(c.p, c.f) for c in reps.pretrain.cells]


def simulate(rng, within, between, *, gamma=0.0, ft_cells=None, pt_cells=None, f0=4_000.0) -> pa.Table:
    """A summary table of the demo's grid at one (source, size) plus replicates: log loss =
    a transfer law + the checkpoint's offset (between) + the run's noise (within (f/f0)^gamma)."""
    ft, pt = _demo_design()
    ft, pt = (ft if ft_cells is None else ft_cells), (pt if pt_cells is None else pt_cells)
    offset = {(p, k): rng.normal(0, between) for p in P for k in (0, 1)}
    rows, seed = [], 0

    def run(p, f, lineage, replicate, status="ok"):
        nonlocal seed
        seed += 1
        y = math.log(2.0 + 3 * p**-0.3 + 50 / f**0.5) + offset[p, lineage]
        y += rng.normal(0, within * (f / f0) ** gamma)
        rows.append(
            dict(
                kind="finetune", source="d0.6", size="pico", pretrain_tokens=p, data_tokens=f, status=status,
                best_eval_loss=math.exp(y), seed=seed, replicate=replicate, lineage=lineage,
            )
        )  # fmt: skip

    for p in P:
        for f in F:
            run(p, f, 0, 0)
    for p, f in ft:
        run(p, f, 0, 1)
    for p, f in pt:
        run(p, f, 1, 1)
    return pa.Table.from_pylist(rows)


def _covers(ci, truth) -> bool:
    return ci[0] <= truth <= ci[1]


@pytest.mark.parametrize(
    "within,between",
    [(0.0047, 0.002), (0.004, 0.008), (0.005, 0.0)],
    ids=["demo-like: between small", "between large", "no checkpoint offsets"],
)
def test_the_intervals_cover_the_truth_over_many_simulated_sweeps(within, between):
    """On 200 tables the 95% intervals of within (chi-square) and between (modified large-sample)
    cover the noise the tables were drawn with at least 90% of the time, and within's estimates
    average to it."""
    rng = np.random.default_rng(1)
    results = [replicate_noise(simulate(rng, within, between)) for _ in range(TABLES)]
    assert all(r is not None and r.within is not None and r.between is not None for r in results)
    w_cover = np.mean([_covers(r.within.ci95, within) for r in results])
    b_cover = np.mean([_covers(r.between.ci95, between) for r in results])
    assert w_cover >= 0.90 and b_cover >= 0.90, (w_cover, b_cover)
    assert np.mean([r.within.sd**2 for r in results]) == pytest.approx(within**2, rel=0.1)
    # the demo's design: 8 same-checkpoint pairs and 5 of the replicate's interaction; one
    # degree of freedom of between per p of the replicate pre-training run
    assert {(r.within.df, r.between.df) for r in results} == {(13, 5)}


def test_a_checkpoint_offset_shared_across_f_is_not_counted_as_independent_pairs():
    """The replicate's cells at f = 1k and 4k of one p share that checkpoint's offset. Counting
    them as 10 independent cross pairs would make between's interval too narrow; the unit is the
    checkpoint, and the interval covers where a pair-count one would not."""
    rng = np.random.default_rng(2)
    results = [replicate_noise(simulate(rng, 0.002, 0.01)) for _ in range(TABLES)]
    cover = np.mean([_covers(r.between.ci95, 0.01) for r in results])
    assert cover >= 0.90, cover
    # five degrees of freedom, not ten: an sd's 95% upper end is 2.45x its estimate at chi-square(5),
    # 1.75x at chi-square(10)
    assert np.median([r.between.ci95[1] / r.between.sd for r in results]) > 2.1


def test_noise_that_changes_with_f_is_fitted_as_a_slope():
    """sigma(f) = sigma0 (f/f0)^gamma: gamma recovered within 1.96 standard errors in most tables
    (a Wald interval over eight pairs at four f), its estimates centred on the truth, and sigma0
    read at the pairs' geometric mean f."""
    rng = np.random.default_rng(3)
    gamma, within = -0.4, 0.006
    results = [replicate_noise(simulate(rng, within, 0.002, gamma=gamma)) for _ in range(TABLES)]
    slopes = [r.f_slope for r in results]
    assert all(s is not None and s.n_f == 4 for s in slopes)
    cover = np.mean([abs(s.gamma - gamma) <= 1.96 * s.gamma_se for s in slopes])
    assert cover >= 0.85, cover
    assert np.median([s.gamma for s in slopes]) == pytest.approx(gamma, abs=0.08)
    f0 = slopes[0].f0
    assert f0 == pytest.approx(math.exp(np.mean(np.log([f for _, f in _demo_design()[0]]))))
    truth_at_f0 = within * (f0 / 4_000) ** gamma
    assert np.median([s.sigma0 for s in slopes]) == pytest.approx(truth_at_f0, rel=0.15)
    # flat noise: gamma's interval holds 0
    flat = [replicate_noise(simulate(rng, within, 0.002)).f_slope for _ in range(TABLES)]
    assert np.mean([abs(s.gamma) <= 1.96 * s.gamma_se for s in flat]) >= 0.85


def test_between_is_clamped_at_zero_with_a_note():
    """Where the replicate checkpoint's cells differ less than runs of one checkpoint do, between
    is 0, its interval starts at 0, and the result says why."""
    rng = np.random.default_rng(4)
    clamped = [r for r in (replicate_noise(simulate(rng, 0.005, 0.0)) for _ in range(60)) if r.between.sd == 0]
    assert clamped
    for r in clamped:
        assert r.between.ci95[0] == 0 and r.between.ci95[1] > 0
        assert any("between clamped at 0" in n for n in r.notes)


def test_what_each_kind_of_replicate_measures_on_its_own():
    rng = np.random.default_rng(5)
    # fine-tune replicates alone: within and its slope, no between
    only_ft = replicate_noise(simulate(rng, 0.005, 0.003, pt_cells=[]))
    assert only_ft.within.df == 8 and only_ft.between is None and only_ft.f_slope is not None
    # a pre-training replicate at one f per p: the difference carries both, which it cannot split
    one_f = replicate_noise(simulate(rng, 0.005, 0.003, ft_cells=[], pt_cells=[(p, 4_000) for p in P]))
    assert one_f.within is None and one_f.between is None
    assert any("not separable" in n for n in one_f.notes)
    # at two f per p it measures within from the interaction, though not its change with f
    two_f = replicate_noise(simulate(rng, 0.005, 0.003, ft_cells=[]))
    assert two_f.within.df == 5 and two_f.between.df == 5 and two_f.f_slope is None


def test_only_runs_of_one_cell_pair_and_only_finished_fine_tunes_count():
    rng = np.random.default_rng(6)
    grid = simulate(rng, 0.005, 0.003, ft_cells=[], pt_cells=[])
    assert replicate_noise(grid) is None  # every cell once: nothing to measure
    # a replicate that ended unconverged, or a pre-training row, pairs with nothing
    extra = grid.slice(0, 2).to_pylist()
    extra[0] |= {"status": "unconverged", "seed": 999, "replicate": 1}
    extra[1] |= {"kind": "pretrain", "seed": 998, "replicate": 1}
    assert replicate_noise(pa.concat_tables([grid, pa.Table.from_pylist(extra, schema=grid.schema)])) is None
    # the same run twice (one seed) is no pair either
    assert replicate_noise(pa.concat_tables([grid, grid.slice(0, 1)])) is None


def test_log_losses_make_the_scales_relative():
    """Scaling every loss by a constant (another tokenizer's units) leaves every scale as it is."""
    table = simulate(np.random.default_rng(7), 0.005, 0.004)
    scaled = table.set_column(
        table.schema.get_field_index("best_eval_loss"),
        "best_eval_loss",
        pa.array([3.7 * v for v in table.column("best_eval_loss").to_pylist()]),
    )
    a, b = replicate_noise(table), replicate_noise(scaled)
    assert a.within.sd == pytest.approx(b.within.sd) and a.between.sd == pytest.approx(b.between.sd, abs=1e-12)


def test_a_store_written_before_replicates_has_none():
    """Summary tables without seed, replicate and lineage (store schema version 1, the demo's
    recorded run) are one run a cell: no replicate noise, and no error."""
    demo = pq.read_table(Path(__file__).parent / "data" / "demo" / "summary.parquet")
    assert "seed" not in demo.column_names
    assert replicate_noise(demo) is None


def test_a_noise_profile_is_held_at_its_measured_ends_and_at_least_its_floor():
    from tsweep.analysis.noise import NoiseProfile

    prof = NoiseProfile(sd0=0.005, gamma=0.5, f0=4e3, f_lo=1e3, f_hi=16e3)
    assert prof.at([4e3])[0] == pytest.approx(0.005)
    assert prof.at([16e3, 256e3])[1] == pytest.approx(prof.at([16e3])[0])  # no trend beyond the data
    assert prof.at([1e2])[0] == pytest.approx(0.0025)
    floored = NoiseProfile(sd0=0.005, gamma=0.5, f0=4e3, f_lo=1e3, f_hi=16e3, floor=0.004)
    assert floored.at([1e3])[0] == pytest.approx(0.004)


def test_the_report_measures_how_its_noise_changes_with_f():
    """The gap fits' residuals carry the slope: noise 2.5x larger at 16k than at 1k (slope 0.33)
    is seen, and a world with one noise scale reads near zero; the report keeps it in its JSON."""
    from tsweep.analysis import worlds
    from tsweep.analysis.records import TransferReport
    from tsweep.analysis.transfer import transfer_report

    ws = worlds.design_worlds()
    grows = transfer_report(worlds.draw(ws["noise grows with f"], 1), bootstrap=20, seed=1)
    flat = transfer_report(worlds.draw(ws["demo"], 1), bootstrap=20, seed=1)
    assert grows.noise_slope is not None and flat.noise_slope is not None
    assert grows.noise_slope > 0.12, grows.noise_slope
    assert abs(flat.noise_slope) < 0.25, flat.noise_slope
    assert TransferReport.from_json(grows.to_json()).noise_slope == pytest.approx(grows.noise_slope)


def test_a_noise_profile_draws_its_own_uncertainty_per_resample():
    from tsweep.analysis.noise import NoiseProfile

    prof = NoiseProfile(
        sd0=0.005, gamma=0.3, f0=4e3, f_lo=1e3, f_hi=16e3, whole_floor=0.0055, se_log_sd0=0.1, se_gamma=0.05
    )
    d = prof.draws([1e3, 16e3], 4000, seed=0)
    assert d.shape == (4000, 2)
    # log sd at 16k scatters by sqrt(0.1^2 + (0.05 log 4)^2)
    assert np.std(np.log(d[:, 1])) == pytest.approx(math.hypot(0.1, 0.05 * math.log(4)), rel=0.1)
    whole = prof.draws([1e3, 16e3], 4000, seed=0, whole_runs=True)
    assert np.all(whole >= d) and np.all(whole >= 0.0055) and np.any(whole > 0.0055)
    assert np.array_equal(prof.draws([1e3], 5, seed=3), prof.draws([1e3], 5, seed=3))
    assert prof.whole([1e3])[0] == pytest.approx(0.0055) and prof.whole([16e3])[0] > 0.0055


def test_the_moment_split_counts_the_degrees_of_freedom_the_fit_took_from_the_checkpoints():
    """16 checkpoints of 5 fine-tunes each (the demo's grid at one size), a fit whose 8 terms are
    smooth in p and f like the gap law's: the checkpoints' shared offsets are mostly absorbed by
    the p terms. The moment split on the fit's residual maker recovers both scales on average;
    the row-count correction n / (n - P) reads the offset low (0.82 of it here; 0.67 of it on the
    gap fits of the checkpoint-offsets world, tsweep.analysis.worlds)."""
    from tsweep.analysis.fitter import moment_components, noise_components

    rng = np.random.default_rng(0)
    lp = np.repeat(np.tile(np.linspace(0, 2.8, 8), 2), 5)  # log p, 8 checkpoints per source
    source = np.repeat([0, 1], 40)
    lf = np.tile(np.linspace(0, 2.8, 5), 16)  # log f
    groups = source * 100 + np.repeat(np.arange(16), 5)
    x = np.column_stack(
        [
            np.ones(80),
            lf,
            np.exp(-lf),
            source,
            lp * (source == 0),
            lp * (source == 1),
            lp**2 * (source == 0),
            lp**2 * (source == 1),
        ]
    )
    hat = x @ np.linalg.pinv(x.T @ x) @ x.T
    within, between = 0.003, 0.006
    old, new = [], []
    for _ in range(400):
        eps = (
            within * rng.standard_normal(80)
            + between * rng.standard_normal(16)[np.unique(groups, return_inverse=True)[1]]
        )
        r = eps - hat @ eps
        old.append(noise_components(r, 8, groups))
        new.append(moment_components(r, groups, hat))
    (_, ob), (nw, nb) = np.sqrt(np.mean(np.square(old), axis=0)), np.sqrt(np.mean(np.square(new), axis=0))
    assert nb == pytest.approx(between, rel=0.1) and nw == pytest.approx(within, rel=0.1), (nw, nb)
    assert ob < 0.9 * between, ob
