"""``report.html``: the transfer report as a reader wants it, one self-contained file.

What a researcher reads first is the answer, so the page leads with it: per source, what its
pre-training is worth in target data (the effective data multiplier, Hernandez et al. 2021) and
how much loss no pre-training removes (the transfer gap G, Barnett 2024), each with its 95%
interval, which source transfers better, and what the next budget buys (``tsweep advise``'s 2x
comparison). Then the tables behind it as real HTML tables (every number with its interval, or
"not identified" and why), a glossary of every term and mark the tables use, the advice, the
figures with captions that say what each shows and how to read it, a per-run table (every
summary row with its D_E, D_T and multiplier), the compute the sweep spent and the
configuration it ran with.

The page computes nothing: every number is in the report, the summary table, or the advice
(``tsweep.analysis.advice``) already, and counts and sizes are written as everywhere else
(``tsweep.analysis.rendering.count`` and ``size_label``). Figures are embedded as SVG (vector: the
page prints sharp) and nothing is linked, so the file can be mailed or attached alone; a print
stylesheet keeps figures and table rows whole across pages.
"""

from __future__ import annotations

import base64
import html
import math
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import pyarrow as pa

from tsweep.analysis.advice import advice as advice_entries
from tsweep.analysis.advice import format_advice
from tsweep.analysis.design import design_line
from tsweep.analysis.records import Comparison, Estimate, SourceTransfer, TransferReport
from tsweep.analysis.rendering import count, fmt, gap_table_header, size_label

# What each figure shows and how to read it, by its name in tsweep.analysis.plots.NAMES.
CAPTIONS: Mapping[str, tuple[str, str]] = {
    "loss_vs_finetune": (
        "Fine-tuned loss against target data",
        "Per source, the best held-out loss of each fine-tune from the final pre-training checkpoint "
        "(dots) against its fine-tune tokens D_F, one colour per model size, with the gap law fitted to "
        "it (solid, with its 95% band). Crosses on a dotted line are the from-scratch runs of the same "
        "size on D target tokens: the horizontal distance from a dot to the scratch curve at the same "
        "loss is the data pre-training transferred.",
    ),
    "scratch_curves": (
        "From-scratch curves",
        "The best loss of a model trained on D target tokens only, per size (crosses), with the plateau "
        "law L = L_inf + B D^-beta: solid over the measured D, dashed where extrapolated, its 95% band "
        "shaded. The dash-dot line is the plateau L(N, inf); the dotted line D(N), where the curve comes "
        "within 1% of it. A fine-tune counts as low-data, and enters the D_T law, when D_F <= 0.1 D(N).",
    ),
    "dt_vs_df": (
        "Effective data transferred",
        "Per source, D_T = D_E - D_F for each fine-tune (filled: in the D_T law; hollow: left out, the "
        "flag named in the legend) against D_F, log-log, with the law D_T = k D_F^alpha N^beta and its "
        "band over the measured D_F. The title gives the exponents the design identifies; with two "
        "model sizes the N exponent beta (and k with it) cannot be told from the noise.",
    ),
    "gaps": (
        "Transfer gaps",
        "The transfer gap G per source and size with its 95% interval (left), and in loss units at the "
        "largest fine-tune budget, G f^-beta (right): the loss that no amount of pre-training on that "
        "source removes there. Lower is better; intervals that do not overlap are apart. A gap the "
        "design cannot identify is listed under the panels, not drawn.",
    ),
    "loss_vs_p": (
        "Fine-tuned loss against pre-training",
        "Per source, at the size its G comes from, the fine-tuned loss against the pre-training tokens "
        "p behind its checkpoint, one colour per D_F. The gap law is solid over the measured p and "
        "dashed in the shaded band beyond it (an extrapolation); the dotted line is its floor "
        "G f^-beta + E, which unlimited pre-training approaches. Where the curve is flat, more "
        "pre-training buys little: the rest of the loss is the transfer gap.",
    ),
    "gap_history": (
        "How the estimates settled",
        "Each source's G (left) and effective data multiplier (right) with their 95% intervals after "
        "every refit of the analysis actor, against the jobs finished then. An estimate that stopped "
        "moving while jobs kept finishing is settled; one missing at a point was not identified then.",
    ),
    "learning_curves": (
        "Learning curves",
        "Every job's held-out loss against the tokens it had seen, one thin line per job, per kind of "
        "job, coloured by size (pre-training: by source and size). The dot is the job's best "
        "evaluation: its score in every table above. A fine-tune's curve that rises after its dot is "
        "over-fitting, which early stopping ended.",
    ),
}

