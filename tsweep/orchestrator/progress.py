"""Progress a person can watch: a live terminal view, progress lines in a pipe, Ray dashboard
metrics, and the analysis feed.

Two Tune callbacks, both non-blocking (Ray's advice for callbacks):
- :class:`AnalysisFeed` asks the analysis actor for a refit on every finished trial
  (fire-and-forget ``request``; the actor coalesces requests into as few refits as keep it
  current).
- :class:`LiveProgress` counts jobs pending/running/done/failed, keeps each running job's latest
  eval loss and throughput (from the typed :class:`tsweep.core.records.Progress` each trial
  reports), exports them as ``ray.util.metrics`` gauges (the dashboard's metrics view and
  Prometheus), and shows them: in a terminal a ``rich`` table redrawn at most twice a second;
  in a pipe or a log one line per finished job with the counts, an ETA and the latest gap
  estimates, and, when no line came for :data:`PERIODIC_S`, a line with each running job's
  latest eval loss, tokens and throughput, so a remote driver's log (what ``tsweep follow``
  prints) says how far it is even while a long job runs (``periodic_s``).

Tune pickles its callbacks when the Tuner is built, so nothing unpicklable (the ``rich.live``
display holds a lock; the gauges hold a metrics client) is made before the experiment starts:
both are created on the first callback, in the driver.
"""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Mapping
from types import MappingProxyType
from typing import TYPE_CHECKING, Any, TextIO

from ray.tune import Callback

from tsweep.analysis.records import TransferReport
from tsweep.analysis.rendering import fmt
from tsweep.core.job import Job
from tsweep.core.layout import Files
from tsweep.core.records import Progress
from tsweep.core.units import duration

if TYPE_CHECKING:
    from ray.actor import ActorHandle
    from ray.tune.experiment import Trial
    from ray.util.metrics import Gauge
    from rich.console import Group
    from rich.live import Live

    from tsweep.analysis.actor import AnalysisActor

MAX_RUNNING_ROWS = 8  # running jobs shown in the live table (and in a periodic line)
REDRAW_S = 0.5
# tsweep's choice: in a pipe, a line at least once a minute while jobs run (a finished job's
# line counts), often enough to see a job move, rare enough for a log to stay readable.
PERIODIC_S = 60.0


class AnalysisFeed(Callback):
    """Asks the analysis ``actor`` for a refit whenever a trial completes."""

    def __init__(self, actor: ActorHandle[AnalysisActor]) -> None:
        self.actor = actor

    def on_trial_complete(self, iteration: int, trials: list[Trial], trial: Trial, **info: Any) -> None:
        self.actor.request.remote()  # fire and forget: it returns at once


# The Prometheus gauges a sweep's driver exports (name: description, tag keys); Ray's metrics
# agent adds the ``ray_`` prefix. tsweep/orchestrator/dashboards/tsweep.json plots them.
GAUGES: Mapping[str, tuple[str, tuple[str, ...]]] = MappingProxyType(
    {
        "tsweep_jobs": ("Jobs of the running sweep by state", ("sweep", "state")),
        "tsweep_tokens_per_second": ("Training tokens per second of running jobs", ("sweep",)),
        "tsweep_transfer_gap": ("Latest transfer gap G per source", ("sweep", "source")),
        "tsweep_design_compute_share": ("Share of the grid's est. FLOPs an adaptive design has chosen", ("sweep",)),
        "tsweep_design_target_width": ("Relative 95% half-width of each adaptive-design target", ("sweep", "target")),
        "tsweep_threads": ("Torch threads of running jobs: their own CPUs and lent idle ones", ("sweep", "share")),
    }
)


def _gauges() -> dict[str, Gauge]:
    from ray.util.metrics import Gauge

    made = {name: Gauge(name, text, tag_keys=tags) for name, (text, tags) in GAUGES.items()}
    return {
        "jobs": made["tsweep_jobs"],
        "tps": made["tsweep_tokens_per_second"],
        "gap": made["tsweep_transfer_gap"],
        "design_share": made["tsweep_design_compute_share"],
        "design_width": made["tsweep_design_target_width"],
        "threads": made["tsweep_threads"],
    }


