"""Experiment trackers a researcher already uses, opt-in from the sweep YAML (``trackers:``).

Every job is mirrored through Ray Tune's own logger callbacks, so a tracker sees exactly what Tune
sees: one run per job, named like its trial (``finetune/d0.6@1M/mini/DF=4k``), the job's fields
as the run's config, every progress report (eval loss, training loss, tokens/s) as metrics.

- TensorBoard: ``TBXLoggerCallback``, event files under the sweep's ``tune/`` folder;
- Weights & Biases: ``WandbLoggerCallback`` into ``trackers.wandb_project`` (``WANDB_MODE=offline``
  keeps everything on disk, to sync later);
- MLflow: ``MLflowLoggerCallback`` at ``trackers.mlflow_tracking_uri``, experiment
  ``trackers.mlflow_experiment`` (default: the sweep's name).

At the end, the report's headline numbers go to each tracker as one more run (``{sweep}/gaps``):
for every source, G, G in loss units, k, alpha, beta and the multiplier, each with the ends of
its 95% interval; a number the design cannot identify is left out, never logged as zero.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Mapping
from types import MappingProxyType
from typing import TYPE_CHECKING, Any

from tsweep.analysis.records import TransferReport
from tsweep.core.errors import UsageError
from tsweep.sweeps import TrackerSettings

if TYPE_CHECKING:
    from ray.tune import Callback

log = logging.getLogger(__name__)

GAP_KEYS = ("G", "G_loss", "k", "alpha", "beta", "multiplier")


# The package each tracker needs (the ``trackers`` extra of pyproject.toml), by its sweep setting.
TRACKER_PACKAGES: Mapping[str, str] = MappingProxyType(
    {"tensorboard": "tensorboardX", "wandb_project": "wandb", "mlflow_tracking_uri": "mlflow"}
)


def check_installed(trackers: TrackerSettings) -> None:
    """Before anything runs: every tracker the sweep asks for can be imported, else one line
    naming the setting and the package (they are optional dependencies)."""
    import importlib

    for setting, package in TRACKER_PACKAGES.items():
        if not getattr(trackers, setting):
            continue
        try:
            importlib.import_module(package)
        except ImportError:
            raise UsageError(
                f"trackers.{setting}: needs the {package} package, which is not installed: "
                f"pip install 'tsweep[trackers]'"
            ) from None


def tune_callbacks(trackers: TrackerSettings, sweep_name: str) -> list[Callback]:
    """Ray Tune logger callbacks for the trackers the sweep asks for."""
    out: list[Callback] = []
    if trackers.tensorboard:
        from ray.tune.logger import TBXLoggerCallback

        out.append(TBXLoggerCallback())  # type: ignore[no-untyped-call]  # Ray leaves its __init__ unannotated
    if trackers.wandb_project:
        from ray.air.integrations.wandb import WandbLoggerCallback

        out.append(WandbLoggerCallback(project=trackers.wandb_project, group=sweep_name, log_config=True))
    if trackers.mlflow_tracking_uri:
        from ray.air.integrations.mlflow import MLflowLoggerCallback

        out.append(
            MLflowLoggerCallback(
                tracking_uri=trackers.mlflow_tracking_uri,
                experiment_name=trackers.mlflow_experiment or sweep_name,
                tags={"sweep": sweep_name},
            )
        )
    return out


def gap_metrics(report: TransferReport) -> dict[str, float]:
    """``{"G/d0.6": 8.45, "G_lo/d0.6": 4.36, "G_hi/d0.6": 13.3, ...}``: the identified headline
    numbers of every source (no key is a prefix folder of another: MLflow's file store)."""
    out: dict[str, float] = {}
    for s in report.sources:
        for key in GAP_KEYS:
            est = getattr(s, key)
            if not est.identified or est.value is None or not math.isfinite(est.value):
                continue
            out[f"{key}/{s.source}"] = float(est.value)
            if est.ci95:
                out[f"{key}_lo/{s.source}"], out[f"{key}_hi/{s.source}"] = map(float, est.ci95)
    return out


def log_gaps(trackers: TrackerSettings, sweep_name: str, report: TransferReport, tune_dir: str) -> None:
    """The report's headline numbers as one run ``{sweep}/gaps`` in every tracker the sweep uses.
    A tracker that fails here (a server gone) costs a warning, never the sweep's results."""
    if not trackers.any:
        return
    metrics = gap_metrics(report)
    params: dict[str, Any] = {
        "sweep": sweep_name,
        "n_jobs_finished": report.n_jobs_finished,
        "bootstrap": report.bootstrap,
    }
    for name, write in (("tensorboard", _tensorboard), ("wandb", _wandb), ("mlflow", _mlflow)):
        if not _wanted(trackers, name):
            continue
        try:
            write(trackers, sweep_name, metrics, params, tune_dir)
        except Exception as exc:
            log.warning("tracker %s: could not log the gaps: %s", name, exc)


def _wanted(trackers: TrackerSettings, name: str) -> bool:
    return {
        "tensorboard": trackers.tensorboard,
        "wandb": bool(trackers.wandb_project),
        "mlflow": bool(trackers.mlflow_tracking_uri),
    }[name]


def _tensorboard(
    trackers: TrackerSettings, sweep_name: str, metrics: dict[str, float], params: dict[str, Any], tune_dir: str
) -> None:
    from tensorboardX import SummaryWriter

    from tsweep.core.layout import join

    with SummaryWriter(logdir=join(tune_dir, "gaps")) as w:
        for key, value in metrics.items():
            w.add_scalar(f"gaps/{key}", value, global_step=params["n_jobs_finished"])


def _wandb(
    trackers: TrackerSettings, sweep_name: str, metrics: dict[str, float], params: dict[str, Any], tune_dir: str
) -> None:
    import wandb

    run = wandb.init(
        project=trackers.wandb_project,
        group=sweep_name,
        name=f"{sweep_name}/gaps",
        job_type="analysis",
        config=params,
        reinit="create_new",
    )
    try:
        run.summary.update(metrics)
    finally:
        run.finish()


def _mlflow(
    trackers: TrackerSettings, sweep_name: str, metrics: dict[str, float], params: dict[str, Any], tune_dir: str
) -> None:
    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking_uri=trackers.mlflow_tracking_uri)
    name = trackers.mlflow_experiment or sweep_name
    exp = client.get_experiment_by_name(name)
    exp_id = exp.experiment_id if exp else client.create_experiment(name)
    run = client.create_run(exp_id, run_name=f"{sweep_name}/gaps", tags={"sweep": sweep_name})
    for key, value in params.items():
        client.log_param(run.info.run_id, key, value)
    for key, value in metrics.items():
        client.log_metric(run.info.run_id, key, value)
    client.set_terminated(run.info.run_id)
