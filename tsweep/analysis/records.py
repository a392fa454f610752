"""The transfer report's typed records, and their JSON (``fits/latest.json``, ``tsweep gaps``).

Every record is a frozen, keyword-only dataclass deriving from :class:`Record`, whose
``to_json`` / ``from_json`` are the only serialisation: a field is written under its own name,
in field order, by its annotated type (a float through :func:`tsweep.core.jsonio.num`, so a
non-finite one is ``null``; a tuple as a list; a nested record or ``FitResult`` by its own
``to_json``), and read back by keyword the same way (``null`` as NaN for a plain float). What a
file may lack, a field's metadata says (:func:`absent`): the key of a field without a value for
it is required. Reports written by earlier versions of tsweep load unchanged; a file that breaks
the shape raises (``KeyError``, ``TypeError``, ``ValueError``), and its reader refits instead.

What the numbers mean, and how they are estimated, is ``tsweep.analysis.transfer``'s docstring.
"""

from __future__ import annotations

import dataclasses
import math
import types
import typing
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, ClassVar, TypeVar

from tsweep.analysis import fitter
from tsweep.analysis.fitter import FitResult
from tsweep.analysis.laws import Array, BarnettJoint
from tsweep.core.jsonio import num

if TYPE_CHECKING:
    import pandas as pd

# The per-source quantities a report leads with, in the gap table, the history and the gauges.
HEADLINE_KEYS = ("G", "G_loss", "gap_size", "k", "alpha", "beta", "multiplier", "multiplier_at", "n_runs", "n_dt_runs")

R = TypeVar("R", bound="Record")


# ------------------------------------------------------------------ JSON, written once
def absent(json_value: Any) -> dict[str, Any]:
    """Field metadata: a file without this field's key reads as if it held ``json_value``."""
    return {"absent": json_value}


# Field metadata: the key is left out of the JSON when the value is None.
OMIT_NONE: Mapping[str, Any] = {"omit_none": True}


class Record:
    """The JSON of a frozen dataclass, by field name and annotated type (module docstring)."""

    __dataclass_fields__: ClassVar[dict[str, dataclasses.Field[Any]]]

    def to_json(self) -> dict[str, Any]:
        hints = _hints(type(self))
        out: dict[str, Any] = {}
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            if value is None and f.metadata.get("omit_none"):
                continue
            out[f.name] = _encode(value, hints[f.name])
        return out

    @classmethod
    def from_json(cls: type[R], d: Mapping[str, Any]) -> R:
        if not isinstance(d, Mapping):
            raise TypeError(f"{cls.__name__}: expected a JSON object, got {type(d).__name__}")
        hints = _hints(cls)
        kwargs: dict[str, Any] = {}
        for f in dataclasses.fields(cls):
            if f.name in d:
                raw = d[f.name]
            elif "absent" in f.metadata:
                raw = f.metadata["absent"]
            elif f.default is not dataclasses.MISSING or f.default_factory is not dataclasses.MISSING:
                continue
            elif _optional(hints[f.name]) is not None:
                raw = None
            else:
                raise KeyError(f"{cls.__name__}: no {f.name!r} in {sorted(d)}")
            kwargs[f.name] = _decode(raw, hints[f.name])
        return cls(**kwargs)


_HINTS: dict[type, dict[str, Any]] = {}


def _hints(cls: type) -> dict[str, Any]:
    """The field types of a record class (its annotations, resolved once)."""
    if cls not in _HINTS:
        _HINTS[cls] = typing.get_type_hints(cls)
    return _HINTS[cls]


def _optional(tp: Any) -> Any:
    """T of ``T | None``; None for any other type."""
    if typing.get_origin(tp) in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(tp) if a is not type(None)]
        if len(args) == 1 and len(typing.get_args(tp)) == 2:
            return args[0]
    return None


def _items(tp: Any, n: int) -> list[Any]:
    """The element types of a ``tuple[X, ...]`` or ``tuple[X, Y]`` annotation, for n elements."""
    args = typing.get_args(tp)
    return [args[0]] * n if len(args) == 2 and args[1] is Ellipsis else list(args)


def _encode(value: Any, tp: Any) -> Any:
    if value is None:
        return None
    inner = _optional(tp)
    if inner is not None:
        return _encode(value, inner)
    if tp is float:
        return num(value)
    if typing.get_origin(tp) is tuple:
        return [_encode(v, t) for v, t in zip(value, _items(tp, len(value)), strict=True)]
    if typing.get_origin(tp) is dict:
        return dict(value)
    if isinstance(value, (Record, FitResult)):
        return value.to_json()
    return value