class LiveProgress(Callback):
    """Counts, gauges and the view; ``live`` picks the redrawn table (a terminal) or progress
    lines (``stream``, default stdout), with a line on the running jobs when none came for
    ``periodic_s``."""

    def __init__(
        self,
        sweep_name: str,
        jobs: list[Job],
        fits_path: str,
        *,
        live: bool = True,
        skipped: int = 0,
        stream: TextIO | None = None,
        periodic_s: float = PERIODIC_S,
        design_path: str | None = None,
        design_since: float | None = None,
    ) -> None:
        self.sweep = sweep_name
        self.jobs = {j.job_id: j for j in jobs}
        self.grid_total = len(jobs)
        self.design_path = design_path  # an adaptive design's fits/design.json, polled like the fit
        self.design: dict[str, Any] | None = None
        self._design_stamp: Any = None
        self._choices_shown: set[tuple[str, float]] = set()
        # choices logged before this driver started (by an earlier driver of the sweep) are not news
        self._since = time.time() if design_since is None else design_since
        self.skipped = skipped
        self.fits_path = fits_path
        self.want_live = live
        self.stream = stream
        self.periodic_s = periodic_s
        self.running: dict[str, Progress | None] = {}
        self.labels: dict[str, str] = {}
        self.own_cpus: dict[str, int] = {}  # per running trial: the CPUs Ray reserved for its job
        self.done = 0
        self.failed = 0
        self.flops_done = 0.0
        self.latest_fit: TransferReport | None = None
        self._fit_stamp: Any = None
        self._last_draw = 0.0
        self._last_line = 0.0
        self._t0: float | None = None
        self._gauges: dict[str, Gauge] | None = None
        self._live: Live | None = None

    def __getstate__(self) -> dict[str, Any]:
        state = self.__dict__.copy()
        state.update(_gauges=None, _live=None, stream=None)
        return state

    # ----------------------------------------------------------- Tune hooks
    def setup(
        self,
        stop: object = None,
        num_samples: int | None = None,
        total_num_samples: int | None = None,
        **info: Any,
    ) -> None:
        self._start()

    def on_trial_start(self, iteration: int, trials: list[Trial], trial: Trial, **info: Any) -> None:
        self._start()
        job = Job.from_dict(trial.config["job"])
        self.labels[trial.trial_id] = job.label
        self.own_cpus[trial.trial_id] = max(1, int(job.cpus))
        self.running[trial.trial_id] = None

    def on_trial_result(
        self, iteration: int, trials: list[Trial], trial: Trial, result: dict[str, Any], **info: Any
    ) -> None:
        progress = Progress.from_metrics(result)
        if progress is not None:
            self.running[trial.trial_id] = progress

    def on_trial_complete(self, iteration: int, trials: list[Trial], trial: Trial, **info: Any) -> None:
        last = self.running.pop(trial.trial_id, None)
        self.own_cpus.pop(trial.trial_id, None)
        self.done += 1
        job = self.jobs.get(trial.config["job"]["job_id"]) if trial.config else None
        if job is not None:
            self.flops_done += job.est_flops
        self._line("done", self.labels.get(trial.trial_id, str(trial)), last)

    def on_trial_error(self, iteration: int, trials: list[Trial], trial: Trial, **info: Any) -> None:
        self.running.pop(trial.trial_id, None)
        self.own_cpus.pop(trial.trial_id, None)
        self.failed += 1
        self._line("FAILED", self.labels.get(trial.trial_id, str(trial)), None)

    def on_step_end(self, iteration: int, trials: list[Trial], **info: Any) -> None:
        now = time.monotonic()
        if now - self._last_draw < REDRAW_S:
            return
        self._last_draw = now
        self._refresh()
        if self._live is None and self.running and now - self._last_line >= self.periodic_s:
            self._periodic_line()

    def on_experiment_end(self, trials: list[Trial], **info: Any) -> None:
        self._refresh()
        if self._live is not None:
            self._live.stop()
            self._live = None

    # ----------------------------------------------------------- state
    def _start(self) -> None:
        if self._t0 is not None:
            return
        self._t0 = self._last_line = time.monotonic()
        self._gauges = _gauges()
        out = self.stream or sys.stdout
        if self.want_live:
            from rich.console import Console
            from rich.live import Live

            self._live = Live(self.render(), console=Console(file=out), refresh_per_second=2, transient=False)
            self._live.start()

    def _refresh(self) -> None:
        self._poll_fit()
        self._poll_design()
        self._export()
        if self._live is not None:
            self._live.update(self.render())

    @property
    def total(self) -> int:
        """The jobs this run will run: every job it was given, or those the adaptive design has
        chosen so far (less those done before this run)."""
        if self.design is None:
            return self.grid_total
        return max(self.done + self.failed + len(self.running), int(self.design.get("chosen", 0)) - self.skipped)

    @property
    def pending(self) -> int:
        return max(0, self.total - self.done - self.failed - len(self.running))

    def eta_s(self) -> float | None:
        """Seconds left, from the estimated FLOPs done so far against those left."""
        if self._t0 is None or self.flops_done <= 0:
            return None
        left = sum(j.est_flops for j in self.jobs.values()) - self.flops_done
        return max(0.0, left) * (time.monotonic() - self._t0) / self.flops_done

    def _poll_design(self) -> None:
        """Read the design's state when it changed; in a pipe, one line per new choice and a line
        when it stops."""
        if self.design_path is None:
            return
        read = _read_if_changed(self.design_path, self._design_stamp)
        if read is None:
            return
        try:
            state = json.loads(read[0])
        except ValueError:
            return  # mid-replace: next poll
        self._design_stamp = read[1]
        stopped_before = self.design is not None and self.design.get("stopped")
        self.design = state
        fresh = []
        for choice in state.get("recent", []):
            key = (str(choice.get("job_id")), float(choice.get("time", 0.0)))
            if key[1] < self._since:  # chosen by an earlier driver of this sweep: shown then
                continue
            if key not in self._choices_shown:
                self._choices_shown.add(key)
                fresh.append(choice)
        seed = [c for c in fresh if str(c.get("reason", "")).startswith("seed design")]
        if seed:  # the seed is one decision: one line, not one per job
            self._print(
                f"design: seed design of {state.get('chosen', len(seed))} jobs "
                f"({100 * float(state.get('share', 0.0)):.0f}% of the grid's est. FLOPs): the pre-training runs and "
                "the fine-tunes that identify the gap law at the goal's sizes, and the replicates the sweep declares",
                poll=False,
            )
        for choice in fresh:
            if choice not in seed:
                self._print(f"design chose {choice.get('label')}: {choice.get('reason')}", poll=False)
        if state.get("stopped") and not stopped_before:
            self._print(f"design stopped: {state['stopped']}", poll=False)

    def _poll_fit(self) -> None:
        read = _read_if_changed(self.fits_path, self._fit_stamp)
        if read is None:
            return
        try:
            self.latest_fit = TransferReport.from_json(json.loads(read[0]))
        except (ValueError, KeyError, TypeError):
            return  # mid-replace: next poll
        self._fit_stamp = read[1]

    def _export(self) -> None:
        if self._gauges is None:
            return
        tags = {"sweep": self.sweep}
        for state, n in (
            ("pending", self.pending),
            ("running", len(self.running)),
            ("done", self.done),
            ("failed", self.failed),
            ("skipped", self.skipped),
        ):
            self._gauges["jobs"].set(n, tags={**tags, "state": state})
        self._gauges["tps"].set(sum(p.tokens_per_s for p in self.running.values() if p), tags=tags)
        own, lent = self.threads()
        self._gauges["threads"].set(own, tags={**tags, "share": "own"})
        self._gauges["threads"].set(lent, tags={**tags, "share": "lent"})
        for src in self.latest_fit.sources if self.latest_fit else ():
            if src.G.identified:
                self._gauges["gap"].set(src.G.value, tags={**tags, "source": src.source})
        if self.design is not None:
            self._gauges["design_share"].set(float(self.design.get("share", 0.0)), tags=tags)
            for t in self.design.get("targets", []):
                if t.get("width") is not None:
                    self._gauges["design_width"].set(float(t["width"]), tags={**tags, "target": str(t["name"])})

    # ----------------------------------------------------------- views
    def counts(self) -> str:
        chosen = (
            "" if self.design is None else f" chosen ({100 * float(self.design.get('share', 0)):.0f}% of grid FLOPs)"
        )
        return (
            f"{self.done + self.failed}/{self.total} jobs{chosen}: {len(self.running)} running, "
            f"{self.pending} pending, {self.failed} failed"
            + (f" ({self.skipped} already done)" if self.skipped else "")
        )

    def threads(self) -> tuple[int, int]:
        """(own, lent): the running jobs' threads on their own CPUs, and on idle CPUs lent to them."""
        own = lent = 0
        for trial_id, p in self.running.items():
            cpus = self.own_cpus.get(trial_id, 1)
            used = p.threads if p else cpus
            own += min(used, cpus)
            lent += max(0, used - cpus)
        return own, lent

    def gap_summary(self) -> str:
        sources = self.latest_fit.sources if self.latest_fit else ()
        return "G: " + ", ".join(f"{s.source} {fmt(s.G)}" for s in sources) if sources else "G: not yet"

    def _threads_cell(self, trial_id: str, p: Progress) -> str:
        """``1``, or ``2 (1 lent)`` for a job training on idle CPUs lent to it."""
        lent = p.threads - self.own_cpus.get(trial_id, 1)
        return f"{p.threads} ({lent} lent)" if lent > 0 else str(p.threads)

    def _lent_note(self, trial_id: str, p: Progress) -> str:
        """``, on 2 threads (1 lent)`` for a job training on idle CPUs lent to it, else nothing."""
        cell = self._threads_cell(trial_id, p)
        return f", on {cell.replace(' (', ' threads (')}" if "lent" in cell else ""

    def _line(self, what: str, label: str, last: Progress | None) -> None:
        if self._live is not None:
            return
        loss = f" loss {last.best_eval_loss:.4f}" if last and last.best_eval_loss is not None else ""
        self._print(f"{what} {label}{loss}")

    def _periodic_line(self) -> None:
        """``[sweep] running: LABEL eval X, N tokens, R tok/s; ... | counts | ETA | G``."""
        jobs = []
        for trial_id, p in list(self.running.items())[:MAX_RUNNING_ROWS]:
            label = self.labels.get(trial_id, trial_id)
            jobs.append(
                f"{label} starting"
                if p is None
                else f"{label} eval {_loss(p.eval_loss)}, {p.tokens_seen:,} tokens, {p.tokens_per_s:,.0f} tok/s"
                + self._lent_note(trial_id, p)
            )
        more = len(self.running) - len(jobs)
        self._print("running: " + "; ".join(jobs) + (f"; +{more} more" if more > 0 else ""))

    def _print(self, what: str, *, poll: bool = True) -> None:
        if self._live is not None:
            return
        if poll:
            self._poll_fit()
        self._last_line = time.monotonic()
        eta = self.eta_s()
        print(
            f"[{self.sweep}] {what} | {self.counts()} | ETA {duration(eta) if eta is not None else '?'}"
            f" | {self.gap_summary()}",
            file=self.stream or sys.stdout,
            flush=True,
        )

    def render(self) -> Group:
        from rich.console import Group, RenderableType
        from rich.table import Table

        eta = self.eta_s()
        head = f"[bold]{self.sweep}[/]  {self.counts()}  ETA {duration(eta) if eta is not None else '?'}"
        jobs = Table(box=None, show_header=True, header_style="dim")
        for col in ("running job", "tokens", "eval loss", "train loss", "tok/s", "threads"):
            jobs.add_column(col)
        for trial_id, p in list(self.running.items())[:MAX_RUNNING_ROWS]:
            label = self.labels.get(trial_id, trial_id)
            if p is None:
                jobs.add_row(label, "-", "-", "-", "-", "-")
            else:
                jobs.add_row(
                    label,
                    f"{p.tokens_seen:,}",
                    _loss(p.eval_loss),
                    _loss(p.train_loss),
                    f"{p.tokens_per_s:,.0f}",
                    self._threads_cell(trial_id, p),
                )
        parts: list[RenderableType] = [head, jobs]
        if self.latest_fit and self.latest_fit.sources:
            est = Table(box=None, header_style="dim")
            for col in ("source", "G (gap) [95% CI]", "multiplier", "runs"):
                est.add_column(col)
            for s in self.latest_fit.sources:
                est.add_row(s.source, fmt(s.G), fmt(s.multiplier), str(s.n_runs))
            parts += ["latest estimates", est]
        if self.design is not None:
            parts += ["adaptive design", *self._design_rows()]
        return Group(*parts)

    def _design_rows(self) -> list[str]:
        """The design's targets against their goal, its last choices and why it stopped."""
        state = self.design or {}
        rows = [f"  {t.get('line', t.get('name'))}" for t in state.get("targets", [])]
        rows += [f"  chose {c.get('label')}: {c.get('reason')}" for c in state.get("recent", [])[-3:]]
        if state.get("stopped"):
            rows.append(f"  stopped: {state['stopped']}")
        return rows


def _read_if_changed(path: str, stamp: Any) -> tuple[str, Any] | None:
    """(the text of ``path``, its (mtime, size) stamp) when that stamp differs from ``stamp``;
    None when it does not, or the file is not there yet or cannot be read."""
    files = Files(path)
    try:
        info = files.fs.get_file_info(files.fs_path(path))
        now = (info.mtime_ns, info.size)
        if info.size is None or now == stamp:
            return None
        return files.read_text(path), now
    except (OSError, UnicodeDecodeError):
        return None


def _loss(x: float | None) -> str:
    return "-" if x is None else f"{x:.4f}"
