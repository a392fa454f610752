"""``report.html``, the figures and the notebook API, on a finished demo sweep (``tests/reportkit.py``).

The page is checked twice: its DOM with the standard library's HTML parser (always: a reader's
answer, tables, glossary, figures and runs are there and say what the report says), and in a
real headless Chromium where one is installed (it lays out at 1300 px without a horizontal
scrollbar, every figure decodes, it prints). The figures are checked as Figures: one size name
and one count format in every text, extrapolations dashed and beyond the data, every line style
in a legend. The README's notebook example is run as written.
"""

from __future__ import annotations

import base64
import contextlib
import io
import math
import os
import re
import shutil
import subprocess
import xml.etree.ElementTree as ET
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq
import pytest
from matplotlib.container import ErrorbarContainer
from matplotlib.lines import Line2D
from reportkit import OLD_DEMO_ROWS, demo_folder

import tsweep
from tsweep.analysis import plots
from tsweep.analysis.page import GLOSSARY, report_html
from tsweep.analysis.records import FLOOR_MISFIT
from tsweep.analysis.rendering import count, fmt, size_label
from tsweep.analysis.transfer import transfer_report
from tsweep.api import open_sweep
from tsweep.core.store import SUMMARY_SCHEMA

README = Path(__file__).resolve().parents[1] / "README.md"
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser") or shutil.which("google-chrome")


# ------------------------------------------------------------------ the page as a DOM
class Dom(HTMLParser):
    """The parts of the page a reader meets: sections by id, tables as cell text, figures,
    the glossary's terms, every src and href."""

    def __init__(self) -> None:
        super().__init__()
        self.stack: list[tuple[str, dict[str, str]]] = []
        self.text_by_id: dict[str, list[str]] = {}
        self.tables: list[list[list[str]]] = []
        self.figures: list[dict[str, str]] = []
        self.terms: list[str] = []
        self.srcs: list[str] = []
        self.hrefs: list[str] = []
        self.scripts = 0
        self.order: list[str] = []  # ids and tags of top-level blocks, in order
        self._cell: list[str] | None = None
        self._dt: list[str] | None = None
        self._caption: list[str] | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = {k: v or "" for k, v in attrs}
        self.stack.append((tag, a))
        if "id" in a:
            self.order.append(a["id"])
        if tag == "script":
            self.scripts += 1
        if "src" in a:
            self.srcs.append(a["src"])
        if "href" in a:
            self.hrefs.append(a["href"])
        if tag == "table":
            self.tables.append([])
        elif tag == "tr":
            self.tables[-1].append([])
        elif tag in ("td", "th"):
            self._cell = []
        elif tag == "dt":
            self._dt = []
        elif tag == "figure":
            self.figures.append({"id": a.get("id", ""), "caption": ""})
        elif tag == "img" and self.figures:
            self.figures[-1]["src"] = a.get("src", "")
        elif tag == "figcaption":
            self._caption = []

    def handle_endtag(self, tag: str) -> None:
        while self.stack:
            t, _ = self.stack.pop()
            if t == tag:
                break
        if tag in ("td", "th") and self._cell is not None:
            self.tables[-1][-1].append(" ".join("".join(self._cell).split()))
            self._cell = None
        elif tag == "dt" and self._dt is not None:
            self.terms.append("".join(self._dt).strip())
            self._dt = None
        elif tag == "figcaption" and self._caption is not None:
            self.figures[-1]["caption"] = " ".join("".join(self._caption).split())
            self._caption = None

    def handle_data(self, data: str) -> None:
        for buf in (self._cell, self._dt, self._caption):
            if buf is not None:
                buf.append(data)
        for _, a in self.stack:
            if "id" in a:
                self.text_by_id.setdefault(a["id"], []).append(data)

    def text(self, id_: str) -> str:
        return " ".join("".join(self.text_by_id.get(id_, [])).split())


def parse(page: str) -> Dom:
    dom = Dom()
    dom.feed(page)
    return dom


