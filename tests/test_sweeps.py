"""Every shipped sweep parses and plans; job ids are content addresses; bad sweeps fail cleanly."""

import copy
import re

import pytest
import yaml

from tsweep.cli import main
from tsweep.orchestrator.plan import expand
from tsweep.sweeps import SweepError, load_sweep, parse_sweep, shipped_sweeps

SHIPPED = shipped_sweeps()


def test_demo_is_shipped():
    assert any(p.name == "demo.yaml" for p in SHIPPED)


@pytest.mark.parametrize("path", SHIPPED, ids=[p.name for p in SHIPPED])
def test_shipped_sweep_plans(path, capsys, storage):
    assert main(["plan", str(path)]) == 0
    out = capsys.readouterr().out
    sweep = load_sweep(path)
    graph = expand(sweep)
    assert f"{len(graph.jobs)} jobs" in out
    for job in graph.jobs:
        assert job.job_id in out
    assert not storage.exists(), "plan must write nothing"


def _base():
    return yaml.safe_load(open(SHIPPED[0].parent / "prose_to_python.yaml"))  # it has a mixture corpus


def test_job_ids_are_stable_and_content_addressed():
    a = expand(parse_sweep(_base()))
    b = expand(parse_sweep(_base()))
    assert [j.job_id for j in a.jobs] == [j.job_id for j in b.jobs]
    assert len({j.job_id for j in a.jobs}) == len(a.jobs)

    # Renaming the sweep or changing resources changes nothing a job computes: same ids.
    d = _base()
    d["name"] = "renamed"
    d["resources"] = {"cpus": 2}
    assert {j.job_id for j in expand(parse_sweep(d)).jobs} == {j.job_id for j in a.jobs}

    # A new learning rate changes every job's result: every id changes.
    d = _base()
    d["train"]["lr"] = 1e-3
    assert not ({j.job_id for j in expand(parse_sweep(d)).jobs} & {j.job_id for j in a.jobs})

    # One more fine-tune budget adds jobs and keeps the others.
    d = _base()
    d["finetune_tokens"] = d["finetune_tokens"] + ["512k"]
    c = expand(parse_sweep(d))
    old = {j.job_id for j in a.jobs if j.kind == "finetune"}
    assert old < {j.job_id for j in c.jobs if j.kind == "finetune"}


def test_new_checkpoint_reruns_pretraining_but_keeps_finetunes():
    a = expand(parse_sweep(_base()))
    d = _base()
    d["pretrain"]["checkpoints"] = d["pretrain"]["checkpoints"] + ["750k"]
    b = expand(parse_sweep(d))
    assert not ({j.job_id for j in a.pretrain} & {j.job_id for j in b.pretrain})
    assert {j.job_id for j in a.jobs if j.kind == "finetune"} < {j.job_id for j in b.jobs if j.kind == "finetune"}


# Ids of the shipped demo, as its finished results in every storage root carry them: a change here
# re-runs every sweep already run, so it must come with a reason (a RECIPE_VERSION bump).
DEMO_IDS = {
    "pretrain/d0.6/mini": ("40470670b367dca9", 4038, None),
    "finetune/d0.6@125k/mini/DF=16k": ("4761ffec6b352aa9", 4844, "40470670b367dca9/p-125000"),
    "finetune/d0.9@4M/pico/DF=1k": ("f7b1c89d3125682b", 3581, "b7ddacc7263b9137/p-4000000"),
    "scratch/mini/D=64k": ("d039c3f851e6ad25", 6648, None),
    "scratch/pico/D=1k": ("a8e16eba00586fd7", 6234, None),
}


def test_the_demo_job_ids_and_seeds_are_pinned(tmp_path):
    sweep = load_sweep(next(p for p in SHIPPED if p.name == "demo.yaml"))
    g = expand(sweep, sweep.layout(str(tmp_path)))
    jobs = {j.label: j for j in g.jobs}
    assert len(jobs) == len(g.jobs) and len(g.jobs) - len(g.replicates) == 94
    for label, (job_id, seed, init_from) in DEMO_IDS.items():
        j = jobs[label]
        assert (j.job_id, j.seed) == (job_id, seed), label
        assert j.init_from == (None if init_from is None else f"{tmp_path}/demo/checkpoints/{init_from}"), label


