"""Orchestrator: from a sweep to finished jobs on a Ray cluster. One job per module:

- ``plan``: expand a sweep into the content-addressed job graph; ``planview``: ``tsweep plan``'s
  checks and table.
- ``scheduler``: the Ray Tune searcher that releases a job once its checkpoint exists.
- ``run``: the driver: start or join Ray, run the graph through Tune, the final refit.
- ``progress``: the live table, progress lines, metrics gauges and the analysis feed (Tune callbacks).
- ``lease``: one driver per sweep folder; ``status``: what a sweep's store and lease say.
- ``submit``: hand the driver to a cluster's Jobs API; ``follow``: print its log until it ends.
- ``trackers``: TensorBoard, W&B and MLflow through Tune's logger callbacks; ``grafana``: the
  shipped dashboard.

Ray is imported when a module loads only by ``run``, ``scheduler`` and ``progress``; ``submit``,
``follow`` and ``trackers`` import it inside the functions that need it, so planning, status and
the API's import work without it.
"""