# The terms and marks the tables use, in the order a reader meets them.
GLOSSARY: tuple[tuple[str, str], ...] = (
    (
        "multiplier",
        "the effective data multiplier (D_F + D_T) / D_F = D_E / D_F: how many target tokens one "
        "fine-tune token is worth after pre-training on the source, read inside the design at the "
        "largest model size N and its smallest D_F (given as @ D_F, N).",
    ),
    ("D_F", "target (fine-tune) tokens of a run."),
    (
        "D_E",
        "the target tokens a from-scratch model of the same size needs to reach the run's loss, "
        "interpolated on the measured from-scratch curve.",
    ),
    ("D_T", "effective data transferred, D_E - D_F (Hernandez et al. 2021)."),
    (
        "G",
        "the transfer gap of L(p, f) = (A p^-alpha + G) f^-beta + E (Barnett 2024), fitted per size "
        "jointly over the sources with beta and E shared: lower transfers better. (size): the size it "
        "comes from, the largest where it is identified.",
    ),
    (
        "G f^-beta at f",
        "G in nats at the largest fine-tune budget f: the loss no amount of pre-training removes there.",
    ),
    (
        "k, alpha, beta",
        "the D_T law D_T = k D_F^alpha N^beta per source; alpha is its D_F exponent, beta its N "
        "exponent (which needs three model sizes), k its value at D_F = N = 1.",
    ),
    ("runs a/b", "a: the source's ok fine-tunes (every checkpoint); b: the runs behind its D_T law."),
    ("[lo, hi]", "the 95% interval from the bootstrap refits (parametric; the count is in the heading)."),
    ("< u (95%)", "no measurable value: a one-sided bound, the 95th percentile of the bootstrap refits."),
    (
        "not identified",
        "the design cannot pin this number down (on a bound, an interval over two decades, or too few "
        "runs); the reason is listed under the table, never a number on a bound.",
    ),
    ("apart", "the 95% interval of the difference of two gaps excludes zero: one source transfers better."),
    ("not resolved", "the interval of the difference includes zero: the sweep cannot order these two sources."),
    ("p", "pre-training tokens behind the checkpoint a fine-tune starts from."),
    ("N", "non-embedding parameters of a model size."),
    ("D(N)", "the data at which the from-scratch loss is within 1% of its plateau L(N, inf)."),
    ("flag ok", "the run is in the D_T law."),
    ("flag high_data", "D_F > 0.1 D(N): outside the low-data regime where the D_T law holds."),
    ("flag extrapolated", "D_E lies beyond the measured from-scratch curve, read off its fitted law."),
    ("flag no_transfer", "D_T <= 0: pre-training did not help this run."),
    ("flag beyond_plateau", "the run's loss is below the from-scratch plateau: no finite D_E."),
    ("flag no_scratch_curve", "no from-scratch curve at this size to read D_E on."),
    ("status diverged / unconverged", "runs left out of every fit: no loss, or one still falling at the epoch cap."),
)

STYLE = """
:root{--ink:#1b1b1b;--muted:#555;--rule:#d8d8d8;--soft:#f5f5f3;--good:#0b6b3a}
*{box-sizing:border-box}
body{font:15px/1.5 system-ui,-apple-system,"Segoe UI",sans-serif;color:var(--ink);max-width:1180px;margin:2em auto;
padding:0 1.2em}
h1{font-size:1.6em;margin:.2em 0}h2{font-size:1.2em;margin:2em 0 .5em;border-bottom:1px solid var(--rule)}
.meta{color:var(--muted);font-size:.9em}
.answer{background:var(--soft);border-left:4px solid var(--good);padding:.8em 1.2em;margin:1em 0}
.answer p{margin:.4em 0}.answer strong{font-variant-numeric:tabular-nums}
.wrap{overflow-x:auto}
table{border-collapse:collapse;font-size:13px;font-variant-numeric:tabular-nums;margin:.5em 0}
th,td{border-bottom:1px solid var(--rule);padding:.3em .6em;text-align:right;vertical-align:top}
th{background:var(--soft);font-weight:600}th:first-child,td:first-child{text-align:left}
td.text,th.text{text-align:left}.ni{color:var(--muted);font-style:italic}
tr.off td{color:var(--muted)}
dl.glossary{display:grid;grid-template-columns:max-content 1fr;gap:.2em 1em;font-size:13px}
dl.glossary dt{font-weight:600}dl.glossary dd{margin:0}
figure{margin:1.5em 0}figure img{max-width:100%;height:auto;display:block}
figcaption{font-size:13px;color:var(--muted);max-width:80ch}figcaption b{color:var(--ink)}
pre{background:var(--soft);padding:.8em;font-size:12px;white-space:pre-wrap;word-break:break-word}
ul.notes{font-size:13px;color:var(--muted)}
@media print{body{max-width:none;margin:0;font-size:11pt}.wrap{overflow:visible}
figure,tr,.answer{break-inside:avoid}h2{break-after:avoid}a{color:inherit}}
"""


