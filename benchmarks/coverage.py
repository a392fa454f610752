"""Coverage of the transfer gap's 95% interval on simulations of every shipped sweep's grid.

For each shipped sweep YAML (plus the demo's grid with its checkpoints spread over 32x, and a
wide synthetic grid), fine-tunes at the
largest size are simulated from a known joint gap law (``synthetic.scaled_truths``) with
log-normal noise at the level measured on a real demo store (tests/data/demo) and at 1%, the
transfer report is run with the sweep's bootstrap, and each source's G is scored: identified and
covered, identified and missed, or "not identified". Issue 12's bar: >= 85% of true G inside the
interval, or the report says "not identified". tests/test_analysis_coverage.py runs a few
replicates of the same in CI.

Run: ``python benchmarks/coverage.py`` (no arguments; several minutes on 2 cores). Last line:
``gap_coverage_worst_over_nominal VALUE``: the lowest coverage among identified G's (grids with
>= 20 identified) over the nominal 0.95.
"""

from __future__ import annotations

from pathlib import Path

import pyarrow.parquet as pq

from tsweep.analysis.synthetic import DEFAULT_DESIGN, gap_coverage, shipped_designs
from tsweep.analysis.transfer import transfer_report

REPLICATES = 60
BOOTSTRAP = 100
DEMO = Path(__file__).resolve().parents[1] / "tests" / "data" / "demo" / "summary.parquet"


def main() -> None:
    demo_noise = transfer_report(pq.read_table(DEMO), bootstrap=0).noise
    shipped = shipped_designs()
    designs = {**shipped, "demo, p over 32x": shipped["demo"].with_p_span(32.0), "wide synthetic": DEFAULT_DESIGN}
    print(f"G coverage: {REPLICATES} replicates per grid (largest size, every source), bootstrap {BOOTSTRAP}; "
          f"noise measured on the demo store: {demo_noise:.2%}")
    head = f"{'grid':<22} {'noise':>6} {'pairs':>6} {'identified':>11} {'coverage':>9} {'honest':>7}"
    print(head)
    print("-" * len(head))
    worst = None
    for name, design in designs.items():
        for noise in (demo_noise, 0.01):
            c = gap_coverage(design.largest(), noise=noise, replicates=REPLICATES, bootstrap=BOOTSTRAP)
            cov = "-" if c.coverage is None else f"{c.coverage:.3f}"
            print(f"{name:<22} {noise:>6.3f} {c.total:>6} {c.identified:>11} {cov:>9} {c.honest:>7.3f}")
            if c.identified >= 20:
                worst = c.coverage if worst is None else min(worst, c.coverage)
    print("coverage: identified G's whose 95% interval holds the truth; honest: covered or 'not identified'")
    print(f"gap_coverage_worst_over_nominal {(worst if worst is not None else float('nan')) / 0.95:.3f}")


if __name__ == "__main__":
    main()
