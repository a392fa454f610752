"""A lease on a sweep folder: one driver at a time.

Two drivers on one sweep (a ``resume`` while the sweep runs, the same sweep submitted twice)
would race on every job's attempts counter, resume state and shards. The driver holds
``lease.json`` in the sweep's folder while it runs: who holds it (host, process, since when) and
a heartbeat it renews every ``HEARTBEAT_S``. Another driver refuses with one line naming the
holder; a lease whose heartbeat is older than ``STALE_S`` (its driver died without releasing it)
is taken over. The lease is advisory and written through the sweep's filesystem, so it works on
an object store too (the window between reading and writing it is a heartbeat's rounding, far
shorter than the minutes it takes to notice a second driver otherwise).
"""

from __future__ import annotations

import json
import os
import socket
import threading
import time
import uuid
from dataclasses import dataclass, field

from tsweep.core.errors import UsageError
from tsweep.core.layout import SweepLayout

HEARTBEAT_S = 10.0
STALE_S = 60.0  # six missed heartbeats: the holder is gone


class SweepBusy(UsageError):
    """Another driver holds the sweep's lease."""


@dataclass
class Lease:
    layout: SweepLayout
    token: str = field(default_factory=lambda: uuid.uuid4().hex)
    _stop: threading.Event = field(default_factory=threading.Event, repr=False)
    _thread: threading.Thread | None = field(default=None, repr=False)

    @property
    def path(self) -> str:
        return self.layout.path("lease.json")

    def _record(self) -> dict:
        return {"token": self.token, "host": socket.gethostname(), "pid": os.getpid(), "heartbeat": time.time()}

    def holder(self) -> dict | None:
        files = self.layout.files
        try:
            return json.loads(files.read_text(self.path))
        except (FileNotFoundError, ValueError):
            return None

    def acquire(self) -> "Lease":
        held = self.holder()
        if held and held.get("token") != self.token and time.time() - float(held.get("heartbeat", 0)) < STALE_S:
            since = time.strftime("%H:%M:%S", time.localtime(float(held.get("since", held["heartbeat"]))))
            raise SweepBusy(f"sweep folder {self.layout.sweep_dir} is being run by {held.get('host')} (pid "
                            f"{held.get('pid')}) since {since}; wait for it, or stop that driver first")
        self._write(since=time.time())
        self._thread = threading.Thread(target=self._beat, name="tsweep-lease", daemon=True)
        self._thread.start()
        return self

    def _write(self, since: float | None = None) -> None:
        rec = self._record()
        prev = self.holder() or {}
        rec["since"] = since if since is not None else prev.get("since", rec["heartbeat"])
        self.layout.files.write_text(self.path, json.dumps(rec))

    def _beat(self) -> None:
        while not self._stop.wait(HEARTBEAT_S):
            try:
                self._write()
            except OSError:  # a missed beat; the next one tries again
                continue

    def release(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=HEARTBEAT_S)
        held = self.holder()
        if held and held.get("token") == self.token:
            self.layout.files.delete_file(self.path)

    def __enter__(self) -> "Lease":
        return self.acquire()

    def __exit__(self, *exc) -> None:
        self.release()