def test_graph_shape():
    sweep = parse_sweep(_base())
    g = expand(sweep)
    n_src, n_size = len(sweep.pretrain_sources), len(sweep.model_sizes)
    assert len(g.pretrain) == n_src * n_size
    assert sum(j.kind == "finetune" for j in g.jobs) == n_src * n_size * len(sweep.pretrain.p_axis) * len(
        sweep.finetune_tokens
    )
    assert sum(j.kind == "scratch" for j in g.jobs) == n_size * len(sweep.scratch_axis)
    for j in g.jobs:
        if j.kind == "finetune":
            assert g.by_id[j.parent].kind == "pretrain"
            assert j.pretrain_tokens in g.by_id[j.parent].checkpoints


def _set(d, path, value):
    keys = path.split(".")
    for k in keys[:-1]:
        d = d.setdefault(k, {})
    if value is _DELETE:
        del d[keys[-1]]
    else:
        d[keys[-1]] = value


_DELETE = object()

# (edit path, value, text the one-line error must contain)
MALFORMED = [
    ("finetune_tokens", [16000, 64000, -5], "finetune_tokens[2]: must be a positive integer, got -5"),
    ("finetune_tokens", [0], "finetune_tokens[0]: must be a positive integer, got 0"),
    ("finetune_tokens", ["lots"], "finetune_tokens[0]"),
    ("finetune_tokens", [16000, 16000], "finetune_tokens"),
    ("finetune_tokens", [], "finetune_tokens"),
    ("finetune_tokens", 5, "finetune_tokens"),
    ("scratch_tokens", [1.5], "scratch_tokens[0]"),
    ("pretrain.tokens", -1, "pretrain.tokens"),
    ("pretrain.tokens", True, "pretrain.tokens"),
    ("pretrain.checkpoints", ["50M"], "beyond the pre-training budget"),
    ("pretrain.checkpoints", ["4.1k"], "too few for a cooldown branch"),  # one step: its branch would start at 0
    ("pretrain.checkpoints", [12 * 4096, 13 * 4096], "branches off at step 10, as 49,152 does"),
    ("pretrain.checkpoints", [6_999_000], "lands on the run's last step"),
    ("pretrain", _DELETE, "pretrain: required field is missing"),
    ("target", _DELETE, "target: required field is missing"),
    ("target", "klingon", "target: unknown corpus 'klingon'"),
    ("sources", ["scratch", "nope"], "sources[1]: unknown corpus 'nope'"),
    ("sources", ["scratch"], "sources: needs at least one pre-training source"),
    ("sources", ["prose", "prose"], "duplicate source"),
    ("model_sizes", ["nano", "colossal"], "model_sizes[1]: unknown size 'colossal'"),
    ("model_sizes", ["nano", "nano"], "duplicate size"),
    ("name", "../escape", "name: must be letters"),
    ("name", "a/b", "name: must be letters"),
    ("name", 7, "name"),
    ("bogus_key", 1, "bogus_key: unknown key"),
    ("train.lr", -0.1, "train.lr"),
    ("train.batch_size", 0, "train.batch_size"),
    ("train.seq_len", "long", "train.seq_len"),
    ("train.schedule", "cosine", "train.schedule: unknown key"),
    ("train.cooldown", 1.5, "train.cooldown"),
    ("train.max_epochs", 1e300, "train.max_epochs"),
    ("train.seed", -3, "train.seed"),
    ("train.colour", "red", "train.colour: unknown key"),
    ("eval.patience_epochs", 0, "eval.patience_epochs"),
    ("eval.min_epochs", 0.5, "eval.min_epochs"),
    ("eval.min_interval_tokens", 10**9, "eval.min_interval_tokens"),
    ("pretrain.max_epochs", 100, "pretrain.max_epochs"),
    ("resources.workers", 1000000, "resources.workers"),
    ("resources.gpus", 1.5, "resources.gpus"),
    ("resources.cpus", -1, "resources.cpus"),
    ("deepspeed.zero_stage", 4, "deepspeed.zero_stage"),
    ("deepspeed.precision", "fp16", "deepspeed.precision"),
    ("corpora.web", {"kind": "ftp"}, "corpora.web"),
    ("corpora.prose+c.weights", {"prose": 0.5, "cobol": 0.5}, "unknown corpus 'cobol'"),
    ("corpora.prose+c.weights", {"prose": -1, "c": 0.5}, "weight of 'prose' must be positive"),
    (
        "replicates.finetune",
        {"source": "python", "size": "nano", "cells": [{"p": "7M", "f": "16k"}]},
        "replicates.finetune.source: 'python' is not a source this sweep pre-trains",
    ),
    (
        "replicates.finetune",
        {"source": "scratch", "size": "nano", "cells": [{"p": "7M", "f": "16k"}]},
        "replicates.finetune.source: 'scratch' is not a source",
    ),
    (
        "replicates.pretrain",
        {"source": "prose", "size": "huge", "cells": [{"p": "7M", "f": "16k"}]},
        "replicates.pretrain.size: 'huge' is not one of model_sizes",
    ),
    (
        "replicates.pretrain",
        {"source": "prose", "size": "nano", "cells": [{"p": "7M", "f": "16k"}, {"p": "1M", "f": "16k"}]},
        "replicates.pretrain.cells[1].p: 1,000,000 is not a checkpoint of the grid",
    ),
    (
        "replicates.finetune",
        {"source": "prose", "size": "nano", "cells": [{"p": "7M", "f": "32k"}]},
        "replicates.finetune.cells[0].f: 32,000 is not one of finetune_tokens",
    ),
    (
        "replicates.finetune",
        {"source": "prose", "size": "nano", "cells": [{"p": "7M", "f": "16k"}, {"p": 7e6, "f": 16000}]},
        "replicates.finetune.cells[1]: repeats the cell p = 7,000,000, f = 16,000",
    ),
    ("replicates.finetune", {"source": "prose", "size": "nano", "cells": []}, "replicates.finetune.cells"),
    (
        "replicates.finetune",
        {"source": "prose", "size": "nano", "cells": [{"p": "7M"}]},
        "replicates.finetune.cells[0].f: required field is missing",
    ),
    (
        "replicates.finetune",
        {"source": "prose", "size": "nano", "cells": [{"p": "7M", "f": -2}]},
        "replicates.finetune.cells[0].f",
    ),
    (
        "replicates.finetune",
        {"source": "prose", "size": "nano", "cells": [{"p": "7M", "f": "16k"}], "runs": 9},
        "replicates.finetune.runs: must be <= 4, got 9",
    ),
    (
        "replicates.pretrain",
        {"source": "prose", "size": "nano", "cells": [{"p": "7M", "f": "16k"}], "runs": 0},
        "replicates.pretrain.runs",
    ),
    (
        "replicates.pretrain",
        {"source": "prose", "size": "nano", "cells": [{"p": "7M", "f": "16k"}], "seed": 3},
        "replicates.pretrain.seed: unknown key",
    ),
    ("replicates.scratch", {}, "replicates.scratch: unknown key"),
]


