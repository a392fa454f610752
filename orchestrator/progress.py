"""Progress a person can watch: a live terminal view, Ray dashboard metrics, and the analysis feed.

Two Tune callbacks, both non-blocking (Ray's advice for callbacks):
- :class:`AnalysisFeed` sends ``refit`` to the analysis actor fire-and-forget on every finished
  trial; the actor queues calls and refits in order.
- :class:`LiveProgress` counts jobs pending/running/done/failed, keeps each running job's latest
  eval loss and throughput, exports them as ``ray.util.metrics`` gauges (visible in the
  dashboard's metrics view and Prometheus), and redraws a ``rich`` table at most twice a second
  with the latest gap estimates read from ``fits/latest.json``.
"""

from __future__ import annotations

import json
import os
import time

from ray.tune import Callback

from orchestrator.plan import Job


class AnalysisFeed(Callback):
    def __init__(self, actor):
        self.actor = actor
        self.refs = []

    def on_trial_complete(self, iteration, trials, trial, **info):
        self.refs.append(self.actor.refit.remote())  # fire and forget; kept only to drain at the end


def _gauges():
    from ray.util.metrics import Gauge

    return {
        "jobs": Gauge("tsweep_jobs", "Jobs of the running sweep by state", tag_keys=("sweep", "state")),
        "tps": Gauge("tsweep_tokens_per_second", "Training tokens per second of running jobs", tag_keys=("sweep",)),
        "gap": Gauge("tsweep_transfer_gap", "Latest transfer gap G per source", tag_keys=("sweep", "source")),
    }


class LiveProgress(Callback):
    def __init__(self, sweep_name: str, jobs: list[Job], fits_path: str, *, live: bool = True, skipped: int = 0):
        self.sweep = sweep_name
        self.total = len(jobs)
        self.skipped = skipped
        self.fits_path = fits_path
        self.running: dict[str, dict] = {}
        self.done = 0
        self.failed = 0
        self.diverged = 0
        self.latest_fit: dict | None = None
        self._last_draw = 0.0
        self._fit_mtime = 0.0
        self.gauges = _gauges()
        self.live = None
        if live:
            from rich.console import Console
            from rich.live import Live

            self.live = Live(self.render(), console=Console(), refresh_per_second=2, transient=False)
            self.live.start()

    # ----------------------------------------------------------- Tune hooks
    def on_trial_start(self, iteration, trials, trial, **info):
        self.running[trial.trial_id] = {"label": Job.from_dict(trial.config["job"]).label, "loss": None, "tps": 0.0,
                                        "tokens": 0}

    def on_trial_result(self, iteration, trials, trial, result, **info):
        r = self.running.setdefault(trial.trial_id, {"label": str(trial), "loss": None, "tps": 0.0, "tokens": 0})
        r.update(loss=result.get("eval_loss"), train=result.get("train_loss"), tps=result.get("tokens_per_s") or r["tps"],
                 tokens=result.get("tokens_seen", 0))
        if result.get("status") == "diverged":
            self.diverged += 1

    def on_trial_complete(self, iteration, trials, trial, **info):
        self.running.pop(trial.trial_id, None)
        self.done += 1

    def on_trial_error(self, iteration, trials, trial, **info):
        self.running.pop(trial.trial_id, None)
        self.failed += 1

    def on_step_end(self, iteration, trials, **info):
        now = time.monotonic()
        if now - self._last_draw < 0.5:
            return
        self._last_draw = now
        self._poll_fit()
        self._export()
        if self.live is not None:
            self.live.update(self.render())

    def on_experiment_end(self, trials, **info):
        self._poll_fit()
        self._export()
        if self.live is not None:
            self.live.update(self.render())
            self.live.stop()

    # ----------------------------------------------------------- views
    @property
    def pending(self) -> int:
        return max(0, self.total - self.done - self.failed - len(self.running))

    def _poll_fit(self) -> None:
        try:
            mtime = os.path.getmtime(self.fits_path)
        except OSError:
            return
        if mtime != self._fit_mtime:
            self._fit_mtime = mtime
            try:
                with open(self.fits_path) as f:
                    self.latest_fit = json.load(f)
            except (OSError, ValueError):
                pass  # mid-replace; next poll

    def _export(self) -> None:
        tags = {"sweep": self.sweep}
        for state, n in (("pending", self.pending), ("running", len(self.running)), ("done", self.done),
                         ("failed", self.failed), ("skipped", self.skipped)):
            self.gauges["jobs"].set(n, tags={**tags, "state": state})
        self.gauges["tps"].set(sum(r["tps"] or 0 for r in self.running.values()), tags=tags)
        for src in (self.latest_fit or {}).get("sources", []):
            g = (src.get("G") or {}).get("value")
            if g is not None:
                self.gauges["gap"].set(g, tags={**tags, "source": src["source"]})

    def render(self):
        from rich.console import Group
        from rich.table import Table

        head = (f"[bold]{self.sweep}[/]  pending {self.pending}  running {len(self.running)}  "
                f"done {self.done}  failed {self.failed}" + (f"  (skipped, already done: {self.skipped})" if self.skipped else ""))
        jobs = Table(box=None, show_header=True, header_style="dim")
        for col in ("running job", "tokens", "eval loss", "train loss", "tok/s"):
            jobs.add_column(col)
        for r in list(self.running.values())[:8]:
            jobs.add_row(r["label"], f"{r['tokens']:,}", _loss(r["loss"]), _loss(r.get("train")), f"{r['tps']:,.0f}")
        parts = [head, jobs]
        if self.latest_fit and self.latest_fit.get("sources"):
            est = Table(box=None, header_style="dim")
            for col in ("source", "G (gap)", "k", "alpha", "beta", "multiplier", "runs"):
                est.add_column(col)
            for s in self.latest_fit["sources"]:
                est.add_row(s["source"], *(_fmt((s.get(k) or {}).get("value")) for k in ("G", "k", "alpha", "beta", "multiplier")),
                            str(s.get("n_runs", "")))
            parts += ["latest estimates", est]
        return Group(*parts)


def _fmt(v) -> str:
    if v is None:
        return "-"
    return f"{v:.3g}"


def _loss(x: float | None) -> str:
    return "-" if x is None else f"{x:.4f}"