def _decode(raw: Any, tp: Any) -> Any:
    inner = _optional(tp)
    if inner is not None:
        # null, or an interval with an unknown end, is no value at all
        if raw is None or (typing.get_origin(inner) is tuple and None in raw):
            return None
        return _decode(raw, inner)
    if isinstance(tp, type) and issubclass(tp, (Record, FitResult)):
        return tp.from_json(raw)
    if tp is float:
        return math.nan if raw is None else float(raw)
    if tp is int:
        return int(raw)
    if tp is bool:
        return bool(raw)
    if typing.get_origin(tp) is tuple:
        return tuple(_decode(v, t) for v, t in zip(raw, _items(tp, len(raw)), strict=True))
    if typing.get_origin(tp) is dict:
        return dict(raw)
    return raw


# ------------------------------------------------------------------ the records
@dataclass(frozen=True, kw_only=True)
class Estimate(Record):
    """A reported number: identified (a value and its 95% interval) or not (None and why).

    A quantity whose estimate sits on its lower bound (a transfer gap of zero: the source is as
    good as target data) has no point value and no two-sided interval, but it has a one-sided
    95% ``upper`` bound: the report prints "< u" and keeps the reason."""

    value: float | None
    ci95: tuple[float, float] | None = field(default=None, metadata=OMIT_NONE)
    reason: str | None = field(default=None, metadata=OMIT_NONE)
    upper: float | None = field(default=None, metadata=OMIT_NONE)

    @property
    def identified(self) -> bool:
        return self.value is not None

    @classmethod
    def missing(cls, reason: str) -> Estimate:
        return cls(value=None, reason=reason)

    @classmethod
    def of(cls, fit: FitResult | None, name: str, why_missing: str = "not fitted") -> Estimate:
        """Parameter ``name`` of ``fit``, or None with the reason it is not identified."""
        if fit is None:
            return cls.missing(why_missing)
        if not fit.identified(name):
            return cls.missing(f"{name} not identified: {fit.not_identified[name]}")
        return cls(value=float(fit.params[name]), ci95=None if fit.ci95 is None else fit.ci95[name])

    @classmethod
    def from_samples(
        cls, value: float, samples: Array | None, *, positive: bool = True, reason: str | None = None
    ) -> Estimate:
        """A derived quantity with its percentile interval from bootstrap samples; not identified
        when ``reason`` is given or (``positive``) the interval breaks the fitter's scale rule."""
        if reason is not None:
            return cls.missing(reason)
        ci = fitter.percentile_ci(samples, center=float(value))
        if ci is None:
            return cls.missing("no bootstrap interval")
        if not ci[0] <= value <= ci[1]:
            return cls.missing(fitter.outside_reason(float(value), *ci))
        too_wide = fitter.scale_reason(*ci) if positive else None
        if too_wide is not None:
            return cls.missing(too_wide)
        return cls(value=float(value), ci95=ci)

    @classmethod
    def from_json(cls, d: Mapping[str, Any] | None) -> Estimate:
        """An absent or empty estimate reads as not reported."""
        return super().from_json(d) if d else cls.missing("not reported")


@dataclass(frozen=True, kw_only=True)
class ScratchCurve(Record):
    """The measured from-scratch curve of one model size, and its plateau."""

    size: str
    n_params: int
    d: tuple[float, ...]
    loss: tuple[float, ...]
    monotone: bool  # the loss never rises with D
    plateau: Estimate  # L(N, infinity)
    d_n: Estimate  # D(N): the data within 1% of the plateau
    d_n_low: float | None  # the lower end of D(N)'s 95% interval (the low-data rule's yardstick;
    # the point estimate when no bootstrap ran)
    fit: FitResult | None


@dataclass(frozen=True, kw_only=True)
class RunTransfer(Record):
    """One fine-tune from a final pre-training checkpoint, read against the scratch curve."""

    job_id: str
    size: str
    n_params: int
    d_f: float
    pretrain_tokens: int
    loss: float
    d_e: float  # NaN when there is none (beyond_plateau, no_scratch_curve)
    d_t: float
    multiplier: float
    basis: str  # interpolated | extrapolated | none
    flag: str  # one of tsweep.analysis.transfer.FLAGS


# The reason that withdraws a size's gaps when the gap law's floor E and the from-scratch plateau
# of that size disagree (tsweep.analysis.transfer._floors_agree).
FLOOR_MISFIT = "floors disagree"


