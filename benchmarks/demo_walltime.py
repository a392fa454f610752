"""Demo wall time: `tsweep demo` from a cold start (new Ray cluster, empty storage) to the gap table.

Runs the real console script in a subprocess with a fresh storage root, so Ray start-up, the
data cache check, every training job, the analysis actor and the plots are all counted. The
data cache is left warm (as on any machine after its first run); pass ``--cold-cache`` to point
the cache at an empty folder too.

Run: ``python benchmarks/demo_walltime.py`` (a few minutes on 2 CPU cores).
Last line: ``demo_wall_time_s VALUE`` (goal: at most 600 on 2 cores).
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import time

GOAL_S = 600.0


def main() -> None:
    with tempfile.TemporaryDirectory(prefix="tsweep-demo-") as tmp:
        env = {**os.environ, "TSWEEP_STORAGE": os.path.join(tmp, "runs"), "PYTHONUNBUFFERED": "1"}
        if "--cold-cache" in sys.argv:
            env["TSWEEP_DATA_CACHE"] = os.path.join(tmp, "cache")
        t0 = time.perf_counter()
        proc = subprocess.run(["tsweep", "demo", "--no-live"], env=env, capture_output=True, text=True)
        wall = time.perf_counter() - t0
    tail = "\n".join(proc.stdout.strip().splitlines()[-25:])
    print(tail)
    if proc.returncode != 0:
        print(proc.stderr[-3000:], file=sys.stderr)
        raise SystemExit(f"tsweep demo exited {proc.returncode}")
    print(f"\n{'measure':28} {'value':>10}")
    print(f"{'demo wall time (s)':28} {wall:>10.1f}")
    print(f"{'goal (s)':28} {GOAL_S:>10.0f}")
    print(f"{'wall time / goal':28} {wall / GOAL_S:>10.2f}")
    print(f"demo_wall_time_s {wall:.1f}")


if __name__ == "__main__":
    main()
