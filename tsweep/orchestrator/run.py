"""Run a sweep's job graph on Ray Tune: the driver behind ``demo``, ``submit`` and ``resume``.

Steps, each idempotent so that running the driver again (``resume``) finishes only what is
missing:
0. Expand the sweep and refuse what needs no cluster: a tracker's package missing, a live
   driver on the folder (``tsweep.orchestrator.lease``), finished jobs of another sweep in it.
1. Start (or join) Ray (:func:`init_ray`, which says whether the cluster is local) while a
   second thread opens, counts and tokenizes every corpus into the data cache
   (:func:`_start_ray_checking_data`): a local cluster is a new one, even where ``ray start
   --head`` runs on the machine, listens on 127.0.0.1 only and keeps its token private.
2. Take the sweep folder's lease: one driver per sweep. A job larger than a local cluster is
   refused (:func:`check_capacity`). Write the validated YAML beside the store, read every
   shard of the store (setting aside the ones that do not parse): jobs with a final summary and
   whole rows are skipped (content-addressed ids make this exact); a pre-training job whose
   p-checkpoint an unfinished fine-tune needs runs again if that checkpoint is missing or
   damaged. Start the named analysis actor (namespace ``tsweep``) and the core broker that
   lends idle CPUs to running jobs (``tsweep.orchestrator.cores``).
3. One Tune run whose searcher releases jobs as their dependencies appear, each trial with the
   job's own resources (and any idle CPUs of its node, lent until a new job needs them),
   retried from its checkpoint up to ``max_failures`` times.
4. A final synchronous refit (the plots' second process starting beside it); plots; the
   result: what ran, what failed, what is blocked.
"""

from __future__ import annotations

import hashlib
import logging
import os
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from tsweep.analysis.actor import AnalysisActor, read_latest, start_analysis_actor
from tsweep.analysis.plots import start_helpers, stop_helpers, write_plots
from tsweep.core.errors import UsageError
from tsweep.core.job import Job
from tsweep.core.layout import Files, SweepLayout, without_query
from tsweep.core.store import Store
from tsweep.orchestrator import lease, trackers
from tsweep.orchestrator.adaptive import AdaptiveSearcher
from tsweep.orchestrator.cores import start_core_broker
from tsweep.orchestrator.plan import JobGraph, expand
from tsweep.orchestrator.progress import AnalysisFeed, LiveProgress
from tsweep.orchestrator.scheduler import DependencySearcher
from tsweep.sweeps import Sweep, dump_sweep
from tsweep.workers import checkpoints
from tsweep.workers.trainable import job_label, job_trainable

if TYPE_CHECKING:
    from ray.actor import ActorHandle
    from ray.tune import Callback, Tuner
    from ray.tune.search import Searcher

log = logging.getLogger(__name__)

NAMESPACE = "tsweep"
# Processes drawing the final plots (tsweep.analysis.plots.write_plots): seconds of one core's
# work, when the sweep's jobs have ended and the driver's machine has cores free (two: 6.7 s to
# 5.1 s on the demo's 113 jobs, 2-core AMD EPYC).
PLOT_PROCESSES = min(2, os.cpu_count() or 1)
# Ray Tune's switch for its default CSV, JSON and TensorBoard loggers (ray.tune.utils.callback).
TUNE_LOGGERS_OFF = "TUNE_DISABLE_AUTO_CALLBACK_LOGGERS"


@dataclass
class RunResult:
    sweep_dir: str
    planned: int
    skipped: int
    ran: int
    failed: list[str] = field(default_factory=list)
    blocked: dict[str, str] = field(default_factory=dict)
    wall_time_s: float = 0.0
    report: dict[str, Any] | None = None  # the final refit's report (analysis actor's refit())
    dashboard_url: str | None = None
    plots: list[str] = field(default_factory=list)
    design: dict[str, Any] | None = None  # an adaptive design's final state (fits/design.json)


