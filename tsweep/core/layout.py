"""Where a sweep's files live: every name from the storage root down to a job's folders.

A sweep's folder is ``{storage_root}/{sweep_name}/``, a local path or a URI (``s3://``,
``gs://``, ``file://``; a URI's query, its endpoint, stays at the end of every path built under
it, :func:`tsweep.core.paths.join`, so a job's checkpoint folder carries its endpoint to
whichever node runs it)::

    sweep.yaml                 the validated sweep, as submitted (``status``/``resume`` read it)
    lease.json                 the driver that holds the sweep now (``tsweep.orchestrator.lease``)
    store/                     the Arrow store (its shards are named by ``tsweep.core.store``)
    checkpoints/{job_id}/      one job's folder (:class:`JobLayout`):
        p-{tokens}/            annealed weights at p tokens that fine-tunes start from
        resume/                the state a job resumes from (its tags named by ``tsweep.workers.checkpoints``)
        deepspeed.json         the DeepSpeed config the job's engine was given
        attempts               how many times the job started
        branch/                a pre-training branch's snapshot, on a local or shared disk only
    fits/latest.json           the analysis actor's latest report; fits/history.jsonl every refit
    plots/*.png                figures; report.html and summary.md beside the folder
    tune/                      Ray Tune's experiment folder
    train/                     Ray Train's runs of multi-worker jobs

:class:`SweepLayout` and :class:`JobLayout` own those names, and every part of tsweep asks them
for a path; what lies inside the store and inside a checkpoint folder (weights, ``manifest.json``,
resume tags) is named by the module that writes it. One exception is left to move:
``tsweep.orchestrator.trackers`` joins TensorBoard's ``tune/gaps`` itself (the same path as
:attr:`SweepLayout.tensorboard_dir`). The bytes go through :class:`tsweep.core.files.Files`, one
filesystem per endpoint and process, addressed by the same strings users give.

``Files`` and the path helpers of :mod:`tsweep.core.paths` are also importable from here, where
the rest of tsweep has always imported them.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from tsweep.core.files import Files
from tsweep.core.paths import is_uri, join, local_path, resolve_root, without_query

__all__ = ["Files", "JobLayout", "SweepLayout", "is_uri", "join", "local_path", "resolve_root", "without_query"]


@dataclass(frozen=True)
class JobLayout:
    """The names under one job's folder ``job_dir`` (``{sweep_dir}/checkpoints/{job_id}``, a path
    or URI): what :class:`tsweep.core.job.Job` and the workers read and write there."""

    job_dir: str

    def p_checkpoint(self, p: int) -> str:
        """Where a pre-training job saves its annealed checkpoint at ``p`` tokens."""
        return join(self.job_dir, f"p-{p}")

    @property
    def resume_dir(self) -> str:
        """Where the job keeps the state it resumes from after its process dies."""
        return join(self.job_dir, "resume")

    @property
    def deepspeed_file(self) -> str:
        """The DeepSpeed config the job's engine was given."""
        return join(self.job_dir, "deepspeed.json")

    @property
    def attempts_file(self) -> str:
        """The count of the job's starts."""
        return join(self.job_dir, "attempts")

    @property
    def local_branch_dir(self) -> str | None:
        """The folder for a pre-training branch's snapshot beside the job's checkpoints when they
        are on a mounted disk (a path or ``file://``); None when they are behind a remote URI."""
        local = local_path(self.job_dir)
        return f"{local.rstrip('/')}/branch" if local else None


@dataclass(frozen=True)
class SweepLayout:
    """The names of a sweep's files under ``sweep_dir`` (a path, made absolute, or a URI), and its
    :class:`Files`."""

    sweep_dir: str
    files: Files = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "sweep_dir", resolve_root(self.sweep_dir))
        object.__setattr__(self, "files", Files(self.sweep_dir))

    @classmethod
    def under(cls, storage_root: str, sweep_name: str) -> SweepLayout:
        """The layout of sweep ``sweep_name`` under ``storage_root`` (a path, ``~`` expanded, or a URI)."""
        return cls(join(resolve_root(storage_root), sweep_name))

    def path(self, *parts: str) -> str:
        """``parts`` joined under the sweep's folder."""
        return join(self.sweep_dir, *parts)

    def contains(self, path: str) -> bool:
        """Whether ``path`` lies inside this sweep's folder."""
        return without_query(path).startswith(without_query(self.sweep_dir).rstrip("/") + "/")

    @property
    def is_local(self) -> bool:
        """Whether the sweep's folder is on a local disk (a path or ``file://``)."""
        return local_path(self.sweep_dir) is not None

    @property
    def sweep_yaml(self) -> str:
        return self.path("sweep.yaml")

    @property
    def lease(self) -> str:
        return self.path("lease.json")

    @property
    def store_root(self) -> str:
        return self.path("store")

    @property
    def fits_dir(self) -> str:
        return self.path("fits")

    @property
    def latest_fit(self) -> str:
        return self.path("fits", "latest.json")

    @property
    def fit_history(self) -> str:
        return self.path("fits", "history.jsonl")

    @property
    def design_log(self) -> str:
        """An adaptive design's decisions, one JSON line each (``tsweep.orchestrator.adaptive``)."""
        return self.path("fits", "design.jsonl")

    @property
    def design_state(self) -> str:
        """An adaptive design's latest state: its targets, its spend, why it stopped."""
        return self.path("fits", "design.json")

    @property
    def plots_dir(self) -> str:
        return self.path("plots")

    def plot(self, name: str) -> str:
        return self.path("plots", name)

    @property
    def summary_md(self) -> str:
        return self.path("summary.md")

    @property
    def report_html(self) -> str:
        return self.path("report.html")

    @property
    def tune_dir(self) -> str:
        return self.path("tune")

    @property
    def train_dir(self) -> str:
        return self.path("train")

    @property
    def tensorboard_dir(self) -> str:
        """TensorBoard's log of the gaps as they were refitted (sweeps with the tensorboard tracker)."""
        return self.path("tune", "gaps")

    def job_dir(self, job_id: str) -> str:
        """The folder of job ``job_id``'s checkpoints (see :class:`JobLayout`)."""
        return self.path("checkpoints", job_id)

    def job(self, job_id: str) -> JobLayout:
        """The names under job ``job_id``'s folder."""
        return JobLayout(self.job_dir(job_id))

    def exists(self) -> bool:
        """Whether a sweep was started here (its ``sweep.yaml`` is there)."""
        return self.files.exists(self.sweep_yaml)
