"""Workers: one job's training and evaluation, with no cluster needed.

One job per module; each imports, of this package, only the modules in its brackets (lazy imports
included; ``tests/test_worker.py`` checks these lists against the code). Above: what runs a job;
below: what it is built from.

- ``trainable``: the thin Ray Tune adapter that runs a trial's job, and its claims on the sweep's
  core broker (the only Ray-aware module here). [imports: runner, threads]
- ``runner``: the loop of one job, the same for every kind: steps, evaluations, the rows-first
  checkpoint order, progress and the summary. [imports: startup, kinds, state, checkpoints, threads]
- ``threads``: a job's torch threads, its own CPUs plus the idle ones lent to it, applied between
  steps, and its core-seconds. [imports: ]
- ``kinds``: what differs between kinds of job, one strategy each: pre-training (cooldown
  branches, p-checkpoints, a fixed end), fine-tune and scratch (patience, cooldown, unconverged).
  [imports: startup, state, schedule, checkpoints]
- ``startup``: all of a job's I/O before its first step: attempt count, data, model and engine,
  ``deepspeed.json``, state restored from the store and resume checkpoints (or both cleared).
  [imports: training, state, engine, batches, schedule, checkpoints, pretrained]
- ``training``: the compute on the engine: an optimizer step, an evaluation, a branch snapshot.
  [imports: engine, batches, checkpoints]
- ``state``: what a job carries between steps (resumable loop state, outcome) and the divergence
  rules read off its losses. [imports: ]
- ``schedule``: the warmup-stable-decay learning rate with movable cooldowns. [imports: ]
- ``batches``: deterministic batches over a fixed token budget (batch ``s`` a function of ``s``).
  [imports: ]
- ``engine``: the model of a rung and its DeepSpeed engine, the process group. [imports: rungs, hf]
- ``checkpoints``: a job's checkpoints on a path or URI: p-checkpoint weights, resume states,
  manifests, the attempts counter. [imports: ]
- ``rungs``: rungs a sweep declares as transformers configs: checked, counted, built.
  [imports: pretrained, hf]
- ``pretrained``: existing hub models as sources: config, size, weights. [imports: hf]
- ``hf``: typed calls into transformers where its annotations leave them untyped. [imports: ]

``deepspeed/``: the shipped DeepSpeed config per ZeRO stage (package data, read by ``engine``).
"""
