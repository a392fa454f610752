"""Bad input of every kind through the console's ``main`` (issue 13): exit code 2, one line on
stderr naming what is wrong, no traceback, nothing written; and the faults and attacks a sweep
folder meets outside a cluster (a second driver, a copied folder, a hand-edited fit, a poisoned
checkpoint or cache, a world-readable token). None of these starts Ray; the file runs in about
15 s on 2 cores.

``tests/test_sweeps.py`` holds the malformed-field corpus of ``plan``; this file the rest:
YAML that attacks the parser, numbers no trainer can honour, and every other command's inputs.
"""

from __future__ import annotations

import http.server
import json
import os
import shutil
import stat
import threading
from pathlib import Path

import pytest

from tsweep.cli import main
from tsweep.core.layout import SweepLayout
from tsweep.sweeps import dump_sweep, load_sweep

TINY = Path(__file__).parent / "data" / "tiny.yaml"


def _one_line(argv, capsys) -> str:
    """Run a command that must refuse its input: exit 2, one line on stderr, no traceback."""
    assert main(argv) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "Traceback" not in err[0], err
    return err[0]


# ------------------------------------------------------------------ plan: YAML and numbers
_BASE = TINY.read_text()
_BOMB = "a: &a [x, x, x, x, x, x, x, x, x]\n" + "".join(
    f"{n}: &{n} [{', '.join([f'*{p}'] * 9)}]\n" for p, n in zip("abcdefgh", "bcdefghi", strict=True)
)

PLAN_CASES = [
    ("seed 1e30", _BASE.replace("train: {", "train: {seed: 1.0e+30, "), "train.seed"),
    ("seed negative", _BASE.replace("train: {", "train: {seed: -1, "), "train.seed"),
    ("lr inf", _BASE.replace("lr: 3.0e-3", "lr: .inf"), "train.lr: must be a positive finite number"),
    ("lr nan", _BASE.replace("lr: 3.0e-3", "lr: .nan"), "train.lr: must be a positive finite number"),
    ("workers 1e6", _BASE + "resources: {workers: 1000000}\n", "resources.workers"),
    ("max_epochs 1e300", _BASE.replace("max_epochs: 60", "max_epochs: 1e300"), "train.max_epochs"),
    (
        "checkpoint below a step",
        _BASE.replace("checkpoints: [24k]", "checkpoints: [100]"),
        "less than one optimizer step",
    ),
    (
        "mixture weight inf",
        _BASE.replace(
            "sources: [scratch, prose]",
            "sources: [scratch, mix]\ncorpora:\n  mix: {kind: mixture, weights: {prose: .inf, c: 0.5}}",
        ),
        "must be positive and finite",
    ),
    ("duplicate key", _BASE + "name: other\n", "duplicate key 'name'"),
    ("alias bomb", _BOMB, "YAML nodes once aliases are expanded"),
    ("oversized file", _BASE + "#" + "x" * 1_100_000 + "\n", "more than a sweep file may hold"),
    (
        "relative glob matching nothing",
        _BASE.replace(
            "sources: [scratch, prose]",
            "sources: [scratch, mine]\ncorpora:\n  mine: {kind: files, paths: ['none/*.txt']}",
        ),
        "relative to",
    ),
]


@pytest.mark.parametrize("text,expected", [c[1:] for c in PLAN_CASES], ids=[c[0] for c in PLAN_CASES])
def test_plan_refuses_yaml_and_numbers_no_run_could_honour(text, expected, tmp_path, capsys, storage):
    f = tmp_path / "bad.yaml"
    f.write_text(text)
    assert expected in _one_line(["plan", str(f)], capsys)
    assert not storage.exists()


def test_relative_glob_names_the_folder_it_was_read_against(tmp_path, capsys, storage, monkeypatch):
    """Read against the sweep file's folder, not the working directory (which Tune changes)."""
    (tmp_path / "sub").mkdir()
    f = tmp_path / "sub" / "bad.yaml"
    f.write_text(PLAN_CASES[-1][1])
    monkeypatch.chdir(tmp_path)
    assert str(tmp_path / "sub" / "none") in _one_line(["plan", str(f)], capsys)


# ------------------------------------------------------------------ commands on a sweep folder
@pytest.fixture(scope="module")
def sweep_folder(tmp_path_factory):
    """A finished sweep folder (synthetic summaries, a fit), copied afresh for every test."""
    from tsweep.analysis.actor import AnalysisActor
    from tsweep.analysis.synthetic import synthetic_summary
    from tsweep.core.store import Store

    d = tmp_path_factory.mktemp("sweeps") / "tiny"
    layout = SweepLayout(str(d))
    layout.files.write_text(layout.sweep_yaml, dump_sweep(load_sweep(TINY)))
    store = Store(layout.store_root)
    for r in synthetic_summary(mode="barnett", seed=5).to_pylist():
        store.write_summary(r)
    AnalysisActor(str(d), bootstrap=5, seed=0).refit()
    return d


