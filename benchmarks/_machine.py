"""The machine a benchmark ran on, printed beside its figure: CPU model, cores, load, and a
reference speed (the bare PyTorch training loop's tokens/s on one rung of the size ladder).

Why: the per-core speed of two 2-core machines of the same kind was seen to differ 2x (the demo's
mini pre-trained at 25k tokens/s on one and 13k on the other), so an absolute figure (seconds,
rows/s) only means something next to the machine that gave it. A ratio measured side by side in
one run carries its own reference; the reference speed lets two runs on different machines be
compared at all.

The reference loop is the one ``benchmarks/worker_throughput.py`` races the worker against
(:func:`bare_loop`): transformers' GPT-2 built by ``tsweep.workers.engine.build_model`` at the
rung ``REF_SIZE``, the demo's batch (16 x 64 tokens), torch AdamW, gradient clipping at 1.0,
one torch thread (a sweep's CPU job gets one core), on random tokens so that no data cache is
needed. Tokens/s over the timed steps, after ``REF_WARMUP`` untimed ones.

Every benchmark calls :func:`reference` once, before its own work, and :func:`report` just before
its last line (``NAME VALUE``), which stays the last line.
"""

from __future__ import annotations

import os
import platform
import time
from collections.abc import Iterable
from dataclasses import dataclass

# The demo's largest rung and its batch (tsweep/sweeps/demo.yaml: model_sizes, train.seq_len,
# train.batch_size): the figure a reader of the demo's timings can relate to.
REF_SIZE = "mini"
REF_BATCH, REF_SEQ = 16, 64
REF_VOCAB = 264  # tsweep's byte vocabulary (256 bytes + specials; tsweep.data), tsweep's choice
REF_WARMUP = 3  # untimed steps: the allocator and the first-call paths, tsweep's choice
REF_STEPS = 40  # about 2 s on one core of a 2-core AMD EPYC, tsweep's choice
REF_STEPS_TINY = 8  # the suite's tiny runs: a figure, not a precise one


@dataclass(frozen=True)
class Machine:
    cpu: str
    logical_cpus: int
    usable_cpus: int
    load_at_start: float
    ref_size: str
    ref_tokens_per_s: float


def cpu_model() -> str:
    """The CPU's model name (``/proc/cpuinfo``; elsewhere what ``platform`` knows)."""
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine() or "unknown CPU"


def usable_cpus() -> int:
    """CPUs this process may run on (its affinity mask), which a container can make fewer than
    the machine's."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return os.cpu_count() or 1


def bare_loop(model, batches: Iterable, opt, sched, clip: float) -> tuple[int, float, list[float]]:
    """Train ``model`` on ``batches`` of ``(x, y)``: forward, backward, clip, AdamW, schedule.
    (tokens, seconds, losses); the losses are read after the clock stops, so the loop never waits
    on them (on a GPU it syncs once, at the end)."""
    import torch

    model.train()
    losses, tokens = [], 0
    t0 = time.perf_counter()
    for x, y in batches:
        loss = model(input_ids=x, labels=y).loss
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), clip)
        opt.step()
        sched.step()
        opt.zero_grad(set_to_none=True)
        losses.append(loss.detach())
        tokens += x.numel()
    if torch.cuda.is_available() and losses and losses[-1].is_cuda:
        torch.cuda.synchronize()
    seconds = time.perf_counter() - t0
    return tokens, seconds, [float(v) for v in losses]


def reference_speed(steps: int = REF_STEPS) -> float:
    """Tokens/s of :func:`bare_loop` on ``REF_SIZE`` with the demo's batch, one thread, CPU,
    over ``steps`` timed steps."""
    import torch

    from tsweep.core.sizes import get_size
    from tsweep.workers.engine import build_model

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        model = build_model(get_size(REF_SIZE), REF_VOCAB, REF_SEQ, seed=0)
        opt = torch.optim.AdamW(model.parameters(), lr=1e-3, betas=(0.9, 0.95))
        sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: 1.0)
        g = torch.Generator().manual_seed(0)
        tokens_in = [torch.randint(0, REF_VOCAB, (REF_BATCH, REF_SEQ), generator=g) for _ in range(REF_WARMUP + steps)]
        batches = [(x, x) for x in tokens_in]
        bare_loop(model, batches[:REF_WARMUP], opt, sched, 1.0)
        tokens, seconds, _ = bare_loop(model, batches[REF_WARMUP:], opt, sched, 1.0)
    finally:
        torch.set_num_threads(threads)
    return tokens / seconds


def reference(*, tiny: bool = False) -> Machine:
    """The machine, with its reference speed measured now (call it before the benchmark's work)."""
    load = os.getloadavg()[0]
    tps = reference_speed(REF_STEPS_TINY if tiny else REF_STEPS)
    return Machine(cpu_model(), os.cpu_count() or 1, usable_cpus(), load, REF_SIZE, tps)


def lines(m: Machine) -> list[str]:
    return [
        f"machine: {m.cpu}, {m.logical_cpus} logical CPUs ({m.usable_cpus} usable), "
        f"load average {m.load_at_start:.1f} at start / {os.getloadavg()[0]:.1f} at end",
        f"reference speed: bare PyTorch loop, {m.ref_size} at batch {REF_BATCH} x {REF_SEQ}, 1 thread, CPU: "
        f"{m.ref_tokens_per_s:,.0f} tokens/s",
    ]


def report(m: Machine) -> None:
    """Print the machine's lines (just before the benchmark's last line)."""
    for line in lines(m):
        print(line)
