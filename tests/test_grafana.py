"""tsweep's Grafana dashboard: the shipped JSON plots exactly the gauges the driver exports, is a
well-formed Grafana dashboard, reaches the cluster set-ups (launchers, KubeRay ConfigMap), and
``tsweep grafana`` prints, writes or installs it with one-line errors."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
import yaml

from tsweep.cli import main
from tsweep.orchestrator import grafana
from tsweep.orchestrator.progress import GAUGES

ROOT = Path(__file__).resolve().parents[1]
# A PromQL metric name followed by a label matcher or a space/paren: ray_tsweep_jobs{...}
METRIC = re.compile(r"\b(ray_[a-zA-Z_:][a-zA-Z0-9_:]*)\s*[{)\s,]")
BY = re.compile(r"\bby\s*\(([^)]*)\)")


@pytest.fixture(scope="module")
def dash() -> dict:
    return json.loads(grafana.dashboard_json())


def _queries(dash: dict) -> list[str]:
    exprs = [t["expr"] for p in dash["panels"] for t in p["targets"]]
    exprs += [v["query"]["query"] for v in dash["templating"]["list"] if v["type"] == "query"]
    return exprs


def test_every_query_names_a_gauge_the_driver_exports_and_every_gauge_is_plotted(dash):
    exported = {f"ray_{name}" for name in GAUGES}  # Ray's metrics agent prefixes ray_
    named = set()
    for q in _queries(dash):
        found = set(METRIC.findall(q + " "))
        assert found, f"no metric in {q!r}"
        assert found <= exported, f"{q!r} names {found - exported}, not a gauge tsweep exports ({sorted(exported)})"
        named |= found
    plotted = {m for p in dash["panels"] for t in p["targets"] for m in METRIC.findall(t["expr"] + " ")}
    assert plotted == exported == named


def test_queries_group_and_filter_only_by_labels_the_gauges_carry(dash):
    for p in dash["panels"]:
        for t in p["targets"]:
            (metric,) = set(METRIC.findall(t["expr"] + " "))
            labels = set(GAUGES[metric.removeprefix("ray_")][1]) | {"SessionName"}  # Ray adds SessionName
            for group in BY.findall(t["expr"]):
                used = {x.strip() for x in group.split(",") if x.strip()}
                assert used <= labels, f"{p['title']}: groups by {used - labels}, not a label of {metric}"
            for name in re.findall(r"([A-Za-z_]\w*)\s*=~", t["expr"]):
                assert name in labels, f"{p['title']}: filters on {name}, not a label of {metric}"


def test_dashboard_schema_basics(dash):
    assert dash["title"] and re.fullmatch(r"[A-Za-z0-9_-]{1,40}", dash["uid"])  # Grafana caps uids at 40
    assert isinstance(dash["schemaVersion"], int) and dash["schemaVersion"] >= 16
    variables = {v["name"]: v for v in dash["templating"]["list"]}
    assert variables["datasource"]["type"] == "datasource" and variables["datasource"]["query"] == "prometheus"
    assert {"SessionName", "sweep"} <= set(variables)
    ids = [p["id"] for p in dash["panels"]]
    assert len(ids) == len(set(ids)), "panel ids must be unique"
    cells = set()
    for p in dash["panels"]:
        assert p["type"] == "timeseries" and p["title"] and p["description"]
        g = p["gridPos"]
        assert all(isinstance(g[k], int) for k in "xywh") and g["x"] + g["w"] <= 24, f"{p['title']}: gridPos {g}"
        mine = {(x, y) for x in range(g["x"], g["x"] + g["w"]) for y in range(g["y"], g["y"] + g["h"])}
        assert not (mine & cells), f"{p['title']} overlaps another panel"
        cells |= mine
        assert p["datasource"]["uid"] == "${datasource}"
        refs = [t["refId"] for t in p["targets"]]
        assert refs and len(refs) == len(set(refs))


def test_every_sweep_state_the_gauge_takes_is_a_series():
    """The panel stacks states; the driver sets every state each refresh (zero included), so the
    stack's height is the sweep's job count at every point."""
    from tsweep.orchestrator import progress

    src = Path(progress.__file__).read_text()
    assert all(f'("{s}",' in src for s in ("pending", "running", "done", "failed", "skipped"))


def test_kuberay_configmap_holds_the_shipped_dashboard():
    (cm,) = [d for d in yaml.safe_load_all((ROOT / "infra/kuberay/grafana-dashboard.yaml").read_text()) if d]
    assert cm["kind"] == "ConfigMap" and cm["metadata"]["labels"]["grafana_dashboard"] == "1"
    assert json.loads(cm["data"]["tsweep.json"]) == json.loads(grafana.dashboard_json())


@pytest.mark.parametrize("name", ["aws", "gcp"])
def test_launchers_install_it_on_the_head_after_ray_starts(name):
    cfg = yaml.safe_load((ROOT / f"infra/{name}.yaml").read_text())
    cmds = cfg["head_start_ray_commands"]
    start = next(i for i, c in enumerate(cmds) if "ray start" in c and "--head" in c)
    assert any(c.strip() == "tsweep grafana --install" for c in cmds[start + 1 :])
    assert not any("tsweep grafana" in c for c in cfg["worker_start_ray_commands"])


# --------------------------------------------------------------------------- the command
def test_cli_prints_the_path_and_writes_a_copy(tmp_path, capsys):
    assert main(["grafana"]) == 0
    path = capsys.readouterr().out.strip()
    assert json.loads(Path(path).read_text()) == json.loads(grafana.dashboard_json())
    out = tmp_path / "d.json"
    assert main(["grafana", "--out", str(out)]) == 0
    assert out.read_text() == grafana.dashboard_json()
    assert [p.name for p in tmp_path.iterdir()] == ["d.json"]  # no temporary file left behind


@pytest.mark.parametrize(
    "argv,msg",
    [
        (["--out", "{tmp}/missing/d.json"], "--out: cannot write"),
        (["--out", "{tmp}"], "is a folder"),
        (["--out", "{tmp}/d.json", "--install"], "not both"),
    ],
)
def test_cli_bad_input_is_one_line_and_exit_2(argv, msg, tmp_path, capsys):
    assert main(["grafana", *[a.format(tmp=tmp_path) for a in argv]]) == 2
    err = capsys.readouterr().err
    assert msg in err and err.count("\n") == 1 and "Traceback" not in err
    assert list(tmp_path.iterdir()) == []


def test_install_waits_for_rays_own_dashboards_then_adds_it(tmp_path, monkeypatch):
    monkeypatch.delenv(grafana.RAY_DASHBOARDS_ENV, raising=False)
    folder = tmp_path / "session_latest" / "metrics" / "grafana" / "dashboards"
    with pytest.raises(grafana.UsageError, match="no Ray Grafana dashboards"):
        grafana.install(temp_dir=str(tmp_path), wait_s=0.2, poll_s=0.05)
    folder.mkdir(parents=True)
    with pytest.raises(grafana.UsageError):  # an empty folder Ray is about to fill is not enough
        grafana.install(temp_dir=str(tmp_path), wait_s=0.2, poll_s=0.05)
    assert list(folder.iterdir()) == []
    (folder / "default_grafana_dashboard.json").write_text("{}")
    written = grafana.install(temp_dir=str(tmp_path), wait_s=0.2, poll_s=0.05)
    assert written == str(folder / "tsweep.json") and Path(written).read_text() == grafana.dashboard_json()
    monkeypatch.setenv(grafana.RAY_DASHBOARDS_ENV, str(tmp_path / "elsewhere"))  # Ray's override
    assert grafana.ray_dashboards_dir(str(tmp_path)) == str(tmp_path / "elsewhere")
