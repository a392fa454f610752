"""Checks on infra/: the cluster definitions, the image and the DeepSpeed configs.

Nothing here launches anything. The launcher YAMLs are validated against the JSON schema shipped
inside the installed ray (the schema `ray up` checks them against); the KubeRay manifests are
checked structurally (ray.io/v1 kinds, GPUs on workers, the store volume, an entrypoint whose
sweep exists and validates); the image's pins are checked against pyproject's dependency ranges,
which are the source of truth; each DeepSpeed config is handed to DeepSpeed's own config parser.
"""

from __future__ import annotations

import copy
import json
import re
import shlex
import sys
from pathlib import Path

import pytest
import yaml

from tsweep.api import shipped_sweep_path
from tsweep.sweeps import load_sweep

REPO = Path(__file__).resolve().parents[1]
INFRA = REPO / "infra"
LAUNCHERS = {"aws": INFRA / "aws.yaml", "gcp": INFRA / "gcp.yaml"}
STORAGE_SCHEME = {"aws": "s3://", "gcp": "gs://"}
KUBERAY = INFRA / "kuberay"
DOCKERFILE = INFRA / "Dockerfile"
REQUIREMENTS = INFRA / "requirements-gpu.txt"
DEEPSPEED = REPO / "tsweep" / "workers" / "deepspeed"  # package data: found from a wheel install too
README = INFRA / "README.md"
STORE_CLAIM = "tsweep-store"

# Keys of infra/deepspeed/*.json that the worker replaces from the sweep before it builds the
# engine; infra/README.md documents each of them.
DS_OVERRIDDEN_KEYS = (
    "train_micro_batch_size_per_gpu",
    "gradient_accumulation_steps",
    "gradient_clipping",
    "bf16",
    "zero_optimization",
    "optimizer",
    "zero_allow_untested_optimizer",
)


# --------------------------------------------------------------------------- helpers
def _load_toml(path: Path) -> dict:
    if sys.version_info >= (3, 11):
        import tomllib
    else:  # pragma: no cover - Python 3.10
        tomllib = pytest.importorskip("tomli")
    return tomllib.loads(path.read_text(encoding="utf-8"))


def _canon(name: str) -> str:
    from packaging.utils import canonicalize_name

    return canonicalize_name(name)


def _pyproject_requirements() -> dict:
    from packaging.requirements import Requirement

    deps = _load_toml(REPO / "pyproject.toml")["project"]["dependencies"]
    out = {}
    for line in deps:
        req = Requirement(line)
        out[_canon(req.name)] = req
    return out


def _pinned_requirements() -> dict:
    from packaging.requirements import Requirement

    out = {}
    for raw in REQUIREMENTS.read_text(encoding="utf-8").splitlines():
        line = raw.split("#", 1)[0].strip()
        if not line:
            continue
        req = Requirement(line)
        name = _canon(req.name)
        assert name not in out, f"{REQUIREMENTS.name}: {req.name} is pinned twice"
        out[name] = req
    return out


def _pin_version(req) -> str:
    specs = list(req.specifier)
    assert len(specs) == 1 and specs[0].operator == "==", f"{req}: expected an exact pin (==)"
    return specs[0].version


def _assert_in_range(name: str, version: str, where: str) -> None:
    reqs = _pyproject_requirements()
    req = reqs.get(_canon(name))
    if req is None:
        return  # not a tsweep dependency (e.g. a launcher helper); nothing to agree with
    assert req.specifier.contains(version, prereleases=True), (
        f"{where}: {name}=={version} is outside pyproject's range {req.name}{req.specifier}"
    )


_PIN_RE = re.compile(r"""(?<![\w.-])([A-Za-z][A-Za-z0-9_.-]*)(?:\[[^\]]*\])?==([0-9][^\s"'\\;&|]*)""")


def _literal_pins(text: str) -> list[tuple[str, str]]:
    return [(m.group(1), m.group(2)) for m in _PIN_RE.finditer(text)]


def _dockerfile() -> tuple[str, dict]:
    """The Dockerfile with its ARG defaults substituted, and those defaults."""
    text = DOCKERFILE.read_text(encoding="utf-8")
    args = {}
    for m in re.finditer(r"^ARG\s+(\w+)=(\S*)\s*$", text, flags=re.M):
        args[m.group(1)] = m.group(2).strip('"')
    resolved = re.sub(r"\$\{(\w+)\}", lambda m: args.get(m.group(1), m.group(0)), text)
    return resolved, args


