"""The Arrow cache: several processes building one entry at once, warm reads, invalidation."""

from __future__ import annotations

import hashlib
import multiprocessing as mp
import os
import time

import numpy as np
import pytest

from tsweep.data import SweepData
from tsweep.data import registry as sources_mod
from tsweep.sweeps import parse_sweep

CORPORA = {
    "t": {"kind": "synthetic", "distance": 0.0, "documents": 1500},
    "s": {"kind": "synthetic", "distance": 0.4, "documents": 1500},
}


def _sweep(corpora=CORPORA):
    return parse_sweep(
        dict(
            name="cache-test",
            target="t",
            sources=["scratch", "s"],
            corpora=corpora,
            model_sizes=["nano"],
            finetune_tokens=[10_000],
            pretrain={"tokens": 50_000},
            eval={"tokens": 8_000},
        )
    )


def _job(cache_dir: str, barrier, queue) -> None:
    """What a training job does, started in step with another process on a cold cache."""
    barrier.wait()
    sd = SweepData(_sweep(), cache_dir=cache_dir)
    ev = sd.eval_tokens().tokens
    tr = sd.train_tokens("s", 50_000).tokens
    queue.put((os.getpid(), hashlib.sha256(ev.tobytes()).hexdigest(), hashlib.sha256(tr.tobytes()).hexdigest()))


def test_two_processes_build_the_same_entries_at_once(tmp_path):
    ctx = mp.get_context("spawn")
    barrier, queue = ctx.Barrier(2), ctx.Queue()
    procs = [ctx.Process(target=_job, args=(str(tmp_path), barrier, queue)) for _ in range(2)]
    for p in procs:
        p.start()
    results = [queue.get(timeout=120) for _ in procs]
    for p in procs:
        p.join(60)
        assert p.exitcode == 0
    assert results[0][1:] == results[1][1:]
    here = SweepData(_sweep(), cache_dir=str(tmp_path))
    assert hashlib.sha256(here.eval_tokens().tokens.tobytes()).hexdigest() == results[0][1]
    entries = sorted(p.name.rsplit("-", 1)[0] for p in tmp_path.iterdir() if not p.name.startswith("."))
    assert entries == ["corpus-s", "corpus-t", "eval-t", "split-s"], entries
    assert not list(tmp_path.glob(".tmp-*")), "no half-built entry may remain"


def test_warm_cache_builds_nothing(tmp_path, monkeypatch):
    SweepData(_sweep(), cache_dir=str(tmp_path)).check()

    def boom(*a, **k):
        raise AssertionError("rebuilt a cached corpus")

    monkeypatch.setattr(sources_mod.SOURCES["synthetic"], "documents", boom)
    start = time.perf_counter()
    sd = SweepData(_sweep(), cache_dir=str(tmp_path))
    assert sd.check() == {"t": sd.available_tokens("t"), "s": sd.available_tokens("s")}
    sd.train_tokens("t", 10_000), sd.eval_tokens()
    assert time.perf_counter() - start < 1.0


def test_token_arrays_are_memory_mapped_and_read_only(tmp_path):
    sd = SweepData(_sweep(), cache_dir=str(tmp_path))
    tokens = sd.train_tokens("t", 1_000).tokens
    assert not tokens.flags.writeable
    with pytest.raises(ValueError):
        tokens[0] = 1


def test_cache_dir_from_environment(tmp_path, monkeypatch):
    monkeypatch.setenv("TSWEEP_DATA_CACHE", str(tmp_path / "env-cache"))
    SweepData(_sweep()).eval_tokens()
    assert list((tmp_path / "env-cache").glob("eval-t-*"))


def test_changed_file_is_a_new_entry(tmp_path):
    f = tmp_path / "docs.jsonl"
    f.write_text("".join(f'{{"text": "document number {i} " }}\n' for i in range(400)))
    corpora = {"t": CORPORA["t"], "s": {"kind": "files", "paths": [str(f)], "format": "json"}}
    cache = tmp_path / "c"
    before = SweepData(_sweep(corpora), cache_dir=str(cache)).available_tokens("s")
    time.sleep(0.01)
    f.write_text(f.read_text() + '{"text": "one more document"}\n')
    after = SweepData(_sweep(corpora), cache_dir=str(cache)).available_tokens("s")
    assert after == before + len("one more document") + 1
    assert len(list(cache.glob("corpus-s-*"))) == 2


def test_crashed_builder_leftovers_are_cleared(tmp_path):
    sd = SweepData(_sweep(), cache_dir=str(tmp_path))
    key = sd._eval_key()
    stale = tmp_path / f".tmp-{key}-dead"
    stale.mkdir(parents=True)
    (stale / "tokens.arrow").write_bytes(b"half")
    assert len(sd.eval_tokens().tokens) == 8_000
    assert not stale.exists()
    assert np.array_equal(
        sd.eval_tokens().tokens, SweepData(_sweep(), cache_dir=str(tmp_path / "b")).eval_tokens().tokens
    )
