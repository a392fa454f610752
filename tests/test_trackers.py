"""Experiment trackers, offline (issue: trackers users already use): TensorBoard event files,
Weights & Biases in offline mode, an MLflow file store. Each is read back the way its own tools
would read it: the event records, the offline run's files, the MLflow client.

- Ray-free: the final gap estimates of a real run's report reach every tracker as one run.
- Through the console script on a real local Ray cluster: every job of the tiny sweep is one run
  in every tracker, named like its trial, with the job's fields as its config and its eval loss
  among the metrics.
"""

from __future__ import annotations

import json
import os
import struct
import subprocess
import sys
from pathlib import Path

import pyarrow.parquet as pq
import pytest
import yaml

from tsweep.analysis.transfer import transfer_report
from tsweep.orchestrator.plan import expand
from tsweep.orchestrator.trackers import gap_metrics, log_gaps
from tsweep.sweeps import TrackerSettings, load_sweep

pytest.importorskip("wandb", reason="the test extra installs wandb")
pytest.importorskip("mlflow", reason="the test extra installs mlflow-skinny")

DATA = Path(__file__).parent / "data"
TINY = DATA / "tiny.yaml"


def _events(path: Path) -> list:
    """The records of one TensorBoard event file (TFRecord framing: length, crc, data, crc)."""
    from tensorboardX.proto.event_pb2 import Event

    out, raw = [], path.read_bytes()
    i = 0
    while i < len(raw):
        (n,) = struct.unpack("<Q", raw[i : i + 8])
        out.append(Event.FromString(raw[i + 12 : i + 12 + n]))
        i += 12 + n + 4
    return out


def _scalars(folder: Path) -> dict[str, float]:
    return {
        v.tag: v.simple_value
        for f in folder.rglob("events.out.tfevents.*")
        for e in _events(f)
        for v in e.summary.value
    }


def _offline_runs(wandb_dir: Path) -> list[Path]:
    return sorted((wandb_dir / "wandb").glob("offline-run-*"))


def _wandb_records(run_dir: Path) -> list:
    """The records of an offline W&B run (``run-*.wandb``: a 7-byte file header, then LevelDB log
    framing in 32 KiB blocks: crc32, little-endian length, chunk type; a protobuf Record each)."""
    from wandb.proto import wandb_internal_pb2 as pb

    (path,) = run_dir.glob("run-*.wandb")
    raw, out, buf, i, block = path.read_bytes(), [], b"", 7, 32768
    while i + 7 <= len(raw):
        if block - i % block < 7:  # a block's tail too short for a header is padding
            i += block - i % block
            continue
        length, kind = int.from_bytes(raw[i + 4 : i + 6], "little"), raw[i + 6]
        buf, i = buf + raw[i + 7 : i + 7 + length], i + 7 + length
        if kind in (1, 4):  # a whole record, or the last chunk of one
            out.append(pb.Record.FromString(buf))
            buf = b""
    return out


def _wandb_run(run_dir: Path) -> tuple[str, dict, dict]:
    """(name, config, summary) of an offline W&B run."""
    name, config, summary = "", {}, {}
    for r in _wandb_records(run_dir):
        kind = r.WhichOneof("record_type")
        if kind == "run":
            name = r.run.display_name
            config.update({u.key: json.loads(u.value_json) for u in r.run.config.update})
        elif kind == "config":
            config.update({u.key: json.loads(u.value_json) for u in r.config.update})
        elif kind == "summary":
            summary.update({u.key: json.loads(u.value_json) for u in r.summary.update if u.key})
    return name, config, summary


@pytest.fixture
def offline_wandb(tmp_path, monkeypatch):
    d = tmp_path / "wandb"
    d.mkdir()
    env = {
        "WANDB_MODE": "offline",
        "WANDB_DIR": str(d),
        "WANDB_SILENT": "true",
        "WANDB_CONFIG_DIR": str(d),
        "MLFLOW_ALLOW_FILE_STORE": "true",
    }  # MLflow 3 keeps its file store behind this switch
    for k, v in env.items():
        monkeypatch.setenv(k, v)
    return d, env