# ------------------------------------------------------------------ small pieces
def _e(text: object) -> str:
    return html.escape(str(text))


def _loss(x: float | None) -> str:
    return "-" if x is None or not math.isfinite(x) else f"{x:.4f}"


def _num(x: float | None, digits: int = 3) -> str:
    return "-" if x is None or not math.isfinite(x) else f"{x:.{digits}g}"


def _estimate(e: Estimate, unit: str = "", *, as_count: bool = False) -> str:
    """An estimate as a table cell: value with interval, a bound, or "not identified" (reason in
    the cell's tooltip and under the table); ``as_count``: a token count (``count``)."""
    if e.identified and as_count and e.value is not None:
        ci = f" [{count(e.ci95[0])}, {count(e.ci95[1])}]" if e.ci95 is not None else ""
        return _e(count(e.value) + ci)
    if e.identified or e.upper is not None:
        text = fmt(e)
        return _e(text.replace(" [", f"{unit} [", 1) if unit and e.identified else text)
    return f'<span class="ni" title="{_e(e.reason or "")}">not identified</span>'


def _table(header: Sequence[str], rows: Iterable[Sequence[str]], *, text_cols: int = 1, off: Iterable[int] = ()) -> str:
    """A table of already-escaped cells; the first ``text_cols`` columns left-aligned, the rows
    numbered in ``off`` greyed (left out of the fits)."""

    def cell(tag: str, i: int, v: str) -> str:
        return f'<{tag} class="text">{v}</{tag}>' if i < text_cols else f"<{tag}>{v}</{tag}>"

    grey = set(off)
    head = "".join(cell("th", i, _e(h)) for i, h in enumerate(header))
    body = "".join(
        ('<tr class="off">' if n in grey else "<tr>") + "".join(cell("td", i, v) for i, v in enumerate(row)) + "</tr>"
        for n, row in enumerate(rows)
    )
    return f'<div class="wrap"><table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table></div>'


# ------------------------------------------------------------------ the answer
def _multiplier_sentence(s: SourceTransfer, n_of: Mapping[str, int]) -> str:
    if not s.multiplier.identified:
        return f"the multiplier is not identified ({_e(s.multiplier.reason or 'no reason recorded')})"
    at = s.multiplier_at or {}
    size = next((k for k, v in n_of.items() if v == at.get("N")), None)
    where = f"D_F = {count(at.get('D_F', math.nan))}, " + (
        size_label(size, n_of[size]) if size else f"N = {count(at.get('N', math.nan))}"
    )
    return (
        f"one fine-tune token is worth <strong>{_e(fmt(s.multiplier))}</strong> target tokens of "
        f"training from scratch (the effective data multiplier at {_e(where)})"
    )


def _gap_sentence(s: SourceTransfer, f_ref: float | None) -> str:
    if s.G.identified:
        loss = f"; {_e(fmt(s.G_loss))} nats at f = {count(f_ref)} that no pre-training removes" if f_ref else ""
        return f"transfer gap G = <strong>{_e(fmt(s.G))}</strong> at {_e(s.gap_size)}{loss}"
    if s.G.upper is not None:
        return f"transfer gap below {_num(s.G.upper)} (95%): no measurable gap"
    return f"transfer gap not identified ({_e(s.G.reason or 'no reason recorded')})"


