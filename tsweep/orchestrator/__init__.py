"""Orchestrator: from a sweep to finished jobs on a Ray cluster.

- ``plan``: expand a :class:`sweeps.schema.Sweep` into the content-addressed job graph.
- ``store``: the Arrow store of eval points and job summaries (Ray-free).
- ``scheduler``: a Ray Tune searcher that releases a job once its checkpoint exists.
- ``run``: start or join a Ray cluster, run the graph through Tune, feed the analysis actor.
- ``cli``: the ``tsweep`` console script.

Only ``run``, ``scheduler`` and ``submit`` import Ray, so the rest can be tested without a cluster.
"""
