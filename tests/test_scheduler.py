"""The dependency searcher in isolation: graph order, checkpoint release, orphans, and the
capacity rule for multi-worker jobs (whose trials hold no devices of their own)."""

from pathlib import Path

from ray.tune.search import Searcher

from tsweep.core.records import Progress
from tsweep.orchestrator.plan import expand
from tsweep.orchestrator.scheduler import DependencySearcher
from tsweep.sweeps import load_sweep, parse_sweep

TINY = Path(__file__).parent / "data" / "tiny.yaml"


def _graph(**changes):
    d = load_sweep(TINY).model_dump(mode="json")
    d.update(changes)
    return expand(parse_sweep(d))


def _drain(searcher, prefix="t"):
    out = []
    while True:
        s = searcher.suggest(f"{prefix}{len(out)}")
        if not isinstance(s, dict):
            return out, s
        out.append(s["job"])


def test_fine_tunes_wait_for_their_checkpoint_and_orphans_are_blocked_not_dropped():
    graph = _graph()
    searcher = DependencySearcher(graph.jobs)
    first, state = _drain(searcher)
    assert state is None  # fine-tunes still wait
    assert {j["kind"] for j in first} == {"pretrain", "scratch"}
    pre = next(i for i, j in enumerate(first) if j["kind"] == "pretrain")
    p = min(first[pre]["checkpoints"])
    job = first[pre]
    saved = Progress(job_id=job["job_id"], label="pretrain", kind="pretrain", step=1, tokens_seen=p, saved_p=p)
    searcher.on_trial_result(f"t{pre}", {**saved.to_metrics(), "training_iteration": 3})  # Tune adds keys
    released, _ = _drain(searcher, "u")
    assert released and all(j["kind"] == "finetune" and j["pretrain_tokens"] == p for j in released)
    searcher.on_trial_complete(f"t{pre}", None, error=True)  # ended before its final checkpoint
    rest, state = _drain(searcher, "v")
    assert rest == [] and state == Searcher.FINISHED
    n_ft = sum(j.kind == "finetune" for j in graph.jobs)
    assert len(searcher.blocked) == n_ft - len(released)
    assert all("ended without a checkpoint" in why for why in searcher.blocked.values())


def test_multi_worker_jobs_are_suggested_only_while_the_cluster_has_room():
    graph = _graph(resources={"cpus": 1, "workers": 2}, finetune_tokens=[4000], scratch_tokens=[4000, 16000, 64000])
    scratch = [j for j in graph.jobs if j.kind == "scratch"]
    assert len(scratch) == 3 and all(j.workers == 2 and j.cpus == 1 for j in scratch)
    searcher = DependencySearcher(scratch, capacity={"CPU": 4.0})
    running, state = _drain(searcher)
    # 2 jobs x 2 workers x 1 CPU fill 4 CPUs, in plan order; the third waits
    assert running == [j.to_dict() for j in scratch[:2]] and state is None
    assert searcher.multi_worker == {"t0": {"CPU": 2.0, "GPU": 0.0}, "t1": {"CPU": 2.0, "GPU": 0.0}}
    searcher.on_trial_complete("t0", {"done": True})
    more, state = _drain(searcher, "u")
    assert more == [scratch[2].to_dict()] and state == Searcher.FINISHED
    assert set(searcher.multi_worker) == {"t1", "u0"}
    # a job larger than the whole cluster (2 x 1 CPU on 1 CPU) still runs when nothing else
    # multi-worker does, so that it waits for the autoscaler rather than forever; and only once
    alone = DependencySearcher(scratch[:1], capacity={"CPU": 1.0})
    assert alone.suggest("w0") == {"job": scratch[0].to_dict()}
    assert alone.multi_worker == {"w0": {"CPU": 2.0, "GPU": 0.0}} and alone.by_trial == {"w0": scratch[0]}
    assert alone.suggest("w1") == Searcher.FINISHED and alone.blocked == {}