def _comparison_sentence(c: Comparison, f_ref: float | None) -> str | None:
    """The comparison in G, or where G is withdrawn, in loss at the largest f (no floor in it)."""
    if c.d_G.identified:
        diff, what = c.d_G, f"G({_e(c.a)}) - G({_e(c.b)}) = {_e(fmt(c.d_G))}"
    elif c.d_G_loss.identified:
        diff = c.d_G_loss
        at = f"f = {count(f_ref)}" if f_ref is not None else "the largest f"
        what = f"gaps in loss at {at} differ by {_e(fmt(c.d_G_loss))} nats (G itself not identified)"
    else:
        return None
    if c.resolved:
        better, worse = (c.a, c.b) if (diff.value or 0) < 0 else (c.b, c.a)
        return f"<strong>{_e(better)}</strong> transfers better than {_e(worse)} at {_e(c.size)}: {what}, apart."
    return f"{_e(c.a)} and {_e(c.b)} are not resolved at {_e(c.size)}: {what}."


def _budget_sentence(entries: Sequence[Mapping[str, Any]]) -> list[str]:
    """One sentence per source whose advice resolved which kind of token buys more loss."""
    out = []
    for a in entries:
        better = (a.get("double") or {}).get("better")
        if better is None:
            continue
        out.append(
            f"{_e(a['source'])} at {_e(a['size'])} (p = {count(a['p'])}, f = {count(a['f'])}): "
            f"<strong>spend the next budget on {_e(better)}</strong> (2x of it lowers the loss more, "
            f"with 95% confidence)."
        )
    return out


def _answer(report: TransferReport, entries: Sequence[Mapping[str, Any]], n_of: Mapping[str, int]) -> str:
    f_ref = next((g.f_ref for g in report.gap_fits), None)
    paras = [
        f"<p>Pre-training on <strong>{_e(s.source)}</strong>: {_multiplier_sentence(s, n_of)}; "
        f"{_gap_sentence(s, f_ref)}.</p>"
        for s in report.sources
    ]
    if not report.sources:
        paras.append("<p>No source has an ok fine-tune yet: there is nothing to report.</p>")
    resolved_first = sorted(report.comparisons, key=lambda c: not c.resolved)
    paras += [f"<p>{t}</p>" for c in resolved_first if (t := _comparison_sentence(c, f_ref))]
    budget = _budget_sentence(entries)
    paras += [f"<p>{t}</p>" for t in budget] or [
        "<p>What to spend the next budget on needs an identified gap law; none is yet.</p>"
    ]
    return '<section class="answer" id="answer">' + "".join(paras) + "</section>"


# ------------------------------------------------------------------ the tables
def _gap_table(report: TransferReport) -> str:
    header = gap_table_header(report)
    rows = []
    for s in report.sources:
        mult = _estimate(s.multiplier, "x")
        if s.multiplier.identified and s.multiplier_at:
            mult += f" @ {count(s.multiplier_at['D_F'])}, {count(s.multiplier_at['N'])}"
        rows.append(
            [
                _e(s.source),
                f"{s.n_runs}/{s.n_dt_runs}",
                _estimate(s.G) + (f" ({_e(s.gap_size)})" if s.gap_size else ""),
                _estimate(s.G_loss),
                _estimate(s.k),
                _estimate(s.alpha),
                _estimate(s.beta),
                mult,
            ]
        )
    return _table(header, rows)


def _comparison_table(report: TransferReport) -> str:
    rows = []
    for c in report.comparisons:
        rows.append([_e(f"G({c.a}) - G({c.b})"), _e(c.size), _estimate(c.d_G), _estimate(c.d_G_loss), c.verdict])
    if not rows:
        return "<p>Fewer than two sources with a gap fit: nothing to compare.</p>"
    return _table(["difference", "size", "in G [95% CI]", "in nats", "verdict"], rows, text_cols=2)


def _curve_table(report: TransferReport) -> str:
    rows = [
        [
            _e(size_label(c.size, c.n_params)),
            _estimate(c.plateau),
            _estimate(c.d_n, as_count=True),
            str(len(c.d)),
            "yes" if c.monotone else "no: a run did not reach the best loss for its data",
        ]
        for c in report.curves
    ]
    if not rows:
        return "<p>No from-scratch curve yet.</p>"
    return _table(["size", "plateau L(N, inf)", "D(N)", "runs", "loss falls with D"], rows)


def _notes(report: TransferReport) -> str:
    notes = [f"{s.source}: {_why(name, e)}" for s in report.sources for name, e in _missing(s)]
    notes += list(report.warnings) + [f"{s.source}: {w}" for s in report.sources for w in s.warnings]
    if not notes:
        return ""
    items = "".join(f"<li>{_e(n)}</li>" for n in dict.fromkeys(notes))
    return f'<ul class="notes" id="notes">{items}</ul>'


