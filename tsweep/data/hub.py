"""Hugging Face hub access that never hangs.

:func:`hub_repo_reason` says why a hub repository (a dataset, or a tokenizer's model repo)
cannot be used, before anything else touches the network: an offline flag in the environment
(``HF_HUB_OFFLINE``, ``HF_DATASETS_OFFLINE``, ``TRANSFORMERS_OFFLINE``) answers at once;
otherwise the repository's info is requested (``huggingface_hub``, ``HF_ENDPOINT`` honoured)
in a daemon thread joined after ``PROBE_TIMEOUT_S``, since DNS resolution has no timeout of
its own and a proxy may swallow connections. Asking for the repository itself, rather than
opening a socket, also catches a misspelt name and proxies that answer every request. Answers
are remembered for the life of the process.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable
from typing import Any, TypeVar

PROBE_TIMEOUT_S = 3.0
OFFLINE_FLAGS = ("HF_HUB_OFFLINE", "HF_DATASETS_OFFLINE", "TRANSFORMERS_OFFLINE")
_probed: dict[tuple[str, str, str, str | None], str | None] = {}

_T = TypeVar("_T")


def offline_flag() -> str | None:
    """The first offline flag set in the environment, as ``NAME=value``."""
    for flag in OFFLINE_FLAGS:
        if os.environ.get(flag, "").strip().lower() in {"1", "true", "yes", "on"}:
            return f"{flag}={os.environ[flag]} is set"
    return None


def _with_deadline(fn: Callable[[], _T], timeout: float) -> tuple[bool, _T | None, BaseException | None]:
    """``(finished, result, exception)`` of ``fn()`` run in a daemon thread for at most ``timeout`` s."""
    box: dict[str, Any] = {}

    def target() -> None:
        try:
            box["result"] = fn()
        except BaseException as exc:
            box["error"] = exc

    t = threading.Thread(target=target, daemon=True, name="tsweep-hub-probe")
    t.start()
    t.join(timeout)
    return (not t.is_alive()), box.get("result"), box.get("error")


def hub_repo_reason(
    repo_id: str, repo_type: str = "dataset", revision: str | None = None, timeout: float = PROBE_TIMEOUT_S
) -> str | None:
    """``None`` when the hub serves ``repo_id``; otherwise a short reason (for a DataError)."""
    flag = offline_flag()
    if flag:
        return flag
    endpoint = os.environ.get("HF_ENDPOINT") or "https://huggingface.co"
    key = (endpoint, repo_id, repo_type, revision)
    if key not in _probed:
        from huggingface_hub import HfApi

        api = HfApi(endpoint=endpoint)
        info = api.dataset_info if repo_type == "dataset" else api.model_info
        start = time.monotonic()
        done, _, error = _with_deadline(lambda: info(repo_id, revision=revision, timeout=timeout), timeout + 0.5)
        if not done:
            _probed[key] = f"the hub ({endpoint}) did not answer within {time.monotonic() - start:.1f} s"
        elif error is not None:
            text = str(error).strip().splitlines()[0][:200] if str(error).strip() else ""
            _probed[key] = f"the hub ({endpoint}) did not serve {repo_type} {repo_id!r}: {type(error).__name__}: {text}"
        else:
            _probed[key] = None
    return _probed[key]
