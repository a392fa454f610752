"""Keep BLAS single-threaded while fitting (``threadpoolctl``).

Every linear-algebra call in a fit is tiny (5x5 systems, L-BFGS-B's two-loop recursion over a
handful of parameters). OpenBLAS nevertheless hands some of them to its thread pool, and on a
busy machine (a sweep's trainers on the same cores) waking those threads dominates: the same
transfer report took 3 s or 16-40 s from run to run on a loaded 2-core box, and 3 s every time
with one BLAS thread.

:class:`single_threaded_blas` limits every loaded BLAS to one thread for the duration of a
``with`` block (or a decorated call); only the outermost of nested or concurrent blocks sets
and restores the limit, so the fitter's inner functions cost nothing extra.
"""

from __future__ import annotations

import threading
from contextlib import ContextDecorator
from functools import lru_cache

from threadpoolctl import ThreadpoolController

_LOCK = threading.RLock()
# BLAS threads inside a fit (see above). A module constant so that a test can run the same fits
# under another thread count: their convergence verdicts must not depend on it.
BLAS_THREADS = 1


@lru_cache(maxsize=1)
def _controller() -> ThreadpoolController:
    return ThreadpoolController()  # inspects the loaded libraries once


class single_threaded_blas(ContextDecorator):  # noqa: N801 - used like a function
    _depth = 0
    _limiter = None

    def _recreate_cm(self) -> single_threaded_blas:
        return type(self)()

    def __enter__(self) -> single_threaded_blas:
        cls = type(self)
        with _LOCK:
            if cls._depth == 0:
                cls._limiter = _controller().limit(limits=BLAS_THREADS, user_api="blas")
            cls._depth += 1
        return self

    def __exit__(self, *exc: object) -> None:
        cls = type(self)
        with _LOCK:
            cls._depth -= 1
            if cls._depth == 0 and cls._limiter is not None:
                cls._limiter.restore_original_limits()
                cls._limiter = None