@pytest.fixture
def folder(sweep_folder, tmp_path) -> Path:
    d = tmp_path / "runs" / "tiny"
    shutil.copytree(sweep_folder, d)
    return d


def _snapshot(d: Path) -> dict[str, bytes]:
    return {str(p.relative_to(d)): p.read_bytes() for p in sorted(d.rglob("*")) if p.is_file()}


@pytest.mark.parametrize(
    "latest", ["[1, 2]", '{"n_jobs_finished": 3}', "{not json", ""], ids=["a list", "missing keys", "not JSON", "empty"]
)
@pytest.mark.parametrize("command", [["gaps"], ["gaps", "--json"], ["advise"]])
def test_hand_edited_latest_json_is_refitted_from_the_store_not_a_traceback(folder, latest, command, capsys):
    (folder / "fits" / "latest.json").write_text(latest)
    before = _snapshot(folder)
    assert main([command[0], str(folder), *command[1:]]) == 0
    out, err = capsys.readouterr()
    assert "Traceback" not in err and out.strip()
    if "--json" in command:
        assert json.loads(out)["sources"]
    assert _snapshot(folder) == before, "a read command changed the sweep folder"


@pytest.mark.parametrize(
    "argv,expected",
    [
        (["gaps", "{f}", "--csv", "{tmp}/no/such/folder/gaps.csv"], "--csv: cannot write"),
        (["advise", "{f}", "--target-loss", "nan"], "--target-loss: must be a positive finite loss"),
        (["advise", "{f}", "--target-loss", "inf"], "--target-loss"),
        (["advise", "{f}", "--target-loss", "-1"], "--target-loss"),
        (["advise", "{f}", "--target-loss", "lots"], "--target-loss"),
        (["report", "{f}", "--bootstrap", "-1"], "--bootstrap: must be >= 0"),
        (["report", "{f}", "--target-loss", "0"], "--target-loss: must be a positive finite loss"),
        (["advise", "{f}", "--target-loss", "2", "--corpus-tokens", "-5"], "--corpus-tokens: must be a positive"),
        (["status", "{tmp}/nothing-here"], "nothing-here: no such sweep file or folder"),
        (["gaps", "nosuchsweep"], "no sweep named 'nosuchsweep'"),
        (["report", "nosuchsweep"], "no sweep named 'nosuchsweep'"),
        (["advise", "nosuchsweep"], "no sweep named 'nosuchsweep'"),
        (["resume", "nosuchsweep"], "no sweep named 'nosuchsweep'"),
        (["status", ""], "SWEEP: empty"),
        (["submit", "{tmp}/missing.yaml"], "no such sweep file"),
        (["submit", str(TINY), "--address", "http://[::1"], "--address: 'http://[::1' is not a URL"),
        (["submit", str(TINY), "--set", "train.lr=.inf"], "train.lr"),
        (["submit", str(TINY), "--set", "nokey"], "--set"),
    ],
    ids=[
        "gaps --csv missing folder",
        "advise nan",
        "advise inf",
        "advise negative",
        "advise not a number",
        "report bootstrap -1",
        "report target 0",
        "advise corpus negative",
        "status missing folder",
        "gaps missing",
        "report missing",
        "advise missing",
        "resume missing",
        "status empty",
        "submit missing file",
        "submit address [::1",
        "submit --set lr inf",
        "submit --set no value",
    ],
)
def test_commands_refuse_bad_arguments_in_one_line(argv, expected, folder, tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("TSWEEP_STORAGE", str(tmp_path / "runs"))
    before = _snapshot(folder)
    argv = [a.format(f=folder, tmp=tmp_path) for a in argv]
    assert expected in _one_line(argv, capsys)
    assert _snapshot(folder) == before
    assert not (tmp_path / "no").exists()


def test_submit_to_a_server_that_is_not_ray_is_one_line(tmp_path, capsys, storage):
    class Quiet(http.server.SimpleHTTPRequestHandler):
        def log_message(self, *args) -> None:  # its access log would be on the stderr under test
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Quiet)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        line = _one_line(["submit", str(TINY), "--address", f"http://127.0.0.1:{server.server_port}"], capsys)
    finally:
        server.shutdown()
    assert "cannot submit to Ray's Jobs API" in line
    assert not storage.exists()


def test_fit_on_a_csv_with_duplicate_columns(tmp_path, capsys):
    f = tmp_path / "dup.csv"
    f.write_text("params,params,loss\n1,2,3\n4,5,6\n")
    assert "appears more than once" in _one_line(
        ["fit", "--law", "chinchilla", "--data", str(f), "--map", "N=params", "D=params"], capsys
    )