@dataclass(frozen=True, kw_only=True)
class GapFit(Record):
    """The joint gap law of one model size over the sources that have enough fine-tunes there."""

    size: str
    n_params: int
    sources: tuple[str, ...]
    f_ref: float
    fit: FitResult

    def source_params(self, source: str) -> dict[str, float]:
        law = BarnettJoint.of(len(self.sources))
        return law.source_params(self.fit.params, self.sources.index(source))

    def floor_doubt(self, source: str) -> str | None:
        """Why ``source``'s G is withdrawn when the only reason is that this size's gap law floor
        disagrees with its from-scratch plateau (:data:`FLOOR_MISFIT`): the law still describes
        the runs where they were measured, but not where its floor decides. None otherwise."""
        why = self.fit.not_identified.get(f"G_{self.sources.index(source)}", "")
        return why if why.startswith(FLOOR_MISFIT) else None


@dataclass(frozen=True, kw_only=True)
class SourceTransfer(Record):
    source: str
    n_runs: int  # ok fine-tunes of this source, every checkpoint
    n_dt_runs: int  # runs behind the D_T law
    G: Estimate = field(metadata=absent(None))
    G_loss: Estimate = field(metadata=absent(None))  # G f_ref^-beta: the loss no pre-training removes at f_ref
    gap_size: str | None  # the size whose joint gap fit gives the headline G
    k: Estimate = field(metadata=absent(None))
    alpha: Estimate = field(metadata=absent(None))
    beta: Estimate = field(metadata=absent(None))
    multiplier: Estimate = field(metadata=absent(None))
    multiplier_at: dict[str, Any] | None  # {"D_F", "N", "basis": "law" | "measured"}
    hernandez: FitResult | None
    runs: tuple[RunTransfer, ...] = field(metadata=absent([]))
    warnings: tuple[str, ...] = ()

    def headline(self) -> dict[str, Any]:
        """The per-source numbers of HEADLINE_KEYS, as JSON values."""
        return {k: v for k, v in self.to_json().items() if k in HEADLINE_KEYS}

    def to_pandas(self) -> pd.DataFrame:
        """This source's runs as a tidy table, one row per fine-tune from a final checkpoint:
        :data:`RUN_COLUMNS` (``N`` parameters, ``p`` pre-training tokens, ``D_F`` fine-tune
        tokens, ``loss``, ``D_E`` the from-scratch data for that loss, ``D_T = D_E - D_F``,
        ``multiplier = D_E / D_F``, ``flag``: ``ok`` when the run is in the D_T law)."""
        import pandas as pd

        table = pd.DataFrame([run_row(self.source, r) for r in self.runs], columns=list(RUN_COLUMNS))
        return table.sort_values(["N", "D_F"], kind="stable").reset_index(drop=True)


@dataclass(frozen=True, kw_only=True)
class Comparison(Record):
    """Source ``a`` against source ``b`` at one size: the difference of their gaps."""

    a: str
    b: str
    size: str
    d_G: Estimate  # G_a - G_b
    d_G_loss: Estimate  # in loss units at f_ref

    @property
    def resolved(self) -> bool:
        """The interval of the difference excludes zero (of G, or where G is withdrawn, of the
        difference in loss at f_ref, which needs no floor): one source transfers better."""
        ci = self.d_G.ci95 if self.d_G.identified else self.d_G_loss.ci95
        return ci is not None and (ci[0] > 0 or ci[1] < 0)

    @property
    def verdict(self) -> str:
        """ "apart", "not resolved", or "not identified" when neither difference has an interval."""
        if not (self.d_G.identified or self.d_G_loss.identified):
            return "not identified"
        return "apart" if self.resolved else "not resolved"


