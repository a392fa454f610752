"""Data pipeline benchmark: tokenize-and-pack throughput, warm-cache cost, and the data wait.

Runs with no arguments on a 2-core CPU in about a minute or two:

1. Cold: the stdlib corpora (python / prose / c) read, tokenized (bytes) and packed into the
   Arrow cache in a fresh temporary cache directory; then the eval split and the training
   streams (dedupe + seeded order) and the prose+c mixture; tokens/s and MB/s of text.
   The synthetic generator's throughput on its own (a 2000-document corpus).
2. Warm: what every job and every ``tsweep plan`` pays once the node's cache holds the entries
   (``SweepData(...)`` + ``eval_tokens()`` + ``train_tokens(target, 1M)``; ``check()``), with
   the per-process memory-map memo cleared so each repeat opens the files like a new process.
3. Data wait, side by side in one loop: fetching a batch the way the worker does
   (``workers.batches.BatchStream`` over the cached tokens: (16, 64) int64 tensors) against a
   forward + backward + AdamW step of a GPT2LMHeadModel (n_layer=2, n_embd=64, n_head=4,
   vocab 264, 64-token context). The job's one-off set-up (open the cache, cut the budget into
   sequences) is charged to the steps of one epoch over the budget. Medians; one torch thread,
   as each CPU job of a sweep gets one core.

The last line is ``data_wait_fraction VALUE`` = (median fetch + set-up / steps) / median step;
the goal is <= 0.05.

Run: ``python benchmarks/data_pipeline.py [--tiny]`` (``--tiny``, the suite's size: the same cold
build, 2 warm repeats, a 200-document synthetic corpus and 20 timed steps).
"""

from __future__ import annotations

import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))

import _machine

from tsweep.data import SweepData, cache
from tsweep.data.synthetic import generate
from tsweep.sweeps import parse_sweep

SEQ, BATCH, BUDGET = 64, 16, 1_000_000
SYNTH_DOCS, WARM_REPEATS, STEPS = 2000, 7, 200
TINY = {"docs": 200, "repeats": 2, "steps": 20}  # the suite's size, tsweep's choice
SWEEP = parse_sweep(
    dict(
        name="bench",
        target="python",
        sources=["scratch", "prose", "prose+c"],
        corpora={"prose+c": {"kind": "mixture", "weights": {"prose": 0.5, "c": 0.5}}},
        model_sizes=["nano"],
        finetune_tokens=[16_000, BUDGET],
        pretrain={"tokens": 1_000_000},
        eval={"tokens": 32_000},
        train={"seq_len": SEQ, "batch_size": BATCH},
    )
)


def _forget_open_entries() -> None:
    cache._opened.clear()


def _timed(fn):
    t = time.perf_counter()
    out = fn()
    return out, time.perf_counter() - t


def cold(root: str, synth_docs: int = SYNTH_DOCS) -> list[tuple[str, int, float, float]]:
    """(stage, tokens, seconds, text MB) for each cold build stage."""
    sd = SweepData(SWEEP, cache_dir=root)
    rows = []
    for name in ("python", "prose", "c"):
        entry, dt = _timed(lambda name=name: sd._corpus_entry(name))
        text_mb = (entry.meta["tokens"] - entry.meta["documents"]) / 1e6  # UTF-8 bytes: one token each
        rows.append((f"tokenize+pack {name}", entry.meta["tokens"], dt, text_mb))
    ev, dt = _timed(sd.eval_tokens)
    rows.append(("eval split (python)", len(ev.tokens), dt, 2 * len(ev.tokens) / 1e6))
    for name in ("python", "prose", "prose+c"):
        n, dt = _timed(lambda name=name: sd.available_tokens(name))
        rows.append((f"training stream {name}", n, dt, 2 * n / 1e6))  # uint16 tokens written
    docs, dt = _timed(lambda: list(generate(0, 0.3, synth_docs)))
    n = sum(len(d) for d in docs)
    rows.append((f"synthetic generation ({synth_docs} docs)", n, dt, n / 1e6))  # ASCII text
    return rows


def warm(root: str, repeats: int = WARM_REPEATS) -> list[tuple[str, float]]:
    job, plan = [], []
    for _ in range(repeats):
        _forget_open_entries()
        t = time.perf_counter()
        sd = SweepData(SWEEP, cache_dir=root)
        sd.eval_tokens(), sd.train_tokens("python", BUDGET)
        job.append(time.perf_counter() - t)
        _forget_open_entries()
        t = time.perf_counter()
        SweepData(SWEEP, cache_dir=root).check()
        plan.append(time.perf_counter() - t)
    return [
        ("job: SweepData + eval_tokens + train_tokens(1M)", statistics.median(job)),
        ("plan: SweepData.check() (4 corpora)", statistics.median(plan)),
    ]


