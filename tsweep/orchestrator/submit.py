"""``tsweep submit --address http://HEAD:8265``: hand a sweep to a running cluster via the Ray Jobs API.

The sweep's validated YAML travels as the job's working directory; the entrypoint on the head
is ``tsweep submit sweep.yaml --no-live`` (tsweep is installed on the cluster's image), which
joins the cluster through the ``RAY_ADDRESS`` that Ray sets for job drivers. The driver writes
into the folder the sweep was resolved to on the submitting side (``--sweep-dir`` when that is
not the default ``{storage}/{name}``: a sweep folder given by path, or a copied one), so a remote
submit and a local one of the same SWEEP write to the same place. ``tsweep.orchestrator.follow``
streams the driver's log back. Ray's token
authentication takes a bearer token in the ``Authorization`` header (Ray's documented HTTP
contract); tsweep reads it from ``RAY_AUTH_TOKEN``, ``RAY_AUTH_TOKEN_PATH`` or Ray's default
token file and hands it to the Jobs API client, changing no environment and no Ray setting. It
never prints or logs the token. A cluster that refuses the request, or cannot
be reached, is a one-line :class:`SubmitError`, never a traceback.
"""

from __future__ import annotations

import os
import shlex
import tempfile
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

from tsweep.core.errors import UsageError
from tsweep.sweeps import Sweep, dump_sweep

if TYPE_CHECKING:
    from ray.job_submission import JobSubmissionClient


class SubmitError(UsageError):
    """The cluster refused the submission or could not be reached."""


DEFAULT_TOKEN_PATH = "~/.ray/auth_token"  # where `ray start` keeps a local cluster's token


def auth_headers() -> dict[str, str]:
    """The bearer token Ray's token authentication expects, from ``RAY_AUTH_TOKEN``, the file at
    ``RAY_AUTH_TOKEN_PATH``, or Ray's default token file; no header when there is none."""
    token = os.environ.get("RAY_AUTH_TOKEN", "").strip()
    path = os.environ.get("RAY_AUTH_TOKEN_PATH") or os.path.expanduser(DEFAULT_TOKEN_PATH)
    if not token and os.path.isfile(path):
        with open(path) as f:
            token = f.read().strip()
    return {"Authorization": f"Bearer {token}"} if token else {}


def check_address(address: str) -> None:
    """A Jobs API address must be ``http(s)://HOST[:PORT]``; anything else is a one-line error."""
    try:
        u = urlsplit(address)
        port = u.port
    except ValueError as exc:
        raise SubmitError(f"--address: {address!r} is not a URL ({exc})") from None
    if u.scheme not in ("http", "https") or not u.hostname or (port is not None and not 0 < port < 65536):
        raise SubmitError(f"--address: expected http://HOST:PORT (the Ray dashboard), got {address!r}")


def _first_line(exc: BaseException) -> str:
    return str(exc).strip().splitlines()[0][:300] if str(exc).strip() else type(exc).__name__


def submit_job(sweep: Sweep, address: str, *, storage: str | None = None, sweep_dir: str | None = None) -> str:
    """Submit ``sweep``'s driver; the Ray job id. ``sweep_dir``: the folder the sweep was resolved
    to, when it is not ``{storage or the sweep's storage_root}/{name}`` (a sweep folder given by
    path, a copied or renamed one): the driver then writes there, as a local run would."""
    from ray.exceptions import AuthenticationError
    from ray.job_submission import JobSubmissionClient

    check_address(address)
    try:
        return _submit(JobSubmissionClient, sweep, address, storage, sweep_dir)
    except AuthenticationError as exc:
        raise SubmitError(
            f"Ray at {address} refused the submission ({_first_line(exc)}); give the cluster's token in "
            "RAY_AUTH_TOKEN or RAY_AUTH_TOKEN_PATH"
        ) from None
    except (OSError, RuntimeError, ValueError) as exc:  # unreachable, not a Ray dashboard, a bad reply
        raise SubmitError(f"cannot submit to Ray's Jobs API at {address}: {_first_line(exc)}") from None


def _submit(
    client_cls: type[JobSubmissionClient], sweep: Sweep, address: str, storage: str | None, sweep_dir: str | None
) -> str:
    client = client_cls(address, headers=auth_headers())
    with tempfile.TemporaryDirectory(prefix="tsweep-submit-") as tmp:
        with open(f"{tmp}/sweep.yaml", "w") as f:
            f.write(dump_sweep(sweep))
        entry = (
            ["tsweep", "submit", "sweep.yaml", "--no-live"]
            + (["--storage", storage] if storage else [])
            + (["--sweep-dir", sweep_dir] if sweep_dir else [])
        )
        job_id = client.submit_job(
            entrypoint=shlex.join(entry),
            runtime_env={"working_dir": tmp, "env_vars": {"PYTHONUNBUFFERED": "1"}},
            submission_id=None,
            metadata={"tsweep_sweep": sweep.name},
        )
    return job_id
