"""The identification rule: when a fitted number may be printed, and with what interval.

A number printed with an interval is a promise that the design and the data pin it down. Every
number tsweep reports (a law's parameter, a plateau, D(N), a multiplier, a gap G, G in loss
units, a difference between sources) passes through :func:`judge`, and is either an
:class:`Estimate` with a value and a 95% interval, or ``value = None`` with the reason. The rule,
in order (each a tsweep choice, with its reason):

1. *The design spans it*: e.g. a size exponent needs >= 3 distinct sizes (``Law.spans``); a
   parameter the design cannot separate is not identified whatever the optimiser returns.
2. *The point estimate is finite and off its bounds*: an estimate on a bound is the optimiser
   stopping at the edge of the box, not a measurement (the demo once printed G = 2e-9, the
   floor of G = e^g, with a tight interval around it).
3. *The bootstrap converged*: at least ``MIN_CONVERGED`` (95%) of the resamples were refitted to
   a converged optimum; failed resamples are counted, never kept at their last iterate.
4. *The interval is bounded*: no more than the interval's own tail (2.5%) of resamples sit on
   either bound, so neither end is the box's edge.
5. *The interval says something*: a positive scale (G, A, E, k, B, L_inf, D(N), a multiplier)
   has both ends positive and within ``MAX_SCALE_RATIO`` (100x) of each other; an exponent has
   an absolute width of at most ``MAX_EXPONENT_WIDTH`` (0.5: over one decade of its input the
   term's slope is then uncertain by at most 10^0.5 ~ 3x, the same order as the 100x rule over
   the two decades tsweep's axes typically span); a signed difference only needs rules 1-4
   (the caller passes the identification of its parts as the design reason).

Intervals are percentile intervals of the bootstrap distribution (Efron & Tibshirani 1993,
ch. 13), as Besiroglu et al. 2024 (arXiv 2404.10102) report for the Chinchilla replication.
Without a bootstrap (``samples is None``) only rules 1-2 apply and the value has no interval.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from tsweep.core.jsonio import num

Array = np.ndarray

CI_LEVEL = 0.95
TAIL = (1 - CI_LEVEL) / 2
MIN_CONVERGED = 0.95
MAX_SCALE_RATIO = 100.0
MAX_EXPONENT_WIDTH = 0.5
KINDS = ("scale", "exponent", "difference")


@dataclass(frozen=True)
class Estimate:
    """A reported number: ``value`` with its 95% interval, or ``value None`` and the ``reason``."""

    value: float | None
    ci95: tuple[float, float] | None = None
    reason: str | None = None

    @property
    def identified(self) -> bool:
        return self.value is not None

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"value": num(self.value) if self.value is not None else None,
                               "ci95": None if self.ci95 is None else [num(self.ci95[0]), num(self.ci95[1])]}
        if self.reason is not None:
            out["reason"] = self.reason
        return out

    @classmethod
    def from_json(cls, d: Mapping[str, Any] | None) -> "Estimate | None":
        if d is None:
            return None
        ci = d.get("ci95")
        return cls(
            value=d.get("value"),
            ci95=None if ci is None or None in ci else (float(ci[0]), float(ci[1])),
            reason=d.get("reason"),
        )

    def format(self) -> str:
        """``1.23 [1.01, 1.52]``, or ``- (reason)``."""
        if self.value is None:
            return f"- ({self.reason})" if self.reason else "-"
        s = f"{self.value:.3g}"
        return s + (f" [{self.ci95[0]:.3g}, {self.ci95[1]:.3g}]" if self.ci95 else "")


def missing(reason: str) -> Estimate:
    """A number that could not be estimated at all."""
    return Estimate(None, None, reason)


def percentile_interval(samples: Array) -> tuple[float, float] | None:
    good = samples[np.isfinite(samples)]
    if good.size < 2:
        return None
    lo, hi = np.percentile(good, [100 * TAIL, 100 * (1 - TAIL)])
    return float(lo), float(hi)


def judge(
    value: float,
    samples: Array | None,
    kind: str,
    *,
    on_bound: bool = False,
    bound_share: tuple[float, float] = (0.0, 0.0),
    design: str | None = None,
) -> Estimate:
    """Apply the rule of the module docstring to one number.

    ``samples``: its bootstrap values (NaN where a resample failed), or None without a bootstrap.
    ``bound_share``: the fraction of resamples on the lower and on the upper bound.
    ``design``: why the design cannot identify it (rule 1), or None.
    """
    if kind not in KINDS:
        raise ValueError(f"kind: one of {KINDS}, got {kind!r}")
    if design:
        return missing(f"not identified: {design}")
    if value is None or not math.isfinite(value):
        return missing("not identified: no finite estimate")
    if on_bound:
        return missing("not identified: the estimate sits on its bound")
    if samples is None:
        return Estimate(float(value))
    samples = np.asarray(samples, dtype=float)
    ok = np.isfinite(samples)
    share = float(ok.mean()) if samples.size else 0.0
    if share < MIN_CONVERGED:
        return missing(f"not identified: the bootstrap converged for {100 * share:.0f}% of {samples.size} "
                       f"resamples (needs >= {100 * MIN_CONVERGED:.0f}%)")
    ci = percentile_interval(samples)
    if ci is None:
        return missing("not identified: too few bootstrap resamples for an interval")
    lo, hi = ci
    shown = f"95% interval [{lo:.3g}, {hi:.3g}]"
    if max(bound_share) > TAIL:
        return missing(f"not identified: {shown} is cut by a bound of the fit "
                       f"({100 * max(bound_share):.0f}% of resamples on it)")
    if kind == "scale" and not (lo > 0 and hi <= MAX_SCALE_RATIO * lo):
        return missing(f"not identified: {shown} spans more than {MAX_SCALE_RATIO:g}x")
    if kind == "exponent" and hi - lo > MAX_EXPONENT_WIDTH:
        return missing(f"not identified: {shown} is wider than {MAX_EXPONENT_WIDTH:g}")
    return Estimate(float(value), ci)
