"""What differs between the kinds of job: one strategy per kind (:data:`STRATEGIES`).

=====================  ==========================================  ==========================================
                       pre-training: :class:`Pretraining`          fine-tune, scratch: :class:`EarlyStopped`
=====================  ==========================================  ==========================================
ends                   at its budget, one pass (``job.max_steps``)  at the end of the cooldown that ends its
                                                                   stable phase
stable phase ends      where its final cooldown starts (known      on patience (its best evaluation
                       from the start)                             ``eval.patience_epochs`` old and at least
                                                                   ``eval.patience_tokens``, never before
                                                                   ``eval.min_epochs``) or at
                                                                   ``train.max_epochs``
evaluated              at step 0, doubling step counts, its end    at step 0, every eval interval, the end of
                                                                   its cooldown
saves                  a p-checkpoint at every p: a cooldown       its rows only
                       branch, the final p its own decay
eval loss far above    diverged                                    over-fitting, which patience ends: fine
its first
status at its end      ok                                          ``unconverged`` when the epoch cap ended
                                                                   its stable phase
=====================  ==========================================  ==========================================

Every kind is evaluated at step 0 and checked for a diverging training loss at every step (the
runner's, ``tsweep.workers.runner``). Fine-tunes and scratch runs differ only in their initial
weights (a parent's p-checkpoint, a hub model's, or random: ``tsweep.workers.startup``), so they
share a strategy. A strategy's state that must survive a kill lives in the job's
:class:`~tsweep.workers.state.LoopState` (saved p's, the cooldown window, the best-loss history
patience reads); the rest is derived from the job and the sweep when it is built, after the
start-up restored that state.
"""

from __future__ import annotations

import math
from abc import ABC, abstractmethod

from tsweep.core.cadence import branch_start, patience_steps, pretrain_eval_steps, stable_cap_steps
from tsweep.workers import checkpoints
from tsweep.workers.schedule import cooldown_steps
from tsweep.workers.startup import Started
from tsweep.workers.state import Outcome, eval_loss_divergence


class Strategy(ABC):
    """The decisions of one kind of job, asked by the runner after every optimizer step in this
    order: :meth:`after_step`, :meth:`should_evaluate` (then, having evaluated,
    :meth:`eval_divergence` and :meth:`after_evaluation`), :meth:`done`; :meth:`conclude` once at
    the end. Every kind answers every question (the module docstring's table, row by row)."""

    def __init__(self, started: Started, outcome: Outcome):
        self.started, self.outcome = started, outcome
        self.job, self.sweep, self.state, self.schedule = started.job, started.sweep, started.state, started.schedule

    @abstractmethod
    def after_step(self, step: int) -> bool:
        """Whatever the kind saves once ``step`` steps are done; True if it saved something."""

    @abstractmethod
    def should_evaluate(self, step: int) -> bool:
        """Whether to evaluate after ``step`` steps."""

    @abstractmethod
    def eval_divergence(self, step: int, loss: float) -> str | None:
        """Why a finite eval loss means the run diverged; None when it does not."""

    @abstractmethod
    def after_evaluation(self, step: int) -> None:
        """What the kind does with an evaluation after ``step`` steps (the state holds it)."""

    @abstractmethod
    def done(self, step: int) -> bool:
        """Whether the job ends after ``step`` steps."""

    @abstractmethod
    def conclude(self) -> None:
        """Set the outcome's final word, once, when the loop has ended."""


class Pretraining(Strategy):
    """One pass over the source budget with its final cooldown set from the start; a cooldown
    branch to every earlier p (``tsweep.workers.schedule``), the final p saved at the end."""

    def __init__(self, started: Started, outcome: Outcome):
        super().__init__(started, outcome)
        self.training = started.training
        self.evals_at = pretrain_eval_steps(interval=started.pace.interval, max_steps=self.job.max_steps)
        self._cool_to_the_end()
        # the step at which each intermediate p's cooldown branch leaves the run
        self.branches = {
            branch_start(self._p_steps(p), self.sweep.train.cooldown): p
            for p in self._pending()
            if self._p_steps(p) < self.job.max_steps
        }

    def _pending(self) -> list[int]:
        return [p for p in self.job.checkpoints if p not in self.state.saved_p]

    def _p_steps(self, p: int) -> int:
        return max(1, round(p / self.started.pace.tokens_per_step))

    def _cool_to_the_end(self) -> None:
        final = self.job.max_steps
        self.schedule.cool(branch_start(final, self.sweep.train.cooldown), final)

    def after_step(self, step: int) -> bool:
        """At a branch point, cool a copy of the run down to its checkpoint p and save it (then
        go back to the stable run); at the end, save the final p. True if saved."""
        pending = self._pending()
        p = self.branches.get(step)
        if p is not None and p in pending:
            self._branch(step, p)
            return True
        if step == self.job.max_steps and pending:
            for p in pending:  # the final p (and any p within the last step)
                self._save_p(p)
            return True
        return False

    def _branch(self, step: int, p: int) -> None:
        """Train steps [step, p_steps) with the LR decaying to zero, save the weights as p, and
        rewind to the stable run as it was at ``step`` (the batches are a function of the step,
        so the stable run later trains on the same tokens). A non-finite loss in the branch ends
        the job as diverged, with no p saved."""
        end = self._p_steps(p)
        snap = checkpoints.scratch_dir(self.job)
        self.training.snapshot(snap)
        self.schedule.cool(step, end)
        for s in range(step, end):
            if not math.isfinite(self.training.train_step(s)):
                self.outcome.diverged(f"non-finite training loss in the cooldown branch to p={p} at step {s + 1}")
                break
        if self.outcome.ok:
            self._save_p(p)
        self.training.rewind(snap)
        self.schedule.stable()
        self._cool_to_the_end()

    def _save_p(self, p: int) -> None:
        self.training.save_weights(self.job.p_checkpoint(p))
        self.state.saved_p.append(p)

    def should_evaluate(self, step: int) -> bool:
        return step in self.evals_at

    def eval_divergence(self, step: int, loss: float) -> str | None:
        """An eval loss far above the first (a run over repeated data that over-fits instead
        shows a falling training loss, which the runner checks)."""
        return eval_loss_divergence(self.state, step, loss, warmup=self.sweep.train.warmup_steps)

    def after_evaluation(self, step: int) -> None:
        """Nothing: its end is its budget, never an evaluation."""

    def done(self, step: int) -> bool:
        return step >= self.job.max_steps

    def conclude(self) -> None:
        """Nothing: a pre-training run that reached its budget is ``ok``."""


