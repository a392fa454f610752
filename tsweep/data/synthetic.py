"""Synthetic corpora: a seeded family of structured token processes a ``distance`` apart.

Why: real corpus pairs (prose -> python) give one transfer point each; a family with a dial
gives a curve. ``SyntheticCorpus(seed=s, distance=0)`` is a target; ``distance=d`` with the same
seed is a source "d away"; ``distance=1`` shares nothing with the target but the alphabet and
the generic structure below (as unrelated text still shares "being text").

The process (per document, over a 48-symbol printable ASCII alphabet, so byte tokens = symbols):

- a Zipf prior over the symbols (rank order random per process): successors are drawn by it,
  so frequent symbols stay frequent, as letters in text;
- a latent topic ``z`` (one of 4, uniform) fixed for the document: inferring it from context
  is a long-range dependency;
- each next symbol comes, with probability 0.6, from a sparse order-1 "backbone" table (4
  successors per symbol, Dirichlet(0.5) weights), else from a sparse order-3 table of the
  topic (the last three symbols hashed into 2048 buckets, 4 successors each, Dirichlet(0.3)):
  a 2-layer model learns the unigram in a few steps and the backbone within ~200k tokens
  (eval loss 2.9 -> 2.35 nats), while the 4 x 2048 higher-order rules keep it learning over
  millions of tokens (a 4-gram model fitted on 1.2M tokens already reaches 1.97 nats);
- copy spans: at each position (after the 48th) with probability 0.01 the document starts
  repeating an earlier span of 8..40 symbols (induction-head structure).

Distance: the tables of the target (``seed``) and of an unrelated process (``seed``, stream 1)
are mixed token by token: with probability ``d`` the next symbol is drawn from the unrelated
tables. Every conditional distribution is therefore ``(1 - d) P_target + d P_unrelated``, and
the divergence KL(P_target || P_d), hence the cross-entropy on the target of a model fitted to
source ``d``, is convex in ``d`` and zero at 0, so it grows monotonically with ``d``
(``tests/test_data_sources.py`` measures it with :func:`ngram_cross_entropy`).

Document ``i`` depends only on (seed, distance, i): documents are generated in fixed chunks
of 1024, each with its own seeded generator, vectorised across the chunk (about 2 s per
million tokens on one core).
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import numpy as np

from tsweep.core.dataspec import SyntheticCorpus

ALPHABET = "abcdefghijklmnopqrstuvwxyz0123456789 .,;:()=+-*\n"
GENERATOR_VERSION = 2
K = len(ALPHABET)  # 48
TOPICS = 4
BUCKETS = 2048
S1, S3 = 4, 4  # successors per backbone / higher-order row
ZIPF_S = 1.0
P_BACKBONE = 0.6
P_COPY = 0.01
COPY_MIN, COPY_MAX, COPY_AFTER = 8, 40, 48
CHUNK = 1024
LEN_MEDIAN, LEN_SIGMA, LEN_MIN, LEN_MAX = 250, 0.6, 32, 1536
_ALPHA_BYTES = np.frombuffer(ALPHABET.encode("ascii"), dtype=np.uint8)
assert K == 48 and len(set(ALPHABET)) == K


@dataclass(frozen=True)
class _Tables:
    """Both processes stacked on axis 0 (0 = target, 1 = unrelated)."""

    b_sup: np.ndarray  # (2, K, S1) successor symbols
    b_cum: np.ndarray  # (2, K, S1) cumulative probabilities
    bucket: np.ndarray  # (2, K, K, K) order-3 context -> bucket
    h_sup: np.ndarray  # (2, TOPICS, BUCKETS, S3)
    h_cum: np.ndarray  # (2, TOPICS, BUCKETS, S3)


def _one(seed: int, stream: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    rng = np.random.default_rng([seed, stream, 0x5E7])
    # A Zipf prior over symbols (a random rank order per process), as letters in text: the
    # unigram is learnt at once, then the backbone, then the topic rules.
    prior = np.empty(K)
    prior[rng.permutation(K)] = 1.0 / np.arange(1, K + 1) ** ZIPF_S
    log_prior = np.log(prior / prior.sum())

    def rows(n: int, support: int, concentration: float) -> tuple[np.ndarray, np.ndarray]:
        # Successors drawn by the prior without replacement (Gumbel top-k), likelier ones first,
        # with Dirichlet weights sorted to match, so frequent symbols stay frequent.
        sup = np.argsort(-(log_prior + rng.gumbel(size=(n, K))), axis=1)[:, :support]
        p = -np.sort(-rng.dirichlet(np.full(support, concentration), size=n), axis=1)
        return sup, np.cumsum(p, -1)

    b_sup, b_cum = rows(K, S1, 0.5)
    bucket = rng.integers(0, BUCKETS, size=(K, K, K))
    h_sup, h_cum = rows(TOPICS * BUCKETS, S3, 0.3)
    return b_sup, b_cum, bucket, h_sup.reshape(TOPICS, BUCKETS, S3), h_cum.reshape(TOPICS, BUCKETS, S3)


@lru_cache(maxsize=8)
def tables(seed: int) -> _Tables:
    parts = list(zip(_one(seed, 0), _one(seed, 1), strict=True))
    b_sup, b_cum, bucket, h_sup, h_cum = (np.stack(p) for p in parts)
    # Cumulative rows end at exactly 1 so a uniform draw never falls past the last successor.
    b_cum[..., -1] = 1.0
    h_cum[..., -1] = 1.0
    return _Tables(
        b_sup.astype(np.int16),
        b_cum.astype(np.float32),
        bucket.astype(np.int16),
        h_sup.astype(np.int16),
        h_cum.astype(np.float32),
    )


def _chunk(seed: int, distance: float, index: int, n: int) -> list[str]:
    tb = tables(seed)
    rng = np.random.default_rng([seed, round(distance * 1_000_000), index, GENERATOR_VERSION])
    # Draws are made for a whole chunk and cut to n, so document i never depends on n.
    lengths = np.clip(np.rint(rng.lognormal(math.log(LEN_MEDIAN), LEN_SIGMA, size=CHUNK)), LEN_MIN, LEN_MAX).astype(
        np.int64
    )[:n]
    topic = rng.integers(0, TOPICS, size=CHUNK)[:n]
    # Rows are kept longest first, so the documents still being written at step t are a prefix
    # (most are done long before the longest: a mean of ~300 of up to 1536 steps). Every step
    # still draws the whole chunk's uniforms, so each document's draws, hence its text, are the
    # same as when every row ran every step; the rows are put back in order at the end.
    order = np.argsort(-lengths, kind="stable")
    topic = topic[order]
    active = np.searchsorted(-lengths[order], -np.arange(int(lengths.max())), side="left")
    out = np.zeros((n, len(active) + 3), dtype=np.int16)
    out[:, :3] = K - 1  # context before the first symbol: as if after a line break
    copy_left = np.zeros(n, dtype=np.int64)
    copy_src = np.zeros(n, dtype=np.int64)
    for t, m in enumerate(active):
        u = rng.random((6, CHUNK), dtype=np.float32)[:, order[:m]]
        pos = t + 3
        rows = np.arange(m)
        a, b, c = out[:m, pos - 1], out[:m, pos - 2], out[:m, pos - 3]
        tab = (u[0] < distance).astype(np.intp)
        backbone = u[1] < P_BACKBONE
        bsup, bcum = tb.b_sup[tab, a], tb.b_cum[tab, a]
        bk = tb.bucket[tab, a, b, c]
        hsup, hcum = tb.h_sup[tab, topic[:m], bk], tb.h_cum[tab, topic[:m], bk]
        nb = (u[2][:, None] > bcum).sum(1)
        nh = (u[2][:, None] > hcum).sum(1)
        nxt = np.where(backbone, bsup[rows, np.minimum(nb, S1 - 1)], hsup[rows, np.minimum(nh, S3 - 1)])
        left, src = copy_left[:m], copy_src[:m]
        if t >= COPY_AFTER:
            start = (left == 0) & (u[3] < P_COPY)
            if start.any():
                length = COPY_MIN + (u[4][start] * (COPY_MAX - COPY_MIN + 1)).astype(np.int64)
                length = np.minimum(length, t)
                src[start] = 3 + (u[5][start] * (t - length + 1)).astype(np.int64)
                left[start] = length
        copying = left > 0
        if copying.any():
            nxt = np.where(copying, out[rows, src], nxt)
            src += copying
            left -= copying
        out[:m, pos] = nxt
    out[order] = out.copy()
    symbols = _ALPHA_BYTES[out[:, 3:]]
    return [symbols[i, : lengths[i]].tobytes().decode("ascii") for i in range(n)]


def generate(seed: int, distance: float, documents: int) -> Iterator[str]:
    """The corpus's documents in order; document ``i`` is the same whatever ``documents`` is."""
    for index, start in enumerate(range(0, documents, CHUNK)):
        yield from _chunk(seed, distance, index, min(CHUNK, documents - start))


