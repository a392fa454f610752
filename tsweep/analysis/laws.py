"""The scaling-law registry: one small class per law, looked up by name.

Every law is fitted the same way (Hoffmann et al. 2022, arXiv 2203.15556, approach 3): its
prediction of the *log* of the response, written where possible as a log-sum-exp of terms that
are linear in the optimiser-space parameters, is compared with the log of the measured response
under a Huber loss. So a law carries:

- ``inputs`` / ``response``: the variable names of a data table (``N``, ``D``, ``loss``, ...);
- ``params``: the reported parameters, and ``opt_names``: the same point in optimiser space
  (``log A`` instead of ``A``: positive scale factors become unbounded, which is what makes the
  log-sum-exp form and L-BFGS behave); ``to_params`` / ``from_params`` map between the two;
- ``bounds`` (optimiser space) and ``grid()``, the starting points of a cold fit;
- ``log_predict(theta, logx, jac=True)``: the log-prediction and (unless ``jac=False``, as when
  screening starts) its Jacobian, vectorised over a *stack* of parameter vectors ``theta`` of
  shape (S, P), so the fitter can screen thousands of starts or bootstrap resamples in one pass;
- ``kinds``: each reported parameter is a positive *scale* (fitted as its log: A, B, E, G, k, ...)
  or an *exponent*; the identification rule (``analysis/identify.py``) judges intervals by kind;
- ``index_inputs``: inputs that are integer codes rather than quantities (the source of a row in
  the joint gap law), passed through unlogged;
- ``candidate_starts``: a law whose grid would be too large to screen as a product (the joint gap
  law, one block of parameters per source) proposes its own screened starts;
- ``predict(params, **x)``: the formula in natural units, for reports, plots and advice;
- ``spans``: for each parameter, the input it needs to vary and over how many distinct values;
  the fitter warns when the data cannot identify it (e.g. a size exponent from one model size).

Adding a law is adding one class with ``@register``. ``barnett_joint(k)`` (not registered: it
depends on the number of sources) is the gap law of ``k`` sources fitted together, with shared
beta and E (Barnett 2024's form, so G is comparable across sources; see ``analysis/gap.py``).
"""

from __future__ import annotations

import functools
import itertools
import math
from abc import ABC, abstractmethod
from collections.abc import Mapping

import numpy as np

Array = np.ndarray

LAWS: dict[str, "Law"] = {}


def register(cls: type["Law"]) -> type["Law"]:
    LAWS[cls.name] = cls()
    return cls


def get_law(name: str) -> "Law":
    """The law registered under ``name`` (or ``barnett_joint:K``); a KeyError naming the known laws otherwise."""
    head, _, k = name.partition(":")
    if head == BarnettJoint.family and k.isdigit() and int(k) > 0:
        return barnett_joint(int(k))
    try:
        return LAWS[name]
    except KeyError:
        raise KeyError(f"unknown law {name!r}; known laws: {', '.join(sorted(LAWS))}") from None


def huber(r: Array, delta: float) -> tuple[Array, Array]:
    """Huber's loss of residuals ``r`` and its derivative (a clip), elementwise."""
    a = np.abs(r)
    val = np.where(a <= delta, 0.5 * r * r, delta * (a - 0.5 * delta))
    return val, np.clip(r, -delta, delta)


def _softmax_terms(terms: list[Array]) -> tuple[Array, list[Array]]:
    """log(sum(exp(terms))) and the softmax weight of each term (its share of the sum)."""
    m = terms[0]
    for t in terms[1:]:
        m = np.maximum(m, t)
    exps = [np.exp(t - m) for t in terms]
    total = exps[0]
    for e in exps[1:]:
        total = total + e
    lse = m + np.log(total)
    return lse, [e / total for e in exps]


