"""Idle cores lent to running jobs: the sweep's core broker.

Ray reserves ``resources.cpus`` CPUs for each trial, and a CPU job trains on that many torch
threads. When fewer jobs are ready than a node has CPUs (the sweep's tail; a long pre-training on
the critical path while its fine-tunes wait for its first checkpoint p), the rest of the node
sits idle. With ``resources.lend_idle_cores: true`` (off by default: a lent thread makes a job's
losses depend on the schedule in their last bits, ``tsweep.workers.threads``) the broker lends
those CPUs to the jobs that run, and takes them back as soon as new jobs start.

How: one :class:`CoreBroker` per cluster (a named Ray actor with no CPU of its own, in tsweep's
namespace, shared by every tsweep driver on the cluster so that two sweeps never lend the same
CPU twice). Each running job's governor (``tsweep.workers.threads``) *claims* every
:data:`CLAIM_S` seconds, naming its node, the CPUs Ray reserved for it and its planned FLOPs. The
answer is its share (:func:`shares`): its own CPUs, plus the node's unclaimed CPUs dealt one at
a time to the jobs of that node, the most planned FLOPs first (the long pre-training on the
critical path before a fine-tune). A job that starts on a node claims at once, and the others
hand back what they were lent at their next claim and apply it before their next step or
evaluation batch (within half a second plus one step); a job that ends releases its claim, and one
whose last claim is older than :data:`STALE_S` (its process died) is forgotten. A node's CPUs
are the Ray resources it registered (``ray.nodes()``), the same CPUs Ray hands out to trials.

Only single-worker CPU jobs claim (``tsweep.workers.trainable``): a multi-worker job's ranks wait
on each other, and a GPU job's speed is not its CPU threads. What the broker cannot see is Ray
work outside tsweep's jobs on the same nodes (another framework's tasks; the analysis actor's
refits, which hold no CPU), so a cluster shared with such work leaves lending off.

The broker holds no state worth keeping: it dies with the driver that started it, and the next
driver starts a new one (a governor whose broker is gone trains on its own CPUs).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from tsweep.workers.threads import CLAIM_S

# tsweep's choice: a claim is stale after 10 missed rounds of CLAIM_S (a process that stops
# claiming for 5 s died or is stuck; the broker only stops lending it CPUs, Ray keeps its own).
STALE_S = 10 * CLAIM_S


@dataclass(frozen=True)
class Claim:
    """One job's claim: where it trains, the CPUs Ray reserved for it, its priority, and when it
    last claimed (the broker's clock)."""

    node: str
    cpus: int
    flops: float
    seen: float


def shares(capacity: Mapping[str, int], claims: Mapping[str, Claim]) -> dict[str, int]:
    """Threads per claim: its own CPUs, plus its node's unclaimed ones dealt one at a time over
    the node's claims, the most planned FLOPs first (ties by key). A node whose capacity is not
    known lends nothing."""
    out = {key: c.cpus for key, c in claims.items()}
    by_node: dict[str, list[str]] = {}
    for key, c in claims.items():
        by_node.setdefault(c.node, []).append(key)
    for node, keys in by_node.items():
        spare = capacity.get(node, 0) - sum(claims[k].cpus for k in keys)
        order = sorted(keys, key=lambda k: (-claims[k].flops, k))
        for i in range(max(0, spare)):
            out[order[i % len(order)]] += 1
    return out


def node_cpus(node: str) -> int:
    """The CPUs Ray registered for ``node`` (0 for a node it does not know)."""
    import ray

    for n in ray.nodes():  # type: ignore[no-untyped-call]  # unannotated in Ray
        if n.get("NodeID") == node and n.get("Alive", True):
            return int(n.get("Resources", {}).get("CPU", 0))
    return 0


class CoreBroker:
    """The sweep's lender of idle CPUs (module docstring). A plain class: tests call it with a
    capacity and a clock; :func:`start_core_broker` runs it as a Ray actor."""

    def __init__(
        self,
        capacity: Mapping[str, int] | None = None,
        *,
        clock: Callable[[], float] = time.monotonic,
        lookup: Callable[[str], int] = node_cpus,
    ) -> None:
        self.capacity = dict(capacity or {})
        self.claims: dict[str, Claim] = {}
        self.clock, self.lookup = clock, lookup

    def claim(self, key: str, node: str, cpus: int, flops: float) -> int:
        """Record ``key``'s claim and return its share of threads."""
        now = self.clock()
        self.claims = {k: c for k, c in self.claims.items() if now - c.seen <= STALE_S}
        self.claims[key] = Claim(node=node, cpus=max(1, cpus), flops=flops, seen=now)
        if not self.capacity.get(node):  # looked up until the node has registered CPUs
            self.capacity[node] = self.lookup(node)
        here = {k: c for k, c in self.claims.items() if c.node == node}
        return shares(self.capacity, here)[key]

    def release(self, key: str) -> None:
        self.claims.pop(key, None)


BROKER_NAME = "tsweep-cores"


def start_core_broker(namespace: str) -> Any:
    """The cluster's :class:`CoreBroker`, a named Ray actor in ``namespace``: the running one, or
    a new one owned by this driver. No CPU of its own, so it never waits behind a trial."""
    import ray

    remote_cls = ray.remote(num_cpus=0)(CoreBroker)
    return remote_cls.options(name=BROKER_NAME, namespace=namespace, get_if_exists=True).remote()
