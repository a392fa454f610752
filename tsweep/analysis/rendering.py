"""The transfer report as text for a terminal: ``tsweep gaps``, ``tsweep report``'s summary.

Reads the typed records of ``tsweep.analysis.records`` and computes nothing: every number and
every reason it prints is in the report already. A number that is not identified is printed as
"not identified", never as a number on a bound, and the reason is listed below the table.

It also holds the one way tsweep writes a count and a model size, which the table, the report
page and every figure share (a reader matches "mini (N=150k)" and "p = 4M" across all three):
:func:`count` (three significant digits with k, M, B, T: ``16k``, ``12.8k``, ``4M``) and
:func:`size_label` (``mini (N=150k)``).
"""

from __future__ import annotations

import math

from tsweep.analysis.records import Estimate, SourceTransfer, TransferReport

# Decimal prefixes for counts of tokens and parameters, as papers write them (Hoffmann et al. 2022:
# "70B parameters", "1.4T tokens"); B, not G, for billions.
_COUNT_UNITS = (("T", 1e12), ("B", 1e9), ("M", 1e6), ("k", 1e3))


def count(x: float) -> str:
    """A token or parameter count, three significant digits and a prefix: ``16000 -> 16k``,
    ``12768 -> 12.8k``, ``4e6 -> 4M``, ``950 -> 950``; not finite -> ``-``."""
    if not math.isfinite(x):
        return "-"
    for unit, div in _COUNT_UNITS:
        if abs(x) >= div * 0.9995:  # 999.6k rounds to 1M at three digits, not to "1e+03k"
            return f"{x / div:.3g}{unit}"
    return f"{x:.3g}"


def size_label(size: str, n_params: int | float) -> str:
    """A model size as every output names it: ``mini (N=150k)``."""
    return f"{size} (N={count(n_params)})"


def fmt(e: Estimate | None) -> str:
    """An estimate as ``value [lo, hi]`` (3 significant digits), or "not identified"."""
    if e is not None and e.value is None and e.upper is not None:
        return f"< {e.upper:.3g} (95%)"
    if e is None or e.value is None:
        return "not identified"
    s = f"{e.value:.3g}"
    if e.ci95 is not None:
        s += f" [{e.ci95[0]:.3g}, {e.ci95[1]:.3g}]"
    return s


def format_table(report: TransferReport) -> str:
    """The gap table, readable in a terminal, with every 'not identified' explained below it."""
    left = ", ".join(f"{v} {k}" for k, v in report.left_out.items()) or "none"
    noise = f"{100 * report.noise:.2g}%" if report.noise is not None else "not measured yet"
    lines = [
        f"Transfer report: sweep {report.sweep or '?'}; {report.n_used} of {report.n_rows} summary rows in fits "
        f"(left out: {left}); bootstrap {report.bootstrap}; loss noise {noise}"
    ]
    lines += _source_table(report)
    lines.append("runs = ok fine-tunes / runs behind the D_T law; G from the largest size where it is identified")
    for cmp in report.comparisons:
        if cmp.d_G.reason is not None and cmp.d_G.reason.startswith(("one-sided", "both gaps one-sided")):
            lines.append(f"G({cmp.a}) - G({cmp.b}) at {cmp.size}: {cmp.d_G.reason}")
            continue
        if not cmp.d_G.identified and cmp.d_G_loss.identified:
            lines.append(
                f"G({cmp.a}) - G({cmp.b}) at {cmp.size}, in loss at the largest f: {fmt(cmp.d_G_loss)} "
                f"({cmp.verdict}; G itself: {cmp.d_G.reason})"
            )
            continue
        lines.append(f"G({cmp.a}) - G({cmp.b}) at {cmp.size}: {fmt(cmp.d_G)} ({cmp.verdict})")
    plateaus = [f"{cv.size} {fmt(cv.plateau)}" for cv in report.curves]
    if plateaus:
        lines.append("From-scratch plateaus L(N, inf): " + "; ".join(plateaus))
    if report.scratch is not None:
        ps = ", ".join(f"{k}={fmt(Estimate.of(report.scratch, k))}" for k in report.scratch.params)
        lines.append(f"From-scratch law ({report.scratch.law}, {report.scratch.n_points} runs): {ps}")
    notes = [note for s in report.sources for note in _missing_notes(s)]
    notes += [f"- {w}" for w in report.warnings]
    for s in report.sources:
        notes += [f"- {s.source}: {w}" for w in s.warnings]
    if notes:
        lines.append("Notes:")
        lines += list(dict.fromkeys(notes))
    return "\n".join(lines)


def gap_table_header(report: TransferReport) -> list[str]:
    """The columns of the per-source gap table, the terminal's and the page's."""
    f_ref = next((g.f_ref for g in report.gap_fits), None)
    return [
        "source",
        "runs",
        "G [95% CI] (size)",
        f"G f^-beta at f={count(f_ref)}" if f_ref else "G f^-beta",
        "k",
        "alpha",
        "beta",
        "multiplier @ D_F, N",
    ]


def _source_table(report: TransferReport) -> list[str]:
    """One row per source under a header, columns padded to their widest cell."""
    header = gap_table_header(report)
    rows = [header]
    for s in report.sources:
        mult = fmt(s.multiplier)
        if s.multiplier.identified and s.multiplier_at:
            mult += f"x @ D_F={count(s.multiplier_at['D_F'])}, N={count(s.multiplier_at['N'])}"
        rows.append(
            [
                s.source,
                f"{s.n_runs}/{s.n_dt_runs}",
                fmt(s.G) + (f" ({s.gap_size})" if s.gap_size else ""),
                fmt(s.G_loss),
                fmt(s.k),
                fmt(s.alpha),
                fmt(s.beta),
                mult,
            ]
        )
    widths = [max(len(r[i]) for r in rows) for i in range(len(header))]
    return ["  ".join(cell.ljust(w) for cell, w in zip(r, widths, strict=True)).rstrip() for r in rows]


def _missing_notes(s: SourceTransfer) -> list[str]:
    """Why a source's G, k and multiplier are not identified, one note each."""
    notes = []
    for name, e in (("G", s.G), ("k", s.k), ("multiplier", s.multiplier)):
        if e.upper is not None:
            notes.append(f"- {s.source}: {name} < {e.upper:.3g} only: {e.reason}")
        elif not e.identified:
            reason = e.reason or "no reason recorded"
            why = reason if reason.startswith(f"{name} not identified") else f"{name} not identified: {reason}"
            notes.append(f"- {s.source}: {why}")
    return notes
