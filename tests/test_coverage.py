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
  G, and a source as good as target data is never given a gap that excludes zero at the size the
  report prints;
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
