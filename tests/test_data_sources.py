"""Sources: local files through ``datasets`` (text, jsonl, parquet), stdlib file lists, synthetic."""

from __future__ import annotations

import itertools

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from tsweep.data import ByteTokenizer, SweepData, ngram_cross_entropy
from tsweep.data.sources import STDLIB_EXCLUDED_DIRS, c_header_files, stdlib_dir, stdlib_python_files
from tsweep.data.synthetic import ALPHABET, generate
from tsweep.sweeps import parse_sweep

SEP = ByteTokenizer.sep_id


def _sweep(corpora, target="t", sources=("scratch", "s"), eval_tokens=64, pretrain=100, finetune=(50,)):
    return parse_sweep(
        dict(
            name="src-test",
            target=target,
            sources=list(sources),
            corpora=corpora,
            model_sizes=["nano"],
            finetune_tokens=list(finetune),
            pretrain={"tokens": pretrain},
            eval={"tokens": eval_tokens},
            train={"batch_size": 1, "seq_len": 64},
        )
    )  # one step: 64 tokens <= pretrain


def _documents(sd: SweepData, corpus: str) -> set[str]:
    toks = np.concatenate([sd.train_tokens(corpus, sd.available_tokens(corpus)).tokens])
    text = bytes(toks.astype(np.uint8)).decode()  # SEP (256) wraps to byte 0 here
    return {d for d in text.split("\0") if d}


@pytest.fixture
def files(tmp_path):
    (tmp_path / "a.txt").write_text("alpha one\n\nalpha two\n")
    (tmp_path / "b.txt").write_text("beta file\n")
    (tmp_path / "d.jsonl").write_text('{"text": "json doc one", "id": 1}\n{"text": "json doc two", "id": 2}\n')
    pq.write_table(
        pa.table({"body": ["parquet row one", "parquet row two", "parquet row one"]}), tmp_path / "p.parquet"
    )
    return tmp_path


TARGET = {"kind": "synthetic", "distance": 0.0, "documents": 20}


@pytest.mark.parametrize(
    "spec,docs",
    [
        ({"format": "text", "paths": ["*.txt"]}, {"alpha one\n\nalpha two\n", "beta file\n"}),
        ({"format": "text", "paths": ["*.txt"], "sample_by": "paragraph"}, {"alpha one", "alpha two\n", "beta file\n"}),
        ({"format": "json", "paths": ["*.jsonl"]}, {"json doc one", "json doc two"}),
        ({"format": "parquet", "paths": ["*.parquet"], "text_field": "body"}, {"parquet row one", "parquet row two"}),
    ],
)
def test_files_source(files, spec, docs):
    spec = {**spec, "kind": "files", "paths": [str(files / p) for p in spec["paths"]]}
    sd = SweepData(_sweep({"t": TARGET, "s": spec}), cache_dir=str(files / "cache"))
    assert _documents(sd, "s") == docs  # duplicates (the repeated parquet row) appear once


def test_files_corpus_as_target(files):
    lines = files / "many.txt"
    lines.write_text("".join(f"line {i} of the target file\n" for i in range(200)))
    spec = {"kind": "files", "paths": [str(lines)], "sample_by": "line"}
    sd = SweepData(_sweep({"t": spec, "s": TARGET}, eval_tokens=300), cache_dir=str(files / "cache"))
    sd.check()
    ev = sd.eval_tokens()
    assert len(ev.tokens) == 300 and ev.documents >= 10


def test_stdlib_lists_exclude_tests_and_are_sorted():
    files = stdlib_python_files()
    assert len(files) > 300
    rel = [str(__import__("os").path.relpath(f, stdlib_dir())) for f in files]
    assert rel == sorted(rel)
    for r in rel:
        parts = r.split("/")[:-1]
        assert not set(parts) & STDLIB_EXCLUDED_DIRS, r
    assert any(r == "json/decoder.py" for r in rel)
    assert all(f.endswith(".h") for f in c_header_files()) and len(c_header_files()) > 50


def test_synthetic_documents_are_printable_and_stable():
    a = list(generate(3, 0.25, 1030))
    b = list(generate(3, 0.25, 5))
    assert a[:5] == b  # document i does not depend on how many documents there are
    assert set("".join(a[:50])) <= set(ALPHABET)
    assert a != list(generate(3, 0.26, 1030))[:1030]
    lengths = [len(d) for d in a]
    assert 150 < np.mean(lengths) < 450


# sha256 of the documents (joined by NUL) of one chunk, as generator version 2 first wrote them,
# when every row of a chunk ran every step: the corpora, and every result trained on them, are
# pinned, however the generator is made faster.
PINNED_CHUNKS = [
    ((0, 0.6, 0, 1024), "8b2bd8c70a1435038682293384a2448793789f3c6486cfb9ebfe65445fbd4191"),
    ((7, 0.25, 3, 100), "505c0e2f17e6640f76e6110710ed2b0ba587258c5dee74bfdfd752305eb84169"),
    ((3, 1.0, 1, 5), "863159ecfcb51183f3b3ac2d5b31b35bc5d74a7cf233a99202c9f3cbff620044"),
]


@pytest.mark.parametrize("args,digest", PINNED_CHUNKS, ids=[str(a) for a, _ in PINNED_CHUNKS])
def test_synthetic_documents_are_the_pinned_ones(args, digest):
    import hashlib

    from tsweep.data.synthetic import GENERATOR_VERSION, _chunk

    assert GENERATOR_VERSION == 2, "a new generator version: pin its documents here"
    assert hashlib.sha256("\x00".join(_chunk(*args)).encode()).hexdigest() == digest


