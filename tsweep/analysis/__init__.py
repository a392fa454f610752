"""tsweep's analysis: scaling laws for transfer, fitted from a sweep's summary table.

- ``laws``: the law registry (chinchilla, kaplan, hernandez, barnett, plateau) and the joint gap
  law of several sources (``barnett_joint``), one small class each.
- ``fitter``: Chinchilla approach 3 (Huber on log values, L-BFGS-B from a screened grid of
  starts, memory-bounded at any table size) with bootstrap intervals; ``fit(law, data) -> FitResult``.
- ``identify``: the rule that decides whether a number may be printed (``Estimate``).
- ``scratch``: per-size from-scratch curves read as Hernandez et al. 2021 do (plateau, D(N), D_E).
- ``gap``: the gap law per size jointly over sources, G per source, differences between sources.
- ``transfer``: the transfer report from a summary table; ``transfer_report(table) -> TransferReport``.
- ``report``: the report's typed objects, their JSON at the file boundary, the text table.
- ``actor``: ``AnalysisActor`` (refit as jobs finish; fits/latest.json, history.jsonl) and
  ``start_analysis_actor``, the only Ray import in this package.
- ``reporting``, ``plots``, ``advice``, ``tables``: what ``tsweep gaps``, ``report``, ``advise`` and
  ``fit`` print and write.
- ``synthetic``: summary tables generated from known laws at any sweep's shape, for tests and
  benchmarks.

Ray-free except ``actor.start_analysis_actor``: everything here runs and tests with no cluster.
"""
