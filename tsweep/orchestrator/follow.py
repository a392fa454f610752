"""``tsweep submit ... --address http://HEAD:8265 --follow`` and ``tsweep follow JOB_ID``: watch a
sweep's driver, running as a Ray job on a cluster, from anywhere that reaches its dashboard.

The driver of a submitted sweep runs in pipe mode (``--no-live``), so its log is the sweep's
progress: a line per finished job and a line every :data:`tsweep.orchestrator.progress.PERIODIC_S`
seconds with the running jobs, the counts, an ETA and the latest gaps, then the gap table. The
follower copies that log to stdout as it grows, through the Jobs API's log stream
(``JobSubmissionClient.tail_job_logs``, a websocket), until the job ends.

Connections drop (a laptop sleeps, a proxy times out, the head's dashboard restarts). The log
stream always starts from the first byte of the job's log (Ray tails the driver's log file from
its start), so the follower counts the characters it has printed and, after reconnecting, skips
that many before printing again: no line twice, none lost. Reconnection backs off from
:data:`BACKOFF_S` doubling to :data:`MAX_BACKOFF_S`, and resets once a stream delivers again;
after :data:`GIVE_UP_S` without reaching the cluster the follower stops (:data:`EXIT_LOST`),
saying how to re-attach. When the job has ended, the rest of its log is read once
(``get_job_logs``) so the tail of the output is never cut off by a stream closing early.

Exit codes follow the job's final status: 0 SUCCEEDED, 1 FAILED, :data:`EXIT_STOPPED` (3) STOPPED
(``ray job stop``), :data:`EXIT_LOST` (4) when the cluster stayed unreachable. Ctrl-C detaches
(exit 130): the job goes on, and the message names the ``tsweep follow`` command that re-attaches.
An unknown job id or an address that is not a Ray dashboard is a one-line error (exit 2).
"""

from __future__ import annotations

import asyncio
import sys
import time
from collections.abc import Callable, Mapping
from types import MappingProxyType
from typing import TYPE_CHECKING, Any, TextIO

from tsweep.core.errors import UsageError
from tsweep.orchestrator.submit import SubmitError, auth_headers, check_address

if TYPE_CHECKING:
    from ray.job_submission import JobSubmissionClient

EXIT_CODES: Mapping[str, int] = MappingProxyType({"SUCCEEDED": 0, "FAILED": 1, "STOPPED": 3})
EXIT_STOPPED = EXIT_CODES["STOPPED"]
EXIT_LOST = 4
EXIT_DETACHED = 130  # 128 + SIGINT, what a shell reports for a command ended by Ctrl-C

# tsweep's choices: the first retry after a second, doubling to half a minute between tries; a
# cluster unreachable for ten minutes is reported and the follower stops (the job runs on).
BACKOFF_S = 1.0
MAX_BACKOFF_S = 30.0
GIVE_UP_S = 600.0
STATUS_POLL_S = 2.0  # between status checks while a stream that closed cleanly waits to reopen


def reattach_hint(job_id: str, address: str) -> str:
    return f"tsweep follow {job_id} --address {address}"


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return " ".join(text.splitlines()[0].split())[:300] if text else type(exc).__name__


def _is_missing(exc: BaseException) -> bool:
    """The Jobs API's answer for an unknown job id (HTTP 404, ``... does not exist``)."""
    text = str(exc)
    return "404" in text or "does not exist" in text