class Law(ABC):
    """A scaling law: see the module docstring for what each attribute means."""

    name: str
    inputs: tuple[str, ...]
    response: str
    params: tuple[str, ...]
    opt_names: tuple[str, ...]
    bounds: tuple[tuple[float, float], ...]
    # param -> (input it needs varied, minimum number of distinct values of that input)
    spans: Mapping[str, tuple[str, int]]
    # opt-space indices stored as logs of the reported parameter (the rest are reported as is)
    log_indices: tuple[int, ...]
    formula: str
    index_inputs: tuple[str, ...] = ()

    @property
    def kinds(self) -> dict[str, str]:
        """Each reported parameter: "scale" (positive, fitted as its log) or "exponent"."""
        return {p: ("scale" if i in self.log_indices else "exponent") for i, p in enumerate(self.params)}

    @property
    def variables(self) -> tuple[str, ...]:
        return (*self.inputs, self.response)

    @property
    def n_params(self) -> int:
        return len(self.params)

    @abstractmethod
    def grid(self) -> Array:
        """Cold-start points, shape (S, P), in optimiser space."""

    @abstractmethod
    def log_predict(self, theta: Array, logx: Mapping[str, Array], jac: bool = True) -> tuple[Array, Array | None]:
        """log-prediction (S, n) and its Jacobian (S, n, P) (None if not ``jac``) for a stack ``theta`` (S, P)."""

    def candidate_starts(
        self, logx: Mapping[str, Array], logy: Array, w: Array, delta: float, n: int
    ) -> Array | None:
        """The ``n`` best starts by the law's own screen; None: the fitter screens ``grid()``."""
        return None

    def log_inputs(self, x: Mapping[str, Array]) -> dict[str, Array]:
        """The law's inputs as the optimiser sees them: logs, except index inputs (integer codes)."""
        return {v: (np.asarray(x[v], dtype=float) if v in self.index_inputs else np.log(np.asarray(x[v], dtype=float)))
                for v in self.inputs}

    # -------------------------------------------------------- parameter spaces
    def to_params(self, theta: Array) -> Array:
        """Optimiser space -> reported parameters, for one (P,) point or a stack (S, P)."""
        out = np.array(theta, dtype=float, copy=True)
        idx = list(self.log_indices)
        out[..., idx] = np.exp(out[..., idx])
        return out

    def from_params(self, params: Mapping[str, float]) -> Array:
        """Reported parameters (by name) -> optimiser space; clipped into the bounds."""
        missing = [p for p in self.params if p not in params]
        if missing:
            raise KeyError(f"{self.name}: missing parameters {missing}")
        theta = np.array([float(params[p]) for p in self.params])
        for i in self.log_indices:
            theta[i] = math.log(max(theta[i], 1e-300))
        lo, hi = np.array(self.bounds).T
        return np.clip(theta, lo, hi)

    def as_dict(self, theta: Array) -> dict[str, float]:
        return dict(zip(self.params, (float(v) for v in self.to_params(theta))))

    def predict(self, params: Mapping[str, float], **x: Array) -> Array:
        """The law in natural units at the inputs ``x`` (each broadcastable)."""
        theta = self.from_params(params)[None, :]
        n = np.broadcast(*[np.asarray(x[v], dtype=float) for v in self.inputs]).shape
        logx = {v: np.broadcast_to(c, n).ravel() for v, c in self.log_inputs(x).items()}
        pred, _ = self.log_predict(theta, logx, jac=False)
        return np.exp(pred[0]).reshape(n)


def _product(*axes: list[float]) -> Array:
    return np.array(list(itertools.product(*axes)), dtype=float)


