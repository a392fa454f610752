"""A sweep's paths are an on-disk contract: a sweep folder written by an earlier tsweep must still
be found. ``tests/data/layout_paths.json`` holds every path below as tsweep computed it at commit
5d9fe18 (before the path building moved into ``tsweep.core.layout``), for a sample pre-training
job and a fine-tune of it under local, ``~``, ``file://``, ``s3://`` (with an endpoint query) and
``gs://`` roots; this test computes them again through the callers' API and compares byte for byte.
"""

from __future__ import annotations

import json
import tempfile
from dataclasses import replace
from pathlib import Path

import pytest

from tsweep.core.job import Job
from tsweep.core.layout import Files, SweepLayout
from tsweep.core.sizes import get_size
from tsweep.workers import checkpoints

PINNED = json.loads((Path(__file__).parent / "data" / "layout_paths.json").read_text())
HOME = "/home/u"  # the HOME the pins were computed under (for the ``~`` root)
SWEEP_PATHS = (
    "sweep_dir",
    "sweep_yaml",
    "lease",
    "store_root",
    "fits_dir",
    "latest_fit",
    "fit_history",
    "plots_dir",
    "summary_md",
    "report_html",
    "tune_dir",
    "train_dir",
)
JOB_PATHS = ("resume_dir", "deepspeed_file", "attempts_file")


def _sample(layout: SweepLayout) -> tuple[Job, Job]:
    """A pre-training job with two p-checkpoints and a fine-tune of it, resolved as the planner does."""
    mini = get_size("mini")
    common = dict(target="python", size="mini", n_params=mini.n_params, cpus=1, gpus=0, workers=1, shape=mini)
    pre = Job(
        job_id="0123abcd4567ef89",
        kind="pretrain",
        source="prose",
        data_tokens=1_000_000,
        checkpoints=(250_000, 1_000_000),
        max_steps=100,
        tokens_per_step=10_000,
        est_flops=1e12,
        **common,
    )
    ft = Job(
        job_id="fedcba9876543210",
        kind="finetune",
        source="prose",
        data_tokens=16_000,
        pretrain_tokens=250_000,
        parent=pre.job_id,
        max_steps=10,
        tokens_per_step=1_000,
        est_flops=1e9,
        **common,
    )
    pre = replace(pre, job_dir=layout.job_dir(pre.job_id))
    ft = replace(ft, job_dir=layout.job_dir(ft.job_id), init_from=pre.p_checkpoint(ft.pretrain_tokens))
    return pre, ft


def _paths(root: str) -> dict[str, object]:
    layout = SweepLayout.under(root, "demo")
    out: dict[str, object] = {a: getattr(layout, a) for a in SWEEP_PATHS}
    out["plot"] = layout.plot("gaps.png")
    pre, ft = _sample(layout)
    out["pre.job_dir"] = pre.job_dir
    for p in pre.checkpoints:
        out[f"pre.p_checkpoint({p})"] = pre.p_checkpoint(p)
    for name, job in (("pre", pre), ("ft", ft)):
        for a in JOB_PATHS:
            out[f"{name}.{a}"] = getattr(job, a)
        # the branch snapshot's folder: beside the checkpoints on a local disk, else in this node's TMPDIR
        out[f"{name}.scratch"] = checkpoints._scratch_path(job).replace(tempfile.gettempdir(), "{TMP}")
    out["ft.job_dir"] = ft.job_dir
    out["ft.init_from"] = ft.init_from
    files = Files(layout.sweep_dir)
    out["fs_path"] = {k: files.fs_path(v) for k, v in out.items() if isinstance(v, str) and "{TMP}" not in v}
    return out


@pytest.mark.parametrize("root", sorted(PINNED))
def test_paths_are_those_an_earlier_tsweep_wrote(root: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HOME", HOME)
    assert _paths(root) == PINNED[root]


@pytest.mark.parametrize("root", sorted(PINNED))
def test_job_layout_names_the_pinned_paths(root: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """:class:`JobLayout`, which job.py and workers/checkpoints.py now ask, names the same paths."""
    monkeypatch.setenv("HOME", HOME)
    pins = PINNED[root]
    job = SweepLayout.under(root, "demo").job("0123abcd4567ef89")
    assert job.job_dir == pins["pre.job_dir"]
    assert job.p_checkpoint(250_000) == pins["pre.p_checkpoint(250000)"]
    assert job.p_checkpoint(1_000_000) == pins["pre.p_checkpoint(1000000)"]
    assert (job.resume_dir, job.deepspeed_file, job.attempts_file) == (
        pins["pre.resume_dir"],
        pins["pre.deepspeed_file"],
        pins["pre.attempts_file"],
    )
    assert (job.local_branch_dir or "{TMP}/tsweep-branch/0123abcd4567ef89") == pins["pre.scratch"]


def test_tensorboard_dir_is_where_the_trackers_write() -> None:
    from tsweep.core.paths import join

    layout = SweepLayout.under("s3://bucket/tsweep?scheme=http", "demo")
    assert layout.tensorboard_dir == join(layout.tune_dir, "gaps")
    assert layout.tensorboard_dir == "s3://bucket/tsweep/demo/tune/gaps?scheme=http"


def test_layout_still_exports_what_the_rest_of_tsweep_imports_from_it() -> None:
    from tsweep.core import files, layout, paths

    assert layout.Files is files.Files
    for name in ("is_uri", "join", "local_path", "resolve_root", "without_query"):
        assert getattr(layout, name) is getattr(paths, name)
