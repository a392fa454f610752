"""A sweep in a bucket against the same sweep on local disk: wall time of ``run_sweep``.

The tiny sweep (``tests/data/tiny.yaml``: 8 jobs, one pre-training with a p-checkpoint, four
fine-tunes from that checkpoint and from its end, three from-scratch runs) runs to the end twice on one local
Ray cluster of 2 CPUs, once with its storage root a local folder and once ``s3://...`` on an
S3-compatible server (moto's server mode, the one the tests use, in a process of its own on
127.0.0.1: no network latency, so the figure is what tsweep's own traffic costs, every shard,
checkpoint, lease, fit and Tune's experiment state going through ``pyarrow.fs`` over HTTP).
Each round runs both sides, the order alternating, each into a fresh folder or prefix; one
warm-up sweep first (worker processes, imports, the data cache) is not counted.

Both sides train the same jobs from the same seeds, so their results are equal: the table gives
the largest difference of a job's best held-out loss between the two stores.

Run: ``python benchmarks/object_store.py [ROUNDS] [--tiny]`` (about 3 minutes for one round on 2
CPU cores; ``--tiny``, the suite's size: the tiny sweep cut to 4 jobs, one round, no warm-up).
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

sys.path.insert(0, str(Path(__file__).resolve().parent))

import _machine

REPO = Path(__file__).resolve().parents[1]
TINY_YAML = REPO / "tests" / "data" / "tiny.yaml"
# The suite's size: one pre-training of 32k tokens, its two fine-tunes at 2k, one scratch run,
# 5 bootstrap resamples in the live fits (tsweep's choice).
TINY_CUT = [
    "finetune_tokens=[2k]",
    "scratch_tokens=[2k]",
    "pretrain.tokens=32k",
    "pretrain.checkpoints=[8k]",
    "fit.bootstrap=5",
]
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


def run_once(sweep, root: str, name: str) -> tuple[float, dict[str, float]]:
    """Wall seconds of one whole sweep into ``root``, and each job's best held-out loss by label."""
    from tsweep.core.store import Store
    from tsweep.orchestrator.run import run_sweep
    from tsweep.sweeps import parse_sweep

    renamed = parse_sweep({**sweep.model_dump(mode="json"), "name": name})
    layout = renamed.layout(root)
    t0 = time.perf_counter()
    res = run_sweep(renamed, layout=layout, live=False)
    wall = time.perf_counter() - t0
    assert res.failed == [] and res.blocked == {} and res.ran == res.planned, (res.failed, res.blocked)
    rows = Store(layout.store_root).read_summaries().select(["job_id", "best_eval_loss"]).to_pylist()
    return wall, {r["job_id"]: r["best_eval_loss"] for r in rows}


def main(rounds: int = ROUNDS, warmup: bool = True, tiny: bool = False) -> dict:
    """``rounds`` of both sides after one warm-up sweep; ``tiny`` is the suite's size (one round,
    no warm-up, the sweep cut by ``TINY_CUT``)."""
    import ray

    from tsweep.orchestrator.plan import expand
    from tsweep.orchestrator.run import init_ray
    from tsweep.sweeps import load_sweep, with_overrides

    logging.getLogger("tsweep").setLevel(logging.ERROR)
    machine = _machine.reference(tiny=tiny)
    sweep = load_sweep(TINY_YAML)
    if tiny:
        sweep, rounds, warmup = with_overrides(sweep, TINY_CUT), 1, False
    server, uri = start_bucket()
    walls: dict[str, list[float]] = {"local": [], "bucket": []}
    best: dict[str, list[dict[str, float]]] = {"local": [], "bucket": []}
    started = not ray.is_initialized()  # a cluster already joined (the suite's) is kept
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
                    wall, losses = run_once(sweep, root, f"{sweep.name}-{side}-{r}")
                    walls[side].append(wall)
                    best[side].append(losses)
    finally:
        if started:
            ray.shutdown()
        server.kill()
        server.wait()
    gap = max(
        abs(a[k] - b[k]) if a.keys() == b.keys() else float("inf")
        for a, b in zip(best["local"], best["bucket"], strict=True)
        for k in a
    )

    med = {k: statistics.median(v) for k, v in walls.items()}
    print(
        f"tiny sweep ({len(expand(sweep).jobs)} jobs), local Ray cluster of {CPUS} CPUs, {rounds} round(s), medians\n"
    )
    print(f"{'storage':10} {'wall (s)':>9}   all rounds")
    for side in ("local", "bucket"):
        print(f"{side:10} {med[side]:>9.1f}   {', '.join(f'{w:.1f}' for w in walls[side])}")
    print(f"same results: best held-out losses of the two stores differ by at most {gap:.1e}")
    _machine.report(machine)
    ratio = med["bucket"] / med["local"]
    print(f"object_store_walltime_ratio {ratio:.3f}")
    return {"ratio": ratio, "walls": walls, "best": best, "loss_gap": gap}


if __name__ == "__main__":
    numbers = [int(a) for a in sys.argv[1:] if a.isdigit()]
    main(numbers[0] if numbers else ROUNDS, tiny="--tiny" in sys.argv[1:])
