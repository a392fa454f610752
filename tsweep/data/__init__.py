"""Data for transfer sweeps: sources, byte-level tokenization, document-level splits, a cache.

The worker and the planner use one object per sweep::

    data = SweepData(sweep)                      # cache: ~/.cache/tsweep/data or $TSWEEP_DATA_CACHE
    data.check()                                 # plan time: {corpus: training tokens}, or DataError
    data.eval_tokens()                           # TokenSlice: exactly eval.tokens held-out target tokens
    data.train_tokens("prose", 2_000_000)        # TokenSlice: first n tokens of the training stream
    data.vocab_size                              # 264 for bytes (256 + separator, rounded to 8)

Guarantees (tested in ``tests/test_data_*.py``): the eval set is identical for every job of a
sweep and disjoint at document level (content hash) from every corpus's training split;
training budgets are exact, distinct tokens; ``train_tokens(c, a)`` is a prefix of
``train_tokens(c, b)`` for ``a < b``; everything is deterministic given the sweep.

Modules: ``registry`` (corpus kind -> source), ``sources`` (stdlib, files, hub), ``synthetic``,
``tokenizers``, ``cache`` (content-addressed Arrow entries, filelock + atomic rename),
``sweepdata`` (splits, mixtures, the API), ``hub`` (fail-fast hub probe).
"""

from tsweep.core.errors import DataError
from tsweep.data.registry import SOURCES, register_source
from tsweep.data.sweepdata import SweepData, TokenSlice, mixture_block
from tsweep.data.synthetic import ngram_cross_entropy
from tsweep.data.tokenizers import ByteTokenizer

__all__ = [
    "SOURCES",
    "ByteTokenizer",
    "DataError",
    "SweepData",
    "TokenSlice",
    "mixture_block",
    "ngram_cross_entropy",
    "register_source",
]