def data_wait(root: str, steps: int = STEPS, warmup: int = 10) -> dict:
    from transformers import GPT2Config, GPT2LMHeadModel
    from transformers.utils import logging as hf_logging

    hf_logging.set_verbosity_error()

    from tsweep.workers.batches import BatchStream

    torch.manual_seed(0)
    _forget_open_entries()
    t = time.perf_counter()
    sd = SweepData(SWEEP, cache_dir=root)
    tokens = sd.train_tokens("python", BUDGET).tokens
    stream = BatchStream(tokens, seq_len=SEQ, batch_size=BATCH, seed=0)
    setup = time.perf_counter() - t
    cfg = GPT2Config(
        vocab_size=sd.vocab_size,
        n_positions=SEQ,
        n_embd=64,
        n_layer=2,
        n_head=4,
        bos_token_id=sd.separator_id,
        eos_token_id=sd.separator_id,
    )
    model = GPT2LMHeadModel(cfg)
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3)
    fetch, step = [], []
    for s in range(steps + warmup):
        t0 = time.perf_counter()
        x, y = stream.batch(s)
        t1 = time.perf_counter()
        loss = model(input_ids=x, labels=y).loss
        loss.backward()
        opt.step()
        opt.zero_grad(set_to_none=True)
        t2 = time.perf_counter()
        if s >= warmup:
            fetch.append(t1 - t0)
            step.append(t2 - t1)
    steps_per_epoch = -(-BUDGET // (SEQ * BATCH))
    f, st = statistics.median(fetch), statistics.median(step)
    return {
        "fetch": f,
        "step": st,
        "setup": setup,
        "steps_per_epoch": steps_per_epoch,
        "fraction": (f + setup / steps_per_epoch) / st,
    }


def main(tiny: bool = False) -> dict:
    """Cold, warm and the data wait; ``tiny`` is the suite's size (``TINY``)."""
    machine = _machine.reference(tiny=tiny)
    docs, repeats, steps = (TINY["docs"], TINY["repeats"], TINY["steps"]) if tiny else (SYNTH_DOCS, WARM_REPEATS, STEPS)
    # One torch thread: a sweep's CPU jobs ask for one core each (resources.cpus: 1) and run
    # side by side; two threads per job on two shared cores mostly measure OpenMP contention.
    torch.set_num_threads(1)
    root = tempfile.mkdtemp(prefix="tsweep-bench-data-")
    try:
        rows = cold(root, docs)
        warm_rows = warm(root, repeats)
        dw = data_wait(root, steps)
    finally:
        shutil.rmtree(root, ignore_errors=True)
    print(
        f"data pipeline benchmark (byte tokens, {torch.get_num_threads()} torch threads, "
        f"Python {sys.version.split()[0]})"
    )
    print()
    print("cold (fresh cache); MB/s: text read for tokenize+pack and generation, tokens written for splits")
    print(f"{'cold stage':<36} {'tokens':>11} {'seconds':>8} {'Mtok/s':>8} {'MB/s':>8}")
    for stage, n, dt, mb in rows:
        print(f"{stage:<36} {n:>11,} {dt:>8.3f} {n / dt / 1e6:>8.2f} {mb / dt:>8.2f}")
    total_tok = sum(r[1] for r in rows[:3])
    total_dt = sum(r[2] for r in rows[:3])
    print(
        f"{'tokenize+pack, all stdlib corpora':<36} {total_tok:>11,} {total_dt:>8.3f} "
        f"{total_tok / total_dt / 1e6:>8.2f} "
        f"{sum(r[3] for r in rows[:3]) / total_dt:>8.2f}"
    )
    print()
    print(f"{f'warm cache (median of {repeats})':<52} {'ms':>8}")
    for label, dt in warm_rows:
        print(f"{label:<52} {dt * 1e3:>8.1f}")
    job_dt = warm_rows[0][1]
    print(f"{'  = effective warm throughput (tokens served / s)':<52} {(BUDGET + 32_000) / job_dt / 1e6:>7.0f}M")
    print()
    print(
        f"data wait vs training step (batch {BATCH} x seq {SEQ}, GPT-2 2 layers x 64, medians of {steps} "
        "interleaved steps)"
    )
    print(f"{'batch fetch (BatchStream.batch)':<52} {dw['fetch'] * 1e3:>8.3f} ms")
    print(f"{'job set-up (open cache, cut 1M tokens into sequences)':<52} {dw['setup'] * 1e3:>8.1f} ms")
    print(
        f"{'  per step over one epoch of ' + str(dw['steps_per_epoch']) + ' steps':<52} "
        f"{dw['setup'] / dw['steps_per_epoch'] * 1e3:>8.3f} ms"
    )
    print(f"{'forward + backward + AdamW step':<52} {dw['step'] * 1e3:>8.3f} ms")
    print(f"{'data wait / step':<52} {dw['fraction'] * 100:>7.2f} %")
    _machine.report(machine)
    print(f"data_wait_fraction {dw['fraction']:.4f}")
    return {"cold": rows, "warm": warm_rows, "wait": dw}


if __name__ == "__main__":
    main(tiny="--tiny" in sys.argv[1:])
