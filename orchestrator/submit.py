"""``tsweep submit --address http://HEAD:8265``: hand a sweep to a running cluster via the Ray Jobs API.

The sweep's validated YAML travels as the job's working directory; the entrypoint on the head
is ``tsweep submit sweep.yaml --no-live`` (tsweep is installed on the cluster's image), which
joins the cluster through the ``RAY_ADDRESS`` that Ray sets for job drivers. Ray's token
authentication is honoured by Ray's own client, which reads ``RAY_AUTH_TOKEN``,
``RAY_AUTH_TOKEN_PATH`` or the default token file; tsweep never prints or logs the token.
Ray's client attaches a token only when ``RAY_AUTH_MODE=token``, so a token given in the
environment (``RAY_AUTH_TOKEN`` or ``RAY_AUTH_TOKEN_PATH``) with no mode set turns token mode on
here, as ``ray start`` does when it finds a token. A cluster that refuses the request, or cannot
be reached, is a one-line :class:`SubmitError`, never a traceback.
"""

from __future__ import annotations

import os
import shlex
import tempfile

import yaml

from sweeps.schema import Sweep


class SubmitError(RuntimeError):
    """The cluster refused the submission or could not be reached."""


def _token_mode_from_env() -> None:
    if os.environ.get("RAY_AUTH_MODE") is None and (
        os.environ.get("RAY_AUTH_TOKEN") or os.environ.get("RAY_AUTH_TOKEN_PATH")
    ):
        os.environ["RAY_AUTH_MODE"] = "token"
        from ray._raylet import Config

        Config.initialize("")  # Ray caches the mode at import; re-read it (what `ray start` does)


def submit_job(sweep: Sweep, address: str, *, storage: str | None = None, wait: bool = False) -> str:
    from ray.exceptions import AuthenticationError
    from ray.job_submission import JobSubmissionClient

    _token_mode_from_env()
    try:
        return _submit(JobSubmissionClient, sweep, address, storage)
    except AuthenticationError as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise SubmitError(
            f"Ray at {address} refused the submission ({first}); give the cluster's token in "
            "RAY_AUTH_TOKEN or RAY_AUTH_TOKEN_PATH"
        ) from None
    except ConnectionError as exc:
        raise SubmitError(f"cannot reach Ray's Jobs API at {address}: {exc}") from None


def _submit(client_cls, sweep: Sweep, address: str, storage: str | None) -> str:
    client = client_cls(address)
    with tempfile.TemporaryDirectory(prefix="tsweep-submit-") as tmp:
        with open(f"{tmp}/sweep.yaml", "w") as f:
            yaml.safe_dump(sweep.model_dump(mode="json"), f, sort_keys=False)
        entry = ["tsweep", "submit", "sweep.yaml", "--no-live"] + (["--storage", storage] if storage else [])
        job_id = client.submit_job(
            entrypoint=shlex.join(entry),
            runtime_env={"working_dir": tmp, "env_vars": {"PYTHONUNBUFFERED": "1"}},
            submission_id=None,
            metadata={"tsweep_sweep": sweep.name},
        )
    return job_id