def table_after(dom: Dom, header_first: str) -> list[list[str]]:
    return next(t for t in dom.tables if t and t[0] and t[0][0] == header_first and len(t[0]) > 3)


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    root = tmp_path_factory.mktemp("storage")
    sweep_dir = demo_folder(root)
    res = open_sweep(sweep_dir)
    paths = res.write_report()
    table, report = res._table_and_report()
    page = Path(paths[0]).read_text()
    return {"root": root, "dir": sweep_dir, "res": res, "paths": paths, "table": table, "report": report, "page": page}


# ------------------------------------------------------------------ files
def test_report_writes_a_png_and_an_svg_of_every_figure(demo):
    html_path, md, *figs = demo["paths"]
    assert html_path.endswith("report.html") and md.endswith("summary.md")
    pngs, svgs = figs[: len(plots.NAMES)], figs[len(plots.NAMES) :]
    assert [Path(p).stem for p in pngs] == [Path(p).stem for p in svgs] == list(plots.NAMES)
    for png, svg in zip(pngs, svgs, strict=True):
        assert Path(png).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
        root = ET.parse(svg).getroot()
        assert root.tag.endswith("svg") and not root.findall(".//{http://www.w3.org/2000/svg}image"), svg


def test_the_page_is_one_self_contained_file(demo):
    dom = parse(demo["page"])
    assert dom.scripts == 0 and not dom.hrefs
    assert dom.srcs and all(s.startswith("data:image/svg+xml;base64,") for s in dom.srcs)
    for s in dom.srcs:
        assert b"<svg" in base64.b64decode(s.split(",", 1)[1])[:2000]


# ------------------------------------------------------------------ what the page says
def test_the_answer_comes_first_and_says_what_the_report_says(demo):
    report, dom = demo["report"], parse(demo["page"])
    assert dom.order.index("answer") < dom.order.index("table") < dom.order.index("figures")
    answer = dom.text("answer")
    for s in report.sources:
        assert s.multiplier.identified and fmt(s.multiplier) in answer  # with its interval
        if s.G.identified:
            assert fmt(s.G) in answer and f"at {s.gap_size}" in answer
        else:  # this run's floors disagree at both sizes: every G is withdrawn, with the reason
            assert "transfer gap not identified (" in answer and FLOOR_MISFIT in answer
    resolved = [c for c in report.comparisons if c.resolved]
    assert resolved, "the demo run's gaps are apart at mini (in loss at the largest f)"
    for c in resolved:
        diff = c.d_G if c.d_G.identified else c.d_G_loss
        better = c.a if diff.value < 0 else c.b
        assert f"{better} transfers better" in answer and fmt(diff) in answer
    for a in demo["res"].advice():
        better = (a.get("double") or {}).get("better")
        if better is not None:  # resolved with 95% confidence: the answer names it
            assert f"spend the next budget on {better}" in answer


def test_the_gap_table_is_a_table_with_every_term_in_the_glossary(demo):
    report, dom = demo["report"], parse(demo["page"])
    gap = table_after(dom, "source")
    header, rows = gap[0], gap[1:]
    assert [r[0] for r in rows] == [s.source for s in report.sources]
    for s, row in zip(report.sources, rows, strict=True):
        cells = dict(zip(header, row, strict=True))
        assert cells["runs"] == f"{s.n_runs}/{s.n_dt_runs}"
        assert cells["G [95% CI] (size)"].startswith(fmt(s.G))
        assert ("not identified" in cells["k"]) == (not s.k.identified)
    terms = " | ".join(dom.terms)
    for term in ("runs a/b", "G", "G f^-beta at f", "k, alpha, beta", "multiplier", "not identified", "apart"):
        assert term in dom.terms, f"{term!r} not in the glossary: {terms}"
    for flag in ("ok", "high_data", "extrapolated", "no_transfer", "beyond_plateau", "no_scratch_curve"):
        assert f"flag {flag}" in dom.terms
    assert len(dom.terms) == len(GLOSSARY)


