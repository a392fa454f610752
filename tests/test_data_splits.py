"""Splits and budgets of ``workers.data.SweepData`` on small synthetic corpora (fast).

Document-level disjointness is checked from the tokens alone: both streams are cut at the
separator into documents and compared by content, independently of the implementation's hashes.
"""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from tsweep.data import ByteTokenizer, DataError, SweepData, TokenSlice, mixture_block
from tsweep.sweeps import parse_sweep

SEP = ByteTokenizer.sep_id


def make_sweep(
    corpora: dict,
    *,
    target: str = "t",
    sources=("scratch", "near"),
    eval_tokens: int = 8_000,
    finetune=(1_000, 4_000),
    pretrain: int = 20_000,
    seq_len: int = 64,
    **extra,
):
    return parse_sweep(
        dict(
            name="data-test",
            target=target,
            sources=list(sources),
            corpora=corpora,
            model_sizes=["nano"],
            finetune_tokens=list(finetune),
            pretrain={"tokens": pretrain},
            eval={"tokens": eval_tokens},
            train={"seq_len": seq_len},
            **extra,
        )
    )


def synth(distance: float, documents: int = 300, seed: int = 0) -> dict:
    return {"kind": "synthetic", "distance": distance, "documents": documents, "seed": seed}


CORPORA = {
    "t": synth(0.0),
    "twin": synth(0.0),  # the target under another name: only dedupe keeps eval out of it
    "near": synth(0.2),
    "far": synth(0.9, documents=200),
    "mix": {"kind": "mixture", "weights": {"near": 3, "far": 1}},
}
SOURCES = ("scratch", "twin", "near", "far", "mix")


def split_docs(tokens: np.ndarray) -> tuple[list[bytes], bytes]:
    """Complete documents (each ended by the separator) and the trailing partial one."""
    t = np.asarray(tokens)
    cuts = np.flatnonzero(t == SEP)
    docs, start = [], 0
    for c in cuts:
        docs.append(t[start:c].astype(np.uint8).tobytes())
        start = c + 1
    return docs, t[start:].astype(np.uint8).tobytes()


@pytest.fixture(scope="module")
def cache(tmp_path_factory):
    return tmp_path_factory.mktemp("data-cache")


@pytest.fixture(scope="module")
def data(cache):
    sd = SweepData(make_sweep(CORPORA, sources=SOURCES), cache_dir=str(cache))
    sd.check()
    return sd


def test_vocab_and_dtype(data):
    assert data.vocab_size == 264 and data.vocab_size % 8 == 0
    ev = data.eval_tokens()
    assert isinstance(ev, TokenSlice) and ev.tokens.dtype == np.uint16 and ev.tokens.ndim == 1
    assert int(ev.tokens.max()) <= SEP


def test_eval_exact_and_identical_across_instances(data, cache, tmp_path):
    ev = data.eval_tokens()
    assert len(ev.tokens) == 8_000
    again = SweepData(make_sweep(CORPORA, sources=SOURCES), cache_dir=str(cache)).eval_tokens()
    rebuilt = SweepData(make_sweep(CORPORA, sources=SOURCES), cache_dir=str(tmp_path)).eval_tokens()
    for other in (again, rebuilt):
        assert np.array_equal(ev.tokens, other.tokens) and (ev.chars, ev.documents) == (other.chars, other.documents)
    # the eval set depends on the target and eval.tokens only, not on which sources a sweep has
    solo = SweepData(make_sweep(CORPORA, sources=("scratch", "near")), cache_dir=str(cache)).eval_tokens()
    assert np.array_equal(ev.tokens, solo.tokens)


@pytest.mark.parametrize("corpus", ["t", *SOURCES[1:]])
def test_eval_disjoint_from_every_training_split(data, corpus):
    eval_docs, partial = split_docs(data.eval_tokens().tokens)
    assert eval_docs, "eval set should hold whole documents"
    stream = data.train_tokens(corpus, data.available_tokens(corpus)).tokens
    train_docs, _ = split_docs(stream)
    assert not set(eval_docs) & set(train_docs)
    if len(partial) >= 32:  # the cut eval document is held out whole
        assert not any(d.startswith(partial) for d in train_docs)


def test_dedupe_removes_exactly_the_eval_documents_from_a_copy_of_the_target(data):
    t = set(split_docs(data.train_tokens("t", data.available_tokens("t")).tokens)[0])
    twin = set(split_docs(data.train_tokens("twin", data.available_tokens("twin")).tokens)[0])
    assert t == twin


@pytest.mark.parametrize("corpus", ["t", "near", "mix"])
def test_budgets_exact_nested_and_deterministic(data, cache, tmp_path, corpus):
    sizes = [1, 777, 4_000, 10_000, data.available_tokens(corpus)]
    slices = [data.train_tokens(corpus, n) for n in sizes]
    for n, s in zip(sizes, slices, strict=True):
        assert len(s.tokens) == n
    for a, b in itertools.pairwise(slices):
        assert np.array_equal(a.tokens, b.tokens[: len(a.tokens)])
        assert a.chars <= b.chars and a.documents <= b.documents
    fresh = SweepData(make_sweep(CORPORA, sources=SOURCES), cache_dir=str(tmp_path)).train_tokens(corpus, 10_000)
    assert np.array_equal(fresh.tokens, slices[3].tokens)