def _why(name: str, e: Estimate) -> str:
    reason = e.reason or "no reason recorded"
    return reason if reason.startswith(f"{name} not identified") else f"{name} not identified: {reason}"


def _missing(s: SourceTransfer) -> list[tuple[str, Estimate]]:
    return [(n, e) for n in ("G", "alpha", "k", "multiplier") if not (e := getattr(s, n)).identified]


def _advice_table(text: str) -> str:
    """The advice as ``tsweep advise`` prints it (the same words in the terminal and here)."""
    return f"<pre>{_e(text)}</pre>" + (
        "<p class=meta>Each route's smallest budget that reaches the target, with its 95% interval from "
        "the bootstrap refits and its cost; <code>tsweep advise SWEEP --target-loss X</code> solves for "
        "another target.</p>"
    )


def _run_table(report: TransferReport, table: pa.Table) -> str:
    transfer = {r.job_id: r for s in report.sources for r in s.runs}
    rows = []
    order = {"pretrain": 0, "scratch": 1, "finetune": 2}
    summary = sorted(
        table.to_pylist(),
        key=lambda r: (order.get(r["kind"], 3), r["source"], r["n_params"], r["pretrain_tokens"], r["data_tokens"]),
    )
    for r in summary:
        t = transfer.get(r["job_id"])
        rows.append(
            [
                _e(r["kind"]),
                _e(r["source"]),
                _e(size_label(r["size"], r["n_params"])),
                count(r["pretrain_tokens"]) if r["kind"] == "finetune" else "-",
                count(r["data_tokens"]),
                _e(r["status"]),
                _loss(r["best_eval_loss"]),
                "-" if t is None else count(t.d_e),
                "-" if t is None else count(t.d_t),
                "-" if t is None else _num(t.multiplier),
                "-" if t is None else _e(t.flag),
                count(r["tokens_seen"]),
                _num(r["epochs"]),
                f"{r['wall_time_s']:.0f}",
            ]
        )
    header = ["kind", "source", "size", "p", "D / D_F", "status", "best loss", "D_E", "D_T", "multiplier"]
    header += ["flag", "tokens seen", "epochs", "wall s"]
    off = [i for i, r in enumerate(summary) if r["status"] != "ok"]
    return _table(header, rows, text_cols=3, off=off)


def _compute_table(table: pa.Table) -> str:
    by: dict[str, list[dict[str, Any]]] = {}
    for r in table.to_pylist():
        by.setdefault(r["kind"], []).append(r)
    rows = []
    for kind in sorted(by):
        rs = by[kind]
        rows.append(
            [
                _e(kind),
                str(len(rs)),
                str(sum(r["status"] == "ok" for r in rs)),
                count(sum(r["tokens_seen"] for r in rs)),
                f"{sum(r['flops'] for r in rs):.3g}",
                f"{sum(r['wall_time_s'] for r in rs) / 60:.1f}",
            ]
        )
    rs = table.to_pylist()
    rows.append(
        [
            "<b>all</b>",
            str(len(rs)),
            str(sum(r["status"] == "ok" for r in rs)),
            count(sum(r["tokens_seen"] for r in rs)),
            f"{sum(r['flops'] for r in rs):.3g}",
            f"{sum(r['wall_time_s'] for r in rs) / 60:.1f}",
        ]
    )
    return _table(["kind", "jobs", "ok", "tokens seen", "training FLOPs", "job minutes"], rows)


def _figure(name: str, svg: bytes) -> str:
    title, text = CAPTIONS.get(name, (name.replace("_", " "), ""))
    data = base64.b64encode(svg).decode("ascii")
    return (
        f'<figure id="fig-{_e(name)}"><img alt="{_e(title)}" src="data:image/svg+xml;base64,{data}">'
        f"<figcaption><b>{_e(title)}.</b> {_e(text)}</figcaption></figure>"
    )


def _glossary() -> str:
    items = "".join(f"<dt>{_e(k)}</dt><dd>{_e(v)}</dd>" for k, v in GLOSSARY)
    return f'<dl class="glossary" id="glossary">{items}</dl>'