@register
class Chinchilla(Law):
    """L(N, D) = E + A / N^alpha + B / D^beta (Hoffmann et al. 2022, arXiv 2203.15556, eq. 2).

    Optimiser space (a, b, e, alpha, beta) with A = e^a, B = e^b, E = e^e, so
    log L = LSE(a - alpha log N, b - beta log D, e): approach 3's exact form.
    """

    name = "chinchilla"
    inputs = ("N", "D")
    response = "loss"
    params = ("A", "B", "E", "alpha", "beta")
    opt_names = ("a", "b", "e", "alpha", "beta")
    log_indices = (0, 1, 2)
    formula = "L = E + A/N^alpha + B/D^beta"
    # Wide enough for both Chinchilla's scale (A ~ 480, B ~ 2100; Besiroglu et al. 2024,
    # arXiv 2404.10102, Table 1) and tiny CPU models; exponents above 5 are not physical.
    bounds = ((-30.0, 80.0), (-30.0, 80.0), (-15.0, 5.0), (0.0, 5.0), (0.0, 5.0))
    # A term with an offset (E) needs three distinct values to pin both its scale and exponent.
    spans = {"A": ("N", 3), "alpha": ("N", 3), "B": ("D", 3), "beta": ("D", 3), "E": ("D", 2)}

    def grid(self) -> Array:
        # Hoffmann et al. 2022 (Appendix D.2), as replicated by Besiroglu et al. 2024:
        # alpha, beta in 0..2 step 0.5; e in -1..1 step 0.5; a, b in 0..25 step 5.
        ab = [0.0, 5.0, 10.0, 15.0, 20.0, 25.0]
        exps = [0.0, 0.5, 1.0, 1.5, 2.0]
        es = [-1.0, -0.5, 0.0, 0.5, 1.0]
        return _product(ab, ab, es, exps, exps)

    def log_predict(self, theta: Array, logx: Mapping[str, Array], jac: bool = True) -> tuple[Array, Array | None]:
        a, b, e, al, be = (theta[:, i : i + 1] for i in range(5))
        ln, ld = logx["N"][None, :], logx["D"][None, :]
        t1, t2 = a - al * ln, b - be * ld
        t3 = np.broadcast_to(e, t1.shape)
        lse, (w1, w2, w3) = _softmax_terms([t1, t2, t3])
        if not jac:
            return lse, None
        jac = np.stack([w1, w2, w3, -w1 * ln, -w2 * ld], axis=-1)
        return lse, jac


@register
class Kaplan(Law):
    """L(N, D) = [(N_c/N)^(alpha_N/alpha_D) + D_c/D]^alpha_D (Kaplan et al. 2020, arXiv 2001.08361, eq. 1.5).

    Optimiser space (n_c, d_c, alpha_N, alpha_D) with N_c = e^n_c, D_c = e^d_c, so
    log L = alpha_D * LSE((alpha_N/alpha_D)(n_c - log N), d_c - log D).
    """

    name = "kaplan"
    inputs = ("N", "D")
    response = "loss"
    params = ("N_c", "D_c", "alpha_N", "alpha_D")
    opt_names = ("n_c", "d_c", "alpha_N", "alpha_D")
    log_indices = (0, 1)
    formula = "L = [(N_c/N)^(alpha_N/alpha_D) + D_c/D]^alpha_D"
    # Kaplan et al. 2020 Table 2: alpha_N = 0.076, alpha_D = 0.103, N_c = 6.4e13, D_c = 1.8e13;
    # exponents are kept positive (a loss falling with N and D) and below 3.
    bounds = ((-20.0, 120.0), (-20.0, 120.0), (1e-3, 3.0), (1e-3, 3.0))
    spans = {"N_c": ("N", 2), "alpha_N": ("N", 3), "D_c": ("D", 2), "alpha_D": ("D", 3)}

    def grid(self) -> Array:
        # Centred on Kaplan et al. 2020's Table 2 values, spanning ~6 decades either side.
        logs = [math.log(10.0**k) for k in (6, 9, 12, 15, 18)]
        exps = [0.05, 0.1, 0.2, 0.4, 0.8]
        return _product(logs, logs, exps, exps)

    def log_predict(self, theta: Array, logx: Mapping[str, Array], jac: bool = True) -> tuple[Array, Array | None]:
        nc, dc, an, ad = (theta[:, i : i + 1] for i in range(4))
        ln, ld = logx["N"][None, :], logx["D"][None, :]
        r = an / ad
        u1, u2 = r * (nc - ln), dc - ld
        s, (w1, w2) = _softmax_terms([u1, u2])
        pred = ad * s
        if not jac:
            return pred, None
        jac = np.stack([an * w1, ad * w2, w1 * (nc - ln), s - w1 * u1], axis=-1)
        return pred, jac