def _ray_version_of_image(image: str) -> str | None:
    m = re.match(r"^(?:docker\.io/)?rayproject/ray(?:-ml)?:(\d+\.\d+\.\d+)", image)
    return m.group(1) if m else None


def _launcher(name: str) -> dict:
    return yaml.safe_load(LAUNCHERS[name].read_text(encoding="utf-8"))


def _kuberay_docs(filename: str) -> list[dict]:
    with open(KUBERAY / filename, encoding="utf-8") as f:
        return [d for d in yaml.safe_load_all(f) if d is not None]


def _ray_objects() -> list[tuple[str, dict]]:
    return [
        (f"{p.name}:{d['kind']}", d)
        for p in sorted(KUBERAY.glob("*.yaml"))
        for d in _kuberay_docs(p.name)
        if d.get("apiVersion", "").startswith("ray.io/")
    ]


def _cluster_spec(obj: dict) -> dict:
    if obj["kind"] == "RayCluster":
        return obj["spec"]
    if obj["kind"] == "RayJob":
        return obj["spec"]["rayClusterSpec"]
    raise AssertionError(f"unexpected kind {obj['kind']}")


def _containers(pod_template: dict) -> list[dict]:
    return pod_template["spec"]["containers"]


def _store_mounts(pod_template: dict) -> set[str]:
    """Mount paths (in the Ray container) of volumes backed by the store's PVC."""
    volumes = {
        v["name"]
        for v in pod_template["spec"].get("volumes", [])
        if v.get("persistentVolumeClaim", {}).get("claimName") == STORE_CLAIM
    }
    ray_container = _containers(pod_template)[0]
    return {m["mountPath"] for m in ray_container.get("volumeMounts", []) if m["name"] in volumes}


def _gpus(container: dict) -> int:
    res = container.get("resources", {})
    limits = res.get("limits", {})
    requests = res.get("requests", {})
    if "nvidia.com/gpu" in requests:
        assert str(requests["nvidia.com/gpu"]) == str(limits.get("nvidia.com/gpu")), (
            "Kubernetes requires GPU requests to equal limits"
        )
    return int(limits.get("nvidia.com/gpu", 0))


def _entrypoint_tsweep_argv(entrypoint: str) -> list[str]:
    """The argv of the `tsweep ...` command inside a shell entrypoint like `cd X && tsweep ...`."""
    for segment in re.split(r"&&|;|\|\|", entrypoint):
        argv = shlex.split(segment)
        if argv and argv[0] == "tsweep":
            return argv
    raise AssertionError(f"entrypoint runs no tsweep command: {entrypoint!r}")


# --------------------------------------------------------------------------- launcher YAMLs
def _validate_launcher(cfg: dict) -> None:
    """What `ray up` checks a config against first: the JSON schema shipped inside the installed
    ray (``ray/autoscaler/ray-schema.json``, package data), read as a file rather than through
    Ray's private autoscaler helpers."""
    jsonschema = pytest.importorskip("jsonschema")
    from importlib import resources

    schema = json.loads((resources.files("ray.autoscaler") / "ray-schema.json").read_text(encoding="utf-8"))
    jsonschema.validate(cfg, schema)


@pytest.mark.parametrize("name", sorted(LAUNCHERS))
def test_launcher_config_passes_ray_validation(name):
    cfg = _launcher(name)
    _validate_launcher(cfg)
    assert cfg["provider"]["type"] == name
    assert cfg["head_node_type"] in cfg["available_node_types"]


@pytest.mark.parametrize("name", sorted(LAUNCHERS))
def test_launcher_validation_is_not_vacuous(name):
    """The schema forbids unknown keys: a misspelt field must fail the same validation."""
    jsonschema = pytest.importorskip("jsonschema")
    bad = _launcher(name)
    bad["available_node_types"][bad["head_node_type"]]["min_worker"] = 0  # typo of min_workers
    with pytest.raises(jsonschema.ValidationError):
        _validate_launcher(bad)