# ------------------------------------------------------------------ the page
def _design_section(design: tuple[Mapping[str, Any], Sequence[Mapping[str, Any]]] | None) -> list[str]:
    """An adaptive design's state: why it stopped and what it spent, each target against its
    goal, and every choice in order with its reason (``fits/design.json``, ``fits/design.jsonl``)."""
    if design is None:
        return []
    state, log = design
    targets = _table(
        ("target", "state", "half-width", "why"),
        (
            (
                str(t.get("name")),
                str(t.get("state")),
                "-" if t.get("width") is None else f"+-{100 * float(t['width']):.0f}%",
                str(t.get("why") or ""),
            )
            for t in state.get("targets", [])
        ),
        text_cols=4,
    )
    choices = _table(
        ("#", "job", "why it was chosen", "spent before (share of grid)"),
        (
            (str(i + 1), str(d.get("label")), str(d.get("reason")), f"{100 * float(d.get('share', 0.0)):.0f}%")
            for i, d in enumerate(x for x in log if x.get("event") == "chose")
        ),
        text_cols=3,
    )
    goal = state.get("goal", {})
    return [
        '<h2 id="design">Adaptive design</h2>',
        f"<p>{_e(design_line(state))}. Goal: every source's G at {_e(', '.join(goal.get('sizes', [])))} within "
        f"+-{100 * float(goal.get('half_width', 0)):.0f}%"
        + (" and every pair's order" if goal.get("order") else "")
        + ".</p>",
        targets,
        choices,
    ]


def report_html(
    report: TransferReport,
    table: pa.Table,
    figures: Sequence[tuple[str, bytes]] = (),
    *,
    config_yaml: str | None = None,
    advice: tuple[Sequence[Mapping[str, Any]], str] | None = None,
    design: tuple[Mapping[str, Any], Sequence[Mapping[str, Any]]] | None = None,
) -> str:
    """The whole page: ``figures`` are (name, SVG bytes) in the order shown; ``config_yaml`` the
    sweep's ``sweep.yaml``; ``advice`` the advice entries and their text (computed here, with no
    target, when not given); ``design`` an adaptive design's state and log."""
    if advice is None:
        made = advice_entries(report, table)
        advice = (made, format_advice(made))
    entries, advice_text = advice
    n_of = {r["size"]: r["n_params"] for r in table.to_pylist()}
    name = report.sweep or "sweep"
    title = f"Transfer report: {name}"
    noise = f"{100 * report.noise:.2g}%" if report.noise is not None else "not measured"
    meta = (
        f"{report.n_jobs_finished if report.n_jobs_finished is not None else '?'} jobs finished; "
        f"{report.n_used} of {report.n_rows} summary rows in the fits; 95% intervals from {report.bootstrap} "
        f"bootstrap refits; loss noise {noise}" + (f"; fitted {report.timestamp}" if report.timestamp else "")
    )
    sections = [
        f"<h1>{_e(title)}</h1>",
        f'<p class="meta">{_e(meta)}</p>',
        _answer(report, entries, n_of),
        '<h2 id="table">Per source: gap, D_T law and multiplier</h2>',
        _gap_table(report),
        _notes(report),
        '<h2 id="comparisons">Which source transfers better</h2>',
        _comparison_table(report),
        '<h2 id="scratch">From-scratch plateaus</h2>',
        _curve_table(report),
        '<h2 id="advice">More pre-training, more target data, or from scratch?</h2>',
        _advice_table(advice_text),
        *_design_section(design),
        '<h2 id="glossary-h">How to read the tables</h2>',
        _glossary(),
        '<h2 id="figures">Figures</h2>',
        *(_figure(n, svg) for n, svg in figures),
        '<h2 id="runs">Every run</h2>',
        "<p class=meta>One row per job in the store. D_E, D_T and the multiplier are given for the "
        "fine-tunes from each source's final checkpoint, the runs the D_T law reads; grey rows are "
        "left out of every fit (their status says why).</p>",
        _run_table(report, table),
        '<h2 id="compute">Compute</h2>',
        _compute_table(table),
        '<h2 id="config">Sweep configuration</h2>',
        f"<pre>{_e(config_yaml)}</pre>" if config_yaml else "<p>No sweep.yaml recorded.</p>",
    ]
    head = f'<!doctype html>\n<html lang="en"><head><meta charset="utf-8"><title>{_e(title)}</title>'
    head += f'<meta name="viewport" content="width=device-width,initial-scale=1"><style>{STYLE}</style></head>'
    return head + "<body>\n" + "\n".join(s for s in sections if s) + "\n</body></html>\n"
