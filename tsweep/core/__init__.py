"""The floor: the contracts every other part of tsweep shares, and nothing else.

Everything above imports from here; nothing here imports from above (``tests/test_layers.py``
checks it from the imports). No torch and no Ray on this floor, so the planner, the store, the
analysis and the CLI stay light.

- ``errors``: the one error family for bad input (one line, exit code 2).
- ``units``: token counts as users write them (``250k``, ``2M``) and as tsweep prints them.
- ``dataspec``: typed specs of corpora and tokenizers (what a sweep's data is).
- ``sizes``: the size ladder (what model "size X" is; exact non-embedding N).
- ``cadence``: when a job is evaluated, how many steps it runs and may go without improving.
- ``job``: the job record: what a job computes, where it starts from, where it writes.
- ``records``: typed progress reports a running job sends (scheduler and live view read them).
- ``paths``: locations as strings (a local path or a URI with its query), joined and compared.
- ``files``: the one filesystem every byte goes through (``pyarrow.fs``, transient errors retried).
- ``layout``: where a sweep's files live, down to each job's folders.
- ``store``: the Arrow store of eval points and job summaries, with its versioned schema.
- ``jsonio``: JSON at the file boundary (non-finite floats written as null).
"""
