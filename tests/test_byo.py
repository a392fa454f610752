"""Bring your own model and settings: rungs a sweep declares (a GPT-2 shape or a transformers
config), their N, their place in job ids, a user DeepSpeed JSON merged over tsweep's, bad ones
refused by ``tsweep plan`` in one line, p-checkpoints that ``AutoModelForCausalLM`` loads, and
one tiny sweep of a Llama rung through the console script on a local Ray cluster."""

import copy
import json
import os
import subprocess
from pathlib import Path

import pytest
import yaml

from tsweep.cli import main
from tsweep.core.layout import SweepLayout
from tsweep.core.sizes import ModelSize
from tsweep.core.store import Store
from tsweep.orchestrator.plan import expand
from tsweep.sweeps import load_sweep, parse_sweep
from tsweep.workers.engine import build_model, deepspeed_config
from tsweep.workers.pretrained import _count_non_embedding
from tsweep.workers.rungs import _count_all, build_hf_model, canonical

DATA = Path(__file__).parent / "data"
BYO = DATA / "byo.yaml"


def _base(**extra) -> dict:
    """A small sweep with two declared GPT-2 shapes (planned without a child process)."""
    return {
        "name": "byo-unit",
        "target": "python",
        "sources": ["scratch", "prose"],
        "models": {"w1": {"n_layer": 1, "d_model": 48, "n_head": 4}, "w2": {"n_layer": 2, "d_model": 32, "n_head": 2}},
        "model_sizes": ["pico", "w1", "w2"],
        "finetune_tokens": ["2k"],
        "pretrain": {"tokens": "8k"},
        "train": {"seq_len": 32, "batch_size": 8},
        **extra,
    }


# ------------------------------------------------------------------ N, counted the same way everywhere
def _hand_llama(d, i, layers, heads, kv):
    hd = d // heads
    return layers * (2 * d * d + 2 * d * kv * hd + 3 * d * i + 2 * d) + d  # q, o; k, v; gate, up, down; 2 RMSNorms


def test_N_of_llama_qwen2_and_gpt_neox_rungs_is_a_hand_count():
    llama = {
        "hidden_size": 32,
        "intermediate_size": 64,
        "num_hidden_layers": 2,
        "num_attention_heads": 4,
        "num_key_value_heads": 2,
        "max_position_embeddings": 64,
    }
    reply = _count_all(
        {
            "vocab_size": 264,
            "seq_len": 32,
            "rungs": {
                "llama": {
                    "model_type": "llama",
                    "config": {**llama, "rope_theta": 500000.0},
                },  # a config.json's legacy key
                "llama-tied": {"model_type": "llama", "config": {**llama, "tie_word_embeddings": True}},
                "qwen2": {
                    "model_type": "qwen2",
                    "config": {
                        "hidden_size": 32,
                        "intermediate_size": 48,
                        "num_hidden_layers": 1,
                        "num_attention_heads": 4,
                        "num_key_value_heads": 2,
                    },
                },
                "neox": {
                    "model_type": "gpt_neox",
                    "config": {
                        "hidden_size": 32,
                        "intermediate_size": 128,
                        "num_hidden_layers": 1,
                        "num_attention_heads": 4,
                        "rotary_pct": 0.25,
                        "rotary_emb_base": 10000,
                    },
                },
            },
        }
    )
    assert "sizes" in reply, reply
    n = {k: v["exact_params"] for k, v in reply["sizes"].items()}
    assert n["llama"] == _hand_llama(32, 64, 2, 4, 2) == 18_592
    assert n["llama-tied"] == n["llama"]  # a tied head is the token embedding: excluded either way
    # Qwen2: biases on q, k and v
    assert n["qwen2"] == (32 * 32 + 32) + 2 * (32 * 16 + 16) + 32 * 32 + 3 * 32 * 48 + 2 * 32 + 32 == 7_840
    # GPT-NeoX: fused qkv and dense with biases, a 4x MLP with biases, two LayerNorms with biases, final LayerNorm
    assert n["neox"] == (32 * 96 + 96) + (32 * 32 + 32) + (32 * 128 + 128) + (128 * 32 + 32) + 4 * 32 + 2 * 32 == 12_768
    assert reply["sizes"]["llama"] | {"exact_params": 0} == {
        "n_layer": 2,
        "d_model": 32,
        "n_head": 4,
        "exact_params": 0,
    }