def test_status_with_a_stray_file_in_quarantine(folder, capsys):
    (folder / "store" / "quarantine").mkdir(parents=True, exist_ok=True)
    (folder / "store" / "quarantine" / "notes.txt").write_text("moved by hand")
    assert main(["status", str(folder), "--json"]) == 0
    out, err = capsys.readouterr()
    assert "Traceback" not in err and json.loads(out)["counts"]


# ------------------------------------------------------------------ the lease, a copied folder
def test_a_second_driver_on_a_held_sweep_refuses_naming_the_holder(folder, capsys):
    """This process holds the lease (live, heartbeat fresh): ``resume`` refuses before anything."""
    from tsweep.orchestrator import lease

    layout = SweepLayout(str(folder))
    with lease.acquire(layout, settle_s=0):
        before = _snapshot(folder)
        line = _one_line(["resume", str(folder), "--no-live"], capsys)
        assert "is being run by" in line and f":{os.getpid()} " in line
        assert _snapshot(folder) == before
    assert not (folder / "lease.json").exists(), "the lease was not given back"


def test_a_stale_lease_is_taken_over(folder):
    from tsweep.orchestrator import lease

    layout = SweepLayout(str(folder))
    dead = {"holder": "elsewhere:1", "host": "elsewhere", "pid": 1, "started": 0, "heartbeat": 0, "token": "x"}
    layout.files.write_text(layout.lease, json.dumps(dead))
    with lease.acquire(layout, settle_s=0) as held:
        assert json.loads(layout.files.read_text(layout.lease))["token"] == held.record["token"]


def test_a_copied_sweep_folder_is_its_own_sweep(folder):
    """Its sweep.yaml still says ``tiny``: resuming the backup must not write into the original."""
    from tsweep.api import resolve

    backup = folder.parent / "tiny-backup"
    shutil.copytree(folder, backup)
    _, layout = resolve(str(backup))
    assert Path(layout.sweep_dir) == backup.resolve()


# ------------------------------------------------------------------ security
def test_resume_states_load_without_unpickling_code(tmp_path):
    """A resume file that would run code when unpickled is refused (weights_only loading)."""
    import pickle

    import torch

    from tsweep.workers.checkpoints import safe_torch_load

    marker = tmp_path / "ran"

    class Exploit:
        def __reduce__(self):
            return (Path.touch, (marker,))

    bad = tmp_path / "mp_rank_00_model_states.pt"
    torch.save({"module": {}, "evil": Exploit()}, bad)
    with pytest.raises(pickle.UnpicklingError):
        safe_torch_load(bad)
    assert not marker.exists()
    good = tmp_path / "ok.pt"
    torch.save({"module": {"w": torch.ones(2)}, "step": 3}, good)
    assert safe_torch_load(good)["step"] == 3


def test_cache_keeps_a_private_source_private_and_verifies_digests(tmp_path):
    from tsweep.data import cache

    def build(d: Path) -> dict:
        (d / "tokens.bin").write_bytes(b"secret tokens")
        return {}

    entry = cache.get_or_build(tmp_path, "k", build, private=lambda: True)
    assert stat.S_IMODE(entry.path.stat().st_mode) == 0o700
    assert {stat.S_IMODE(p.stat().st_mode) for p in entry.path.iterdir()} == {0o600}
    public = cache.get_or_build(tmp_path, "p", build, private=lambda: False)
    assert stat.S_IMODE((public.path / "meta.json").stat().st_mode) == 0o644
    # a tampered file fails its digest, and a folder others may write is not trusted
    cache._opened.clear()
    (entry.path / "tokens.bin").chmod(0o600)
    (entry.path / "tokens.bin").write_bytes(b"poisoned")
    assert cache.lookup(tmp_path, "k") is None
    os.chmod(public.path, 0o777)
    cache._opened.clear()
    assert cache.lookup(tmp_path, "p") is None


def test_ray_token_file_is_private(tmp_path, monkeypatch):
    from tsweep.orchestrator.run import private_token_file

    monkeypatch.setenv("HOME", str(tmp_path))
    for k in ("RAY_AUTH_TOKEN", "RAY_AUTH_TOKEN_PATH", "RAY_AUTH_MODE"):
        monkeypatch.delenv(k, raising=False)
    private_token_file()
    token = tmp_path / ".ray" / "auth_token"
    assert stat.S_IMODE(token.stat().st_mode) == 0o600 and len(token.read_text()) == 64
    token.chmod(0o644)  # made by an older Ray, world-readable: tightened, kept
    before = token.read_text()
    private_token_file()
    assert stat.S_IMODE(token.stat().st_mode) == 0o600 and token.read_text() == before