def test_every_run_is_in_the_run_table_with_its_transfer(demo):
    report, table, dom = demo["report"], demo["table"], parse(demo["page"])
    runs = table_after(dom, "kind")
    header, rows = runs[0], runs[1:]
    assert len(rows) == table.num_rows
    by_cells = [dict(zip(header, r, strict=True)) for r in rows]
    transfer = report.transfer_table()
    ok = transfer[transfer.flag == "ok"]
    assert len(ok) > 0
    for _, t in ok.iterrows():
        match = [
            c
            for c in by_cells
            if c["kind"] == "finetune"
            and c["source"] == t.source
            and c["size"] == size_label(t["size"], t.N)
            and c["D / D_F"] == count(t.D_F)
            and c["p"] == count(t.p)
        ]
        assert len(match) == 1 and match[0]["D_T"] == count(t.D_T) and match[0]["flag"] == "ok"
    compute = next(t for t in dom.tables if t[0][:2] == ["kind", "jobs"])
    assert compute[-1][0] == "all" and int(compute[-1][1]) == table.num_rows
    assert "finetune_tokens:" in demo["page"].split('id="config"', 1)[1]


def test_every_figure_is_captioned_with_how_to_read_it(demo):
    dom = parse(demo["page"])
    assert [f["id"] for f in dom.figures] == [f"fig-{n}" for n in plots.NAMES]
    for f in dom.figures:
        assert len(f["caption"].split()) >= 30, f
    loss_vs_p = next(f for f in dom.figures if f["id"] == "fig-loss_vs_p")["caption"]
    assert "dashed" in loss_vs_p and "extrapolation" in loss_vs_p


def test_a_report_with_nothing_identified_says_so(tmp_path):
    """The older demo store (tests/data/demo): no multiplier, no two-sided G; the page says why."""
    table = pq.read_table(OLD_DEMO_ROWS)
    report = transfer_report(table, bootstrap=20, seed=0)
    dom = parse(report_html(report, table))
    answer = dom.text("answer")
    assert "multiplier is not identified" in answer and "no measurable gap" in answer
    assert "spend the next budget" in answer or "needs an identified gap law" in answer


def test_an_empty_store_gives_a_page_figures_and_tables_that_say_so():
    table = SUMMARY_SCHEMA.empty_table()
    report = transfer_report(table, bootstrap=0)
    answer = parse(report_html(report, table)).text("answer")
    assert "No source has an ok fine-tune yet" in answer and "needs an identified gap law" in answer
    made = plots.figures(table, report)
    assert list(made) == list(plots.NAMES)
    assert "no ok fine-tunes yet" in _texts(made["loss_vs_p"])
    assert "no pretrain evaluations in the store" in _texts(made["learning_curves"])
    assert report.to_pandas().empty and {"G", "G_lo", "G_reason"} <= set(report.to_pandas().columns)
    assert report.transfer_table().empty and "D_T" in report.transfer_table().columns


# ------------------------------------------------------------------ in a real browser
INSPECT = """<script>
window.addEventListener('load', () => {
  const d = document.documentElement, imgs = [...document.images];
  const wraps = [...document.querySelectorAll('.wrap')].filter(w => w.scrollWidth > w.clientWidth + 1).length;
  document.body.dataset.overflow = String(d.scrollWidth > window.innerWidth);
  document.body.dataset.wideTables = String(wraps);
  document.body.dataset.broken = String(imgs.filter(i => !i.complete || i.naturalWidth === 0).length);
  document.body.dataset.images = String(imgs.length);
});
</script></body>"""


def _chromium(*args: str) -> subprocess.CompletedProcess[str]:
    assert CHROMIUM is not None
    flags = ["--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars", "--virtual-time-budget=5000"]
    return subprocess.run([CHROMIUM, *flags, *args], capture_output=True, text=True, timeout=120)


