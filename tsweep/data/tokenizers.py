"""Tokenizers: byte-level by default, a Hugging Face tokenizer by name optionally.

Byte-level (the default, nothing to download): a document's UTF-8 bytes are ids 0..255 and the
document separator (end of document) is id 256. The vocabulary is 257 ids rounded up to a
multiple of 8, i.e. ``vocab_size == 264``: embedding and output matrices whose row count is a
multiple of 8 use the tensor-core / vectorised kernels fully, and ids 257..263 are never
emitted. Character counts (Hernandez et al. 2021 count characters, not tokens) are exact for
bytes: a character is every byte that is not a UTF-8 continuation byte (0x80..0xBF).

``hf``: ``AutoTokenizer.from_pretrained(name)``; the separator is its EOS token (else SEP).
Offline or with the hub unreachable it loads from the local cache only and raises
:class:`DataError` when the tokenizer is not there. Characters behind a partial document are
then estimated in proportion to its tokens.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Sequence
from functools import cache
from typing import Any

import numpy as np

from tsweep.core.dataspec import TokenizerSpec
from tsweep.core.errors import DataError
from tsweep.data.hub import hub_repo_reason


def _round8(n: int) -> int:
    return -(-n // 8) * 8


class ByteTokenizer:
    kind = "bytes"
    sep_id = 256
    vocab_size = _round8(257)  # 264
    exact_chars = True

    def fingerprint(self) -> str:
        return "bytes-v1"

    @property
    def dtype(self) -> np.dtype:
        return np.dtype(np.uint16)

    def encode_documents(self, docs: Sequence[str]) -> list[np.ndarray]:
        out = []
        for d in docs:
            b = np.frombuffer(d.encode("utf-8", errors="replace"), dtype=np.uint8)
            ids = np.empty(len(b) + 1, dtype=np.uint16)
            ids[:-1] = b
            ids[-1] = self.sep_id
            out.append(ids)
        return out

    @staticmethod
    def count_chars(tokens: np.ndarray) -> int:
        """Characters behind byte tokens: lead bytes (not 0x80..0xBF), separators excluded."""
        t = np.asarray(tokens)
        return int(np.count_nonzero((t < 0x80) | ((t >= 0xC0) & (t < 256))))

    def decode(self, tokens: np.ndarray) -> str:
        t = np.asarray(tokens)
        return t[t < 256].astype(np.uint8).tobytes().decode("utf-8", errors="replace")


class HFTokenizer:
    kind = "hf"
    exact_chars = False

    def __init__(self, name: str):
        self.name = name
        self._tok = _load_hf(name)
        sep = self._tok.eos_token_id if self._tok.eos_token_id is not None else self._tok.sep_token_id
        if sep is None:
            raise DataError(f"tokenizer {name!r} has neither an EOS nor a SEP token to separate documents")
        self.sep_id = int(sep)
        self.vocab_size = _round8(len(self._tok))

    def fingerprint(self) -> str:
        backend = getattr(self._tok, "backend_tokenizer", None)
        body = backend.to_str() if backend is not None else repr(sorted(self._tok.get_vocab().items()))
        return "hf-v1-" + hashlib.blake2b(body.encode(), digest_size=16).hexdigest()

    @property
    def dtype(self) -> np.dtype:
        return np.dtype(np.uint16 if self.vocab_size < 65536 else np.int32)

    def encode_documents(self, docs: Sequence[str]) -> list[np.ndarray]:
        enc = self._tok(list(docs), add_special_tokens=False)["input_ids"]
        return [np.asarray([*ids, self.sep_id], dtype=self.dtype) for ids in enc]

    @staticmethod
    def count_chars(tokens: np.ndarray) -> int:  # pragma: no cover - not exact for subwords
        raise NotImplementedError

    def decode(self, tokens: np.ndarray) -> str:
        text: str = self._tok.decode(list(map(int, tokens)))
        return text


def _load_hf(name: str) -> Any:  # a transformers tokenizer
    from transformers import AutoTokenizer  # heavy: only when a sweep names a hub tokenizer

    why = None if os.path.isdir(name) else hub_repo_reason(name, "model")
    try:
        return AutoTokenizer.from_pretrained(name, local_files_only=os.path.isdir(name) or why is not None)
    except Exception as exc:  # OSError, ValueError, HTTP errors: all mean "not available here"
        if why:
            raise DataError(f"tokenizer {name!r} is not in the local cache and {why}") from None
        text = str(exc).strip().splitlines()[0][:200] if str(exc).strip() else ""
        raise DataError(f"tokenizer {name!r} cannot be loaded: {type(exc).__name__}: {text}") from None


# What a sweep tokenizes with: both kinds have the same attributes and methods.
Tokenizer = ByteTokenizer | HFTokenizer


@cache
def make_tokenizer(spec: TokenizerSpec) -> Tokenizer:
    if spec.kind == "bytes":
        return ByteTokenizer()
    if spec.name is None:  # TokenizerSpec refuses kind hf without a name
        raise DataError("tokenizer kind 'hf' needs a tokenizer name")
    return HFTokenizer(spec.name)