@pytest.mark.parametrize(
    "path,value,expected",
    MALFORMED,
    ids=[(f"{m[0]} deleted" if m[1] is _DELETE else f"{m[0]}={m[1]!r}")[:40] for m in MALFORMED],
)
def test_malformed_sweep_exit_2_one_line(path, value, expected, tmp_path, capsys, storage):
    d = copy.deepcopy(_base())
    _set(d, path, value)
    f = tmp_path / "bad.yaml"
    f.write_text(yaml.safe_dump(d))
    code = main(["plan", str(f)])
    err = capsys.readouterr().err.strip()
    assert code == 2
    assert "\n" not in err and "Traceback" not in err
    assert expected in err, err
    assert not storage.exists()


@pytest.mark.parametrize(
    "text,expected",
    [
        ("name: [unclosed", "invalid YAML at line 1"),
        ("- just\n- a list\n", "top level must be a mapping"),
        ("", "top level must be a mapping"),
        ("!!python/object/apply:os.system ['echo hacked']", "invalid YAML"),
        ("\x00\x01binary", "invalid YAML"),
    ],
)
def test_broken_files_exit_2(text, expected, tmp_path, capsys):
    f = tmp_path / "broken.yaml"
    f.write_text(text)
    assert main(["plan", str(f)]) == 2
    err = capsys.readouterr().err
    assert expected in err and "Traceback" not in err