@pytest.mark.skipif(CHROMIUM is None, reason="no chromium on PATH: the browser check needs `apt-get install chromium`")
def test_the_page_in_headless_chromium(demo, tmp_path):
    probe = tmp_path / "probe.html"
    probe.write_text(demo["page"].replace("</body>", INSPECT))
    dom = _chromium("--window-size=1300,1000", "--dump-dom", probe.as_uri())
    assert dom.returncode == 0, dom.stderr[-2000:]
    attrs = dict(re.findall(r'data-([a-z-]+)="([^"]*)"', dom.stdout.split("<body", 1)[1].split(">", 1)[0]))
    assert attrs == {"overflow": "false", "wide-tables": "0", "broken": "0", "images": str(len(plots.NAMES))}
    shot = tmp_path / "top.png"
    assert _chromium("--window-size=1300,1800", f"--screenshot={shot}", Path(demo["paths"][0]).as_uri()).returncode == 0
    assert shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and shot.stat().st_size > 50_000
    pdf = tmp_path / "report.pdf"
    assert _chromium("--no-pdf-header-footer", f"--print-to-pdf={pdf}", Path(demo["paths"][0]).as_uri()).returncode == 0
    assert pdf.read_bytes()[:5] == b"%PDF-" and len(re.findall(rb"/Type\s*/Page\b", pdf.read_bytes())) >= 3


# ------------------------------------------------------------------ figures
def _texts(fig: Any) -> list[str]:
    fig.canvas.draw()
    out = [t.get_text() for t in fig.findobj(lambda o: hasattr(o, "get_text") and o.get_text())]
    for ax in fig.axes:
        for axis in (ax.xaxis, ax.yaxis):
            out += [t.get_text() for t in axis.get_ticklabels(which="both") if t.get_text()]
    return out


def test_figures_write_sizes_and_counts_one_way(demo):
    report, table = demo["report"], demo["table"]
    made = demo["res"].figures()
    assert list(made) == list(plots.NAMES)
    sizes = {r["size"]: r["n_params"] for r in table.to_pylist()}
    for name, fig in made.items():
        for text in _texts(fig):
            assert not re.search(r"\d[eE][+-]?\d|\$|\\times|\d,\d{3}", text), (name, text)  # no 4e+06, 10^6, 4,000
            for size, n in sizes.items():
                if re.search(rf"\b{size}\b", text) and "N=" in text:
                    assert size_label(size, n) in text, (name, text)
    legend = " ".join(_texts(made["dt_vs_df"]))
    assert all(size_label(s, n) in legend for s, n in sizes.items())
    assert report.sources


def test_extrapolation_is_dashed_beyond_the_data_and_every_style_is_in_a_legend(demo):
    table = demo["table"]
    fig = plots.figure_loss_vs_p(table, demo["report"])
    p_max = max(r["pretrain_tokens"] for r in table.to_pylist() if r["kind"] == "finetune")
    for ax in fig.axes:
        lines = [ln for ln in ax.get_lines() if len(ln.get_xdata()) > 2]
        dashed = [ln for ln in lines if ln.get_linestyle() == "--"]
        solid = [ln for ln in lines if ln.get_linestyle() == "-"]
        assert dashed and solid
        assert all(min(ln.get_xdata()) >= p_max * (1 - 1e-9) for ln in dashed)
        assert all(max(ln.get_xdata()) <= p_max * (1 + 1e-9) for ln in solid)
    for name, f in demo["res"].figures().items():
        for ax in f.axes:
            used = {ln.get_linestyle() for ln in ax.get_lines() if ln.get_linestyle() not in ("None", "none", "")}
            leg = ax.get_legend()
            handles = ax.get_legend_handles_labels()[0] + list(leg.legend_handles if leg else [])
            lines = [h[0] if isinstance(h, ErrorbarContainer) else h for h in handles]
            shown = {h.get_linestyle() for h in lines if isinstance(h, Line2D)}
            assert used <= shown, (name, ax.get_title(), used - shown)


