"""Where a sweep's files live, under ``{storage_root}/{sweep_name}/``.

    sweep.yaml                 the validated sweep, as submitted (``status``/``resume`` read it)
    store/                     the Arrow store (see ``orchestrator.store``)
    checkpoints/{job_id}/      p-{tokens}.pt weights that fine-tunes start from; resume/ state
    fits/latest.json           the analysis actor's latest fit; fits/history.jsonl every refit
    plots/*.png                figures
    tune/                      Ray Tune's experiment folder

Checkpoints need a filesystem path (local or a shared mount); the store may also be an object
store URI.
"""

from __future__ import annotations

import os
from dataclasses import dataclass


@dataclass(frozen=True)
class SweepLayout:
    sweep_dir: str

    def _p(self, *parts: str) -> str:
        return "/".join([self.sweep_dir.rstrip("/"), *parts])

    @property
    def sweep_yaml(self) -> str:
        return self._p("sweep.yaml")

    @property
    def store_root(self) -> str:
        return self._p("store")

    @property
    def fits_dir(self) -> str:
        return self._p("fits")

    @property
    def plots_dir(self) -> str:
        return self._p("plots")

    @property
    def tune_dir(self) -> str:
        return self._p("tune")

    def job_dir(self, job_id: str) -> str:
        return self._p("checkpoints", job_id)

    def p_checkpoint(self, job_id: str, p: int) -> str:
        return self._p("checkpoints", job_id, f"p-{p}.pt")

    def resume_dir(self, job_id: str) -> str:
        return self._p("checkpoints", job_id, "resume")

    def is_local(self) -> bool:
        return "://" not in self.sweep_dir

    def ensure(self) -> None:
        if self.is_local():
            os.makedirs(self.sweep_dir, exist_ok=True)
