"""The offline stdlib corpora (python / prose / c) and the shipped data sweeps end to end."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from tsweep.data import ByteTokenizer, SweepData
from tsweep.sweeps import load_sweep, parse_sweep

SEP = ByteTokenizer.sep_id
SWEEPS = Path(__file__).resolve().parents[1] / "tsweep" / "sweeps"


@pytest.fixture(scope="module")
def cache(tmp_path_factory):
    return str(tmp_path_factory.mktemp("stdlib-cache"))


@pytest.fixture(scope="module")
def data(cache):
    sweep = parse_sweep(
        dict(
            name="stdlib-test",
            target="python",
            sources=["scratch", "prose", "c", "prose+c"],
            corpora={"prose+c": {"kind": "mixture", "weights": {"prose": 0.5, "c": 0.5}}},
            model_sizes=["nano"],
            finetune_tokens=[16_000, 64_000],
            pretrain={"tokens": 500_000},
            eval={"tokens": 32_000},
        )
    )
    return SweepData(sweep, cache_dir=cache)


def _docs(tokens: np.ndarray) -> set[bytes]:
    cuts = np.flatnonzero(tokens == SEP)
    starts = np.concatenate([[0], cuts[:-1] + 1])
    return {tokens[s:e].astype(np.uint8).tobytes() for s, e in zip(starts, cuts, strict=True)}


def test_check_reports_every_corpus(data):
    sizes = data.check()
    assert set(sizes) == {"python", "prose", "c", "prose+c"}
    assert sizes["python"] > 5_000_000 and sizes["prose"] > 1_000_000 and sizes["c"] > 300_000
    assert sizes["prose+c"] <= 2 * sizes["c"] + 2048


def test_python_eval_is_the_start_of_many_files_held_out_of_every_split(data):
    from tsweep.data.sweepdata import PIECE_TOKENS

    ev = data.eval_tokens().tokens
    assert len(ev) == 32_000
    assert data.eval_tokens().documents >= 32_000 // PIECE_TOKENS  # many files, not one or two
    held = set(data._eval_entry().columns("hashes")["hash"].tolist())
    for corpus in ("python", "prose", "c"):
        data.train_tokens(corpus, 1)  # builds the split
        pieces = data._stream(corpus)
        entry_docs = data._corpus_entry(corpus).columns("docs")["hash"]
        split = data._split_key(corpus)
        from tsweep.data.cache import lookup

        used = lookup(data.root, split).columns("docs")["doc"]
        assert not held & set(entry_docs[np.unique(used)].tolist()), f"an eval document is in the {corpus} split"
        assert pieces.tokens.size == data.available_tokens(corpus)


def test_prose_is_prose(data):
    text = ByteTokenizer().decode(data.train_tokens("prose", 200_000).tokens)
    words = text.split()
    assert sum(w.isalpha() for w in words) / len(words) > 0.6


@pytest.mark.parametrize("name", ["prose_to_python.yaml", "prose_to_python_cpu.yaml", "synthetic_distance.yaml"])
def test_shipped_sweep_passes_check(name, cache):
    sweep = load_sweep(SWEEPS / name)
    sizes = SweepData(sweep, cache_dir=cache).check()
    assert sweep.pretrain.tokens <= sweep.pretrain.max_epochs * min(sizes[s] for s in sweep.pretrain_sources)
    if name.startswith("synthetic"):
        distances = [sweep.corpus(s).distance for s in sweep.pretrain_sources]
        assert len(distances) >= 2 and distances == sorted(set(distances)) and distances[0] > 0  # no target docs
        assert sweep.corpus(sweep.target).distance == 0.0
