"""What a sweep's jobs train and evaluate on: :class:`SweepData`.

Three kinds of cache entries (``workers.data.cache``), each keyed by its content:

``corpus-<name>``  a base corpus tokenized in canonical order (sorted paths, generator order):
    ``tokens`` (each document's ids followed by the separator) and ``docs`` (per document:
    ``length`` in tokens with the separator, ``chars``, ``hash`` = 64 bits of BLAKE2b of the
    text). Empty documents and exact duplicates within the corpus are dropped at build time.
``eval-<target>``  the held-out set: one piece of ``PIECE_TOKENS`` tokens, at a content-keyed
    place, from each of the target's documents in a seeded hash order (salt "eval"), until
    ``eval.tokens`` is reached, cut to exactly ``eval.tokens``; ``hashes`` lists every document
    it touched (all of each is held out of every training split).
``split-<name>``   a corpus's training stream: its documents minus every document whose hash is
    in the eval set (for the target: the eval documents themselves; for sources: dedupe) and, for
    a source, minus every document of at least ``LEAK_BYTES`` bytes found verbatim inside a
    held-out target document (:func:`inside_held_out`: the stdlib's ``prose`` is the docstrings
    of the very files ``python`` evaluates on, and a pre-training run must not read the eval's
    own sentences), cut into pieces of ``PIECE_TOKENS`` tokens, the pieces in a seeded hash order (salt "train").
    ``train_tokens(c, n)`` is the first ``n`` tokens, a zero-copy slice of a memory map, so
    budgets are exact, distinct and nested, fine-tune sets of growing D_F are prefixes of one
    order, and a small budget samples many documents.
``mix-<name>``     a mixture's training stream: blocks of ``mixture_block(seq_len)`` tokens taken
    in order from each part's training stream, the next block always from the part furthest
    below its share (weights normalised; a house-monotone schedule, so prefixes stay nested).
    A budget of ``n`` takes ``w * n`` tokens from each part to within one block, and exactly
    ``n`` in all (exactly ``round(w * n)`` per part is impossible together with nesting unless
    the parts alternate token by token).

The hash orders are keyed by document content, not position, so adding a document to a corpus
moves no other document between eval and training.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from tsweep.core.dataspec import BUILTIN_CORPORA, CorpusSpec, MixtureCorpus
from tsweep.core.errors import DataError
from tsweep.core.job import SCRATCH
from tsweep.data.cache import Entry, TokenSink, cache_root, content_key, get_or_build, lookup, write_columns
from tsweep.data.registry import get_source
from tsweep.data.tokenizers import Tokenizer, make_tokenizer
from tsweep.sweeps import Sweep

DATA_SEED = 0
_ENCODE_BATCH = 256
_GATHER_CHUNKS = 16384
# Tokens per piece of a training document, and per eval document at most (tsweep's choice: 512
# tokens are a few functions of code or a few paragraphs of prose). A budget of D tokens is
# D / 512 pieces from as many documents in a seeded order, not the first one or two whole
# documents: a small budget is a sample of the corpus, not of whichever file sorts first (the
# stdlib's generated codec tables would otherwise be the first 30k tokens of Python).
PIECE_TOKENS = 512
# A source document this long or longer that occurs verbatim inside a held-out target document is
# held out of the source's training stream (tsweep's choice: a shorter string is a phrase any two
# English or code texts share, not a passage of the eval). 32 bytes is the n-gram length of the
# overlap measure in the README's real-corpus section.
LEAK_BYTES = 32
_HASH_MUL = np.uint64(0x100000001B3)  # FNV-1a's 64-bit prime: a polynomial hash of byte windows


def _window_hashes(data: np.ndarray, k: int) -> np.ndarray:
    """The polynomial hash (mod 2**64) of every ``k``-byte window of ``data`` (uint8), in order."""
    n = data.size - k + 1
    out = np.zeros(max(n, 0), dtype=np.uint64)
    if n <= 0:
        return out
    wide = data.astype(np.uint64)
    with np.errstate(over="ignore"):
        for j in range(k):
            out *= _HASH_MUL
            out += wide[j : j + n]
    return out


def inside_held_out(
    held: list[bytes], heads: list[bytes], text: Callable[[int], bytes], k: int = LEAK_BYTES
) -> np.ndarray:
    """Which documents occur verbatim inside one of the ``held`` texts. ``heads[i]``: document
    i's first bytes (at least ``k`` of them, or the whole document); ``text(i)``: its whole text.
    A document of ``k`` bytes or more whose first ``k`` bytes hash to a window of the held texts
    is a candidate, confirmed by a substring search, so a hash collision never drops a document
    and only candidates are decoded in full."""
    out = np.zeros(len(heads), dtype=bool)
    long_enough = np.flatnonzero([len(h) >= k for h in heads])
    if not held or not long_enough.size:
        return out
    joined = b"\0".join(held)
    windows = np.unique(_window_hashes(np.frombuffer(joined, dtype=np.uint8), k))
    # every document's first k bytes end to end: their hashes are the windows at every k-th byte
    firsts = np.frombuffer(b"".join(heads[i][:k] for i in long_enough), dtype=np.uint8)
    head_hash = _window_hashes(firsts, k)[::k]
    for i in long_enough[np.isin(head_hash, windows)]:
        out[i] = text(int(i)) in joined
    return out


@dataclass(frozen=True)
class TokenSlice:
    tokens: np.ndarray  # 1-D, uint16 (vocab < 65536) else int32; read-only, often memory-mapped
    chars: int  # characters of text behind these tokens (Hernandez et al. count characters)
    documents: int  # documents these tokens touch (a cut document counts)


def mixture_block(seq_len: int) -> int:
    """Interleave unit of mixtures: the multiple of ``seq_len`` nearest above 1024 tokens, so a
    training sequence rarely straddles two parts."""
    return seq_len * max(1, math.ceil(1024 / seq_len))


def _order(hashes: np.ndarray, salt: str, seed: int) -> np.ndarray:
    """A seeded permutation keyed by content: argsort of splitmix64(hash ^ key(salt, seed))."""
    key = int.from_bytes(hashlib.blake2b(f"{salt}:{seed}".encode(), digest_size=8).digest(), "little")
    with np.errstate(over="ignore"):
        x = hashes.astype(np.uint64) ^ np.uint64(key)
        x = (x ^ (x >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
        x = (x ^ (x >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
        x = x ^ (x >> np.uint64(31))
    return np.argsort(x, kind="stable")


def _doc_hash(text: str) -> int:
    return int.from_bytes(hashlib.blake2b(text.encode("utf-8", errors="replace"), digest_size=8).digest(), "little")


@dataclass
class _Stream:
    """A training stream and how to count characters and documents behind its prefixes."""

    tokens: np.ndarray
    prefix_stats: Callable[[int], tuple[int, int]] = field(repr=False)  # n -> (chars, documents)


class SweepData:
    """Tokenized, split, cached data for every job of ``sweep``.

    ``cache_dir``: default ``~/.cache/tsweep/data``, overridden by ``$TSWEEP_DATA_CACHE``.
    Nothing is read or built until a method needs it; a second instance (another job) on the
    same node reuses the cache, and one in the same process reuses the open memory maps.
    """

    def __init__(self, sweep: Sweep, cache_dir: str | None = None, *, seed: int = DATA_SEED):
        self.sweep = sweep
        self.root: Path = cache_root(cache_dir)
        self.seed = seed
        self._streams: dict[str, _Stream] = {}
        self._corpus_keys: dict[str, str] = {}
        self._mix_keys: dict[str, str] = {}
        self._eval: Entry | None = None

    # ------------------------------------------------------------------ public API
    @property
    def tokenizer(self) -> Tokenizer:
        return make_tokenizer(self.sweep.tokenizer)

    @property
    def vocab_size(self) -> int:
        """Byte-level: 256 bytes + the document separator (id 256), rounded up to 264."""
        return self.tokenizer.vocab_size

    @property
    def separator_id(self) -> int:
        return self.tokenizer.sep_id

    def eval_tokens(self) -> TokenSlice:
        entry = self._eval_entry()
        return TokenSlice(entry.array("tokens"), int(entry.meta["chars"]), int(entry.meta["documents"]))

    def train_tokens(self, corpus: str, n_tokens: int) -> TokenSlice:
        if isinstance(n_tokens, bool) or not isinstance(n_tokens, (int, np.integer)) or n_tokens <= 0:
            raise DataError(f"corpus {corpus!r}: a token budget must be a positive integer, got {n_tokens!r}")
        stream = self._stream(corpus)
        have = len(stream.tokens)
        if n_tokens > have:
            raise DataError(
                f"corpus {corpus!r}: {n_tokens:,} training tokens requested but its training split has {have:,}"
            )
        chars, docs = stream.prefix_stats(int(n_tokens))
        return TokenSlice(stream.tokens[: int(n_tokens)], chars, docs)

    def available_tokens(self, corpus: str) -> int:
        return len(self._stream(corpus).tokens)

    def check(self) -> dict[str, int]:
        """Plan-time validation of every corpus the sweep uses; ``{corpus: training tokens}``.

        Cheap checks first (names, files, hub) so an offline hub or a missing file fails before
        any corpus is built; then builds (or finds) every cache entry the jobs will read.
        """
        sw = self.sweep
        names = self.preflight()
        target = sw.target
        total = int(self._corpus_entry(target).meta["tokens"])
        budget = max([*sw.finetune_tokens, *sw.scratch_axis])
        need = budget + sw.eval.tokens
        if need > total:
            raise DataError(
                f"target {target!r}: max(finetune_tokens, scratch_tokens) + eval.tokens = "
                f"{budget:,} + {sw.eval.tokens:,} = {need:,} tokens but the corpus has {total:,}"
            )
        available = {name: self.available_tokens(name) for name in names}
        if budget > available[target]:
            raise DataError(
                f"target {target!r}: max(finetune_tokens, scratch_tokens) = {budget:,} but its training split has "
                f"{available[target]:,} tokens after removing the {sw.eval.tokens:,}-token eval set's documents"
            )
        pre = sw.pretrain
        if pre is not None:  # None only when no source is a corpus
            for s in sw.pretrain_sources:
                if pre.tokens > pre.max_epochs * available[s]:
                    raise DataError(
                        f"source {s!r}: pretrain.tokens = {pre.tokens:,} is more than pretrain.max_epochs = "
                        f"{pre.max_epochs:g} passes over its training split of {available[s]:,} tokens"
                    )
        return available

    def preflight(self) -> list[str]:
        """The cheap half of :meth:`check`, in milliseconds: every corpus name resolves, files
        exist, the hub is reachable for what is not cached, the target is no mixture; the corpora
        the sweep uses."""
        names = self._used_corpora()
        for name in names:
            spec = self._spec(name)
            if not isinstance(spec, MixtureCorpus) and lookup(self.root, self._corpus_key(name)) is None:
                get_source(spec.kind).preflight(name, spec)
        target = self.sweep.target
        if isinstance(self._spec(target), MixtureCorpus):
            raise DataError(f"target {target!r}: a mixture cannot be the target; evaluate on one corpus")
        return names

    # ------------------------------------------------------------------ corpora
    def _spec(self, name: str) -> CorpusSpec:
        if name == SCRATCH:
            raise DataError("'scratch' is not a corpus: scratch jobs train on the target from random initialisation")
        try:
            return self.sweep.corpus(name)
        except KeyError:
            known = sorted(set(self.sweep.corpora) | set(BUILTIN_CORPORA))
            raise DataError(f"unknown corpus {name!r}; declare it under corpora or use one of {known}") from None

    def _used_corpora(self) -> list[str]:
        out: list[str] = []

        def visit(name: str, stack: tuple[str, ...]) -> None:
            if name in stack:
                raise DataError(f"corpus {name!r}: mixture cycle {' -> '.join((*stack, name))}")
            spec = self._spec(name)
            if isinstance(spec, MixtureCorpus):
                for part in spec.weights:
                    visit(part, (*stack, name))
            if name not in out:
                out.append(name)

        for name in [self.sweep.target, *self.sweep.pretrain_sources]:
            visit(name, ())
        return out

    def _corpus_key(self, name: str) -> str:
        key = self._corpus_keys.get(name)
        if key is None:
            spec = self._spec(name)
            fp = get_source(spec.kind).fingerprint(name, spec)
            content = {"spec": spec.model_dump(mode="json"), "tokenizer": self.tokenizer.fingerprint(), "source": fp}
            key = self._corpus_keys[name] = content_key(f"corpus-{name}", content)
        return key

    def _corpus_entry(self, name: str) -> Entry:
        spec = self._spec(name)
        if isinstance(spec, MixtureCorpus):
            raise DataError(f"corpus {name!r} is a mixture; it has no documents of its own")
        source = get_source(spec.kind)
        tok = self.tokenizer
        key = self._corpus_key(name)

        def build(tmp: Path) -> dict[str, Any]:
            source.preflight(name, spec)
            sink = TokenSink(tmp, "tokens", tok.dtype)
            lengths: list[int] = []
            chars: list[int] = []
            hashes: list[int] = []
            seen: set[int] = set()
            batch: list[str] = []

            def flush() -> None:
                for text, ids in zip(batch, tok.encode_documents(batch), strict=True):
                    sink.write(ids)
                    lengths.append(len(ids))
                    chars.append(len(text))
                batch.clear()

            for text in source.documents(name, spec, tmp):
                if not text.strip():
                    continue
                h = _doc_hash(text)
                if h in seen:  # exact duplicates inside one corpus would leak across the split
                    continue
                seen.add(h)
                hashes.append(h)
                batch.append(text)
                if len(batch) >= _ENCODE_BATCH:
                    flush()
            flush()
            n = sink.close()
            if not lengths:
                raise DataError(f"corpus {name!r}: empty ({spec.kind} source gave no non-empty documents)")
            write_columns(
                tmp / "docs.arrow",
                length=np.asarray(lengths, np.int64),
                chars=np.asarray(chars, np.int64),
                hash=np.asarray(hashes, np.uint64),
            )
            return {"corpus": name, "tokens": n, "documents": len(lengths), "chars": int(sum(chars))}

        return get_or_build(self.root, key, build, private=lambda: self._private(name))

    def _private(self, *names: str) -> bool:
        """Whether any of these corpora (a mixture: any of its parts) is private at its source."""
        for name in names:
            spec = self._spec(name)
            if isinstance(spec, MixtureCorpus):
                if self._private(*spec.weights):
                    return True
            elif get_source(spec.kind).private(name, spec):
                return True
        return False

    # ------------------------------------------------------------------ eval
    def _eval_key(self) -> str:
        sw = self.sweep
        return content_key(
            f"eval-{sw.target}",
            {
                "corpus": self._corpus_key(sw.target),
                "tokens": sw.eval.tokens,
                "seed": self.seed,
                "piece": PIECE_TOKENS,
                "at": "content-keyed",
            },
        )

    def _eval_entry(self) -> Entry:
        if self._eval is not None:
            return self._eval
        sw = self.sweep
        target, n_eval = sw.target, sw.eval.tokens
        if isinstance(self._spec(target), MixtureCorpus):
            raise DataError(f"target {target!r}: a mixture cannot be the target; evaluate on one corpus")
        tok = self.tokenizer

        def build(tmp: Path) -> dict[str, Any]:
            corpus = self._corpus_entry(target)
            docs = corpus.columns("docs")
            total = int(corpus.meta["tokens"])
            if n_eval >= total:
                raise DataError(f"target {target!r}: eval.tokens = {n_eval:,} but the corpus has only {total:,} tokens")
            starts = np.concatenate([[0], np.cumsum(docs["length"])[:-1]])
            order = _order(docs["hash"], "eval", self.seed)
            taken = np.minimum(docs["length"][order], PIECE_TOKENS)
            k = int(np.searchsorted(np.cumsum(taken), n_eval)) + 1  # documents needed to reach n_eval tokens
            chosen = order[:k]
            # one piece of each, at a place fixed by its content: a file's start is mostly its
            # docstring and imports, its middle is the code a model must learn to predict
            spare = np.maximum(docs["length"][chosen] - PIECE_TOKENS, 0)
            at = starts[chosen] + (docs["hash"][chosen] % np.uint64(2**31)).astype(np.int64) % (spare + 1)
            toks = corpus.array("tokens")
            out = np.concatenate([toks[a : a + t] for a, t in zip(at, taken[:k], strict=True)])[:n_eval]
            write_columns(tmp / "tokens.arrow", tokens=out)
            write_columns(tmp / "hashes.arrow", hash=np.sort(docs["hash"][chosen]))
            if tok.exact_chars:
                chars = tok.count_chars(out)
            else:
                share = taken[:k] / docs["length"][chosen]
                chars = round(float((docs["chars"][chosen] * share).sum()) * len(out) / max(int(taken[:k].sum()), 1))
            return {"target": target, "tokens": len(out), "chars": int(chars), "documents": k}

        self._eval = get_or_build(self.root, self._eval_key(), build, private=lambda: self._private(target))
        return self._eval

    # ------------------------------------------------------------------ training streams
    def _stream(self, name: str, stack: tuple[str, ...] = ()) -> _Stream:
        stream = self._streams.get(name)
        if stream is None:
            if name in stack:
                raise DataError(f"corpus {name!r}: mixture cycle {' -> '.join((*stack, name))}")
            spec = self._spec(name)
            if isinstance(spec, MixtureCorpus):
                stream = self._mixture_stream(name, spec, (*stack, name))
            else:
                stream = self._split_stream(name)
            self._streams[name] = stream
        return stream

    def _split_stream(self, name: str) -> _Stream:
        tok = self.tokenizer
        eval_entry = self._eval_entry()
        key = self._split_key(name)

        def build(tmp: Path) -> dict[str, Any]:
            corpus = self._corpus_entry(name)
            docs = corpus.columns("docs")
            held_out = eval_entry.columns("hashes")["hash"]
            starts = np.concatenate([[0], np.cumsum(docs["length"])[:-1]])
            leaked = self._leaked(name, corpus, starts, held_out)
            keep = ~np.isin(docs["hash"], held_out) & ~leaked
            idx = np.flatnonzero(keep)
            # pieces: (document, first token, length), keyed by the document's hash and the piece's place
            n_pieces = -(-docs["length"][idx] // PIECE_TOKENS)
            doc_of = np.repeat(idx, n_pieces)
            nth = np.arange(doc_of.size) - np.repeat(np.cumsum(n_pieces) - n_pieces, n_pieces)
            first = starts[doc_of] + nth * PIECE_TOKENS
            length = np.minimum(PIECE_TOKENS, starts[doc_of] + docs["length"][doc_of] - first)
            with np.errstate(over="ignore"):
                keys = docs["hash"][doc_of].astype(np.uint64) * np.uint64(0x9E3779B97F4A7C15) + nth.astype(np.uint64)
            order = _order(keys, "train", self.seed)
            doc_of, first, length = doc_of[order], first[order], length[order]
            toks = corpus.array("tokens")
            sink = TokenSink(tmp, "tokens", tok.dtype)
            for g in range(0, len(order), _GATHER_CHUNKS):
                sl = slice(g, g + _GATHER_CHUNKS)
                if len(first[sl]):
                    sink.write(np.concatenate([toks[a : a + n] for a, n in zip(first[sl], length[sl], strict=True)]))
            n = sink.close()
            chars = np.round(docs["chars"][doc_of] * length / docs["length"][doc_of]).astype(np.int64)
            write_columns(tmp / "docs.arrow", length=length.astype(np.int64), chars=chars, doc=doc_of.astype(np.int64))
            return {
                "corpus": name,
                "tokens": n,
                "documents": len(idx),
                "pieces": len(order),
                "removed_as_eval": int((~keep).sum() - leaked.sum()),
                "removed_inside_eval_documents": int(leaked.sum()),
            }

        entry = get_or_build(self.root, key, build, private=lambda: self._private(name, self.sweep.target))
        tokens = entry.array("tokens")
        pieces = entry.columns("docs")
        ends = np.cumsum(pieces["length"])
        chars_cum = np.cumsum(pieces["chars"])

        def prefix_stats(n: int) -> tuple[int, int]:
            full = int(np.searchsorted(ends, n, side="right"))  # pieces wholly inside the prefix
            touched = full + (1 if n > (int(ends[full - 1]) if full else 0) else 0)
            documents = int(np.unique(pieces["doc"][:touched]).size)
            if tok.exact_chars:
                return tok.count_chars(tokens[:n]), documents
            done = int(ends[full - 1]) if full else 0
            chars = int(chars_cum[full - 1]) if full else 0
            if n > done:
                chars += round(int(pieces["chars"][full]) * (n - done) / int(pieces["length"][full]))
            return chars, documents

        return _Stream(tokens, prefix_stats)

    def _mixture_stream(self, name: str, spec: MixtureCorpus, stack: tuple[str, ...]) -> _Stream:
        parts = list(spec.weights)
        total_w = sum(spec.weights.values())
        weights = np.array([spec.weights[p] / total_w for p in parts])
        streams = [self._stream(p, stack) for p in parts]
        block = mixture_block(self.sweep.train.seq_len)
        part_keys = [self._stream_key(p) for p in parts]
        key = content_key(f"mix-{name}", {"parts": part_keys, "weights": weights.tolist(), "block": block})

        def build(tmp: Path) -> dict[str, Any]:
            have = np.array([len(s.tokens) for s in streams], dtype=np.int64)
            taken = np.zeros(len(parts), dtype=np.int64)
            n_blocks = np.zeros(len(parts), dtype=np.int64)
            part_of: list[int] = []
            len_of: list[int] = []
            sink = TokenSink(tmp, "tokens", self.tokenizer.dtype)
            while True:
                i = int(np.argmax(weights * (n_blocks.sum() + 1) - n_blocks))  # furthest below its share
                size = int(min(block, have[i] - taken[i]))
                if size <= 0:
                    break
                sink.write(streams[i].tokens[taken[i] : taken[i] + size])
                part_of.append(i)
                len_of.append(size)
                taken[i] += size
                n_blocks[i] += 1
                if size < block:
                    break
            n = sink.close()
            write_columns(tmp / "blocks.arrow", part=np.asarray(part_of, np.int64), length=np.asarray(len_of, np.int64))
            return {
                "corpus": name,
                "tokens": n,
                "parts": parts,
                "weights": weights.tolist(),
                "block": block,
                "taken": {p: int(t) for p, t in zip(parts, taken, strict=True)},
            }

        entry = get_or_build(self.root, key, build, private=lambda: self._private(name))
        self._mix_keys[name] = key
        blocks = entry.columns("blocks")
        ends = np.cumsum(blocks["length"])

        def prefix_stats(n: int) -> tuple[int, int]:
            full = int(np.searchsorted(ends, n, side="right"))
            per_part = np.bincount(blocks["part"][:full], weights=blocks["length"][:full], minlength=len(parts)).astype(
                np.int64
            )
            rest = n - (int(ends[full - 1]) if full else 0)
            if rest:
                per_part[int(blocks["part"][full])] += rest
            chars = docs = 0
            for s, m in zip(streams, per_part, strict=True):
                if m:
                    c, d = s.prefix_stats(int(m))
                    chars, docs = chars + c, docs + d
            return chars, docs

        return _Stream(entry.array("tokens"), prefix_stats)

    def _leaked(self, name: str, corpus: Entry, starts: np.ndarray, held_out: np.ndarray) -> np.ndarray:
        """For a source: which of its documents occur inside a held-out target document
        (:func:`inside_held_out`); none for the target itself (its held-out documents go by hash)."""
        lengths = corpus.columns("docs")["length"]
        if name == self.sweep.target:
            return np.zeros(len(lengths), dtype=bool)
        target = self._corpus_entry(self.sweep.target)
        tdocs = target.columns("docs")
        tstarts = np.concatenate([[0], np.cumsum(tdocs["length"])[:-1]])
        ttoks, toks = target.array("tokens"), corpus.array("tokens")
        held = [
            self._text(ttoks, tstarts[i], tdocs["length"][i]) for i in np.flatnonzero(np.isin(tdocs["hash"], held_out))
        ]
        # a token is at least one byte: a document's first LEAK_BYTES tokens hold its first LEAK_BYTES bytes
        heads = [self._text(toks, a, min(int(n), LEAK_BYTES + 1)) for a, n in zip(starts, lengths, strict=True)]
        return inside_held_out(held, heads, lambda i: self._text(toks, starts[i], lengths[i]))

    def _text(self, tokens: np.ndarray, start: int, length: int) -> bytes:
        """The text of ``length`` tokens from ``start``, less the last (a document's separator,
        or one past a head), as UTF-8 bytes."""
        return self.tokenizer.decode(tokens[int(start) : int(start) + int(length) - 1]).encode("utf-8")

    def _split_key(self, name: str) -> str:
        return content_key(
            f"split-{name}",
            {
                "corpus": self._corpus_key(name),
                "eval": self._eval_entry().meta["key"],
                "seed": self.seed,
                "piece": PIECE_TOKENS,
                "leak_bytes": LEAK_BYTES,
            },
        )

    def _stream_key(self, name: str) -> str:
        """The cache key behind a corpus's training stream (mixtures of mixtures hash their parts)."""
        if isinstance(self._spec(name), MixtureCorpus):
            self._stream(name)
            return self._mix_keys[name]
        return self._split_key(name)