@register
class Hernandez(Law):
    """D_T = k * D_F^alpha * N^beta (Hernandez et al. 2021, arXiv 2102.01293, eq. 1.2).

    Linear in log space: log D_T = log k + alpha log D_F + beta log N. It still goes through the
    same robust fitter (Huber on log residuals), so one outlying run cannot drag the law.
    """

    name = "hernandez"
    inputs = ("N", "D_F")
    response = "D_T"
    params = ("k", "alpha", "beta")
    opt_names = ("log_k", "alpha", "beta")
    log_indices = (0,)
    formula = "D_T = k * D_F^alpha * N^beta"
    # Published (Hernandez et al. 2021, Fig. 1): text->python k = 1.9e4, alpha = 0.18, beta = 0.38.
    bounds = ((-60.0, 80.0), (-3.0, 3.0), (-3.0, 3.0))
    spans = {"alpha": ("D_F", 2), "beta": ("N", 2)}

    def grid(self) -> Array:
        # A linear model has one optimum; a few starts around the published values suffice.
        return _product([0.0, 5.0, 10.0, 15.0], [0.0, 0.25, 0.5, 1.0], [0.0, 0.25, 0.5, 1.0])

    def log_predict(self, theta: Array, logx: Mapping[str, Array], jac: bool = True) -> tuple[Array, Array | None]:
        lk, al, be = (theta[:, i : i + 1] for i in range(3))
        lf, ln = logx["D_F"][None, :], logx["N"][None, :]
        pred = lk + al * lf + be * ln
        if not jac:
            return pred, None
        s, n = pred.shape
        jac = np.stack([np.ones((s, n)), np.broadcast_to(lf, (s, n)), np.broadcast_to(ln, (s, n))], axis=-1)
        return pred, jac


@register
class Barnett(Law):
    """L(p, f) = (A * p^-alpha + G) * f^-beta + E (Barnett 2024, arXiv 2408.16947, eq. 1).

    p: pre-training tokens, f: fine-tuning tokens; G >= 0 is the transfer gap. Optimiser space
    (a, alpha, g, beta, e) with A = e^a, G = e^g, E = e^e, so
    log L = LSE(a - alpha log p - beta log f, g - beta log f, e). G = e^g keeps G >= 0; the lower
    bound on g (G ~ 2e-9) stands for "no measurable gap", and the fitter flags a fit that sits there.
    """

    name = "barnett"
    inputs = ("p", "f")
    response = "loss"
    params = ("A", "alpha", "G", "beta", "E")
    opt_names = ("a", "alpha", "g", "beta", "e")
    log_indices = (0, 2, 4)
    formula = "L = (A * p^-alpha + G) * f^-beta + E"
    bounds = ((-30.0, 80.0), (0.0, 5.0), (-20.0, 30.0), (0.0, 5.0), (-15.0, 5.0))
    # Two p values fit A p^-alpha + G exactly for any G: the gap needs a third (as A and alpha do).
    spans = {"A": ("p", 3), "alpha": ("p", 3), "G": ("p", 3), "beta": ("f", 3), "E": ("f", 3)}

    def grid(self) -> Array:
        # The Chinchilla grid's ranges (Hoffmann et al. 2022) carried over to Barnett's terms.
        return _product(
            [0.0, 5.0, 10.0, 15.0, 20.0],
            [0.0, 0.5, 1.0, 1.5],
            [-5.0, -2.5, 0.0, 2.5, 5.0],
            [0.0, 0.5, 1.0],
            [-1.0, -0.5, 0.0, 0.5, 1.0],
        )

    def log_predict(self, theta: Array, logx: Mapping[str, Array], jac: bool = True) -> tuple[Array, Array | None]:
        a, al, g, be, e = (theta[:, i : i + 1] for i in range(5))
        lp, lf = logx["p"][None, :], logx["f"][None, :]
        t1 = a - al * lp - be * lf
        t2 = g - be * lf
        t3 = np.broadcast_to(e, t1.shape)
        lse, (w1, w2, w3) = _softmax_terms([t1, t2, t3])
        if not jac:
            return lse, None
        jac = np.stack([w1, -w1 * lp, w2, -(w1 + w2) * lf, w3], axis=-1)
        return lse, jac