def jobs_to_run(graph: JobGraph, layout: SweepLayout) -> tuple[list[Job], dict[str, set[int]]]:
    """Unfinished jobs, plus finished pre-training whose checkpoints an unfinished job still needs
    but which are gone or damaged (truncated, emptied, never wholly uploaded); and the checkpoints
    already available. The driver is the one reader that sets unreadable shards aside."""
    done = Store(layout.store_root).check(set_aside=True).finished
    todo = [j for j in graph.jobs if j.job_id not in done]
    available: dict[str, set[int]] = {}
    for pre in graph.pretrain:
        available[pre.job_id] = {p for p in pre.checkpoints if checkpoints.published(pre.p_checkpoint(p))}
    needed = {(j.parent, j.pretrain_tokens) for j in todo if j.parent}
    rerun = {pid for pid, p in needed if pid in done and p not in available[pid]}
    todo = [j for j in graph.jobs if j.job_id not in done or j.job_id in rerun]
    return todo, available


def _changed_settings(old: Sweep, new: Sweep) -> list[str]:
    """Dotted paths of the settings in which two sweeps differ."""

    def flat(d: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
        out: dict[str, Any] = {}
        for k, v in d.items():
            if isinstance(v, dict) and v:
                out.update(flat(v, f"{prefix}{k}."))
            else:
                out[f"{prefix}{k}"] = v
        return out

    a, b = flat(old.model_dump(mode="json")), flat(new.model_dump(mode="json"))
    return sorted(k for k in a.keys() | b.keys() if a.get(k) != b.get(k))


def refuse_foreign_results(sweep: Sweep, graph: JobGraph, layout: SweepLayout) -> None:
    """A sweep folder holds the results of one sweep. If its store has finished jobs this sweep
    does not plan (the YAML changed a setting that enters job ids: a learning rate, a corpus, the
    recipe), the laws would be fitted to two experiments at once; refuse, naming what changed.
    Adding sizes, budgets or sources keeps every old job id, so it extends the sweep in place;
    dropping some is refused too, since the report reads every finished job in the folder (run
    the narrower sweep under another name)."""
    planned = {j.job_id for j in graph.jobs}
    foreign = Store(layout.store_root).summary_job_ids() - planned  # one listing: the driver reads the shards later
    if not foreign:
        return
    old = None
    if layout.files.is_file(layout.sweep_yaml):
        from tsweep.sweeps import loads_sweep

        try:
            old = loads_sweep(layout.files.read_text(layout.sweep_yaml), origin=layout.sweep_yaml)
        except UsageError:
            old = None
    changed = _changed_settings(old, sweep) if old is not None else []
    what = (
        f" (changed: {', '.join(changed[:6])}{', ...' if len(changed) > 6 else ''})"
        if changed
        else " (made by another version of tsweep's recipe, or another sweep)"
    )
    raise UsageError(
        f"{without_query(layout.sweep_dir)} holds {len(foreign)} finished job(s) this sweep does not "
        f"plan{what}: run it under another name (--set name=NEW) or --storage, or move that folder"
    )


def save_sweep(sweep: Sweep, layout: SweepLayout) -> None:
    """The validated sweep beside its results (``status``, ``resume`` and reports read it)."""
    layout.files.write_text(layout.sweep_yaml, dump_sweep(sweep))


def private_token_file() -> None:
    """Ray's default token file (``~/.ray/auth_token``), readable by its owner only: created here
    with mode 0600 before Ray would create it world-readable, or tightened if it exists. Skipped
    when the token comes from ``RAY_AUTH_TOKEN`` or ``RAY_AUTH_TOKEN_PATH``, or auth is disabled."""
    import secrets

    if (
        os.environ.get("RAY_AUTH_TOKEN")
        or os.environ.get("RAY_AUTH_TOKEN_PATH")
        or os.environ.get("RAY_AUTH_MODE", "token").lower() != "token"
    ):
        return
    path = os.path.expanduser("~/.ray/auth_token")
    os.makedirs(os.path.dirname(path), mode=0o700, exist_ok=True)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        if os.stat(path).st_uid == os.getuid():
            os.chmod(path, 0o600)
        return
    with os.fdopen(fd, "w") as f:
        f.write(secrets.token_hex(32))  # what Ray's own generator writes: 256 bits, hex


@dataclass(frozen=True)
class RayCluster:
    """The Ray cluster this process is connected to, as :func:`init_ray` found it."""

    dashboard_url: str | None  # None when this process joined a cluster it did not start here
    local: bool  # started by this process: it never grows, so a job larger than it would wait forever


def _join(address: str) -> RayCluster:
    import ray

    try:
        ctx = ray.init(address=address, namespace=NAMESPACE, log_to_driver=False, logging_level=logging.WARNING)
    except (ConnectionError, ValueError, RuntimeError, OSError) as exc:
        first = str(exc).strip().splitlines()[0][:300] if str(exc).strip() else type(exc).__name__
        raise UsageError(f"--address: cannot join the Ray cluster at {address!r}: {first}") from None
    return RayCluster(_url(ctx), local=False)


def _start_local(num_cpus: int | None) -> RayCluster:
    import ray

    private_token_file()
    _quiet_token_notice()
    ctx = ray.init(
        # "local": a new cluster. With no address Ray joins the cluster a `ray start --head` on
        # this machine recorded in {temp}/ray_current_cluster, and then refuses num_cpus.
        address="local",
        num_cpus=num_cpus,
        include_dashboard=True,
        dashboard_host="127.0.0.1",
        _node_ip_address="127.0.0.1",
        namespace=NAMESPACE,
        log_to_driver=False,
        logging_level=logging.WARNING,
    )
    return RayCluster(_url(ctx), local=True)


class _TokenNotice(logging.Filter):
    """Drops Ray's line announcing the token authentication it turns on for a new local cluster
    (the README's Security section says it; a sweep refused once Ray is up then prints one line).
    Ray's line for a cluster started *without* a token stays."""

    def filter(self, record: logging.LogRecord) -> bool:
        return not record.getMessage().startswith("Token authentication is enabled for this Ray cluster")


def _quiet_token_notice() -> None:
    logger = logging.getLogger("ray._private.authentication.authentication_token_setup")
    if not any(isinstance(f, _TokenNotice) for f in logger.filters):
        logger.addFilter(_TokenNotice())


def _url(ctx: object) -> str | None:
    url = getattr(ctx, "dashboard_url", None)
    return f"http://{url}" if url and "://" not in url else url


def _started_here() -> bool:
    """Whether the Ray this process is already connected to is a cluster it started itself
    (``ray.init()`` without an address, here or by :func:`init_ray` earlier). Ray records it only
    on its private node object, read defensively: anything else counts as joined."""
    from ray._private import worker

    node = getattr(worker, "_global_node", None)
    return bool(node is not None and getattr(node, "head", False))


def init_ray(address: str | None, num_cpus: int | None = None) -> RayCluster:
    """Join ``address`` (else ``$RAY_ADDRESS``, which Ray sets for a submitted job's driver) or
    start a new local cluster; the cluster's dashboard URL and whether it is local. A process
    already connected to Ray keeps that connection.

    A local cluster's node IP and dashboard are 127.0.0.1 (the dashboard listens there only;
    GCS, raylet and agents of the installed Ray still listen on every interface, guarded by
    Ray's token: README, Security). Its token file is private (:func:`private_token_file`)."""
    import ray

    if ray.is_initialized():
        return RayCluster(dashboard_url=None, local=_started_here())
    address = address or os.environ.get("RAY_ADDRESS")
    return _join(address) if address else _start_local(num_cpus)


def check_capacity(jobs: Iterable[Job], total: Mapping[str, float], *, local: bool) -> None:
    """A job larger than a ``local`` cluster (which never grows) would wait forever: refuse it,
    naming the setting. Joined clusters may autoscale, so there it only warns."""
    for job in jobs:
        for key, field_, per in (("CPU", "resources.cpus", job.cpus), ("GPU", "resources.gpus", job.gpus)):
            need = per * job.workers
            if need > total.get(key, 0.0) + 1e-9:
                msg = (
                    f"resources.workers x {field_}: {job.label} needs {job.workers} x {per:g} = {need:g} {key}s but "
                    f"the cluster has {total.get(key, 0.0):g}"
                )
                if local:
                    raise UsageError(f"{msg}; lower them, or run on a larger cluster (--address)")
                log.warning("%s; it waits until the cluster grows", msg)
                return


def analysis_actor_name(sweep: Sweep, layout: SweepLayout) -> str:
    """The analysis actor's name: the sweep's name plus a digest of its folder. The actor is
    looked up with ``get_if_exists``, so a name without the folder would hand a second driver on
    the same cluster (the same sweep under another storage root) an actor that refits, and writes
    ``fits/`` into, the first sweep's store."""
    digest = hashlib.sha256(layout.sweep_dir.encode()).hexdigest()[:8]
    return f"analysis:{sweep.name}:{digest}"


# Logical memory reserved by a multi-worker job's coordinating trial (it only waits on its Train
# workers); a placeholder so that the trial's resource request is not empty.
COORDINATOR_MEMORY = 64 * 1024**2


def _make_resources() -> Callable[[dict[str, Any]], dict[str, float]]:
    def resources(config: dict[str, Any]) -> dict[str, float]:
        """A single-worker trial holds the job's devices; a multi-worker trial only coordinates (its
        Ray Train workers request the devices themselves, the Ray Train V2 way). The coordinator
        asks for no CPU at all: even 0.01 CPU would keep a job whose workers need every CPU of
        the cluster from ever starting. Tune needs a non-empty request, so it asks for a token
        amount of memory instead."""
        job = config["job"]
        if job["workers"] > 1:
            return {"cpu": 0, "gpu": 0, "memory": COORDINATOR_MEMORY}
        return {"cpu": job["cpus"], "gpu": job["gpus"]}

    return resources


# Tune pickles this function into every trial's actor. Made inside a function, it is shipped by
# value; a module-level function would go by reference and make each actor import this module,
# and with it torch (through plan.py), before the trial starts: seconds per actor start-up.
_resources = _make_resources()


def cluster_resources() -> dict[str, float]:
    """The connected Ray cluster's resource totals (``{"CPU": 8.0, "GPU": 1.0, ...}``)."""
    import ray

    total: dict[str, float] = ray.cluster_resources()  # type: ignore[no-untyped-call]  # unannotated in Ray
    return total


def max_pending_trials(jobs: Iterable[Job]) -> int:
    """How many of ``jobs`` the connected Ray cluster can run at once (the smallest job's
    footprint against the cluster's CPUs and GPUs), and at least 2."""
    total = cluster_resources()
    most = 0
    for job in jobs:
        fits = [total.get("CPU", 0.0) / (job.cpus * job.workers)]
        if job.gpus:
            fits.append(total.get("GPU", 0.0) / (job.gpus * job.workers))
        most = max(most, int(min(fits) + 1e-9))
    return max(2, most)


def sweep_tuner(
    trainable: Any,
    searcher: Searcher,
    *,
    num_samples: int,
    name: str,
    storage_path: str,
    max_failures: int,
    callbacks: list[Callback],
) -> Tuner:
    """The Tune set-up every sweep runs under: one trial per job with the job's own resources,
    actors reused between trials, names from the job. Split out of :func:`run_sweep` so that
    ``benchmarks/scheduling.py`` and ``benchmarks/trial_overhead.py`` measure exactly this set-up
    with stand-in trainables (a function or a Trainable class)."""
    from ray import tune

    # Trials in flight (running, or taken from the searcher and waiting for an actor): as many as
    # the cluster runs at once. Tune gives a custom searcher one pending trial unless it is
    # concurrency-limited; fewer, and a cluster of S slots fills in S rounds of actor start-ups
    # (seconds each: measured by benchmarks/scheduling.py); more, and jobs are committed further
    # ahead of the fine-tunes the searcher releases later, so its priority order would stop
    # deciding. ``max_concurrent_trials`` wraps the searcher in Tune's ConcurrencyLimiter, whose
    # limit Tune also takes as its pending-trial limit.
    # Ray annotates ``resources`` as returning a PlacementGroupFactory; a function returning a resource
    # dict is what its docstring shows and what Trial.default_resource_request converts.
    # Of Tune's own loggers (a CSV, a JSON and a TensorBoard file per trial, written by the driver
    # at every report) only the JSON one is kept, unless the user's environment says otherwise:
    # Tune's results read each trial's metrics back from it (without it, a warning line per trial
    # at the end of the run). The sweep's store and `trackers:` (TensorBoard where a user asks)
    # cover the others, whose cost was the driver's: importing tensorboardX (and torch with it)
    # before the first trial, about 2 s of a core, then every report written twice more on a
    # core the jobs share. Tune reads the variable when a run starts.
    os.environ.setdefault(TUNE_LOGGERS_OFF, "1")
    if not any(isinstance(c, tune.logger.JsonLoggerCallback) for c in callbacks):
        callbacks = [*callbacks, tune.logger.JsonLoggerCallback()]  # type: ignore[no-untyped-call]  # unannotated in Ray
    trainable = tune.with_resources(trainable, resources=_resources)  # type: ignore[arg-type]
    if isinstance(trainable, type):  # Ray names an actor's class by its __qualname__, which Tune's
        trainable.__qualname__ = trainable.__name__  # wrapper leaves as with_resources.<locals>...
    return tune.Tuner(
        trainable,
        tune_config=tune.TuneConfig(
            search_alg=searcher,
            num_samples=num_samples,
            reuse_actors=True,
            max_concurrent_trials=max_pending_trials(getattr(searcher, "waiting", [])),
            trial_name_creator=lambda t: job_label(t.config, t.trial_id),
            trial_dirname_creator=lambda t: t.config["job"]["job_id"] if t.config else t.trial_id,
        ),
        run_config=tune.RunConfig(
            name=name,
            **Files(storage_path).ray_storage(storage_path),
            failure_config=tune.FailureConfig(max_failures=max_failures),
            callbacks=callbacks,
            verbose=0,
        ),
    )


FINAL_REFIT_TRIES = 5  # a restarting actor answers ActorUnavailableError for a few seconds


def final_refit(actor: ActorHandle[AnalysisActor], layout: SweepLayout, sweep: Sweep) -> dict[str, Any]:
    """The last refit, by the actor; while the actor is being restarted (its node was lost), try
    again; if it never comes back, the same refit in the driver (it reads the same store and
    writes the same ``fits/latest.json``), so a lost node never costs the sweep its report."""
    import ray
    from ray.exceptions import ActorUnavailableError, RayActorError

    for attempt in range(FINAL_REFIT_TRIES):
        try:
            report: dict[str, Any] = ray.get(actor.refit.remote())
            return report
        except (ActorUnavailableError, RayActorError) as e:
            log.warning("analysis actor unavailable (%s); retrying the final refit", type(e).__name__)
            time.sleep(2.0 * (attempt + 1))
    log.warning("analysis actor did not come back; the final refit runs in the driver")
    return AnalysisActor(layout.sweep_dir, bootstrap=sweep.fit.bootstrap, seed=sweep.fit.seed).refit()


def run_sweep(
    sweep: Sweep,
    *,
    layout: SweepLayout | None = None,
    address: str | None = None,
    num_cpus: int | None = None,
    live: bool = True,
    on_start: Callable[[str | None], object] | None = None,
) -> RunResult:
    """Run (or finish) ``sweep`` under its folder's lease (module docstring); ``on_start`` is
    called with the dashboard URL once the cluster is up and nothing was refused."""
    t0 = time.perf_counter()
    layout = layout or sweep.layout()
    graph = expand(sweep, layout)
    # refusals that need no data and no cluster, before Ray starts (each read-only)
    trackers.check_installed(sweep.trackers)  # an optional package missing
    lease.refuse_if_held(layout)  # another driver runs this folder
    refuse_foreign_results(sweep, graph, layout)
    cluster = _start_ray_checking_data(sweep, graph, address, num_cpus)
    with lease.acquire(layout):
        refuse_foreign_results(sweep, graph, layout)  # again, now that no other driver can write
        check_capacity(graph.jobs, cluster_resources(), local=cluster.local)  # before anything is written
        save_sweep(sweep, layout)
        todo, available = jobs_to_run(graph, layout)
        result = RunResult(
            sweep_dir=layout.sweep_dir,
            planned=len(graph.jobs),
            skipped=len(graph.jobs) - len(todo),
            ran=len(todo),
            dashboard_url=cluster.dashboard_url,
        )
        if on_start is not None:
            on_start(result.dashboard_url)
        _run_jobs(sweep, layout, list(graph.jobs), todo, available, result, live=live)
        result.wall_time_s = time.perf_counter() - t0
        return result


def _start_ray_checking_data(sweep: Sweep, graph: JobGraph, address: str | None, num_cpus: int | None) -> RayCluster:
    """Start (or join) Ray while a second thread opens, counts and tokenizes every corpus
    (``SweepData.check``, which fills the data cache the jobs read) and checks each job against
    its device's memory: on a fresh machine both take seconds, mostly on different cores (Ray's
    start is its own processes starting). Ray starts in this thread: a node started from a
    thread that ends is stopped with it. The cheap checks (names, files, the hub) refuse before
    Ray starts; a corpus too small for its budgets once Ray is up, before anything is written,
    and then the connection made here is shut down (a cluster started here stops with it)."""
    from concurrent.futures import ThreadPoolExecutor

    import ray

    from tsweep.data import SweepData
    from tsweep.orchestrator.planview import check_data_and_resources

    SweepData(sweep).preflight()
    connected = ray.is_initialized()
    with ThreadPoolExecutor(1, thread_name_prefix="tsweep-data") as pool:
        checked = pool.submit(check_data_and_resources, sweep, graph)
        cluster = init_ray(address, num_cpus)
        try:
            checked.result()
        except BaseException:
            if not connected:  # started (or joined) here for this sweep, which is refused
                ray.shutdown()
            raise
    return cluster


def _searcher(
    sweep: Sweep, layout: SweepLayout, todo: list[Job], available: dict[str, set[int]], pool: list[Job]
) -> DependencySearcher:
    """The grid's searcher (every job in ``todo``), or the adaptive design's over the whole grid."""
    if not sweep.design.adaptive:
        return DependencySearcher(todo, available, capacity=cluster_resources())
    return AdaptiveSearcher(
        todo,
        available,
        pool=pool,
        goal_settings=sweep.design,
        model_sizes=sweep.model_sizes,
        layout=layout,
        batch=sweep.design.batch or max_pending_trials(pool),
        capacity=cluster_resources(),
    )


def _run_jobs(
    sweep: Sweep,
    layout: SweepLayout,
    graph_jobs: list[Job],
    todo: list[Job],
    available: dict[str, set[int]],
    result: RunResult,
    *,
    live: bool,
) -> None:
    """Steps 2 (the analysis actor) to 4 into ``result``: the Tune run of ``todo``, the final
    refit, the trackers' gap run and the plots."""
    from ray.actor import ActorHandle

    actor = start_analysis_actor(
        analysis_actor_name(sweep, layout),
        NAMESPACE,
        sweep_dir=layout.sweep_dir,
        bootstrap=sweep.fit.bootstrap,
        seed=sweep.fit.seed,
    )
    assert isinstance(actor, ActorHandle)  # Ray types .remote() as a handle or the class itself
    started = time.time()  # the design's choices from here on are this driver's
    searcher = _searcher(sweep, layout, todo, available, graph_jobs)
    if searcher.waiting:
        progress = LiveProgress(
            sweep.name,
            todo,
            layout.latest_fit,
            live=live,
            skipped=result.skipped,
            design_path=layout.design_state if sweep.design.adaptive else None,
            design_since=started,
        )
        tuner = sweep_tuner(
            job_trainable(sweep.model_dump(mode="json"), layout.sweep_dir, cores=start_core_broker(NAMESPACE)),
            searcher,
            num_samples=max(1, len(todo)),
            name=f"{sweep.name}-{time.strftime('%Y%m%d-%H%M%S')}",
            storage_path=layout.tune_dir,
            max_failures=sweep.max_failures,
            callbacks=[progress, AnalysisFeed(actor), *trackers.tune_callbacks(sweep.trackers, sweep.name)],
        )
        grid = tuner.fit()
        result.ran = len(grid)
        for r in (grid[i] for i in range(len(grid))):
            if r.error is not None:
                result.failed.append(f"{job_label(r.config, '?')}: {type(r.error).__name__}: {r.error}")
        result.blocked = dict(searcher.blocked)
    helpers = start_helpers(PLOT_PROCESSES - 1)  # the plots' second process imports during the refit
    try:
        result.report = final_refit(actor, layout, sweep)
        if isinstance(searcher, AdaptiveSearcher):
            result.design = searcher.final_state()
        if sweep.trackers.any:
            latest = read_latest(layout.sweep_dir)
            if latest is not None:
                trackers.log_gaps(sweep.trackers, sweep.name, latest, layout.tune_dir)
        result.plots = write_plots(layout.sweep_dir, processes=PLOT_PROCESSES, helpers=helpers)
    finally:
        stop_helpers(helpers)