@dataclass(frozen=True, kw_only=True)
class TransferReport(Record):
    """The whole report; its JSON is ``fits/latest.json``, and every reader goes through
    :meth:`from_json`. Every key may be absent from a file (an early or partial report)."""

    sweep: str | None
    n_rows: int = field(metadata=absent(0))
    n_used: int = field(metadata=absent(0))
    left_out: dict[str, int] = field(metadata=absent({}))
    bootstrap: int = field(metadata=absent(0))
    seed: int = field(metadata=absent(0))
    noise: float | None  # the loss noise in log space (transfer's docstring); None: no gap fit yet
    # how that noise changes with a run's target tokens f: sd(f) = noise (f / f0)^noise_slope, f0
    # the geometric mean f of the gap fits (transfer's docstring); None: not measured
    noise_slope: float | None = None
    n_jobs_finished: int | None = None
    timestamp: str | None = None
    scratch: FitResult | None
    curves: tuple[ScratchCurve, ...] = field(metadata=absent([]))
    gap_fits: tuple[GapFit, ...] = field(metadata=absent([]))
    sources: tuple[SourceTransfer, ...] = field(metadata=absent([]))
    comparisons: tuple[Comparison, ...] = field(metadata=absent([]))
    warnings: tuple[str, ...] = ()

    def source(self, name: str) -> SourceTransfer:
        return next(s for s in self.sources if s.source == name)

    def gap_fit(self, size: str) -> GapFit | None:
        return next((g for g in self.gap_fits if g.size == size), None)

    def warm_starts(self) -> dict[str, FitResult]:
        """Every fit by key, to join the starts of the next report's fits."""
        out: dict[str, FitResult] = {}
        if self.scratch is not None:
            out["scratch"] = self.scratch
        for c in self.curves:
            if c.fit is not None:
                out[f"plateau/{c.size}"] = c.fit
        for g in self.gap_fits:
            out[f"gap/{g.size}"] = g.fit
        for s in self.sources:
            if s.hernandez is not None:
                out[f"hernandez/{s.source}"] = s.hernandez
        return out

    def format_table(self) -> str:
        """The gap table for a terminal (``tsweep.analysis.rendering``)."""
        from tsweep.analysis.rendering import format_table  # rendering reads records: import at call time

        return format_table(self)

    def to_pandas(self) -> pd.DataFrame:
        """The gap table as a DataFrame, one row per source: ``n_runs``, ``n_dt_runs``,
        ``gap_size``, then for each of :data:`ESTIMATES` its value, 95% interval ends and the
        reason when it is not identified (``G``, ``G_lo``, ``G_hi``, ``G_reason``; a one-sided
        bound in ``G_upper``), and where the multiplier is read (``multiplier_D_F``,
        ``multiplier_N``)."""
        import pandas as pd

        rows = []
        for s in self.sources:
            row: dict[str, Any] = {"source": s.source, "n_runs": s.n_runs, "n_dt_runs": s.n_dt_runs}
            row["gap_size"] = s.gap_size
            for name in ESTIMATES:
                row.update(estimate_columns(name, getattr(s, name)))
            at = s.multiplier_at or {}
            row["multiplier_D_F"], row["multiplier_N"] = at.get("D_F"), at.get("N")
            rows.append(row)
        columns = ["source", "n_runs", "n_dt_runs", "gap_size"]
        columns += [c for name in ESTIMATES for c in estimate_columns(name, Estimate.missing("")).keys()]
        return pd.DataFrame(rows, columns=[*columns, "multiplier_D_F", "multiplier_N"])

    def transfer_table(self) -> pd.DataFrame:
        """Every source's runs in one tidy table (:meth:`SourceTransfer.to_pandas`, stacked)."""
        import pandas as pd

        parts = [s.to_pandas() for s in self.sources]
        if not parts:
            return pd.DataFrame(columns=list(RUN_COLUMNS))
        return pd.concat(parts, ignore_index=True)


# ------------------------------------------------------------------ tables for pandas
# The per-source estimates of the gap table, in its column order.
ESTIMATES = ("G", "G_loss", "k", "alpha", "beta", "multiplier")
# The tidy per-run transfer table's columns (SourceTransfer.to_pandas).
RUN_COLUMNS = (
    "source", "size", "N", "p", "D_F", "loss", "D_E", "D_T", "multiplier", "basis", "flag", "job_id"
)  # fmt: skip


def run_row(source: str, r: RunTransfer) -> dict[str, Any]:
    """One row of the per-run transfer table (NaN where a run has no D_E)."""
    return {
        "source": source,
        "size": r.size,
        "N": r.n_params,
        "p": r.pretrain_tokens,
        "D_F": r.d_f,
        "loss": r.loss,
        "D_E": r.d_e,
        "D_T": r.d_t,
        "multiplier": r.multiplier,
        "basis": r.basis,
        "flag": r.flag,
        "job_id": r.job_id,
    }


def estimate_columns(name: str, e: Estimate) -> dict[str, Any]:
    """An estimate as flat columns: value, interval ends, one-sided bound, reason (None where absent)."""
    lo, hi = e.ci95 if e.ci95 is not None else (None, None)
    return {name: e.value, f"{name}_lo": lo, f"{name}_hi": hi, f"{name}_upper": e.upper, f"{name}_reason": e.reason}
