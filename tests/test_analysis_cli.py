"""The analysis commands through the console's ``main``: ``fit`` on any table, ``gaps``,
``report`` and ``advise`` on a sweep folder."""

import csv
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from tsweep.analysis.actor import AnalysisActor
from tsweep.analysis.laws import get_law
from tsweep.analysis.synthetic import synthetic_summary
from tsweep.cli import main
from tsweep.core.layout import SweepLayout
from tsweep.core.store import Store
from tsweep.sweeps import dump_sweep, load_sweep

TINY = Path(__file__).parent / "data" / "tiny.yaml"
TRUTH = {"A": 60.0, "B": 80.0, "E": 1.7, "alpha": 0.3, "beta": 0.25}


def _run(argv):
    return main(argv)


def _usage_error(argv, capsys) -> str:
    """Run a command that must fail on its input: exit 2, one line on stderr; that line."""
    assert main(argv) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1, err
    return err[0]


@pytest.fixture
def chin_csv(tmp_path):
    n, d = np.meshgrid(np.geomspace(1e5, 1e8, 6), np.geomspace(1e6, 1e9, 6), indexing="ij")
    loss = get_law("chinchilla").predict(TRUTH, N=n.ravel(), D=d.ravel())
    loss = loss * np.exp(0.003 * np.random.default_rng(0).standard_normal(loss.size))
    path = tmp_path / "runs.csv"
    with open(path, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["params", "tokens", "loss", "label"])
        for row in zip(n.ravel(), d.ravel(), loss, strict=True):
            w.writerow([*row, "x"])
    return path


def test_fit_json_contract(chin_csv, capsys):
    rc = _run(
        [
            "fit",
            "--law",
            "chinchilla",
            "--data",
            str(chin_csv),
            "--map",
            "N=params",
            "--map",
            "D=tokens",
            "--bootstrap",
            "50",
            "--json",
        ]
    )
    assert rc == 0
    out = json.loads(capsys.readouterr().out)
    assert out["law"] == "chinchilla" and out["n_points"] == 36
    assert set(out["params"]) == {"A", "B", "E", "alpha", "beta"}
    for v in out["params"].values():
        lo, hi = v["ci95"]
        assert lo <= v["value"] <= hi
    assert out["params"]["E"]["value"] == pytest.approx(TRUTH["E"], rel=0.03)
    assert isinstance(out["warnings"], list) and "loss" in out


