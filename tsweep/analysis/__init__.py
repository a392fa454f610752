"""tsweep's analysis: scaling laws for transfer, fitted from a sweep's summary table.

One job per module, and the analysis modules each may import (``tests/test_analysis_modules.py``
holds the same table and fails on an import outside it):

- ``laws``: the law registry (chinchilla, kaplan, hernandez, barnett, plateau, barnett_joint,
  data_constrained),
  one small class each. Imports no analysis module.
- ``_blas``: single-threaded BLAS while fitting. Imports none.
- ``fitter``: Chinchilla approach 3 (Huber on log values, L-BFGS-B from a grid of starts) with
  warm starts, bootstrap intervals and the identification rule; ``fit(law, data, ...) ->
  FitResult``. The one percentile-interval helper and the one scale rule live here. Imports
  ``laws``, ``_blas``.
- ``records``: the transfer report's typed records (``TransferReport``, ``Estimate``, ...) and
  their JSON, written once. Imports ``fitter``, ``laws`` (and ``rendering`` inside
  ``TransferReport.format_table`` only).
- ``transfer``: the estimation behind the report (scratch curves, D_E / D_T, the gap fits, the
  comparisons); ``transfer_report(table, ...) -> TransferReport``. Imports ``fitter``, ``laws``,
  ``noise``, ``records``.
- ``rendering``: the report as a terminal table, and the one way counts and sizes are written
  (``count``, ``size_label``). Imports ``records``.
- ``actor``: ``AnalysisActor`` (refit on every finished job; fits/latest.json, history.jsonl)
  and ``start_analysis_actor``, the only Ray import in this package. Imports ``records``,
  ``transfer``.
- ``reporting``: a sweep's report read or refitted, and the files it becomes (gaps JSON/CSV,
  summary.md). Imports ``actor``, ``design``, ``records``, ``rendering``, ``transfer``.
- ``advice``: more pre-training, more target data or from scratch: the smallest budgets that
  reach a target loss by each route, with bootstrap intervals and costs. Imports ``fitter``,
  ``laws``, ``records``.
- ``plots``: the figures, as matplotlib Figures (``figure_*``, ``figures``) and as a PNG and
  an SVG each under ``{sweep_dir}/plots/`` (``write_plots(sweep_dir)``). Imports ``actor``,
  ``design``, ``fitter``, ``laws``, ``records``, ``rendering``, ``transfer``.
- ``page``: ``report.html``, the report as one self-contained page (the answer first, tables,
  glossary, advice, an adaptive design's choices, figures, every run, compute, configuration).
  Imports ``advice``, ``design``, ``records``, ``rendering``.
- ``design``: the adaptive design: a seed design that identifies the gap law, then the grid's
  jobs that narrow the goal's intervals most per FLOP, read off the joint gap fit's bootstrap
  ensemble; when to stop; the design's files (fits/design.json, design.jsonl). Imports
  ``laws``, ``records``, ``transfer``.
- ``worlds``: simulated sweeps whose answers are known (the demo's laws as measured, and the
  demo broken each way the laws cannot follow), every printed number scored against its truth:
  what an interval's coverage is measured on. Imports ``records``, ``transfer``.
- ``synthetic``: summary tables generated from known laws, for tests and benchmarks. Imports
  ``laws``.
- ``tables``: a CSV or Parquet file as columns, for ``tsweep fit``. Imports none.
- ``noise``: the run-to-run and per-checkpoint noise measured from a sweep's replicate runs;
  ``replicate_noise(table) -> ReplicateNoise | None``. Imports none.

Ray-free except ``actor.start_analysis_actor``: everything here runs and tests with no cluster.
"""