class Follower:
    """Copies a Ray job's log to ``out`` from where it last left off, across reconnections.

    ``client`` is a ``ray.job_submission.JobSubmissionClient`` (or anything with its
    ``get_job_status``, ``get_job_logs`` and ``tail_job_logs``); ``sleep`` and ``clock`` are
    injectable so the backoff can be checked without waiting."""

    def __init__(
        self,
        client: Any,
        job_id: str,
        *,
        out: TextIO | None = None,
        err: TextIO | None = None,
        sleep: Callable[[float], None] = time.sleep,
        clock: Callable[[], float] = time.monotonic,
        give_up_s: float = GIVE_UP_S,
    ):
        self.client = client
        self.job_id = job_id
        self.out = out or sys.stdout
        self.err = err or sys.stderr
        self.sleep = sleep
        self.clock = clock
        self.give_up_s = give_up_s
        self.printed = 0  # characters of the job's log already written to ``out``
        self.reconnects = 0

    # ------------------------------------------------------------- the log
    def _emit(self, text: str, start: int) -> None:
        """Write the part of ``text`` (which begins at log offset ``start``) not yet printed."""
        end = start + len(text)
        if end > self.printed:
            self.out.write(text[max(0, self.printed - start) :])
            self.out.flush()
            self.printed = end

    async def _stream(self) -> bool:
        """One connection's worth of the log stream; True when it delivered anything new."""
        offset, before = 0, self.printed
        async for chunk in self.client.tail_job_logs(self.job_id):
            self._emit(chunk, offset)
            offset += len(chunk)
        return self.printed > before

    def _status(self) -> str:
        status = self.client.get_job_status(self.job_id)
        return str(getattr(status, "value", status))

    # ------------------------------------------------------------- the loop
    def run(self) -> int:
        """Follow to the end; the exit code of the job's final status (module docstring)."""
        from ray.exceptions import AuthenticationError

        backoff, lost_since, printed_then = BACKOFF_S, None, 0
        while True:
            try:
                status = self._status()
                if status not in EXIT_CODES:
                    if asyncio.run(self._stream()):  # status alone does not reset the give-up clock
                        backoff, lost_since = BACKOFF_S, None
                    status = self._status()
                    if status not in EXIT_CODES:  # closed cleanly while the job runs on: open it again
                        self.sleep(STATUS_POLL_S)
                        continue
                self._emit(self.client.get_job_logs(self.job_id), 0)  # the rest, once the job has ended
                return EXIT_CODES[status]
            except Exception as exc:
                if isinstance(exc, AuthenticationError):  # a token that will not work on a retry either
                    raise SubmitError(
                        f"Ray refused to show job {self.job_id} ({_first_line(exc)}); give the "
                        "cluster's token in RAY_AUTH_TOKEN or RAY_AUTH_TOKEN_PATH"
                    ) from None
                if self.printed == 0 and self.reconnects == 0 and _is_missing(exc):
                    raise UsageError(f"no Ray job {self.job_id!r} on that cluster ({_first_line(exc)})") from None
                now = self.clock()
                if lost_since is None or self.printed > printed_then:  # a stream that delivered is progress
                    lost_since, printed_then = now, self.printed
                if now - lost_since >= self.give_up_s:
                    print(
                        f"tsweep: cannot reach the cluster for {now - lost_since:.0f} s ({_first_line(exc)}); "
                        f"stopped following, the job may still run",
                        file=self.err,
                        flush=True,
                    )
                    return EXIT_LOST
                print(
                    f"tsweep: connection lost ({_first_line(exc)}); reconnecting in {backoff:.0f} s",
                    file=self.err,
                    flush=True,
                )
                self.sleep(backoff)
                self.reconnects += 1
                backoff = min(MAX_BACKOFF_S, backoff * 2)


def connect(address: str) -> JobSubmissionClient:
    """A Jobs API client for ``address`` with the cluster's token (:func:`auth_headers`), or a
    one-line :class:`SubmitError`."""
    from ray.exceptions import AuthenticationError
    from ray.job_submission import JobSubmissionClient

    check_address(address)
    try:
        return JobSubmissionClient(address, headers=auth_headers())
    except AuthenticationError as exc:
        raise SubmitError(
            f"Ray at {address} refused the connection ({_first_line(exc)}); give the cluster's token in "
            "RAY_AUTH_TOKEN or RAY_AUTH_TOKEN_PATH"
        ) from None
    except (OSError, RuntimeError, ValueError) as exc:
        raise SubmitError(f"cannot reach Ray's Jobs API at {address}: {_first_line(exc)}") from None


def follow(
    job_id: str, address: str, *, out: TextIO | None = None, err: TextIO | None = None, client: Any = None
) -> int:
    """Follow Ray job ``job_id`` at ``address`` to its end; Ctrl-C detaches (module docstring)."""
    err = err or sys.stderr
    follower = Follower(client if client is not None else connect(address), job_id, out=out, err=err)
    try:
        code = follower.run()
    except KeyboardInterrupt:
        print(
            f"\ntsweep: detached; Ray job {job_id} goes on; re-attach with: {reattach_hint(job_id, address)}",
            file=err,
            flush=True,
        )
        return EXIT_DETACHED
    if code == EXIT_LOST:
        print(f"tsweep: re-attach with: {reattach_hint(job_id, address)}", file=err, flush=True)
    return code