def test_synthetic_divergence_grows_with_distance(tmp_path):
    distances = [0.0, 0.1, 0.3, 0.6, 0.9, 1.0]
    corpora = {"t": {"kind": "synthetic", "distance": 0.0, "documents": 400}}
    corpora |= {f"d{d}": {"kind": "synthetic", "distance": d, "documents": 400} for d in distances}
    sd = SweepData(
        _sweep(corpora, sources=["scratch", *[f"d{d}" for d in distances]], eval_tokens=16_000), cache_dir=str(tmp_path)
    )
    ev = sd.eval_tokens().tokens
    ce = [ngram_cross_entropy(sd.train_tokens(f"d{d}", 90_000).tokens, ev, order=3) for d in distances]
    assert all(a < b for a, b in itertools.pairwise(ce)), ce
    # and the process has structure a model can learn: far below the 48-symbol uniform entropy
    assert ngram_cross_entropy(sd.train_tokens("t", 90_000).tokens, ev, order=2) < np.log(len(ALPHABET)) - 0.2


def test_hf_tokenizer_from_a_local_directory(tmp_path):
    from tokenizers import Tokenizer, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.BPE(unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    trainer = trainers.BpeTrainer(
        vocab_size=300, special_tokens=["<unk>", "<eos>"], initial_alphabet=pre_tokenizers.ByteLevel.alphabet()
    )
    tok.train_from_iterator(list(generate(1, 0.0, 50)), trainer)
    PreTrainedTokenizerFast(tokenizer_object=tok, eos_token="<eos>", unk_token="<unk>").save_pretrained(
        tmp_path / "tok"
    )
    corpora = {
        "t": {"kind": "synthetic", "distance": 0.0, "documents": 100},
        "s": {"kind": "synthetic", "distance": 0.5, "documents": 100},
    }
    sweep = parse_sweep(
        dict(
            name="hf",
            target="t",
            sources=["scratch", "s"],
            corpora=corpora,
            tokenizer={"kind": "hf", "name": str(tmp_path / "tok")},
            model_sizes=["nano"],
            finetune_tokens=[1_000],
            pretrain={"tokens": 2_000},
            eval={"tokens": 2_000},
        )
    )
    sd = SweepData(sweep, cache_dir=str(tmp_path / "cache"))
    sd.check()
    assert sd.vocab_size % 8 == 0 and sd.vocab_size >= 300
    ev = sd.eval_tokens()
    assert len(ev.tokens) == 2_000 and ev.tokens.dtype == np.uint16
    assert 0 < ev.chars and ev.documents == int(np.count_nonzero(ev.tokens == sd.separator_id)) + (
        ev.tokens[-1] != sd.separator_id
    )
    a, b = sd.train_tokens("s", 1_000), sd.train_tokens("s", 3_000)
    assert np.array_equal(a.tokens, b.tokens[:1_000]) and a.chars < b.chars


# ------------------------------------------------------------------------ hub (streamed)
@pytest.fixture
def dataset_folder(tmp_path, monkeypatch):
    """A local dataset folder ``datasets.load_dataset`` reads, and an empty datasets cache to
    watch: a streamed read leaves no Arrow copy in it."""
    folder = tmp_path / "ds" / "data"
    folder.mkdir(parents=True)
    (folder / "train.jsonl").write_text("".join(f'{{"text": "hub doc {i}", "n": {i}}}\n' for i in range(30)))
    monkeypatch.setenv("HF_DATASETS_CACHE", str(tmp_path / "hf-datasets"))
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "hf-hub"))
    return tmp_path / "ds"


def test_hub_corpus_streams_into_the_token_cache_without_a_second_copy(dataset_folder, tmp_path):
    spec = {"kind": "hub", "name": str(dataset_folder)}
    sd = SweepData(_sweep({"t": TARGET, "s": spec}), cache_dir=str(tmp_path / "cache"))
    assert _documents(sd, "s") == {f"hub doc {i}" for i in range(30)}  # read offline (HF_HUB_OFFLINE in tests)
    copies = [
        p
        for d in ("hf-datasets", "hf-hub")
        for p in (tmp_path / d).rglob("*")
        if p.is_file() and not p.name.endswith(".lock")
    ]
    assert copies == [], f"datasets kept a copy: {copies}"
    assert list((tmp_path / "cache").glob("corpus-s-*")), "the tokens went to tsweep's cache"


def test_hub_corpus_max_documents_and_a_missing_field(dataset_folder, tmp_path):
    from tsweep.data import DataError

    spec = {"kind": "hub", "name": str(dataset_folder), "max_documents": 5}
    sd = SweepData(_sweep({"t": TARGET, "s": spec}, eval_tokens=32), cache_dir=str(tmp_path / "cache"))
    assert _documents(sd, "s") == {f"hub doc {i}" for i in range(5)}
    bad = {"kind": "hub", "name": str(dataset_folder), "text_field": "body"}
    sd = SweepData(_sweep({"t": TARGET, "s": bad}), cache_dir=str(tmp_path / "cache2"))
    with pytest.raises(DataError, match=r"^corpus 's': no field 'body' in dataset .*; fields: \['n', 'text'\]$"):
        sd.available_tokens("s")
    assert not list((tmp_path / "cache2").glob("corpus-s-*")), "a failed stream must leave no entry"
