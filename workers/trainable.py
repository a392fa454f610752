"""The Ray Tune trainable: a thin adapter from a Tune trial to :func:`workers.train.run_job`.

The trial's config carries one job (``{"job": Job.to_dict()}``); the sweep itself travels once
through the object store (``tune.with_parameters``). Every evaluation is reported to Tune, so
the dashboard, the live view and the scheduler (which releases fine-tunes as soon as a
pre-training checkpoint is saved) see it as it happens. A retried trial (the process died)
calls ``run_job`` again, which resumes from the job's own checkpoint.
"""

from __future__ import annotations

import os


def run_trial(config: dict, *, sweep_dict: dict, sweep_dir: str) -> None:
    import torch
    from ray import tune

    from orchestrator.plan import Job
    from sweeps.schema import Sweep
    from workers.train import run_job

    job = Job(**{**config["job"], "checkpoints": tuple(config["job"]["checkpoints"])})
    torch.set_num_threads(max(1, int(job.cpus)))
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    run_job(job, Sweep.model_validate(sweep_dict), sweep_dir, report=tune.report)
