"""Every way a sweep's data can be unavailable raises DataError, fast, naming corpus and numbers."""

from __future__ import annotations

import re
import time

import pytest

from tsweep.data import DataError, SweepData
from tsweep.data import hub as hub_mod
from tsweep.sweeps import parse_sweep


def sweep_of(
    corpora: dict,
    *,
    target="t",
    sources=("scratch", "s"),
    eval_tokens=2_000,
    finetune=(1_000,),
    pretrain=4_000,
    **extra,
):
    return parse_sweep(
        dict(
            name="err",
            target=target,
            sources=list(sources),
            corpora=corpora,
            model_sizes=["nano"],
            finetune_tokens=list(finetune),
            pretrain={"tokens": pretrain},
            eval={"tokens": eval_tokens},
            **extra,
        )
    )


SYN = {"kind": "synthetic", "distance": 0.0, "documents": 60}


def test_missing_file_names_the_pattern(tmp_path):
    pattern = str(tmp_path / "nowhere" / "*.txt")
    sd = SweepData(sweep_of({"t": SYN, "s": {"kind": "files", "paths": [pattern]}}), cache_dir=str(tmp_path / "c"))
    with pytest.raises(DataError, match=re.escape(f"corpus 's': no file matches {pattern!r}")):
        sd.check()


def test_empty_corpus(tmp_path):
    (tmp_path / "blank.txt").write_text("  \n\n   \n")
    sd = SweepData(
        sweep_of({"t": SYN, "s": {"kind": "files", "paths": [str(tmp_path / "*.txt")]}}), cache_dir=str(tmp_path / "c")
    )
    with pytest.raises(DataError, match=r"corpus 's': empty"):
        sd.check()
    assert not list((tmp_path / "c").glob("corpus-s-*")), "a failed build must leave no entry"


def test_pretrain_budget_larger_than_source(tmp_path):
    corpora = {"t": SYN, "s": {"kind": "synthetic", "distance": 0.5, "documents": 20}}
    sd = SweepData(sweep_of(corpora, pretrain=10_000_000), cache_dir=str(tmp_path))
    with pytest.raises(DataError) as err:
        sd.check()
    msg = str(err.value)
    have = sd.available_tokens("s")
    assert (
        msg == "source 's': pretrain.tokens = 10,000,000 is more than pretrain.max_epochs = 4 passes over its "
        f"training split of {have:,} tokens"
    )


def test_target_budget_plus_eval_larger_than_target(tmp_path):
    sd = SweepData(
        sweep_of({"t": SYN, "s": SYN}, finetune=(1_000, 900_000), eval_tokens=3_000), cache_dir=str(tmp_path)
    )
    with pytest.raises(DataError) as err:
        sd.check()
    assert re.fullmatch(
        r"target 't': max\(finetune_tokens, scratch_tokens\) \+ eval\.tokens = 900,000 \+ 3,000 = "
        r"903,000 tokens but the corpus has [0-9,]+",
        str(err.value),
    ), str(err.value)


def test_scratch_axis_counts_against_the_target(tmp_path):
    sd = SweepData(sweep_of({"t": SYN, "s": SYN}, scratch_tokens=[1_000, 5_000_000]), cache_dir=str(tmp_path))
    with pytest.raises(DataError, match=r"5,000,000 \+ 2,000 = 5,002,000 tokens but the corpus has"):
        sd.check()


def test_train_tokens_over_budget_names_numbers(tmp_path):
    sd = SweepData(sweep_of({"t": SYN, "s": SYN}), cache_dir=str(tmp_path))
    have = sd.available_tokens("t")
    with pytest.raises(
        DataError, match=f"corpus 't': {have + 1:,} training tokens requested but its training split has {have:,}"
    ):
        sd.train_tokens("t", have + 1)


def test_unknown_source(tmp_path):
    sd = SweepData(sweep_of({"t": SYN, "s": SYN}), cache_dir=str(tmp_path))
    with pytest.raises(DataError, match=r"unknown corpus 'nope'"):
        sd.train_tokens("nope", 10)
    with pytest.raises(DataError, match=r"unknown corpus 'nope'"):
        sd.available_tokens("nope")


def test_eval_larger_than_target(tmp_path):
    sd = SweepData(sweep_of({"t": {**SYN, "documents": 5}, "s": SYN}, eval_tokens=50_000), cache_dir=str(tmp_path))
    with pytest.raises(DataError, match=r"target 't'.*50,000.*corpus has [0-9,]+"):
        sd.check()


HUB = {"kind": "hub", "name": "someone/some-dataset", "revision": "main"}


def test_hub_offline_flag_fails_at_once(tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    sd = SweepData(sweep_of({"t": SYN, "s": HUB}), cache_dir=str(tmp_path))
    start = time.monotonic()
    with pytest.raises(
        DataError, match=r"corpus 's': hub dataset 'someone/some-dataset' cannot be loaded: HF_HUB_OFFLINE=1 is set"
    ):
        sd.check()
    assert time.monotonic() - start < 5


def test_hub_that_never_answers_fails_within_the_probe_timeout(tmp_path, monkeypatch):
    import huggingface_hub

    for flag in hub_mod.OFFLINE_FLAGS:
        monkeypatch.delenv(flag, raising=False)
    monkeypatch.setattr(hub_mod, "_probed", {})
    monkeypatch.setattr(huggingface_hub.HfApi, "dataset_info", lambda self, *a, **k: time.sleep(60))
    sd = SweepData(sweep_of({"t": SYN, "s": HUB}), cache_dir=str(tmp_path))
    start = time.monotonic()
    with pytest.raises(DataError, match=r"corpus 's': .*did not answer within"):
        sd.check()
    assert time.monotonic() - start < 5


def test_hub_unreachable_endpoint_fails_fast(tmp_path, monkeypatch):
    for flag in hub_mod.OFFLINE_FLAGS:
        monkeypatch.delenv(flag, raising=False)
    monkeypatch.setattr(hub_mod, "_probed", {})
    monkeypatch.setenv("HF_ENDPOINT", "http://127.0.0.1:9")  # discard port: refused at once
    sd = SweepData(sweep_of({"t": SYN, "s": HUB}), cache_dir=str(tmp_path))
    start = time.monotonic()
    with pytest.raises(DataError, match=r"corpus 's': hub dataset .* cannot be loaded"):
        sd.check()
    assert time.monotonic() - start < 5


def test_hf_tokenizer_offline_and_not_cached(tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))
    sd = SweepData(
        sweep_of({"t": SYN, "s": SYN}, tokenizer={"kind": "hf", "name": "no-such-org/no-such-tok"}),
        cache_dir=str(tmp_path),
    )
    with pytest.raises(
        DataError, match=r"tokenizer 'no-such-org/no-such-tok' is not in the local cache and HF_HUB_OFFLINE=1"
    ):
        _ = sd.vocab_size
