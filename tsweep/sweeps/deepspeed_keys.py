"""Which keys a sweep's own DeepSpeed config (``deepspeed.config``) may hold, and which of them
enter job ids: four tables, read off DeepSpeed's documentation and source, nothing else.

- :data:`DEEPSPEED_KEYS`: every top-level key DeepSpeed reads; any other is a typo it would
  silently ignore, so the schema refuses it.
- :data:`DEEPSPEED_OWNED`: keys tsweep sets itself from the sweep (batch, optimizer, schedule,
  clipping, precision), each naming the sweep field to use instead.
- :data:`DEEPSPEED_UNSUPPORTED`: features that change what a step computes through code of their
  own, which tsweep's training loop does not drive.
- :data:`DEEPSPEED_RESULT_NEUTRAL`: keys that change logging, profiling, I/O or memory, never a
  result, and so are left out of job ids.

Rules: constants only, no behaviour; the checks that read them live on
``tsweep.sweeps.models.DeepSpeedSettings``. Imports nothing of tsweep.
"""

# Top-level keys of a DeepSpeed config (https://www.deepspeed.ai/docs/config-json/ and DeepSpeed
# 0.19's deepspeed/runtime/config.py, which reads them); any other key is a typo DeepSpeed would
# silently ignore, so a user's DeepSpeed JSON holding one is refused.
DEEPSPEED_KEYS = frozenset(
    {
        "train_batch_size",
        "train_micro_batch_size_per_gpu",
        "gradient_accumulation_steps",
        "optimizer",
        "scheduler",
        "communication_data_type",
        "seq_parallel_communication_data_type",
        "prescale_gradients",
        "gradient_predivide_factor",
        "gradient_allreduce_op",
        "sparse_gradients",
        "fp16",
        "bf16",
        "amp",
        "torch_autocast",
        "gradient_clipping",
        "zero_optimization",
        "aio",
        "autotuning",
        "flops_profiler",
        "activation_checkpointing",
        "sparse_attention",
        "data_efficiency",
        "curriculum_learning",
        "tensorboard",
        "wandb",
        "csv_monitor",
        "comet",
        "elasticity",
        "comms_logger",
        "compression_training",
        "checkpoint",
        "data_types",
        "steps_per_print",
        "wall_clock_breakdown",
        "dump_state",
        "memory_breakdown",
        "disable_allgather",
        "zero_allow_untested_optimizer",
        "zero_force_ds_cpu_optimizer",
        "dataloader_drop_last",
        "use_data_before_expert_parallelism",
        "use_node_local_storage",
        "hybrid_engine",
        "pipeline",
        "weight_quantization",
        "compile",
        "nebula",
        "eigenvalue",
        "progressive_layer_drop",
        "quantize_training",
        "timers",
        "graph_harvesting",
        "log_level",
        "disable_python_gc",
        "tensor_parallel",
    }
)
# Keys tsweep sets itself from the sweep (its batch, optimizer, schedule, clipping and precision):
# a user's DeepSpeed JSON may not hold them; each names the sweep field to use instead.
DEEPSPEED_OWNED = {
    "train_batch_size": "train.batch_size",
    "train_micro_batch_size_per_gpu": "train.batch_size",
    "gradient_accumulation_steps": "train.batch_size",
    "optimizer": "train.lr, train.weight_decay (tsweep hands DeepSpeed torch's AdamW)",
    "scheduler": "train.warmup_steps, train.cooldown (tsweep's warmup-stable-decay schedule)",
    "gradient_clipping": "train.grad_clip",
    "fp16": "deepspeed.precision (fp32 or bf16)",
    "bf16": "deepspeed.precision (fp32 or bf16)",
    "amp": "deepspeed.precision (fp32 or bf16)",
    "torch_autocast": "deepspeed.precision (fp32 or bf16)",
    "zero_allow_untested_optimizer": "nothing: tsweep's torch AdamW needs it on",
}
# DeepSpeed features that change what a step computes or which data it sees through code of their
# own (pipeline stages, elastic batches, curricula, layer dropping, compression): tsweep's loop
# does not drive them, so a config that turns them on is refused rather than half-honoured.
DEEPSPEED_UNSUPPORTED = frozenset(
    {
        "pipeline",
        "elasticity",
        "curriculum_learning",
        "data_efficiency",
        "progressive_layer_drop",
        "compression_training",
        "sparse_attention",
        "hybrid_engine",
        "autotuning",
        "eigenvalue",
        "quantize_training",
        "weight_quantization",
    }
)
# Keys that change logging, profiling, I/O or memory, never a result: left out of job ids.
DEEPSPEED_RESULT_NEUTRAL = frozenset(
    {
        "steps_per_print",
        "wall_clock_breakdown",
        "dump_state",
        "memory_breakdown",
        "flops_profiler",
        "comms_logger",
        "tensorboard",
        "wandb",
        "csv_monitor",
        "comet",
        "timers",
        "log_level",
        "disable_python_gc",
        "aio",
        "use_node_local_storage",
        "checkpoint",
        "nebula",
    }
)
