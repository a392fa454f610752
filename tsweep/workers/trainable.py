"""The Ray Tune trainable: a thin adapter from a Tune trial to :class:`tsweep.workers.runner.JobRunner`.

The trial's config carries one job (``{"job": Job.to_dict()}``); the sweep itself travels once
through the object store (``tune.with_parameters``). Progress goes to Tune every eval interval,
after every evaluation and when a checkpoint p is saved, so the dashboard, the live view and
the scheduler (which releases fine-tunes as soon as a pre-training checkpoint is saved) see it
as it happens. A retried trial (the process died) runs the job again, which resumes from the
job's own checkpoint.

A job with ``workers > 1`` runs the Ray Train V2 way: the trial launches a ``TorchTrainer``
whose workers (each with the job's CPUs/GPUs) form one process group (gloo on CPU, NCCL on
GPU) and run the same job under DeepSpeed ZeRO; ``TuneReportCallback`` forwards rank 0's
metrics to the trial.

Each trial runs in an actor whose class is :func:`job_trainable`'s: Tune's function-trainable
actor (``ImplicitFunc``) with a ``__repr__`` that returns the job's label. Ray records an actor
class's ``__repr__`` as the actor's repr name (``ray.util.state.list_actors``' ``repr_name``, the
dashboard's actor list and the prefix of the actor's log lines) once, when the actor is created.
Tune reuses a finished trial's actor for the next trial with the same resources
(``reuse_actors``: a fresh worker process per trial would re-import torch and DeepSpeed each
time), so a reused actor keeps the label of the job it was started for; the trial it runs now
is named by Tune (``trial_name_creator``) and in the live view.

The driver imports this module to hand ``job_trainable`` to Tune, so torch, DeepSpeed and the runner
are imported inside the trial (in the worker process), never in the driver.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from tsweep.core.job import Job
from tsweep.core.layout import Files, SweepLayout
from tsweep.core.store import Store
from tsweep.sweeps import Sweep

if TYPE_CHECKING:
    from ray.tune.trainable import Trainable

Metrics = dict[str, Any]


def _run(
    job: Job,
    sweep_dict: dict[str, Any],
    sweep_dir: str,
    report: Callable[[Metrics], None],
    cores: Any = None,
    rank: int = 0,
) -> None:
    import torch

    from tsweep.workers.runner import JobRunner
    from tsweep.workers.threads import ThreadGovernor

    own = max(1, int(job.cpus))
    torch.set_num_threads(own)
    rows = Store(SweepLayout(sweep_dir).store_root)
    sweep = Sweep.model_validate(sweep_dict)
    # a multi-worker job's ranks wait on each other at every collective: a lent thread on one
    # rank would be wasted; a GPU job's step is not its CPU threads'
    lend = cores is not None and sweep.resources.lend_idle_cores and job.workers == 1 and job.gpus == 0
    threads = ThreadGovernor(own, BrokerLender(cores, job, rank) if lend else None)
    try:
        JobRunner.start(job, sweep, rows=rows, report=lambda p: report(p.to_metrics()), threads=threads).run()
    finally:
        threads.close()


# tsweep's choice: a claim the broker has not answered in 2 s (a loaded driver node) counts as
# failed, and the job trains on its own CPUs until the next one.
CLAIM_TIMEOUT_S = 2.0


class BrokerLender:
    """One job's (or one rank's) claims on the sweep's core broker (``tsweep.orchestrator.cores``),
    as ``tsweep.workers.threads.Lender``."""

    def __init__(self, broker: Any, job: Job, rank: int = 0) -> None:
        import ray

        self.broker = broker
        self.key = f"{job.job_id}#{rank}"
        self.node = ray.get_runtime_context().get_node_id()
        self.cpus = max(1, int(job.cpus))
        self.flops = job.est_flops

    def claim(self) -> int:
        import ray

        share = ray.get(self.broker.claim.remote(self.key, self.node, self.cpus, self.flops), timeout=CLAIM_TIMEOUT_S)
        return int(share)

    def release(self) -> None:
        self.broker.release.remote(self.key)


def run_trial(config: dict[str, Any], *, sweep_dict: dict[str, Any], sweep_dir: str, cores: Any = None) -> None:
    from ray import tune

    job = Job.from_dict(config["job"])
    if job.workers > 1:
        _run_distributed(job, sweep_dict, sweep_dir, cores)
        return
    _run(job, sweep_dict, sweep_dir, tune.report, cores)


def _run_distributed(job: Job, sweep_dict: dict[str, Any], sweep_dir: str, cores: Any = None) -> None:
    from ray.train import RunConfig, ScalingConfig
    from ray.train.torch import TorchConfig, TorchTrainer
    from ray.tune.integration.ray_train import TuneReportCallback

    def loop(cfg: dict[str, Any]) -> None:
        import ray.train

        rank = ray.train.get_context().get_world_rank()
        _run(Job.from_dict(cfg["job"]), cfg["sweep"], cfg["sweep_dir"], ray.train.report, cfg["cores"], rank)

    gpu = job.gpus > 0
    trainer = TorchTrainer(
        loop,
        train_loop_config={"job": job.to_dict(), "sweep": sweep_dict, "sweep_dir": sweep_dir, "cores": cores},
        scaling_config=ScalingConfig(
            num_workers=job.workers,
            use_gpu=gpu,
            resources_per_worker={"CPU": job.cpus, **({"GPU": job.gpus} if gpu else {})},
        ),
        torch_config=TorchConfig(backend="nccl" if gpu else "gloo"),
        run_config=RunConfig(
            name=job.job_id,
            **Files(sweep_dir).ray_storage(SweepLayout(sweep_dir).train_dir),
            # Train V2's RunConfig takes Train callbacks; mypy sees ray.train's V1 annotation (Tune's
            # Callback), and TuneReportCallback's __init__ is unannotated
            callbacks=[TuneReportCallback()],  # type: ignore[no-untyped-call,list-item]
        ),
    )
    trainer.fit()


def job_label(config: dict[str, Any] | None, default: str) -> str:
    """A trial's readable name (``finetune/d0.6@125k/pico/DF=1k``). ``Job.to_dict()`` holds fields
    only (``label`` is a property), so the label is rebuilt from the job in the trial's config."""
    if not config or "job" not in config:
        return default
    return Job.from_dict(config["job"]).label


def job_trainable(
    sweep_dict: dict[str, Any], sweep_dir: str, fn: Callable[..., None] = run_trial, cores: Any = None
) -> type[Trainable]:
    """The Tune trainable class every sweep runs: ``fn`` (``run_trial`` or a benchmark's stand-in
    with its signature) with the sweep, and the handle of the driver's core broker when there is
    one (``cores``), passed once through the object store, as Tune's function trainable, whose
    actors are named by their job's label in the Ray dashboard (see the module docstring)."""
    from ray import tune
    from ray.tune.trainable import wrap_function

    extra = {} if cores is None else {"cores": cores}
    base = wrap_function(tune.with_parameters(fn, sweep_dict=sweep_dict, sweep_dir=sweep_dir, **extra))

    class TsweepJob(base):  # type: ignore[valid-type,misc]  # a class Tune builds at run time
        def __repr__(self) -> str:
            return job_label(getattr(self, "config", None), "tsweep job")

    TsweepJob.__name__ = TsweepJob.__qualname__ = "TsweepJob"
    return TsweepJob
