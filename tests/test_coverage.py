"""Do the printed intervals keep their promise? The report on simulated sweeps whose answers are
known (``tsweep.analysis.worlds``): the demo's laws as measured, and the demo broken each way the
report's laws cannot follow or its users bring.

Every number the report prints with an interval is scored against the world's truth: covered,
missed, a one-sided bound that holds or fails, or "not identified". The promise: a printed 95%
interval covers the truth in >= 93% of the draws where it is printed (>= 90% where the world is
misspecified, i.e. its laws are not the report's), and a quantity the world has no value for (the
gap of a source whose loss rises with p) is never printed as a number.

Two levels:
- always (a few draws of the worlds that broke the report before): a rising source never gets a
  G, a source as good as target data is never given a gap that excludes zero at the size the
  report prints, and noise that grows with f stays inside the plateau, G f^-beta and multiplier
  intervals (30 draws, held to the misspecified bar so that chance alone rarely fails it);
- ``pytest --coverage-draws 200 tests/test_coverage.py``: every world at 200 draws, every
  quantity held to the bar, and the table printed (the README's coverage table). 200 draws of
  the seven worlds take about an hour on 2 cores.
"""

from __future__ import annotations

import pytest

from tsweep.analysis import worlds

WORLDS = worlds.design_worlds()
BOOTSTRAP = 200  # the product's default (fit.bootstrap in every shipped sweep)
BAR = 0.93
BAR_MISSPECIFIED = 0.90
SMOKE_DRAWS = 6
NOISE_DRAWS = 30  # about 40 s on 2 cores


def _bar(world: worlds.World) -> float:
    return BAR_MISSPECIFIED if world.misspecified else BAR


def _printed(t: worlds.Tally) -> int:
    """Draws where the quantity was printed as a number: an interval or a one-sided bound."""
    return t.identified + t.counts.get("bound_ok", 0) + t.counts.get("bound_missed", 0)


def _table(name: str, tallies: dict[str, worlds.Tally]) -> str:
    lines = [f"{name}:"]
    for q, t in tallies.items():
        n = _printed(t)
        rate = f"{1 - t.wrong / n:.3f}" if n else "  -  "
        lines.append(f"  {q:28s} printed {n:3d}/{t.draws}  wrong {t.wrong:3d}  coverage among printed {rate}")
    return "\n".join(lines)


def test_a_rising_source_never_gets_a_gap():
    tallies = worlds.simulate(WORLDS["a rising source"], SMOKE_DRAWS, bootstrap=BOOTSTRAP, seed=5000)
    rising = {q: t for q, t in tallies.items() if "rising" in q and not q.startswith("multiplier")}
    assert rising and all(t.identified == 0 for t in rising.values()), _table("a rising source", tallies)


def test_a_source_equal_to_the_target_gets_a_bound_that_holds():
    tallies = worlds.simulate(WORLDS["a source equal to the target"], SMOKE_DRAWS, bootstrap=BOOTSTRAP, seed=6000)
    near = {q: t for q, t in tallies.items() if q.startswith(("G/near", "G_loss/near"))}
    assert sum(_printed(t) for t in near.values()) and sum(t.wrong for t in near.values()) <= 1, _table(
        "a source equal to the target", tallies
    )


@pytest.mark.parametrize("name", sorted(WORLDS))
def test_every_printed_interval_keeps_its_promise(name, request):
    draws = request.config.getoption("--coverage-draws")
    if not draws:
        pytest.skip("the full measurement: pytest --coverage-draws 200 tests/test_coverage.py")
    world = WORLDS[name]
    tallies = worlds.simulate(world, draws, bootstrap=BOOTSTRAP, seed=10_000, processes=2)
    print(_table(name, tallies))
    for q, t in tallies.items():
        if _printed(t):
            assert 1 - t.wrong / _printed(t) >= _bar(world), (q, dict(t.counts))


def test_noise_that_grows_with_f_is_in_the_intervals():
    """Run-to-run noise 2.5x larger at f = 16k than at 1k: a bootstrap at one noise scale left the
    plateau covered in 81% of draws and G f^-beta in 84% (the README's table before the noise was
    measured as a function of f, with its own uncertainty carried into the resamples)."""
    world = WORLDS["noise grows with f"]
    tallies = worlds.simulate(world, NOISE_DRAWS, bootstrap=BOOTSTRAP, seed=7000, processes=2)
    for kind in ("plateau", "G_loss", "multiplier"):
        picked = [t for q, t in tallies.items() if q.startswith(kind + "/")]
        printed, wrong = sum(_printed(t) for t in picked), sum(t.wrong for t in picked)
        assert printed and 1 - wrong / printed >= BAR_MISSPECIFIED, (kind, _table(world.name, tallies))