@pytest.mark.parametrize("name", sorted(LAUNCHERS))
def test_launcher_layout(name):
    cfg = _launcher(name)
    types = cfg["available_node_types"]
    head = types[cfg["head_node_type"]]
    assert head["resources"].get("GPU") == 0, "the head must advertise no GPUs (driver + analysis actor only)"
    assert head["resources"].get("CPU", 0) >= 2, "the head runs the Tune driver and the analysis actor"

    workers = {k: v for k, v in types.items() if k != cfg["head_node_type"]}
    gpus = sorted(v["resources"].get("GPU", 0) for v in workers.values())
    assert any(g >= 8 for g in gpus), f"no multi-GPU worker type (GPUs per type: {gpus})"
    assert 1 in gpus, f"no single-GPU worker type (GPUs per type: {gpus})"
    for tname, t in workers.items():
        assert 0 <= t.get("min_workers", 0) <= t["max_workers"] <= cfg["max_workers"], f"{tname}: autoscaling bounds"
    assert cfg["max_workers"] >= 1 and cfg["idle_timeout_minutes"] > 0

    # Shared storage for the store and checkpoints, and the repository on every node.
    setup = "\n".join(cfg["setup_commands"])
    m = re.search(r"TSWEEP_STORAGE=(\S+)", setup)
    assert m and m.group(1).startswith(STORAGE_SCHEME[name]), f"TSWEEP_STORAGE must be a {STORAGE_SCHEME[name]} URI"
    assert cfg["file_mounts"].get("~/tsweep") == ".", "the repository is mounted at ~/tsweep"

    # Dashboard on the head's loopback only; token auth on every node.
    head_start = " ".join(cfg["head_start_ray_commands"])
    assert "--dashboard-host=127.0.0.1" in head_start and "0.0.0.0" not in head_start
    assert "--num-gpus=0" in head_start
    for cmds in (cfg["head_start_ray_commands"], cfg["worker_start_ray_commands"]):
        assert "RAY_AUTH_MODE=token" in " ".join(cmds)
    assert "~/.ray/auth_token" in cfg["file_mounts"], "the auth token must reach every node"


@pytest.mark.parametrize("name", sorted(LAUNCHERS))
def test_launcher_installs_torch_first_then_pins_then_tsweep(name):
    cfg = _launcher(name)
    setup = cfg["setup_commands"]
    pins = _pinned_requirements()

    torch_at = next(i for i, c in enumerate(setup) if re.search(r"\btorch==", c))
    reqs_at = next(i for i, c in enumerate(setup) if "requirements-gpu.txt" in c)
    pkg_at = next(i for i, c in enumerate(setup) if re.search(r"pip install .*~/tsweep\s*$", c))
    assert torch_at < reqs_at < pkg_at, "install order must be torch, pinned deps, then tsweep"
    assert "--no-deps" in setup[pkg_at], "tsweep itself is installed without re-resolving the pins"

    for pkg, version in _literal_pins("\n".join(setup)):
        _assert_in_range(pkg, version, f"{LAUNCHERS[name].name} setup_commands")
        if _canon(pkg) in pins:
            assert version == _pin_version(pins[_canon(pkg)]), f"{pkg}: launcher and requirements-gpu.txt disagree"

    image = cfg["docker"]["image"]
    assert _ray_version_of_image(image) == _pin_version(pins["ray"]), f"{image}: Ray version differs from the ray pin"


# --------------------------------------------------------------------------- KubeRay
def test_kuberay_manifests_use_ray_io_v1_kinds():
    for p in sorted(KUBERAY.glob("*.yaml")):
        for doc in _kuberay_docs(p.name):
            assert "apiVersion" in doc and "kind" in doc, f"{p.name}: not a Kubernetes object"
    kinds = {d["kind"] for _, d in _ray_objects()}
    assert {"RayCluster", "RayJob"} <= kinds
    for where, obj in _ray_objects():
        assert obj["apiVersion"] == "ray.io/v1", f"{where}: apiVersion {obj['apiVersion']}"
    assert {d["kind"] for d in _kuberay_docs("raycluster.yaml")} == {"RayCluster"}
    assert {d["kind"] for d in _kuberay_docs("rayjob.yaml")} == {"RayJob"}