def test_missing_file_exit_2(tmp_path, capsys):
    assert main(["plan", str(tmp_path / "nope.yaml")]) == 2
    assert "no such sweep file" in capsys.readouterr().err


def test_errors_are_sweeperrors_not_pydantic():
    with pytest.raises(SweepError):
        parse_sweep({"name": "x"})


def test_every_setting_is_documented_where_it_is_declared(capsys):
    from tsweep.sweeps import explain

    rows = explain()
    undocumented = [path for path, _, text in rows if not text]
    assert not undocumented, undocumented
    assert main(["plan", "--explain"]) == 0
    out = capsys.readouterr().out
    for path in ("train.cooldown", "eval.patience_epochs", "pretrain.checkpoints", "corpora.NAME (synthetic).distance"):
        assert path in out


def test_plan_prints_cost_per_kind_and_a_wall_time_for_a_cluster(capsys):
    assert main(["plan", "demo", "--cpus", "64"]) == 0
    out = capsys.readouterr().out
    for kind in ("pretrain", "finetune", "scratch", "total"):
        assert re.search(rf"^{kind}\s+\d+\s+\S+\s+[\d.e+-]+ CPU core-h$", out, flags=re.M), kind
    small = re.search(r"wall time on 64 CPUs: about (\S+)", out).group(1)
    assert main(["plan", "demo", "--cpus", "2"]) == 0
    assert re.search(r"wall time on 2 CPUs: about (\S+)", capsys.readouterr().out).group(1) != small


def test_relative_file_globs_are_read_against_the_sweep_file(tmp_path, monkeypatch):
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "a.txt").write_text("hello")
    d = copy.deepcopy(_base())
    d["corpora"]["mine"] = {"kind": "files", "paths": ["data/*.txt"]}
    f = tmp_path / "s.yaml"
    f.write_text(yaml.safe_dump(d))
    monkeypatch.chdir("/")  # another working folder, as a Tune trial has
    sweep = load_sweep(f)
    assert sweep.corpora["mine"].paths == (str(tmp_path / "data" / "*.txt"),)


def test_set_overrides_are_validated_and_saved_with_the_sweep(tmp_path, capsys):
    from tsweep.sweeps import with_overrides

    demo = load_sweep(next(p for p in SHIPPED if p.name == "demo.yaml"))
    s = with_overrides(demo, ["train.lr=1e-3", "model_sizes=[pico]", "name=demo-lr"])
    assert (s.train.lr, s.model_sizes, s.name) == (1e-3, ["pico"], "demo-lr")
    assert demo.train.lr != 1e-3  # the loaded sweep is untouched
    # an override enters job ids exactly where it changes what a job computes
    assert {j.job_id for j in expand(s).jobs}.isdisjoint({j.job_id for j in expand(demo).jobs})
    assert {j.job_id for j in expand(with_overrides(demo, ["name=other"])).jobs} == {
        j.job_id for j in expand(demo).jobs
    }
    for bad, where in [
        ("train.lr=-1", "train.lr"),
        ("train.lr.x=1", "train.lr is a value"),
        ("nokey", "KEY.PATH=VALUE"),
        ("trian.lr=1", "trian: unknown key"),
        ("eval={a: [}", "invalid YAML"),
    ]:
        with pytest.raises(SweepError, match=re.escape(where)):
            with_overrides(demo, [bad])
        assert main(["plan", "demo", "--storage", str(tmp_path), "--set", bad]) == 2
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and where in err, err
    assert main(["plan", "demo", "--storage", str(tmp_path), "--set", "train.lr=1e-3", "--set", "name=demo-lr"]) == 0
    assert "sweep demo-lr: " in capsys.readouterr().out


