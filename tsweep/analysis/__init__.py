"""tsweep's analysis: scaling laws for transfer, fitted from a sweep's summary table.

- ``laws``: the law registry (chinchilla, kaplan, hernandez, barnett), one small class each.
- ``fitter``: Chinchilla approach 3 (Huber on log values, L-BFGS-B from a grid of starts) with
  warm starts and vectorised bootstrap intervals; ``fit(law, data, ...) -> FitResult``.
- ``transfer``: the transfer report (scratch law, D_E / D_T / multiplier, Hernandez and Barnett
  fits per source); ``transfer_report(table, ...) -> TransferReport``.
- ``actor``: ``AnalysisActor`` (refit on every finished job; fits/latest.json, history.jsonl)
  and ``start_analysis_actor``, the only Ray import in this package.
- ``plots``: the three PNGs under ``{sweep_dir}/plots/``; ``write_plots(sweep_dir)``.
- ``cli``: ``fit``, ``report``, ``advise`` subcommands (``add_commands``), ``gaps_command``.
- ``synthetic``: summary tables generated from known laws, for tests and benchmarks.

Ray-free except ``actor.start_analysis_actor``: everything here runs and tests with no cluster.
"""