@pytest.mark.parametrize("where,obj", _ray_objects(), ids=[w for w, _ in _ray_objects()])
def test_kuberay_cluster_shape(where, obj):
    spec = _cluster_spec(obj)
    pins = _pinned_requirements()
    assert spec["rayVersion"] == _pin_version(pins["ray"]), f"{where}: rayVersion differs from the ray pin"
    assert spec.get("authOptions", {}).get("mode") == "token", f"{where}: token auth must be on"
    assert spec.get("enableInTreeAutoscaling") is True

    head = spec["headGroupSpec"]
    assert str(head["rayStartParams"].get("num-gpus")) == "0", f"{where}: the head must advertise no GPUs"
    assert _gpus(_containers(head["template"])[0]) == 0, f"{where}: the head requests a GPU"
    assert _store_mounts(head["template"]), f"{where}: the head does not mount the {STORE_CLAIM} volume"

    groups = spec["workerGroupSpecs"]
    per_pod = []
    for g in groups:
        c = _containers(g["template"])[0]
        n = _gpus(c)
        assert n >= 1, f"{where}: worker group {g['groupName']} requests no nvidia.com/gpu"
        per_pod.append(n)
        replicas = g.get("replicas", g["minReplicas"])
        assert 0 <= g["minReplicas"] <= replicas <= g["maxReplicas"], f"{where}: {g['groupName']} replica bounds"
        assert _store_mounts(g["template"]) == _store_mounts(head["template"]), (
            f"{where}: {g['groupName']} must mount the store where the head does"
        )
        tolerated = {t.get("key") for t in g["template"]["spec"].get("tolerations", [])}
        assert "nvidia.com/gpu" in tolerated, f"{where}: {g['groupName']} does not tolerate GPU-node taints"
    assert max(per_pod) >= 8 and 1 in per_pod, f"{where}: want a multi-GPU and a single-GPU group, got {per_pod}"

    images = {c["image"] for t in [head["template"]] + [g["template"] for g in groups] for c in _containers(t)}
    assert len(images) == 1, f"{where}: head and workers must run the same image, got {images}"


def test_kuberay_store_claim_is_defined_and_shared():
    claims = [d for d in _kuberay_docs("pvc.yaml") if d["kind"] == "PersistentVolumeClaim"]
    assert [c["metadata"]["name"] for c in claims] == [STORE_CLAIM]
    assert "ReadWriteMany" in claims[0]["spec"]["accessModes"], "every pod writes to the store"


def test_rayjob_entrypoint_is_a_valid_sweep_submission():
    (job,) = _kuberay_docs("rayjob.yaml")
    argv = _entrypoint_tsweep_argv(job["spec"]["entrypoint"])
    assert argv[1] in {"submit", "run"}, f"entrypoint runs `tsweep {argv[1]}`"
    sweep_arg = argv[2]
    # A shipped sweep by name: the installed package carries it, wherever the image keeps the code.
    assert shipped_sweep_path(sweep_arg) is not None, f"entrypoint sweep {sweep_arg!r} is not a shipped sweep"

    storage = argv[argv.index("--storage") + 1]
    head_mounts = _store_mounts(job["spec"]["rayClusterSpec"]["headGroupSpec"]["template"])
    assert storage in head_mounts, f"--storage {storage} is not where the store volume is mounted ({head_mounts})"


def test_rayjob_entrypoint_sweep_validates():
    (job,) = _kuberay_docs("rayjob.yaml")
    sweep_arg = _entrypoint_tsweep_argv(job["spec"]["entrypoint"])[2]
    sweep = load_sweep(shipped_sweep_path(sweep_arg))
    assert sweep.resources.gpus >= 1, f"{sweep_arg} is the GPU sweep but asks for no GPUs"


# --------------------------------------------------------------------------- image and pins
def test_requirements_pin_every_pyproject_dependency_within_range():
    ranges = _pyproject_requirements()
    pins = _pinned_requirements()
    missing = sorted(set(ranges) - set(pins))
    assert not missing, f"{REQUIREMENTS.name} lacks pins for {missing}"
    for name, req in ranges.items():
        pin = pins[name]
        version = _pin_version(pin)
        assert req.specifier.contains(version, prereleases=True), (
            f"{REQUIREMENTS.name}: {pin} is outside pyproject's {req.name}{req.specifier}"
        )
        assert req.extras <= pin.extras, f"{REQUIREMENTS.name}: {pin} drops extras {sorted(req.extras - pin.extras)}"


def test_dockerfile_pins_match_pyproject():
    text, args = _dockerfile()
    pins = _pinned_requirements()

    base = re.search(r"^FROM\s+(\S+)", text, flags=re.M).group(1)
    assert base.startswith("nvidia/cuda:") or _ray_version_of_image(base), f"base image {base} is not a CUDA image"
    if _ray_version_of_image(base):
        assert re.search(r"-(gpu|cu\d+)", base), f"base image {base} is not a GPU build"
        ray_version = _ray_version_of_image(base)
        _assert_in_range("ray", ray_version, f"Dockerfile FROM {base}")
        assert ray_version == _pin_version(pins["ray"]), f"FROM {base}: Ray differs from the ray pin"

    torch_version = args.get("TORCH_VERSION")
    assert torch_version, "the Dockerfile pins torch through ARG TORCH_VERSION"
    assert torch_version == _pin_version(pins["torch"]), "Dockerfile torch differs from requirements-gpu.txt"

    for pkg, version in _literal_pins(text):
        _assert_in_range(pkg, version, "Dockerfile")

    runs = [line for line in text.splitlines() if "pip install" in line and not line.lstrip().startswith("#")]
    order = [
        next(i for i, line in enumerate(runs) if "torch==" in line),
        next(i for i, line in enumerate(runs) if "requirements-gpu.txt" in line),
        next(i for i, line in enumerate(runs) if re.search(r"pip install --no-deps \.(\s|$)", line)),
    ]
    assert order == sorted(order), "install order must be torch, pinned deps, then tsweep"