def test_the_final_gaps_reach_every_tracker(tmp_path, offline_wandb):
    wandb_dir, _ = offline_wandb
    report = transfer_report(pq.read_table(DATA / "demo_synthetic" / "summary.parquet"), bootstrap=20, seed=0)
    metrics = gap_metrics(report)
    # this run's gaps are withdrawn (its floors disagree at both sizes); its multipliers are not
    assert {"multiplier/d0.6", "multiplier/d0.9", "multiplier_lo/d0.6", "multiplier_hi/d0.9"} <= set(metrics)
    assert not any(k.startswith("G") for k in metrics), metrics
    m = next(s.multiplier for s in report.sources if s.source == "d0.6")
    assert metrics["multiplier/d0.6"] == m.value
    assert (metrics["multiplier_lo/d0.6"], metrics["multiplier_hi/d0.6"]) == tuple(m.ci95)
    for s in report.sources:  # an unidentified number is left out, never logged as a value
        for key in ("G", "k", "alpha", "beta", "multiplier"):
            assert (f"{key}/{s.source}" in metrics) == getattr(s, key).identified, (key, s.source)

    mlruns = tmp_path / "mlruns"
    trackers = TrackerSettings(tensorboard=True, wandb_project="tsweep-test", mlflow_tracking_uri=mlruns.as_uri())
    tune_dir = tmp_path / "tune"
    log_gaps(trackers, "demo", report, str(tune_dir))

    assert _scalars(tune_dir / "gaps")["gaps/multiplier/d0.6"] == pytest.approx(metrics["multiplier/d0.6"])
    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking_uri=mlruns.as_uri())
    (run,) = client.search_runs([client.get_experiment_by_name("demo").experiment_id])
    assert run.info.run_name == "demo/gaps"
    assert run.data.metrics["multiplier/d0.9"] == pytest.approx(metrics["multiplier/d0.9"])
    (offline,) = _offline_runs(wandb_dir)
    name, config, summary = _wandb_run(offline)
    assert name == "demo/gaps" and config["sweep"] == "demo"
    assert summary["multiplier/d0.6"] == pytest.approx(metrics["multiplier/d0.6"])


@pytest.mark.cluster
def test_every_job_is_a_run_in_every_tracker(tmp_path, offline_wandb):
    _, env = offline_wandb
    d = yaml.safe_load(TINY.read_text())
    mlruns = tmp_path / "mlruns"
    d["trackers"] = {"tensorboard": True, "wandb_project": "tsweep-test", "mlflow_tracking_uri": mlruns.as_uri()}
    sweep_file = tmp_path / "tracked.yaml"
    sweep_file.write_text(yaml.safe_dump(d))
    root = tmp_path / "runs"
    proc = subprocess.run(
        ["tsweep", "submit", str(sweep_file), "--storage", str(root)],
        capture_output=True,
        text=True,
        timeout=600,
        env={**os.environ, **env, "RAY_USAGE_STATS_ENABLED": "0"},
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    sweep = load_sweep(sweep_file)
    jobs = {j.label: j for j in expand(sweep).jobs}
    tune_dir = Path(sweep.layout(str(root)).tune_dir)

    # TensorBoard: an event file per trial, the eval loss among its scalars
    trial_dirs = {p.parent for p in tune_dir.rglob("events.out.tfevents.*") if p.parent.name != "gaps"}
    assert len(trial_dirs) == len(jobs)
    assert any("eval_loss" in tag for tag in _scalars(next(iter(trial_dirs))))

    # MLflow: a run per job named like its trial with the job's fields as params, and the gaps run
    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking_uri=mlruns.as_uri())
    runs = client.search_runs([client.get_experiment_by_name(sweep.name).experiment_id], max_results=1000)
    by_name = {r.info.run_name: r for r in runs}
    assert set(by_name) == set(jobs) | {f"{sweep.name}/gaps"}
    label, job = next(iter(jobs.items()))
    params = by_name[label].data.params
    assert any(k.endswith("job_id") and v == job.job_id for k, v in params.items()), params
    assert any("eval_loss" in k for k in by_name[label].data.metrics)

    # W&B offline: a run per job named like its trial, the job in its config, and the gaps run
    wb = {name: config for name, config, _ in map(_wandb_run, _offline_runs(Path(env["WANDB_DIR"])))}
    assert set(wb) == set(jobs) | {f"{sweep.name}/gaps"}
    assert json.dumps(wb[label]).count(job.job_id) >= 1


@pytest.mark.parametrize(
    "setting,value,package",
    [
        ("tensorboard", True, "tensorboardX"),
        ("wandb_project", "p", "wandb"),
        ("mlflow_tracking_uri", "file:///tmp/x", "mlflow"),
    ],
)
def test_a_tracker_whose_package_is_missing_is_one_line_before_anything_runs(setting, value, package, monkeypatch):
    from tsweep.core.errors import UsageError
    from tsweep.orchestrator.trackers import check_installed
    from tsweep.sweeps import TrackerSettings

    settings = TrackerSettings(**{setting: value})
    monkeypatch.setitem(sys.modules, package, None)  # what Python does for a package that is not installed
    with pytest.raises(UsageError, match=rf"^trackers\.{setting}: needs the {package} package, .*tsweep\[trackers\]"):
        check_installed(settings)
    check_installed(TrackerSettings())  # asking for none needs none