def test_fit_without_bootstrap_has_no_intervals_and_reads_parquet(tmp_path, capsys):
    law = get_law("hernandez")
    n, f = np.meshgrid([1e6, 1e7, 1e8], [1e5, 1e6, 1e7], indexing="ij")
    t = pa.table(
        {
            "N": n.ravel(),
            "D_F": f.ravel(),
            "D_T": law.predict({"k": 1.9e4, "alpha": 0.18, "beta": 0.38}, N=n.ravel(), D_F=f.ravel()),
        }
    )
    path = tmp_path / "dt.parquet"
    pq.write_table(t, path)
    assert _run(["fit", "--law", "hernandez", "--data", str(path), "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert all("ci95" not in v for v in out["params"].values())
    assert out["params"]["alpha"]["value"] == pytest.approx(0.18, rel=1e-3)
    assert _run(["fit", "--law", "hernandez", "--data", str(path)]) == 0
    assert "alpha" in capsys.readouterr().out


@pytest.mark.parametrize(
    "argv, message",
    [
        (["--law", "nope"], "unknown law 'nope'"),
        (["--law", "chinchilla"], "column 'N' (variable N) not in"),
        (["--law", "chinchilla", "--map", "N=params", "--map", "D=label"], "not numeric"),
        (["--law", "chinchilla", "--map", "X=params"], "unknown variable 'X'"),
        (["--law", "chinchilla", "--map", "N"], "expected VAR=COLUMN"),
        (["--law", "chinchilla", "--bootstrap", "-1"], "--bootstrap"),
    ],
)
def test_fit_bad_input_is_a_usage_error(chin_csv, argv, message, capsys):
    assert message in _usage_error(["fit", "--data", str(chin_csv), *argv], capsys)


def test_fit_bad_file_is_a_usage_error(tmp_path, capsys):
    assert "no such file" in _usage_error(["fit", "--law", "kaplan", "--data", str(tmp_path / "missing.csv")], capsys)
    other = tmp_path / "t.txt"
    other.write_text("N,D,loss\n")
    assert ".csv or .parquet" in _usage_error(["fit", "--law", "kaplan", "--data", str(other)], capsys)


def test_map_takes_several_pairs_after_one_flag(chin_csv, capsys):
    assert main(["fit", "--law", "chinchilla", "--data", str(chin_csv), "--map", "N=params", "D=tokens", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["n_points"] == 36


def test_python_m_tsweep_exit_codes(chin_csv):
    bad = subprocess.run(
        [sys.executable, "-m", "tsweep", "fit", "--law", "nope", "--data", str(chin_csv)],
        capture_output=True,
        text=True,
    )
    assert bad.returncode == 2 and len(bad.stderr.strip().splitlines()) == 1 and "unknown law" in bad.stderr
    ok = subprocess.run(
        [
            sys.executable,
            "-m",
            "tsweep",
            "fit",
            "--law",
            "chinchilla",
            "--data",
            str(chin_csv),
            "--map",
            "N=params",
            "--map",
            "D=tokens",
            "--json",
        ],
        capture_output=True,
        text=True,
    )
    assert ok.returncode == 0, ok.stderr
    assert json.loads(ok.stdout)["law"] == "chinchilla"


# ------------------------------------------------------------------ sweep folders
@pytest.fixture(scope="module")
def sweep_dir(tmp_path_factory):
    d = str(tmp_path_factory.mktemp("sweeps") / "synthetic")
    layout = SweepLayout(d)
    layout.files.write_text(layout.sweep_yaml, dump_sweep(load_sweep(TINY)))
    store = Store(layout.store_root)
    for r in synthetic_summary(mode="barnett", seed=5).to_pylist():
        store.write_summary(r)
    AnalysisActor(d, bootstrap=30, seed=0).refit()
    return d


def test_gaps_json_and_csv(sweep_dir, tmp_path, capsys):
    out_csv = tmp_path / "gaps.csv"
    assert main(["gaps", sweep_dir, "--json", "--csv", str(out_csv)]) == 0
    out = json.loads(capsys.readouterr().out)
    assert {s["source"] for s in out["sources"]} == {"text", "code"}
    for s in out["sources"]:
        assert set(s["G"]) == {"value", "ci95"} and s["n_runs"] == 80
    rows = list(csv.DictReader(open(out_csv)))
    assert {r["source"] for r in rows} == {"text", "code"}
    text = next(r for r in rows if r["source"] == "text")
    assert float(text["G_ci95_lo"]) <= float(text["G"]) <= float(text["G_ci95_hi"])


def test_gaps_table_and_stale_latest_is_refitted(sweep_dir, capsys):
    assert main(["gaps", sweep_dir]) == 0
    assert "G [95% CI]" in capsys.readouterr().out
    # a job finished after the actor's last refit: gaps refits rather than print a stale table
    store = Store(os.path.join(sweep_dir, "store"))
    row = dict(store.read_summaries().to_pylist()[-1], job_id="late-job")
    store.write_summary(row)
    try:
        assert main(["gaps", sweep_dir, "--json"]) == 0
        assert json.loads(capsys.readouterr().out)["n_jobs_finished"] == 193
    finally:
        os.remove(os.path.join(sweep_dir, "store", "summary", "late-job.parquet"))


def test_gaps_on_a_missing_folder_is_a_usage_error(tmp_path, capsys):
    assert "nope" in _usage_error(["gaps", str(tmp_path / "nope"), "--json"], capsys)
    (tmp_path / "empty").mkdir()
    assert "no sweep.yaml" in _usage_error(["gaps", str(tmp_path / "empty")], capsys)


def test_report_writes_plots_and_summary(sweep_dir, capsys):
    assert main(["report", sweep_dir]) == 0
    printed = capsys.readouterr().out.split()
    html, md = os.path.join(sweep_dir, "report.html"), os.path.join(sweep_dir, "summary.md")
    # the page, the summary, then each of the 7 figures as a PNG and as an SVG
    assert printed[:2] == [html, md] and len(printed) == 2 + 2 * 7
    assert [p.rsplit(".", 1)[1] for p in printed[2:]] == ["png"] * 7 + ["svg"] * 7
    text = open(md).read()
    assert "G [95% CI]" in text and "plots/gap_history.png" in text
    assert all(os.path.getsize(p) > 1000 for p in printed[2:])
    page = open(html).read()
    # one self-contained file: every figure embedded, nothing linked
    assert page.count("data:image/svg+xml;base64,") == 7 and 'src="plots/' not in page and "G [95% CI]" in page
    # the advice, the same text as `tsweep advise`, in both
    assert "More pre-training, more target data, or from scratch?" in text and "2x target data buys" in text
    assert "2x target data buys" in page


def _option(entry, route):
    return next(o for o in entry["options"] if o["route"] == route)


def test_advise_compares_and_solves_for_a_target(sweep_dir, capsys):
    # the largest size's floor E_N is 2.06 (the scratch plateau there): text (G = 40) is at 2.63 with a
    # pre-training floor of 2.52 at its largest f, code (G = 10) at 2.29, already under the target
    TARGET = 2.35
    assert main(["advise", sweep_dir, "--target-loss", str(TARGET), "--json"]) == 0
    entries = {e["source"]: e for e in json.loads(capsys.readouterr().out)}
    from tsweep.analysis.actor import read_latest

    latest = read_latest(sweep_dir)
    text = entries["text"]
    prm = latest.gap_fit(text["size"]).source_params("text")
    # G = 40 (Barnett-form truth): at this f the floor no pre-training crosses is above the target
    pre = _option(text, "pre-training")
    floor = prm["G"] * text["f"] ** -prm["beta"] + prm["E"]
    assert floor > TARGET and pre["status"] == "unreachable" and pre["tokens"] is None
    assert f"{floor:.4g}" in pre["reason"]
    # more target data reaches it, but more than 4x past the largest measured f: no point value
    ft = _option(text, "target data")
    assert ft["status"] == "beyond the design" and ft["tokens"] is None and ft["ci95"][0] > 4 * text["f"]
    assert text["cheapest"] is None and text["double"]["better"] == "target data"
    code = entries["code"]
    assert code["met"] and code["cheapest"] is not None
    ft = _option(code, "target data")
    cprm = latest.gap_fit(code["size"]).source_params("code")
    assert float(get_law("barnett").predict(cprm, p=code["p"], f=ft["tokens"])) == pytest.approx(TARGET, rel=1e-6)
    assert main(["advise", sweep_dir, "--target-loss", str(TARGET)]) == 0
    out = capsys.readouterr().out
    assert f"to reach {TARGET:g}" in out and "beyond the design" in out and "FLOPs" in out


def test_advise_solves_for_pre_training_when_it_can_reach_the_target(sweep_dir, capsys):
    assert main(["advise", sweep_dir, "--json"]) == 0
    code = next(e for e in json.loads(capsys.readouterr().out) if e["source"] == "code")
    assert "options" not in code and code["double"]["pre-training"]["value"] > 0
    from tsweep.analysis.actor import read_latest

    latest = read_latest(sweep_dir)
    prm = latest.gap_fit(code["size"]).source_params("code")
    floor = prm["G"] * code["f"] ** -prm["beta"] + prm["E"]
    target = (code["loss_now"]["value"] + floor) / 2  # between now and the floor
    assert main(["advise", sweep_dir, "--json", "--target-loss", str(target)]) == 0
    code = next(e for e in json.loads(capsys.readouterr().out) if e["source"] == "code")
    pre, ft = _option(code, "pre-training"), _option(code, "target data")
    for o in (pre, ft):
        assert o["status"] in ("ok", "beyond the design")
        assert o["ci95"][0] <= (o["tokens"] or o["ci95"][0]) <= o["ci95"][1]
    assert pre["ci95"][0] > code["p"] and ft["ci95"][0] > code["f"]
    if pre["status"] == "ok":
        law = get_law("barnett")
        assert float(law.predict(prm, p=pre["tokens"], f=code["f"])) == pytest.approx(target, rel=1e-6)
