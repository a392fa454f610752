"""The size ladder's N is the exact non-embedding parameter count of the model it builds."""

import pytest

from tsweep.core.sizes import SIZE_LADDER
from tsweep.workers.engine import build_model


@pytest.mark.parametrize("name", ["nano", "micro", "mini", "tiny", "small"])
def test_non_embedding_count_matches_model(name):
    size = SIZE_LADDER[name]
    model = build_model(size, vocab_size=264, seq_len=64, seed=0)
    total = sum(p.numel() for p in model.parameters())  # lm_head is tied to wte
    embedding = model.transformer.wte.weight.numel() + model.transformer.wpe.weight.numel()
    assert total - embedding == size.n_params


def test_ladder_is_increasing():
    ns = [s.n_params for s in SIZE_LADDER.values()]
    assert ns == sorted(ns)
