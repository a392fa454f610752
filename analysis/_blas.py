"""Keep OpenBLAS single-threaded while fitting.

Every linear-algebra call in a fit is tiny (5x5 systems, L-BFGS-B's two-loop recursion over a
handful of parameters). OpenBLAS nevertheless hands some of them to its thread pool, and on a
busy machine (a sweep's trainers on the same cores) waking those threads dominates: the same
transfer report took 3 s or 16-40 s from run to run on a loaded 2-core box, and 3 s every time
with one BLAS thread. numpy and scipy each bundle their own OpenBLAS, so both are set.

:class:`single_threaded_blas` sets every loaded OpenBLAS to one thread for the duration of a
``with`` block (or a decorated call) and restores the previous counts. It is what threadpoolctl
does, cut down to OpenBLAS on Linux (found via /proc/self/maps); elsewhere it does nothing.
"""

from __future__ import annotations

import ctypes
import threading
from contextlib import ContextDecorator
from functools import lru_cache

_SYMBOLS = (
    ("scipy_openblas_get_num_threads64_", "scipy_openblas_set_num_threads64_"),
    ("scipy_openblas_get_num_threads", "scipy_openblas_set_num_threads"),
    ("openblas_get_num_threads64_", "openblas_set_num_threads64_"),
    ("openblas_get_num_threads", "openblas_set_num_threads"),
)
_LOCK = threading.RLock()


@lru_cache(maxsize=1)
def _controls() -> tuple[tuple[object, object], ...]:
    try:
        with open("/proc/self/maps") as f:
            paths = sorted({line.split()[-1] for line in f if "openblas" in line.split()[-1].lower()})
    except OSError:
        return ()
    out = []
    for path in paths:
        try:
            lib = ctypes.CDLL(path)
        except OSError:
            continue
        for get_name, set_name in _SYMBOLS:
            get, set_ = getattr(lib, get_name, None), getattr(lib, set_name, None)
            if get is not None and set_ is not None:
                get.restype = ctypes.c_int
                set_.argtypes = [ctypes.c_int]
                out.append((get, set_))
                break
    return tuple(out)


class single_threaded_blas(ContextDecorator):  # noqa: N801 - used like a function
    """One OpenBLAS thread inside the block; the previous counts restored when the last
    (outermost, or last concurrent) block ends."""

    _depth = 0
    _saved: list[tuple[object, int]] = []

    def _recreate_cm(self) -> "single_threaded_blas":
        return type(self)()

    def __enter__(self) -> "single_threaded_blas":
        cls = type(self)
        with _LOCK:
            if cls._depth == 0:
                cls._saved = []
                for get, set_ in _controls():
                    n = get()
                    cls._saved.append((set_, n))
                    if n != 1:
                        set_(1)
            cls._depth += 1
        return self

    def __exit__(self, *exc: object) -> None:
        cls = type(self)
        with _LOCK:
            cls._depth -= 1
            if cls._depth == 0:
                for set_, n in cls._saved:
                    if n != 1:
                        set_(n)
