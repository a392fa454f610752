"""A sweep in a bucket against the same sweep on local disk: wall time of ``run_sweep``.

The tiny sweep (``tests/data/tiny.yaml``: 8 jobs, one pre-training with a p-checkpoint, four
fine-tunes from that checkpoint and from its end, three from-scratch runs) runs to the end twice on one local
Ray cluster of 2 CPUs, once with its storage root a local folder and once ``s3://...`` on an
S3-compatible server (moto's server mode, the one the tests use, in a process of its own on
127.0.0.1: no network latency, so the figure is what tsweep's own traffic costs, every shard,
checkpoint, lease, fit and Tune's experiment state going through ``pyarrow.fs`` over HTTP).
Each round runs both sides, the order alternating, each into a fresh folder or prefix; one
warm-up sweep first (worker processes, imports, the data cache) is not counted.

Run: ``python benchmarks/object_store.py [ROUNDS]`` (about 3 minutes for one round on 2 CPU cores).
Last line: ``object_store_walltime_ratio VALUE`` (median bucket wall time over median local
wall time).
"""

from __future__ import annotations

import logging
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
TINY = REPO / "tests" / "data" / "tiny.yaml"
CPUS = 2
ROUNDS = 1
BUCKET = "bench"
os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_bucket() -> tuple[subprocess.Popen, str]:
    """moto's S3 server on 127.0.0.1 in its own process, a fresh bucket; (process, storage URI)."""
    import boto3

    os.environ.update(AWS_ACCESS_KEY_ID="bench", AWS_SECRET_ACCESS_KEY="bench", AWS_DEFAULT_REGION="us-east-1")
    port = _free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    client = boto3.client("s3", endpoint_url=f"http://127.0.0.1:{port}", region_name="us-east-1")
    deadline = time.monotonic() + 60
    while True:
        try:
            client.create_bucket(Bucket=BUCKET)
            break
        except Exception:
            if time.monotonic() > deadline or proc.poll() is not None:
                proc.kill()
                raise RuntimeError("moto's S3 server did not start") from None
            time.sleep(0.2)
    return proc, f"s3://{BUCKET}/tsweep?endpoint_override=127.0.0.1:{port}&scheme=http&region=us-east-1"


def run_once(sweep, root: str, name: str) -> float:
    from tsweep.orchestrator.run import run_sweep
    from tsweep.sweeps import parse_sweep

    renamed = parse_sweep({**sweep.model_dump(mode="json"), "name": name})
    t0 = time.perf_counter()
    res = run_sweep(renamed, layout=renamed.layout(root), live=False)
    wall = time.perf_counter() - t0
    assert res.failed == [] and res.blocked == {} and res.ran == res.planned, (res.failed, res.blocked)
    return wall


def main(rounds: int = ROUNDS, warmup: bool = True) -> dict:
    import ray

    from tsweep.orchestrator.plan import expand
    from tsweep.orchestrator.run import init_ray
    from tsweep.sweeps import load_sweep

    logging.getLogger("tsweep").setLevel(logging.ERROR)
    load0 = os.getloadavg()[0]
    sweep = load_sweep(TINY)
    server, uri = start_bucket()
    walls: dict[str, list[float]] = {"local": [], "bucket": []}
    try:
        init_ray(None, num_cpus=CPUS)
        with tempfile.TemporaryDirectory(prefix="tsweep-objstore-") as tmp:
            if warmup:
                run_once(sweep, tmp, "warmup")
            for r in range(rounds):
                sides = [("local", tmp), ("bucket", uri)]
                if r % 2:
                    sides.reverse()
                for side, root in sides:
                    walls[side].append(run_once(sweep, root, f"{sweep.name}-{side}-{r}"))
    finally:
        ray.shutdown()
        server.kill()
        server.wait()

    med = {k: statistics.median(v) for k, v in walls.items()}
    print(
        f"tiny sweep ({len(expand(sweep).jobs)} jobs), local Ray cluster of {CPUS} CPUs, {rounds} round(s), medians\n"
    )
    print(f"{'storage':10} {'wall (s)':>9}   all rounds")
    for side in ("local", "bucket"):
        print(f"{side:10} {med[side]:>9.1f}   {', '.join(f'{w:.1f}' for w in walls[side])}")
    print(
        f"\nload average (1 min) at start / end: {load0:.1f} / {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores "
        f"(well above the core count, other work is in the figures)"
    )
    ratio = med["bucket"] / med["local"]
    print(f"object_store_walltime_ratio {ratio:.3f}")
    return {"ratio": ratio, "walls": walls}


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else ROUNDS)
