"""Existing pre-trained models as sources: revisions as the p axis, N counted from the config,
fine-tunes from the weights, scratch runs of the same architecture, a clear error offline."""

import os

import pytest
import torch

from tsweep.cli import main
from tsweep.core.layout import SweepLayout
from tsweep.core.store import Store
from tsweep.orchestrator.plan import expand
from tsweep.sweeps import SweepError, parse_sweep
from tsweep.workers.pretrained import ModelUnavailable, load_config, model_size
from tsweep.workers.runner import run_job


@pytest.fixture(scope="module")
def local_model(tmp_path_factory):
    """A small GPT-2 with a byte-level BPE tokenizer trained here, saved like a hub snapshot."""
    from tokenizers import ByteLevelBPETokenizer
    from transformers import GPT2Config, GPT2LMHeadModel, PreTrainedTokenizerFast

    d = tmp_path_factory.mktemp("model")
    import inspect

    text = inspect.getsource(torch.nn.modules.module)
    bpe = ByteLevelBPETokenizer()
    bpe.train_from_iterator([text], vocab_size=400, min_frequency=2, special_tokens=["<|endoftext|>"])
    tok = PreTrainedTokenizerFast(tokenizer_object=bpe, eos_token="<|endoftext|>")
    tok.save_pretrained(d)
    torch.manual_seed(0)
    model = GPT2LMHeadModel(GPT2Config(vocab_size=len(tok), n_positions=64, n_embd=32, n_layer=2, n_head=2))
    model.save_pretrained(d)
    return str(d)


def _sweep(model_dir, **over):
    d = {
        "name": "hub",
        "target": "python",
        "sources": ["scratch", "gpt"],
        "pretrained": {"gpt": {"model": model_dir, "revisions": {"main": "1M"}}},
        "tokenizer": {"kind": "hf", "name": model_dir},
        "model_sizes": ["nano"],
        "finetune_tokens": ["4k"],
        "scratch_tokens": ["4k", "8k"],
        "eval": {"tokens": "2k", "interval_steps": 5, "patience_epochs": 1},
        "train": {"seq_len": 32, "batch_size": 4, "max_epochs": 1},
    }
    d.update(over)
    return parse_sweep(d)


def test_n_is_counted_without_embeddings(local_model):
    size = model_size(local_model)
    d = 32
    assert size.n_params == 2 * (12 * d * d + 13 * d) + 2 * d  # GPT-2 blocks + final norm, as the ladder


def test_plan_has_finetunes_per_revision_and_scratch_of_same_architecture(local_model):
    g = expand(_sweep(local_model))
    ft = [j for j in g.jobs if j.source == "gpt"]
    assert [(j.revision, j.pretrain_tokens, j.parent) for j in ft] == [("main", 1_000_000, None)]
    arch = [j for j in g.jobs if j.kind == "scratch" and j.model == local_model]
    assert {j.data_tokens for j in arch} == {4000, 8000}
    assert not [j for j in g.jobs if j.kind == "pretrain" and j.source == "gpt"]


def test_finetune_starts_from_the_weights(local_model, tmp_path):
    sweep = _sweep(local_model)
    g = expand(sweep, SweepLayout(str(tmp_path)))
    ft = next(j for j in g.jobs if j.source == "gpt")
    s = run_job(ft, sweep, str(tmp_path))
    assert s["status"] in ("ok", "unconverged")  # one epoch at most: it may still be improving
    assert s["n_params"] == model_size(local_model).n_params
    assert Store(SweepLayout(str(tmp_path)).store_root).read_evals().num_rows >= 2


def test_corpus_sources_still_need_pretrain_settings(local_model):
    with pytest.raises(SweepError, match="pretrain: required"):
        _sweep(local_model, sources=["scratch", "gpt", "prose"])


def test_needs_the_models_tokenizer(local_model):
    with pytest.raises(SweepError, match="tokenizer"):
        _sweep(local_model, tokenizer={"kind": "bytes"})


def test_hub_model_offline_fails_fast_at_plan(tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    load_config.cache_clear()
    model_size.cache_clear()
    with pytest.raises(ModelUnavailable, match="offline"):
        load_config("EleutherAI/pythia-70m-deduped", "step1000")
    import yaml

    f = tmp_path / "pythia.yaml"
    f.write_text(
        yaml.safe_dump(
            {
                "name": "pythia",
                "target": "python",
                "sources": ["scratch", "pythia"],
                "pretrained": {
                    "pythia": {
                        "model": "EleutherAI/pythia-70m-deduped",
                        "revisions": {"step1000": 2097152000, "step143000": 299892736000},
                    }
                },
                "tokenizer": {"kind": "hf", "name": "EleutherAI/pythia-70m-deduped"},
                "model_sizes": ["nano"],
                "finetune_tokens": ["4k"],
            }
        )
    )
    assert main(["plan", str(f)]) == 2
    err = capsys.readouterr().err
    assert "pythia" in err and "offline" in err.lower() and "Traceback" not in err
    assert not os.path.exists(tmp_path / "runs")