def test_set_keeps_the_text_typed_for_a_text_field(tmp_path, capsys):
    """YAML reads ``2024`` as an integer and ``true`` as a boolean; for a field the schema types as
    text the override is what the user typed, while numeric fields still read numbers."""
    from tsweep.sweeps import with_overrides

    demo = load_sweep(next(p for p in SHIPPED if p.name == "demo.yaml"))
    s = with_overrides(demo, ["name=2024", "description=true", "train.lr=1e-3", "trackers.wandb_project=007"])
    assert (s.name, s.description, s.train.lr, s.trackers.wandb_project) == ("2024", "true", 1e-3, "007")
    assert with_overrides(demo, ["sources=[d0.6, 'd0.9']"]).sources == ["d0.6", "d0.9"]
    with pytest.raises(SweepError, match=r"train\.lr"):
        with_overrides(demo, ["train.lr=fast"])  # a number field still refuses text
    assert main(["plan", "demo", "--storage", str(tmp_path), "--set", "name=2024"]) == 0
    assert "sweep 2024: " in capsys.readouterr().out


def test_a_sweep_folder_refuses_results_of_a_changed_sweep(tmp_path, capsys):
    """Fitting the laws to two experiments at once is the silent error this prevents: a store
    with finished jobs the sweep does not plan (a changed learning rate) makes run exit 2 before
    anything starts or is written, naming the changed setting."""
    from pathlib import Path

    import pyarrow.parquet as pq

    from tsweep.core.store import Store
    from tsweep.orchestrator.run import save_sweep

    tiny = Path(__file__).parent / "data" / "tiny.yaml"
    old = load_sweep(tiny)
    layout = old.layout(str(tmp_path))
    save_sweep(old, layout)
    row = pq.read_table(Path(__file__).parent / "data" / "demo" / "summary.parquet").slice(0, 1).to_pylist()[0]
    row.update(job_id=next(j.job_id for j in expand(old).jobs if j.kind == "scratch"), sweep=old.name)
    Store(layout.store_root).write_summary(row)
    before = sorted(p.name for p in Path(layout.sweep_dir).rglob("*"))
    code = main(["submit", str(tiny), "--storage", str(tmp_path), "--no-live", "--set", "train.lr=1e-4"])
    err = capsys.readouterr().err
    assert code == 2 and "1 finished job(s) this sweep does not plan (changed: train.lr)" in err, err
    assert err.count("\n") == 1
    assert sorted(p.name for p in Path(layout.sweep_dir).rglob("*")) == before  # nothing written


def test_a_hub_corpus_named_by_a_relative_local_folder_is_resolved_against_the_sweep_file(tmp_path):
    """Trials run in working directories of their own: a local dataset folder named relative to the
    sweep file must reach them as an absolute path (a hub name stays as it is)."""
    (tmp_path / "data" / "mine").mkdir(parents=True)
    d = copy.deepcopy(_base())
    d["corpora"]["mine"] = {"kind": "hub", "name": "data/mine"}
    d["corpora"]["remote"] = {"kind": "hub", "name": "org/some-dataset"}
    sweep = parse_sweep(d, base_dir=str(tmp_path))
    assert sweep.corpora["mine"].name == str(tmp_path / "data" / "mine")
    assert sweep.corpora["remote"].name == "org/some-dataset"


# ------------------------------------------------------------------ replicates
def _with_replicates(runs=1):
    d = _base()
    d["replicates"] = {
        "finetune": {"source": "prose", "size": "mini", "cells": [{"p": "7M", "f": f} for f in ("16k", "64k", "256k")]},
        "pretrain": {
            "source": "prose+c",
            "size": "nano",
            "runs": runs,
            "cells": [{"p": "218.75k", "f": "16k"}, {"p": "875k", "f": "16k"}, {"p": "875k", "f": "64k"}],
        },
    }
    return d


def test_replicates_leave_the_grid_as_it_was():
    """Adding a replicates section changes no job of the grid: the same ids, seeds, parents and
    checkpoints (resume keeps every finished job), and adds only jobs marked as replicates."""
    grid = expand(parse_sweep(_base()))
    both = expand(parse_sweep(_with_replicates()))
    assert not grid.replicates
    originals = [j for j in both.jobs if not j.replicate]
    assert [j.to_dict() for j in originals] == [j.to_dict() for j in grid.jobs]
    assert len(both.jobs) == len(grid.jobs) + 3 + 1 + 3
    assert len({j.job_id for j in both.jobs}) == len(both.jobs)
    assert len({j.label for j in both.jobs}) == len(both.jobs)  # trial names stay apart