@register
class Plateau(Law):
    """L(D) = L_inf + B / D^b: one model size's from-scratch loss against its data.

    Hernandez et al. 2021 (arXiv 2102.01293, sec. 2) read off each size's plateau L(N, inf) and
    D(N), the data at which L(N, D) comes within 1% of it; this is the curve they are read from
    (``analysis/scratch.py``). Optimiser space (l_inf, b_log, b) with L_inf = e^l_inf,
    B = e^b_log, so log L = LSE(l_inf, b_log - b log D).
    """

    name = "plateau"
    inputs = ("D",)
    response = "loss"
    params = ("L_inf", "B", "b")
    opt_names = ("l_inf", "b_log", "b")
    log_indices = (0, 1)
    formula = "L = L_inf + B/D^b"
    bounds = ((-10.0, 5.0), (-30.0, 80.0), (0.0, 5.0))
    # Three parameters with an offset: three distinct D fit exactly, so the fourth is the first
    # that says anything.
    spans = {"L_inf": ("D", 4), "B": ("D", 4), "b": ("D", 4)}

    def grid(self) -> Array:
        # Losses of 0.4-4.5 nats; data terms from e^0 to e^25 at D = 1; exponents as Chinchilla's
        # grid (Hoffmann et al. 2022, Appendix D.2) plus the flatter ones small models show.
        return _product(
            [-1.0, -0.5, 0.0, 0.5, 1.0, 1.5],
            [0.0, 2.5, 5.0, 7.5, 10.0, 15.0, 20.0, 25.0],
            [0.1, 0.25, 0.5, 1.0, 1.5, 2.0],
        )

    def log_predict(self, theta: Array, logx: Mapping[str, Array], jac: bool = True) -> tuple[Array, Array | None]:
        li, bl, b = (theta[:, i : i + 1] for i in range(3))
        ld = logx["D"][None, :]
        t2 = bl - b * ld
        lse, (w1, w2) = _softmax_terms([np.broadcast_to(li, t2.shape), t2])
        if not jac:
            return lse, None
        return lse, np.stack([w1, w2, -w2 * ld], axis=-1)


# The joint gap law's screen: shared (beta, e) values, and per-source (a, alpha, g) values, the
# Barnett grid's ranges (above) split into the shared and the per-source blocks.
_JOINT_SHARED = ([0.0, 0.25, 0.5, 0.75, 1.0], [-1.0, -0.5, 0.0, 0.5, 1.0])
_JOINT_PER_SOURCE = ([0.0, 5.0, 10.0, 15.0, 20.0], [0.0, 0.5, 1.0, 1.5], [-5.0, -2.5, 0.0, 2.5, 5.0])


