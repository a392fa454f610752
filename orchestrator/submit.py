"""``tsweep submit --address http://HEAD:8265``: hand a sweep to a running cluster via the Ray Jobs API.

The sweep's validated YAML travels as the job's working directory; the entrypoint on the head
is ``tsweep submit sweep.yaml --no-live`` (tsweep is installed on the cluster's image), which
joins the cluster through the ``RAY_ADDRESS`` that Ray sets for job drivers. Ray's token
authentication is honoured by Ray's own client, which reads ``RAY_AUTH_TOKEN``,
``RAY_AUTH_TOKEN_PATH`` or the default token file; tsweep never prints or logs the token.
"""

from __future__ import annotations

import shlex
import tempfile

import yaml

from sweeps.schema import Sweep


def submit_job(sweep: Sweep, address: str, *, storage: str | None = None, wait: bool = False) -> str:
    from ray.job_submission import JobSubmissionClient

    client = JobSubmissionClient(address)
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
