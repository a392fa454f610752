"""Honest intervals for G (issue 12 item 6): simulations of every shipped sweep's grid at the loss
noise measured on a real demo store, and of a wide grid where G is identified.

On each simulated table the report must either hold the true G inside its 95% interval or say
"not identified": at least 85% of (replicate, source) pairs, and at least 85% of the identified
ones. The wide grid must identify G in most replicates, so the second branch cannot carry it.
CI runs a few replicates with a few resamples (seeded, so a result is reproducible);
benchmarks/coverage.py runs many.
"""

from pathlib import Path

import pyarrow.parquet as pq
import pytest

from tsweep.analysis.synthetic import DEFAULT_DESIGN, gap_coverage, shipped_designs
from tsweep.analysis.transfer import transfer_report

DEMO = Path(__file__).parent / "data" / "demo" / "summary.parquet"
REPLICATES = 24
BOOT = 50


@pytest.fixture(scope="module")
def demo_noise():
    """The residual scale of log-loss on the demo store (the report measures it on every sweep)."""
    return transfer_report(pq.read_table(DEMO), bootstrap=0).noise


def test_the_demo_stores_noise_is_a_few_percent(demo_noise):
    assert 0.01 < demo_noise < 0.08


@pytest.mark.parametrize("name", sorted(shipped_designs()))
def test_shipped_grids_cover_g_or_say_not_identified(name, demo_noise):
    c = gap_coverage(shipped_designs()[name].largest(), noise=demo_noise, replicates=REPLICATES, bootstrap=BOOT)
    assert c.honest >= 0.85, c
    assert c.coverage is None or c.identified < 4 or c.coverage >= 0.85, c


@pytest.mark.parametrize("noise", [0.01, "demo"])
def test_a_wide_grid_identifies_g_and_covers_it(noise, demo_noise):
    sigma = demo_noise if noise == "demo" else noise
    c = gap_coverage(DEFAULT_DESIGN.largest(), noise=sigma, replicates=REPLICATES, bootstrap=BOOT)
    assert c.identified >= 0.3 * c.total if noise == "demo" else c.identified >= 0.8 * c.total, c
    assert c.coverage >= 0.85, c