# --------------------------------------------------------------------------- DeepSpeed
def _ds_configs() -> dict[int, dict]:
    out = {}
    for p in sorted(DEEPSPEED.glob("*.json")):
        m = re.fullmatch(r"zero(\d)\.json", p.name)
        assert m, f"unexpected DeepSpeed config {p.name} (expected zeroN.json)"
        out[int(m.group(1))] = json.loads(p.read_text(encoding="utf-8"))
    return out


def _walk(value, path=""):
    if isinstance(value, dict):
        for k, v in value.items():
            yield from _walk(v, f"{path}.{k}" if path else k)
    elif isinstance(value, list):
        for i, v in enumerate(value):
            yield from _walk(v, f"{path}[{i}]")
    else:
        yield path, value


def test_one_deepspeed_config_per_zero_stage():
    configs = _ds_configs()
    assert sorted(configs) == [0, 1, 2, 3]
    for stage, cfg in configs.items():
        assert cfg["zero_optimization"]["stage"] == stage, (
            f"zero{stage}.json declares stage {cfg['zero_optimization']['stage']}"
        )
        assert cfg.get("bf16", {}).get("enabled") is True, f"zero{stage}.json: bf16 is the GPU default"
        assert not cfg.get("fp16", {}).get("enabled", False), f"zero{stage}.json: fp16 is unsupported (CPU accelerator)"
        autos = [p for p, v in _walk(cfg) if v == "auto"]
        assert not autos, f"zero{stage}.json: 'auto' needs HF Trainer to fill it, found at {autos}"
        for key in DS_OVERRIDDEN_KEYS:
            assert key in cfg, f"zero{stage}.json: {key} missing (tsweep overrides it, so it must exist as a default)"


def test_readme_documents_overridden_deepspeed_keys():
    text = README.read_text(encoding="utf-8")
    for key in DS_OVERRIDDEN_KEYS:
        assert f"`{key}" in text, f"infra/README.md does not document that tsweep overrides {key}"


def test_worker_sets_only_keys_the_configs_have():
    """The worker's per-job DeepSpeed keys must exist in every zeroN.json and be documented."""
    from tsweep.workers.engine import deepspeed_config

    demo = shipped_sweep_path("demo")
    worker_cfg = deepspeed_config(load_sweep(demo), 4, 1)
    overridden = {p.split(".")[0] for p, _ in _walk(worker_cfg)}
    for stage, cfg in _ds_configs().items():
        assert overridden <= set(cfg), f"zero{stage}.json lacks keys the worker sets: {sorted(overridden - set(cfg))}"
    undocumented = overridden - set(DS_OVERRIDDEN_KEYS) - {"steps_per_print", "wall_clock_breakdown"}
    assert not undocumented, f"the worker sets {sorted(undocumented)}; document them in infra/README.md"


@pytest.mark.parametrize("stage", [0, 1, 2, 3])
def test_deepspeed_accepts_config(stage):
    """DeepSpeed's own parser takes each shipped config as it stands. Here, as in a driver at plan
    time, no torch.distributed process group exists: DeepSpeed then reads the config as one
    process (rank 0 of 1), so the global batch is micro-batch x accumulation. Any error is a
    failure, a "distributed" one included."""
    pytest.importorskip("deepspeed")
    import torch.distributed as dist
    from deepspeed.runtime.config import DeepSpeedConfig

    assert not (dist.is_available() and dist.is_initialized()), "a process group leaked into this test process"
    cfg = _ds_configs()[stage]
    parsed = DeepSpeedConfig(copy.deepcopy(cfg))
    assert (parsed.world_size, parsed.global_rank) == (1, 0)
    assert parsed.zero_optimization_stage == stage
    assert parsed.train_micro_batch_size_per_gpu == cfg["train_micro_batch_size_per_gpu"]
    assert parsed.gradient_accumulation_steps == cfg["gradient_accumulation_steps"]
    assert parsed.train_batch_size == cfg["train_micro_batch_size_per_gpu"] * cfg["gradient_accumulation_steps"]
    assert parsed.gradient_clipping == cfg["gradient_clipping"]
    assert parsed.bfloat16_config.enabled is True