class SyntheticSource:
    def preflight(self, name: str, spec: SyntheticCorpus) -> None:
        return None

    def fingerprint(self, name: str, spec: SyntheticCorpus) -> str:
        return f"synthetic-v{GENERATOR_VERSION}|seed={spec.seed}|d={spec.distance!r}|docs={spec.documents}"

    def documents(self, name: str, spec: SyntheticCorpus, workdir: Path) -> Iterator[str]:
        return generate(spec.seed, spec.distance, spec.documents)

    def private(self, name: str, spec: SyntheticCorpus) -> bool:
        return False


def ngram_cross_entropy(
    train: np.ndarray, evaluate: np.ndarray, *, order: int = 3, vocab: int = 264, alpha: float = 0.05
) -> float:
    """Nats per token on ``evaluate`` of an add-``alpha`` smoothed n-gram model fitted on ``train``.

    The measured divergence between corpora: fit on a source, score on the target's eval set.
    Contexts are the previous ``order - 1`` tokens (hashed exactly into int64).
    """
    train = np.asarray(train, dtype=np.int64)
    evaluate = np.asarray(evaluate, dtype=np.int64)

    def grams(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        ctx = np.zeros(len(x) - order + 1, dtype=np.int64)
        for j in range(order - 1):
            ctx = ctx * vocab + x[j : len(x) - order + 1 + j]
        return ctx, ctx * vocab + x[order - 1 :]

    tc, tg = grams(train)
    ec, eg = grams(evaluate)
    ctx_keys, ctx_counts = np.unique(tc, return_counts=True)
    g_keys, g_counts = np.unique(tg, return_counts=True)

    def lookup(keys: np.ndarray, counts: np.ndarray, q: np.ndarray) -> np.ndarray:
        i = np.clip(np.searchsorted(keys, q), 0, max(len(keys) - 1, 0))
        return np.where(keys[i] == q, counts[i], 0) if len(keys) else np.zeros(len(q))

    p = (lookup(g_keys, g_counts, eg) + alpha) / (lookup(ctx_keys, ctx_counts, ec) + alpha * vocab)
    return float(-np.mean(np.log(p)))