def test_replicate_jobs_repeat_their_cell_with_another_seed_and_the_right_parent():
    both = expand(parse_sweep(_with_replicates(runs=2)))
    grid = {(j.kind, j.source, j.size, j.pretrain_tokens, j.data_tokens): j for j in both.jobs if not j.replicate}
    pre = [j for j in both.replicates if j.kind == "pretrain"]
    assert [(j.replicate, j.lineage, j.source, j.size) for j in pre] == [
        (1, 1, "prose+c", "nano"),
        (2, 2, "prose+c", "nano"),
    ]
    original = grid["pretrain", "prose+c", "nano", 0, 7_000_000]
    for run in pre:
        # the same run again from another seed, saving only what its cells start from
        assert run.seed != original.seed and run.data_tokens == original.data_tokens
        assert run.checkpoints == (218_750, 875_000, 7_000_000) and run.est_flops < original.est_flops
    seeds = {j.seed for j in both.jobs if not j.replicate}
    for job in both.replicates:
        twin = grid[job.kind, job.source, job.size, job.pretrain_tokens, job.data_tokens]
        assert job.seed not in seeds and job.max_steps == twin.max_steps and job.est_flops <= twin.est_flops
        if job.kind != "finetune":
            continue
        parent = both.by_id[job.parent]
        assert job.init_from == parent.p_checkpoint(job.pretrain_tokens) and job.pretrain_tokens in parent.checkpoints
        if job.lineage == 0:  # a fine-tune replicate: the grid's own checkpoint
            assert job.parent == twin.parent and job.init_from == twin.init_from and job.replicate == 1
        else:  # from the replicate pre-training run of its lineage
            assert parent.replicate == job.lineage == job.replicate and job.init_from != twin.init_from
    assert sum(j.kind == "finetune" and j.lineage > 0 for j in both.jobs) == 2 * 3


def test_plan_shows_the_replicates_and_their_share_of_the_grid(tmp_path, capsys):
    f = tmp_path / "reps.yaml"
    f.write_text(yaml.safe_dump(_with_replicates()))
    assert main(["plan", str(f)]) == 0
    out = capsys.readouterr().out
    graph = expand(load_sweep(f))
    grid = sum(j.est_flops for j in graph.jobs if not j.replicate)
    extra = sum(j.est_flops for j in graph.replicates)
    line = re.search(r"^replicates: (\d+) jobs \(1 pretrain, 6 finetune\), \+([\d.]+)% compute", out, flags=re.M)
    assert line and int(line.group(1)) == 7
    assert float(line.group(2)) == pytest.approx(100 * extra / grid, abs=0.05)
    assert "pretrain/prose+c/nano/r1" in out and "finetune/prose+c@875k~r1/nano/DF=64k/r1" in out
    assert "finetune/prose@7M/mini/DF=16k/r1" in out
    assert main(["plan", str(SHIPPED[0].parent / "prose_to_python.yaml")]) == 0
    assert "replicates:" not in capsys.readouterr().out  # none by default


@pytest.mark.parametrize("name", ["demo.yaml", "synthetic_distance.yaml", "prose_to_python_cpu.yaml"])
def test_the_shipped_cpu_sweeps_measure_their_noise_for_at_most_a_tenth_more_compute(name):
    """Both noise scales need a fine-tune replicate and a pre-training replicate; the YAML's comment
    promises at most 10% more compute than its grid."""
    graph = expand(load_sweep(next(p for p in SHIPPED if p.name == name)))
    kinds = {(j.kind, j.lineage > 0) for j in graph.replicates}
    assert kinds == {("finetune", False), ("pretrain", True), ("finetune", True)}
    assert len({j.data_tokens for j in graph.replicates if j.kind == "finetune" and not j.lineage}) >= 2  # over f
    grid = sum(j.est_flops for j in graph.jobs if not j.replicate)
    assert sum(j.est_flops for j in graph.replicates) <= 0.10 * grid
