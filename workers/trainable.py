"""The Ray Tune trainable: a thin adapter from a Tune trial to :func:`workers.train.run_job`.

The trial's config carries one job (``{"job": Job.to_dict()}``); the sweep itself travels once
through the object store (``tune.with_parameters``). Progress is reported to Tune every eval
interval, after every evaluation and when a checkpoint p is saved, so
the dashboard, the live view and the scheduler (which releases fine-tunes as soon as a
pre-training checkpoint is saved) see it as it happens. A retried trial (the process died)
calls ``run_job`` again, which resumes from the job's own checkpoint.

A job with ``workers > 1`` runs the Ray Train V2 way: the trial launches a ``TorchTrainer``
whose workers (each with the job's CPUs/GPUs) form one process group (gloo on CPU, NCCL on
GPU) and run the same ``run_job`` under DeepSpeed ZeRO; ``TuneReportCallback`` forwards rank
0's metrics to the trial.
"""

from __future__ import annotations

import os


def _job(config: dict):
    from orchestrator.plan import Job

    return Job.from_dict(config["job"])


def run_trial(config: dict, *, sweep_dict: dict, sweep_dir: str) -> None:
    import torch
    from ray import tune

    from sweeps.schema import Sweep
    from workers.train import run_job

    job = _job(config)
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    if job.workers > 1:
        _run_distributed(job, sweep_dict, sweep_dir)
        return
    torch.set_num_threads(max(1, int(job.cpus)))
    run_job(job, Sweep.model_validate(sweep_dict), sweep_dir, report=tune.report)


def _run_distributed(job, sweep_dict: dict, sweep_dir: str) -> None:
    from ray.train import RunConfig, ScalingConfig
    from ray.train.torch import TorchConfig, TorchTrainer
    from ray.tune.integration.ray_train import TuneReportCallback

    def loop(cfg: dict) -> None:
        import ray.train
        import torch

        from sweeps.schema import Sweep
        from workers.train import run_job

        torch.set_num_threads(max(1, int(job.cpus)))
        run_job(job, Sweep.model_validate(cfg["sweep"]), cfg["sweep_dir"], report=ray.train.report)

    gpu = job.gpus > 0
    trainer = TorchTrainer(
        loop,
        train_loop_config={"sweep": sweep_dict, "sweep_dir": sweep_dir},
        scaling_config=ScalingConfig(num_workers=job.workers, use_gpu=gpu,
                                     resources_per_worker={"CPU": job.cpus, **({"GPU": job.gpus} if gpu else {})}),
        torch_config=TorchConfig(backend="nccl" if gpu else "gloo"),
        run_config=RunConfig(name=job.job_id, storage_path=os.path.join(sweep_dir, "train"),
                             callbacks=[TuneReportCallback()]),
    )
    trainer.fit()
