"""Workers: one job's training and evaluation, with no cluster needed.

- ``sizes``: the size ladder (what "size X" is, exact non-embedding N).
- ``data``: sources, tokenization, splits, caching (what a job trains and evaluates on).
- ``train``: one job's training loop on a DeepSpeed engine, early-stopped on the held-out target.
- ``trainable``: the thin Ray Tune adapter around ``train`` (the only Ray-aware module here).
"""
