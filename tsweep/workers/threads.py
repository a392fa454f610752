"""A job's torch threads: its own CPUs, plus the idle ones the sweep's core broker lends it.

:class:`ThreadGovernor` holds the job's thread count. With a :class:`Lender` (in a sweep, the
driver's core broker, ``tsweep.orchestrator.cores``), a background thread claims the job's share
every ``claim_s`` seconds; the training loop calls :meth:`ThreadGovernor.apply` between steps,
which sets ``torch.set_num_threads`` when the share changed (torch's intra-op pool belongs to
the thread that trains, so the change is made there, never from the claiming thread). Without a
lender (tests, benchmarks, ``resources.lend_idle_cores: false``, the default) the count never
changes.

It also keeps the job's *core-seconds*, the integral of its threads over its wall time: what a
job with lent cores really occupied (the summary's ``core_seconds``; ``benchmarks/demo_walltime.py``
divides the demo's wall time by it).

What lending costs: a thread count changes how a matrix product splits its sums, so the same job
trained on 1 and on 2 threads differs in the last bits (the demo's largest pre-training: 1e-5 in
the loss after about 240 steps, against run-to-run noise of 0.19%), and a fine-tune's early stop
can move by an evaluation. A job on its own CPUs is bit-for-bit repeatable, and the fault tests
compare a disturbed run with an undisturbed one exactly; so lending is opt-in.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from typing import Protocol

log = logging.getLogger(__name__)

# tsweep's choice: a governor claims every half second, so a started job waits at most that long
# (plus one training step or evaluation batch) for a lent CPU to come back, against a
# pre-training step of about 0.15 s for the demo's largest rung on one core of a 2-core AMD EPYC.
CLAIM_S = 0.5


class Lender(Protocol):
    """Where a job's share of threads comes from."""

    def claim(self) -> int: ...

    def release(self) -> None: ...


class ThreadGovernor:
    """The job's thread count (module docstring): ``own`` threads, or the lender's share."""

    def __init__(
        self,
        own: int,
        lender: Lender | None = None,
        *,
        claim_s: float = CLAIM_S,
        clock: Callable[[], float] = time.perf_counter,
        set_threads: Callable[[int], None] | None = None,
    ) -> None:
        self.own = max(1, own)
        self.lender = lender
        self.clock = clock
        self._set = set_threads or _torch_set_threads
        self.current = self.own
        self.wanted = self.own
        self._core_s = 0.0
        self._since = clock()
        self._stop = threading.Event()
        self._claimer: threading.Thread | None = None
        if lender is not None:
            self._claimer = threading.Thread(target=self._claim_loop, args=(claim_s,), daemon=True)
            self._claimer.start()

    def _claim_loop(self, claim_s: float) -> None:
        """Claim until closed; a failed claim (the broker is gone or busy) means own threads."""
        assert self.lender is not None
        while True:
            try:
                self.wanted = max(1, int(self.lender.claim()))
            except Exception as e:  # the broker died with its driver, or timed out under load
                log.debug("thread claim failed (%s); training on own CPUs", type(e).__name__)
                self.wanted = self.own
            if self._stop.wait(claim_s):
                return

    def apply(self) -> int:
        """Between steps, in the training thread: take the latest share; the threads in use."""
        wanted = self.wanted
        if wanted != self.current:
            now = self.clock()
            self._core_s += self.current * (now - self._since)
            self._since = now
            self._set(wanted)
            self.current = wanted
        return self.current

    def core_seconds(self) -> float:
        """Thread-seconds since the governor started."""
        return self._core_s + self.current * (self.clock() - self._since)

    def close(self) -> None:
        """Stop claiming, hand the lent threads back, and train on own threads again."""
        self._stop.set()
        if self._claimer is not None:
            self._claimer.join(timeout=5.0)
        if self.lender is not None:
            try:
                self.lender.release()
            except Exception as e:
                log.debug("thread release failed (%s)", type(e).__name__)
        self.wanted = self.own
        self.apply()


def _torch_set_threads(n: int) -> None:
    import torch

    torch.set_num_threads(n)