def test_log_ticks_are_counts(demo):
    fig = plots.figure_gap_history(
        [{"n_jobs_finished": 10, "sources": [{"source": "a", "multiplier": {"value": 6.0, "ci95": [5.0, 8.0]}}]}]
    )
    fig.canvas.draw()
    labels = [t.get_text() for t in fig.axes[1].yaxis.get_ticklabels(which="both") if t.get_text()]
    assert labels and all(re.fullmatch(r"\d+(\.\d+)?", t) for t in labels), labels
    assert count(12768) == "12.8k" and count(4e6) == "4M" and count(16000) == "16k" and count(999_999) == "1M"


# ------------------------------------------------------------------ the notebook API
def test_to_pandas_is_the_report(demo):
    import pandas as pd

    report = demo["report"]
    gaps = report.to_pandas().set_index("source")
    for s in report.sources:
        row = gaps.loc[s.source]
        if s.G.identified:
            assert row["G"] == s.G.value and (row["G_lo"], row["G_hi"]) == s.G.ci95
        else:
            assert pd.isna(row["G"]) and pd.isna(row["G_lo"]) and row["G_reason"] == s.G.reason
        assert (row["k"] is None or math.isnan(row["k"])) and row["k_reason"] == s.k.reason
    per_run = report.transfer_table()
    assert len(per_run) == sum(len(s.runs) for s in report.sources)
    assert list(per_run.columns[:10]) == [
        "source",
        "size",
        "N",
        "p",
        "D_F",
        "loss",
        "D_E",
        "D_T",
        "multiplier",
        "basis",
    ]
    ok = per_run[per_run.flag == "ok"]
    assert ((ok.D_E - ok.D_F - ok.D_T).abs() < 1e-6 * ok.D_E).all()
    assert ((ok.multiplier - ok.D_E / ok.D_F).abs() < 1e-9 * ok.multiplier).all()
    one = report.sources[0].to_pandas()
    assert set(one.source) == {report.sources[0].source} and len(one) == len(report.sources[0].runs)


def test_advise_at_package_level_is_tsweep_advise(demo):
    assert tsweep.advise(demo["res"]) == demo["res"].advice()
    assert tsweep.advise(demo["dir"], 2.3) == demo["res"].advice(2.3)


def test_the_readme_notebook_example_runs_on_demo(demo, tmp_path, monkeypatch):
    section = README.read_text().split("## A Python API for notebooks", 1)[1]
    code = re.search(r"```python\n(.*?)```", section, re.S).group(1)
    monkeypatch.setenv("TSWEEP_STORAGE", str(demo["root"]))
    monkeypatch.chdir(tmp_path)
    out = io.StringIO()
    scope: dict[str, Any] = {}
    with contextlib.redirect_stdout(out):
        exec(compile(code, str(README), "exec"), scope)
    assert (tmp_path / "loss_vs_p.pdf").read_bytes()[:5] == b"%PDF-"
    # what the README says it shows: d0.6 worth more than d0.9, both intervals apart from 1x;
    # target data buys several times what pre-training buys; one source alone leaves A, alpha open
    gaps, advice, fit = scope["gaps"], scope["advice"], scope["fit"]
    assert gaps.loc["d0.6", "multiplier"] > gaps.loc["d0.9", "multiplier"] > 1
    assert gaps.loc["d0.9", "multiplier_lo"] > 1
    # every source gets advice; at 2.4 the demo run's d0.6 already meets the target (its law reaches
    # 2.4 with less target data than the sweep used), and a decided route is named for it
    assert set(advice.source) == set(gaps.index)
    d06 = advice.set_index("source").loc["d0.6"]
    assert d06.met and d06.cheapest is not None
    medians = scope["per_run"][scope["per_run"].flag == "ok"].groupby(["source", "size"]).multiplier.median()
    assert all(medians["d0.6"][size] > medians["d0.9"][size] for size in ("pico", "mini"))
    assert fit.identified("G") and {"A", "alpha"} <= set(fit.not_identified)
    assert "d0.6" in out.getvalue() and os.path.exists(tmp_path / "loss_vs_p.pdf")