class EarlyStopped(Strategy):
    """Epochs over exactly its D_F (or D) tokens at the stable rate until patience (or the epoch
    cap) ends the stable phase, then a cooldown of ``train.cooldown`` of the steps so far; its
    score is its best evaluation."""

    def __init__(self, started: Started, outcome: Outcome):
        super().__init__(started, outcome)
        pace, ev = started.pace, self.sweep.eval
        self.patience = patience_steps(
            steps_per_epoch=pace.steps_per_epoch,
            patience_epochs=ev.patience_epochs,
            patience_tokens=ev.patience_tokens,
            tokens_per_step=pace.tokens_per_step,
        )
        self.stable_cap = stable_cap_steps(
            steps_per_epoch=pace.steps_per_epoch, max_epochs=self.sweep.train.max_epochs, patience=self.patience
        )
        self.min_steps = math.ceil(ev.min_epochs * pace.steps_per_epoch)
        st = self.state
        if st.cool_start is not None and st.cool_end is not None:  # a resumed run in its cooldown
            self.schedule.cool(st.cool_start, st.cool_end)

    def after_step(self, step: int) -> bool:
        """Nothing: it saves its rows only (the runner's)."""
        return False

    def should_evaluate(self, step: int) -> bool:
        return step % self.started.pace.interval == 0 or step == self.state.cool_end

    def eval_divergence(self, step: int, loss: float) -> str | None:
        """None: an eval loss that climbs while the training loss falls is over-fitting, which
        patience ends and the best evaluation scores (the runner checks the training loss)."""
        return None

    def after_evaluation(self, step: int) -> None:
        """Start the cooldown once the best evaluation improved by less than ``eval.min_delta``
        over the last patience window (it passed its over-fitting minimum, or a model too small
        to memorise its data reached its plateau), or the stable phase hit the epoch cap."""
        st = self.state
        if st.cool_start is not None:
            return
        st.best_history.append((step, st.best_loss))
        then = [b for s, b in st.best_history if s <= step - self.patience]
        if then:
            st.best_history = st.best_history[len(then) - 1 :]  # keep what a later check may need
        settled = bool(then) and then[-1] - st.best_loss < self.sweep.eval.min_delta * then[-1]
        if step >= self.min_steps and settled:
            st.stable_end = "patience"
        elif step >= self.stable_cap:
            st.stable_end = "max_epochs"
        else:
            return
        st.cool_start, st.cool_end = step, step + cooldown_steps(step, self.sweep.train.cooldown)
        self.schedule.cool(st.cool_start, st.cool_end)

    def done(self, step: int) -> bool:
        return self.state.cool_end is not None and step >= self.state.cool_end

    def conclude(self) -> None:
        """A run whose stable phase reached the epoch cap was still improving: ``unconverged``."""
        st = self.state
        if self.outcome.ok and st.stable_end == "max_epochs":
            self.outcome.status = "unconverged"
            self.outcome.reason = (
                f"still improving when its stable phase reached train.max_epochs = "
                f"{self.sweep.train.max_epochs:g} (best evaluation at epoch "
                f"{st.best_step / self.started.pace.steps_per_epoch:.1f})"
            )


STRATEGIES: dict[str, type[Strategy]] = {"pretrain": Pretraining, "finetune": EarlyStopped, "scratch": EarlyStopped}


def strategy_for(started: Started, outcome: Outcome) -> Strategy:
    """The strategy of the started job's kind."""
    return STRATEGIES[started.job.kind](started, outcome)