def test_a_gpt2_shape_is_counted_like_any_architecture_and_the_built_llama_has_its_counted_N():
    size = ModelSize(name="w1", n_layer=1, d_model=48, n_head=4)
    gpt2 = build_model(size, vocab_size=264, seq_len=32, seed=0)
    assert _count_non_embedding(gpt2.config) == size.n_params == 12 * 48 * 48 + 13 * 48 + 2 * 48
    cfg = {"hidden_size": 32, "intermediate_size": 64, "num_hidden_layers": 2, "num_attention_heads": 4}
    shape = _count_all({"vocab_size": 264, "seq_len": 32, "rungs": {"l": {"model_type": "llama", "config": cfg}}})
    llama = ModelSize(name="l", model_type="llama", config=canonical(cfg), **shape["sizes"]["l"])
    model = build_hf_model(llama, vocab_size=264, seq_len=32, seed=0)
    emb = model.get_input_embeddings().weight.numel() + model.get_output_embeddings().weight.numel()
    assert sum(p.numel() for p in model.parameters()) - emb == llama.n_params == _hand_llama(32, 64, 2, 4, 4)
    assert model.get_input_embeddings().weight.shape[0] == 264  # the tokenizer's vocabulary


# ------------------------------------------------------------------ job ids
def _ids(sweep) -> dict[str, str]:
    return {j.label: j.job_id for j in expand(sweep, SweepLayout("/tmp/unused")).jobs}


def test_a_declared_rung_enters_its_jobs_ids_and_only_theirs():
    before = _ids(parse_sweep(_base()))
    d = _base()
    d["models"]["w1"] = {"n_layer": 1, "d_model": 64, "n_head": 4}
    after = _ids(parse_sweep(d))
    assert before.keys() == after.keys()
    for label in before:
        assert (before[label] != after[label]) == ("/w1" in label), label


def test_deepspeed_keys_enter_ids_only_where_they_change_results():
    plain = _ids(parse_sweep(_base()))
    quiet = _ids(parse_sweep(_base(deepspeed={"config": {"steps_per_print": 5, "wall_clock_breakdown": True}})))
    comm = _ids(parse_sweep(_base(deepspeed={"config": {"communication_data_type": "fp32"}})))
    assert quiet == plain
    assert all(comm[k] != plain[k] for k in plain)


def test_the_user_deepspeed_config_is_merged_over_the_shipped_one_for_its_stage():
    sweep = parse_sweep(
        _base(
            deepspeed={
                "zero_stage": 2,
                "config": {"zero_optimization": {"reduce_bucket_size": 1234567}, "communication_data_type": "fp32"},
            }
        )
    )
    cfg = deepspeed_config(sweep, micro_batch=4, world_size=2)
    zero = cfg["zero_optimization"]
    assert zero["reduce_bucket_size"] == 1234567  # the user's
    assert zero["allgather_bucket_size"] == 500_000_000 and zero["stage"] == 2  # shipped zero2.json; the sweep's stage
    assert cfg["communication_data_type"] == "fp32"
    assert cfg["train_micro_batch_size_per_gpu"] == 4 and cfg["gradient_accumulation_steps"] == 1  # tsweep's
    assert "optimizer" not in cfg and "scheduler" not in cfg


def test_config_files_are_read_against_the_sweep_file_and_inlined():
    sweep = load_sweep(BYO)
    rung = sweep.models["llama-pico"]
    assert rung.model_type == "llama" and rung.config_file is None
    assert rung.config["num_key_value_heads"] == 2 and "architectures" not in rung.config
    assert sweep.deepspeed.config["zero_optimization"] == {"reduce_bucket_size": 1234567}


# ------------------------------------------------------------------ bad input: exit 2, one line
LLAMA = {
    "model_type": "llama",
    "config": {"hidden_size": 32, "intermediate_size": 64, "num_hidden_layers": 1, "num_attention_heads": 2},
}


def _with(path: str, value):
    def edit(d):
        node = d
        parts = path.split(".")
        for p in parts[:-1]:
            node = node.setdefault(p, {})
        node[parts[-1]] = value

    return edit


