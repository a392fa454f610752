"""tsweep's Grafana dashboard: where the shipped JSON is, and how it reaches a Ray head's Grafana.

The dashboard (``dashboards/tsweep.json``, package data) plots the gauges a sweep's driver
exports (:data:`tsweep.orchestrator.progress.GAUGES`; Ray's metrics agent prefixes them
``ray_``): jobs by state, training tokens per second, and the latest transfer gap G per source,
each per sweep and Ray session, like Ray's own dashboards (a ``datasource`` variable, a
``SessionName`` filter).

Ray's Grafana integration: at start-up the head's dashboard process writes Grafana's
provisioning (``{temp}/session_latest/metrics/grafana/provisioning``, whose dashboard provider
reads every JSON in ``.../grafana/dashboards``, or in ``$RAY_METRICS_GRAFANA_DASHBOARD_OUTPUT_DIR``
when set) and its own dashboards into that folder, after emptying it. A dashboard added to the
folder once Ray has written its own is served by a Grafana started with
``--config {temp}/session_latest/metrics/grafana/grafana.ini`` (Ray's docs, "Embedding Grafana
visualizations into Ray Dashboard"). :func:`install` waits for Ray's own dashboards, then adds
ours (``tsweep grafana --install``, run after ``ray start --head`` by infra/aws.yaml and
infra/gcp.yaml). On Kubernetes, Grafana runs apart from the head and loads dashboards from
ConfigMaps labelled ``grafana_dashboard: "1"`` (kube-prometheus-stack's sidecar, as KubeRay's
Prometheus and Grafana guide installs it): infra/kuberay/grafana-dashboard.yaml is that
ConfigMap, holding this same JSON.
"""

from __future__ import annotations

import os
import tempfile
import time
from importlib import resources

from tsweep.core.errors import UsageError

FILENAME = "tsweep.json"
# Ray 2.60's metrics head (ray/dashboard/modules/metrics/metrics_head.py) reads this variable for
# the folder its Grafana dashboard provider serves.
RAY_DASHBOARDS_ENV = "RAY_METRICS_GRAFANA_DASHBOARD_OUTPUT_DIR"
RAY_TEMP_DIR = "/tmp/ray"  # Ray's default temp dir (ray start --temp-dir)


def dashboard_json() -> str:
    """The shipped dashboard's text."""
    return (resources.files("tsweep.orchestrator") / "dashboards" / FILENAME).read_text()


def dashboard_path() -> str:
    """The shipped dashboard's path on disk (an installed wheel keeps package data as files)."""
    return str(resources.files("tsweep.orchestrator") / "dashboards" / FILENAME)


def ray_dashboards_dir(temp_dir: str = RAY_TEMP_DIR) -> str:
    """The folder whose dashboards the latest Ray session's Grafana provisioning serves."""
    return os.environ.get(RAY_DASHBOARDS_ENV) or os.path.join(
        temp_dir, "session_latest", "metrics", "grafana", "dashboards"
    )


def write(path: str, flag: str = "--out") -> str:
    """Write the dashboard to ``path`` whole or not at all (a temporary file, then a rename)."""
    folder = os.path.dirname(os.path.abspath(path))
    if os.path.isdir(path):
        raise UsageError(f"{flag}: {path} is a folder, not a file")
    if not os.path.isdir(folder):
        raise UsageError(f"{flag}: cannot write {path}: no folder {folder}")
    text = dashboard_json()
    try:
        fd, tmp = tempfile.mkstemp(dir=folder, prefix=".tsweep-grafana-", suffix=".json")
    except OSError as exc:
        raise UsageError(f"{flag}: cannot write {path}: {exc.strerror or exc}") from None
    try:
        with os.fdopen(fd, "w") as f:
            f.write(text)
        os.chmod(tmp, 0o644)  # Grafana may run as another user
        os.replace(tmp, path)
    except BaseException:
        os.unlink(tmp)
        raise
    return path


def install(temp_dir: str = RAY_TEMP_DIR, wait_s: float = 60.0, poll_s: float = 0.5) -> str:
    """Add the dashboard to the Ray head's Grafana provisioning; returns the file written.

    Ray empties the folder and writes its own dashboards when the head's dashboard process
    starts, a moment after ``ray start`` returns: wait (up to ``wait_s``) until they are there,
    so ours is not written into a folder about to be emptied."""
    folder = ray_dashboards_dir(temp_dir)
    deadline = time.monotonic() + wait_s
    while not _has_rays_own(folder):
        if time.monotonic() >= deadline:
            raise UsageError(
                f"--install: no Ray Grafana dashboards in {folder} after {wait_s:g} s; "
                f"run it on a Ray head after `ray start --head`"
            )
        time.sleep(poll_s)
    return write(os.path.join(folder, FILENAME), "--install")


def _has_rays_own(folder: str) -> bool:
    try:
        return any(n.endswith(".json") and n != FILENAME for n in os.listdir(folder))
    except OSError:
        return False