class BarnettJoint(Law):
    """L(p, f, s) = (A_s p^-alpha_s + G_s) f^-beta + E: Barnett's law for ``k`` sources at once.

    One model size, ``k`` pre-training sources s = 0..k-1 (the ``source`` input, an integer code),
    fine-tuned on the same target: E (the target's irreducible loss at this size) and beta (how
    fine-tuning data is used) are properties of the target and the size, so they are shared;
    each source has its own A, alpha and G. Shared beta is what makes the G of two sources
    comparable: G is a coefficient of f^-beta, and with separate betas the G's are in different
    units. Optimiser space (beta, e, a_0, alpha_0, g_0, a_1, ...), E = e^e, A_s = e^a_s,
    G_s = e^g_s. Parameter names carry the source code: ``A_0``, ``alpha_0``, ``G_0``, ...
    """

    family = "barnett_joint"
    inputs = ("p", "f", "source")
    index_inputs = ("source",)
    response = "loss"
    formula = "L = (A_s * p^-alpha_s + G_s) * f^-beta + E"

    def __init__(self, k: int) -> None:
        self.k = k
        self.name = f"{self.family}:{k}"
        per = [(f"A_{s}", f"alpha_{s}", f"G_{s}") for s in range(k)]
        self.params = ("beta", "E", *itertools.chain.from_iterable(per))
        self.opt_names = ("beta", "e", *itertools.chain.from_iterable((f"a_{s}", f"alpha_{s}", f"g_{s}") for s in range(k)))
        self.log_indices = (1, *itertools.chain.from_iterable((2 + 3 * s, 4 + 3 * s) for s in range(k)))
        b = Barnett.bounds  # (a, alpha, g, beta, e)
        self.bounds = (b[3], b[4], *([b[0], b[1], b[2]] * k))
        self.spans = {
            "beta": ("f", 3), "E": ("f", 3),
            **{name: ("p", 3) for s in range(k) for name in (f"A_{s}", f"alpha_{s}", f"G_{s}")},
        }

    def grid(self) -> Array:
        # Every source starts from the same per-source point: a product grid over k blocks
        # would have 100^k points; ``candidate_starts`` screens the blocks separately instead.
        shared = _product(*_JOINT_SHARED)
        per = _product(*_JOINT_PER_SOURCE)
        return np.array([[*sh, *np.tile(ps, self.k)] for sh in shared for ps in per])

    def _blocks(self, theta: Array, src: Array) -> tuple[Array, Array, Array]:
        base = 2 + 3 * src
        return theta[:, base], theta[:, base + 1], theta[:, base + 2]

    def log_predict(self, theta: Array, logx: Mapping[str, Array], jac: bool = True) -> tuple[Array, Array | None]:
        src = logx["source"].astype(int)
        be, e = theta[:, 0:1], theta[:, 1:2]
        a, al, g = self._blocks(theta, src)
        lp, lf = logx["p"][None, :], logx["f"][None, :]
        t1 = a - al * lp - be * lf
        t2 = g - be * lf
        lse, (w1, w2, w3) = _softmax_terms([t1, t2, np.broadcast_to(e, t1.shape)])
        if not jac:
            return lse, None
        s, n = lse.shape
        out = np.zeros((s, n, self.n_params))
        rows = np.arange(n)
        base = 2 + 3 * src
        out[:, :, 0] = -(w1 + w2) * lf
        out[:, :, 1] = w3
        out[:, rows, base] = w1
        out[:, rows, base + 1] = -w1 * lp
        out[:, rows, base + 2] = w2
        return lse, out

    def candidate_starts(
        self, logx: Mapping[str, Array], logy: Array, w: Array, delta: float, n: int
    ) -> Array:
        """Separable screen: for each shared (beta, e), each source's best (a, alpha, g) from its
        block grid is chosen on its own rows (the objective is a sum over sources once the
        shared values are fixed); the ``n`` shared values with the lowest total are the starts."""
        shared, per = _product(*_JOINT_SHARED), _product(*_JOINT_PER_SOURCE)
        src = logx["source"].astype(int)
        lp, lf = logx["p"][None, None, :], logx["f"][None, None, :]
        be, e = shared[:, 0, None, None], shared[:, 1, None, None]
        a, al, g = (per[None, :, i, None] for i in range(3))
        pred, _ = _softmax_terms([a - al * lp - be * lf, g - be * lf, e])
        val, _ = huber(pred - logy[None, None, :], delta)  # (shared, per, rows)
        onehot = np.zeros((src.size, self.k))
        onehot[np.arange(src.size), src] = w
        by_source = val @ onehot  # (shared, per, k)
        best = np.argmin(by_source, axis=1)  # (shared, k)
        total = np.take_along_axis(by_source, best[:, None, :], axis=1)[:, 0, :].sum(axis=1)
        order = np.argsort(total, kind="stable")[: max(1, n)]
        return np.array([[*shared[i], *per[best[i]].ravel()] for i in order])


@functools.lru_cache(maxsize=None)
def barnett_joint(k: int) -> BarnettJoint:
    """The joint gap law of ``k`` sources (one instance per ``k``)."""
    return BarnettJoint(k)