BAD = [
    ("models.w1.n_head", 5, "models.w1.n_head: 5 does not divide d_model 48"),
    ("models.w1.model_type", "llama", "models.w1.model_type: a rung is a GPT-2 shape or a transformers config"),
    ("models.pico", {"n_layer": 1, "d_model": 32, "n_head": 2}, "models.pico: a built-in rung has this name"),
    ("models.w3", {"config": {"hidden_size": 32}}, "models.w3.model_type: required field is missing"),
    ("models.w3", {**LLAMA, "config": {**LLAMA["config"], "torch_dtype": "float16"}}, "models.w3.config.torch_dtype"),
    ("model_sizes", ["pico", "w9"], "model_sizes[1]: unknown size 'w9'; declare it under models"),
    (
        "deepspeed.config",
        {"train_batch_size": 64},
        "deepspeed.config.train_batch_size: tsweep sets this itself; use train.batch_size",
    ),
    ("deepspeed.config", {"optimizer": {"type": "Adam"}}, "deepspeed.config.optimizer: tsweep sets this itself"),
    (
        "deepspeed.config",
        {"fp16": {"enabled": True}},
        "deepspeed.config.fp16: tsweep sets this itself; use deepspeed.precision",
    ),
    (
        "deepspeed.config",
        {"zero_optimization": {"stage": 3}},
        "deepspeed.config.zero_optimization.stage: tsweep sets this itself; use deepspeed.zero_stage",
    ),
    ("deepspeed.config", {"zero_optimisation": {}}, "deepspeed.config.zero_optimisation: not a DeepSpeed config key"),
    ("deepspeed.config", {"pipeline": {"stages": 2}}, "deepspeed.config.pipeline: a DeepSpeed feature tsweep"),
    ("deepspeed.config_file", "missing.json", "deepspeed.config_file: "),
    ("deepspeed.config_file", "broken.json", "deepspeed.config_file: "),
    ("deepspeed.config_file", "list.json", "must hold a JSON object, got list"),
    ("models.w3.config_file", "broken.json", "models.w3.config_file: "),
    # checked in the child process that counts N (it starts torch: one case here, the rest below)
    (
        "models.w3",
        {**LLAMA, "config": {**LLAMA["config"], "num_attention_heads": 3}},
        "models.w3.config.num_attention_heads: 3 does not divide hidden_size 32",
    ),
]

CHILD_BAD = [
    ({**LLAMA, "model_type": "lama"}, "models.r.model_type: unknown transformers model_type 'lama'"),
    ({**LLAMA, "model_type": "t5"}, "models.r.model_type: 't5' has no causal-LM model in transformers"),
    (
        {**LLAMA, "config": {**LLAMA["config"], "vocab_size": 32000}},
        "models.r.config.vocab_size: 32000 but the tokenizer's vocabulary is 264",
    ),
    (
        {**LLAMA, "config": {**LLAMA["config"], "hidden_sise": 32}},
        "models.r.config.hidden_sise: not a setting of transformers' LlamaConfig",
    ),
    (
        {**LLAMA, "config": {**LLAMA["config"], "num_key_value_heads": 3}},
        "models.r.config.num_key_value_heads: 3 does not divide num_attention_heads 2",
    ),
    (
        {**LLAMA, "config": {**LLAMA["config"], "max_position_embeddings": 16}},
        "models.r.config.max_position_embeddings: 16 positions, fewer than train.seq_len = 32",
    ),
    (
        {**LLAMA, "config": {**LLAMA["config"], "intermediate_size": -4}},
        "models.r.config: transformers cannot build it",
    ),
]


def test_what_the_child_process_refuses_names_the_field():
    """The checks ``tsweep plan`` runs in its child process, here in this one (torch is loaded)."""
    for rung, expected in CHILD_BAD:
        reply = _count_all({"vocab_size": 264, "seq_len": 32, "rungs": {"r": rung}})
        assert "error" in reply, (rung, reply)
        assert f"{reply['error']['field']}: {reply['error']['message']}".startswith(expected), reply