def test_training_tokens_are_distinct_documents(data):
    docs, _ = split_docs(data.train_tokens("t", data.available_tokens("t")).tokens)
    assert len(docs) == len(set(docs)), "a document appears twice in one training stream"


def test_chars_and_documents_count_what_is_there(data):
    from tsweep.data.sweepdata import PIECE_TOKENS

    for corpus, n in [("t", 5_000), ("near", 12_345), ("mix", 9_999)]:
        s = data.train_tokens(corpus, n)
        text = ByteTokenizer().decode(s.tokens)
        assert s.chars == len(text)
        n_sep = int(np.count_nonzero(s.tokens == SEP))  # documents whose last piece is in the budget
        # every document touched, once: those whose end is here, plus those with a full piece here
        # (only a document's last piece is shorter) and the one the budget cuts
        assert n_sep <= s.documents <= n_sep + n // PIECE_TOKENS + (2 if corpus == "mix" else 1)


def test_a_small_budget_samples_many_documents(data):
    """Budgets are pieces of many documents, not the first document or two."""
    from tsweep.data.sweepdata import PIECE_TOKENS

    s = data.train_tokens("t", 8 * PIECE_TOKENS)
    assert s.documents >= 6
    ev = data.eval_tokens()
    assert ev.chars == len(ByteTokenizer().decode(ev.tokens))


def test_mixture_takes_each_part_by_weight_exact_total(data):
    block = mixture_block(64)
    near = data.train_tokens("near", data.available_tokens("near")).tokens
    far = data.train_tokens("far", data.available_tokens("far")).tokens
    for n in (5_000, 20_000, 50_001):
        mix = data.train_tokens("mix", n).tokens
        assert len(mix) == n
        # rebuild which part each block came from: blocks are consecutive slices of each part
        i = j = taken_near = 0
        for k in range(0, n, block):
            chunk = mix[k : k + block]
            if np.array_equal(chunk, near[i : i + len(chunk)]):
                i += len(chunk)
                taken_near += len(chunk)
            else:
                assert np.array_equal(chunk, far[j : j + len(chunk)])
                j += len(chunk)
        assert abs(taken_near - round(0.75 * n)) <= block
    # the mixture's availability is limited by its scarcest part relative to its weight
    assert data.available_tokens("mix") <= len(far) / 0.25 + block


def test_scratch_is_not_a_corpus(data):
    with pytest.raises(DataError, match="scratch"):
        data.train_tokens("scratch", 10)


@pytest.mark.parametrize("n", [0, -3, 2.5])
def test_bad_budget(data, n):
    with pytest.raises(DataError, match="positive integer"):
        data.train_tokens("t", n)


def test_inside_held_out_finds_verbatim_passages_only():
    from tsweep.data.sweepdata import inside_held_out

    held = [b"def f():\n    '''Return the sum of the two arguments, or zero.'''\n    return 0\n"]
    docs = [
        b"Return the sum of the two arguments, or zero.",  # inside: held out
        b"Return the sum of the two arguments, or one.",  # same first 32 bytes, not inside: kept
        b"Return the sum.",  # inside but shorter than 32 bytes: a phrase, kept
        b"Something no held-out text says, at some length.",
    ]
    got = inside_held_out(held, [d[:33] for d in docs], lambda i: docs[i])
    assert got.tolist() == [True, False, False, False]
    assert not inside_held_out([], [d[:33] for d in docs], lambda i: docs[i]).any()


def test_a_source_never_trains_on_passages_of_the_held_out_target_documents(tmp_path):
    """The stdlib's prose is the docstrings of the files python evaluates on: a source document
    found verbatim inside a held-out target document is held out of the source's stream, and
    only those (the same passages of the other target documents stay)."""
    import json

    rng = np.random.default_rng(0)
    words = ["alpha", "beta", "gamma", "delta", "sum", "return", "value", "list", "of", "the"]
    paragraphs = [[" ".join(rng.choice(words, 12)) + f" {i}-{j}." for j in range(3)] for i in range(60)]
    (tmp_path / "t.jsonl").write_text("".join(json.dumps({"text": "\n\n".join(p)}) + "\n" for p in paragraphs))
    (tmp_path / "s.jsonl").write_text("".join(json.dumps({"text": q}) + "\n" for p in paragraphs for q in p))
    corpora = {
        "t": {"kind": "files", "format": "json", "paths": [str(tmp_path / "t.jsonl")]},
        "s": {"kind": "files", "format": "json", "paths": [str(tmp_path / "s.jsonl")]},
    }
    sd = SweepData(
        make_sweep(corpora, sources=("scratch", "s"), eval_tokens=1_000, finetune=(500,), pretrain=2_000),
        cache_dir=str(tmp_path / "cache"),
    )
    sd.check()
    whole, cut = split_docs(sd.eval_tokens().tokens)  # the cut document is held out whole too
    held_paragraphs = {
        q.encode()
        for p in paragraphs
        for q in p
        if (doc := "\n\n".join(p).encode()) in whole or (cut and doc.startswith(cut))
    }
    assert held_paragraphs, "the eval set should hold whole target documents"
    trained = set(split_docs(sd.train_tokens("s", sd.available_tokens("s")).tokens)[0])
    assert trained == {q.encode() for p in paragraphs for q in p} - held_paragraphs
