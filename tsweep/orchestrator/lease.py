"""One driver per sweep folder: a lease in ``lease.json`` with a heartbeat.

Two drivers on one sweep (a second ``submit``, or ``resume`` while it runs) would race on the
attempts counters, on clearing a job's rows before it starts over and on removing resume
state. So the driver (``run_sweep``) takes the sweep folder's lease before it writes anything
(it looks first, :func:`refuse_if_held`, before it starts Ray) and holds it until it returns:
``{"holder": "host:pid", "host", "pid", "started", "heartbeat", "token"}``, the
heartbeat rewritten every :data:`HEARTBEAT_S` by a background thread.

Another driver finding a live lease refuses with one line naming the holder
(:class:`SweepBusy`, exit 2). A lease is *stale*, and taken over, when its heartbeat is older
than :data:`STALE_S`, or at once when its holder ran on this host and that process is gone (a
killed driver, then ``tsweep resume`` on the same machine). Object stores have no
create-if-absent in pyarrow, so a taker writes its lease, waits :data:`SETTLE_S`, and reads it
back: of two drivers starting together, the one whose write landed last holds it and the other
refuses (this assumes a check and the write after it take less than ``SETTLE_S``).

Only ``lease.json`` goes through the sweep's filesystem; the wall clocks of the hosts compared
are assumed within seconds of each other (NTP), far inside ``STALE_S``.
"""

from __future__ import annotations

import json
import logging
import os
import socket
import threading
import time
import uuid
from dataclasses import dataclass
from typing import Any

import psutil

from tsweep.core.errors import SweepBusy
from tsweep.core.layout import SweepLayout, without_query

log = logging.getLogger(__name__)

# tsweep's choices: a heartbeat every 10 s; a lease whose heartbeat is a minute old (six missed)
# is abandoned; 1 s between writing a lease and reading it back, far longer than the check and
# write before it take.
HEARTBEAT_S = 10.0
STALE_S = 60.0
SETTLE_S = 1.0


def _process_start(pid: int) -> float | None:
    try:
        return float(psutil.Process(pid).create_time())
    except psutil.Error:
        return None


def _read(layout: SweepLayout) -> dict[str, Any] | None:
    try:
        lease = json.loads(layout.files.read_text(layout.lease))
    except FileNotFoundError:
        return None
    except (ValueError, UnicodeDecodeError):  # torn or hand-edited: nobody can prove they hold it
        return None
    return lease if isinstance(lease, dict) and isinstance(lease.get("token"), str) else None


def current(layout: SweepLayout) -> dict[str, Any] | None:
    """The sweep folder's lease as it stands (live or stale), or None; reads ``lease.json`` only."""
    return _read(layout)


def stale_reason(lease: dict[str, Any], now: float | None = None) -> str | None:
    """Why ``lease`` no longer holds the sweep (its holder is gone, or silent); None while live."""
    now = time.time() if now is None else now
    beat = lease.get("heartbeat")
    if not isinstance(beat, (int, float)) or now - beat > STALE_S:
        return f"no heartbeat for {STALE_S:.0f} s"
    if lease.get("host") == socket.gethostname():
        pid, started = lease.get("pid"), lease.get("process_start")
        now_started = _process_start(pid) if isinstance(pid, int) else None
        if now_started is None or (started is not None and abs(now_started - started) > 1):
            return f"its process {pid} on this host has ended"
    return None


def describe(lease: dict[str, Any], now: float | None = None) -> str:
    """``host:pid (since ..., last heartbeat N s ago)``: who holds a lease, for one-line messages."""
    now = time.time() if now is None else now
    started, beat = lease.get("started"), lease.get("heartbeat")
    since = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(started)) if isinstance(started, (int, float)) else "?"
    age = f"{now - beat:.0f} s ago" if isinstance(beat, (int, float)) else "never"
    return f"{lease.get('holder', '?')} (since {since}, last heartbeat {age})"


@dataclass
class Lease:
    """The lease a driver holds on a sweep folder; :meth:`release` gives it back."""

    layout: SweepLayout
    record: dict[str, Any]
    _stop: threading.Event
    _thread: threading.Thread | None = None
    lost: str | None = None  # set if another driver took it over while this one ran

    def _beat(self) -> None:
        while not self._stop.wait(HEARTBEAT_S):
            current = _read(self.layout)
            if current is not None and current.get("token") != self.record["token"]:
                self.lost = f"taken over by {describe(current)}"
                log.error("sweep %s: lease %s", without_query(self.layout.sweep_dir), self.lost)
                return
            self.record["heartbeat"] = time.time()
            try:
                self.layout.files.write_text(self.layout.lease, json.dumps(self.record))
            except Exception as exc:
                log.warning("sweep lease heartbeat failed: %s", exc)

    def release(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
        current = _read(self.layout)
        if current is not None and current.get("token") == self.record["token"]:
            self.layout.files.delete_file(self.layout.lease)

    def __enter__(self) -> Lease:
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()


def refuse_if_held(layout: SweepLayout) -> dict[str, Any] | None:
    """:class:`SweepBusy` naming the holder if a live driver holds the folder's lease, else the
    stale lease found (None: none); reads only. A driver calls it before starting anything, then
    takes the lease with :func:`acquire` (which checks again: another driver may have come
    between)."""
    current = _read(layout)
    if current is not None and stale_reason(current) is None:
        raise _busy(layout, current)
    return current


def acquire(layout: SweepLayout, *, settle_s: float = SETTLE_S) -> Lease:
    """The sweep folder's lease for this process, or :class:`SweepBusy` naming its live holder."""
    current = refuse_if_held(layout)
    if current is not None:
        log.warning(
            "sweep %s: taking over the lease of %s: %s",
            without_query(layout.sweep_dir),
            current.get("holder"),
            stale_reason(current),
        )
    now = time.time()
    host, pid = socket.gethostname(), os.getpid()
    record = {
        "holder": f"{host}:{pid}",
        "host": host,
        "pid": pid,
        "process_start": _process_start(pid),
        "started": now,
        "heartbeat": now,
        "token": uuid.uuid4().hex,
    }
    layout.files.write_text(layout.lease, json.dumps(record))
    time.sleep(settle_s)
    current = _read(layout)
    if current is None or current.get("token") != record["token"]:
        raise _busy(layout, current or record)
    lease = Lease(layout, record, threading.Event())
    lease._thread = threading.Thread(target=lease._beat, name="tsweep-lease", daemon=True)
    lease._thread.start()
    return lease


def _busy(layout: SweepLayout, holder: dict[str, Any]) -> SweepBusy:
    return SweepBusy(
        f"sweep folder {without_query(layout.sweep_dir)} is being run by {describe(holder)}; wait for "
        f"it to end, or stop it (a lease without a heartbeat for {STALE_S:.0f} s is taken over)"
    )