@pytest.mark.parametrize("path,value,expected", BAD, ids=[f"{b[0]}={b[1]!r}"[:50] for b in BAD])
def test_bad_rungs_and_deepspeed_configs_exit_2_with_one_line(path, value, expected, tmp_path, capsys, storage):
    d = copy.deepcopy(_base())
    _with(path, value)(d)
    if path == "models.w3.config_file":
        d["model_sizes"].append("w3")
    (tmp_path / "broken.json").write_text('{"zero_optimization": {')
    (tmp_path / "list.json").write_text("[1, 2]")
    f = tmp_path / "bad.yaml"
    f.write_text(yaml.safe_dump(d))
    code = main(["plan", str(f)])
    err = capsys.readouterr().err.strip()
    assert code == 2, err
    assert "\n" not in err and "Traceback" not in err
    assert expected in err, err
    assert not storage.exists()  # nothing written


# ------------------------------------------------------------------ p-checkpoints load with transformers
def test_a_gpt2_rung_p_checkpoint_loads_with_auto_model(tmp_path):
    import torch
    from safetensors.torch import load_file
    from transformers import AutoModelForCausalLM

    from tsweep.workers.runner import run_job

    sweep = parse_sweep(
        {**_base(), "model_sizes": ["w2"], "pretrain": {"tokens": "2k"}, "eval": {"tokens": "1k", "interval_steps": 4}}
    )
    pre = expand(sweep, SweepLayout(str(tmp_path))).pretrain[0]
    assert run_job(pre, sweep, str(tmp_path))["status"] == "ok"
    folder = pre.p_checkpoint(pre.checkpoints[-1])
    model = AutoModelForCausalLM.from_pretrained(folder)
    assert type(model).__name__ == "GPT2LMHeadModel"
    assert _count_non_embedding(model.config) == pre.n_params
    saved = load_file(os.path.join(folder, "model.safetensors"))
    state = model.state_dict()
    assert all(torch.equal(state[k], v) for k, v in saved.items())


# ------------------------------------------------------------------ end to end
def _env(**extra) -> dict:
    return {**os.environ, "PYTHONUNBUFFERED": "1", "RAY_USAGE_STATS_ENABLED": "0", **extra}


@pytest.mark.cluster
def test_a_llama_rung_and_a_user_deepspeed_json_through_the_console_script(tmp_path):
    """tests/data/byo.yaml: a tiny Llama read from a config.json and a DeepSpeed JSON of the
    sweep's own, run by ``tsweep submit`` on a local Ray cluster."""
    import torch
    from transformers import AutoModelForCausalLM

    root = tmp_path / "runs"
    proc = subprocess.run(
        ["tsweep", "submit", str(BYO), "--storage", str(root)], capture_output=True, text=True, timeout=600, env=_env()
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    sweep = load_sweep(BYO)
    layout = sweep.layout(str(root))
    graph = expand(sweep, layout)
    summaries = Store(layout.store_root).read_summaries().to_pylist()
    assert sorted(r["job_id"] for r in summaries) == sorted(j.job_id for j in graph.jobs)
    assert all(r["status"] == "ok" for r in summaries), [(r["job_id"], r["status"], r["reason"]) for r in summaries]
    for job in graph.jobs:  # the merged DeepSpeed config each engine was given
        ds = json.loads(Path(job.deepspeed_file).read_text())
        assert ds["zero_optimization"] == {"reduce_bucket_size": 1234567, "stage": 0}  # the user's, the sweep's stage
        assert ds["communication_data_type"] == "fp32" and ds["steps_per_print"] == 1000  # the user's
        assert ds["train_micro_batch_size_per_gpu"] == 8 and ds["zero_allow_untested_optimizer"] is True  # tsweep's
    pre = graph.pretrain[0]
    model = AutoModelForCausalLM.from_pretrained(pre.p_checkpoint(pre.checkpoints[-1]))
    assert type(model).__name__ == "LlamaForCausalLM" and model.config.num_key_value_heads == 2
    assert _count_non_embedding(model.config) == pre.n_params == _hand_llama(32, 64, 1, 4, 2)
    with torch.no_grad():
        assert torch.isfinite(model(input_ids=torch.arange(16)[None]).logits).all()
    # the fine-tune started from those weights: its first evaluation beats random init's
    evals = Store(layout.store_root).read_evals().to_pylist()
    first = {r["job_id"]: r["eval_loss"] for r in evals if r["step"] == 0}
    ft = graph.children(pre.job_id)[0]
    scratch = next(j for j in graph.jobs if j.kind == "scratch" and j.data_tokens == ft.data_tokens)
    assert first[ft.job_id] < first[scratch.job_id]
