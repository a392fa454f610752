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
- ``log_predict(theta, logx)``: the log-prediction and its Jacobian, vectorised over a *stack*
  of parameter vectors ``theta`` of shape (S, P), so the fitter can screen thousands of starts
  or bootstrap resamples in one numpy pass;
- ``predict(params, **x)``: the formula in natural units, for reports, plots and advice;
- ``spans``: for each parameter, the input it needs to vary and over how many distinct values;
  the fitter warns when the data cannot identify it (e.g. a size exponent from one model size).

Adding a law is adding one class with ``@register``.
"""

from __future__ import annotations

import itertools
import math
from abc import ABC, abstractmethod
from collections.abc import Mapping
from types import MappingProxyType
from typing import ClassVar

import numpy as np
import numpy.typing as npt

Array = npt.NDArray[np.float64]  # parameters, inputs in log space, responses
Codes = npt.NDArray[np.int_]  # the category codes of a categorical input
LogX = Mapping[str, Array | Codes]  # a law's inputs by name: logs, or codes where categorical

LAWS: dict[str, Law] = {}

# What each variable of the registered laws means (``tsweep fit --help``, :func:`tsweep.api.law_help`);
# every law that uses a name uses it in this sense (U_D and U_N: the data-constrained law's).
VARIABLE_MEANINGS: Mapping[str, str] = MappingProxyType(
    {
        "N": "model size, non-embedding parameters",
        "D": "training tokens",
        "loss": "evaluation loss, nats per token",
        "p": "pre-training tokens",
        "f": "fine-tuning tokens",
        "D_F": "fine-tuning tokens",
        "D_T": "effective data transferred, tokens (Hernandez et al. 2021)",
        "U_D": "unique training tokens (Muennighoff et al. 2023)",
        "U_N": "the parameters U_D trains compute-optimally, at most N (Muennighoff et al. 2023)",
    }
)


def register(cls: type[Law]) -> type[Law]:
    LAWS[cls.name] = cls()
    return cls


def get_law(name: str) -> Law:
    """The law registered under ``name`` (``barnett_joint:S`` builds the joint gap law of S
    sources); a KeyError naming the known laws otherwise."""
    if name.startswith(f"{BarnettJoint.prefix}:"):
        return BarnettJoint.of(int(name.split(":", 1)[1]))
    try:
        return LAWS[name]
    except KeyError:
        raise KeyError(f"unknown law {name!r}; known laws: {', '.join(sorted(LAWS))}") from None


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
    # inputs that are category codes (passed to log_predict as integers, not logged)
    categorical: tuple[str, ...] = ()

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
    def log_predict(self, theta: Array, logx: LogX) -> tuple[Array, Array]:
        """log-prediction (S, n) and its Jacobian (S, n, P) for a stack ``theta`` of shape (S, P)."""

    # -------------------------------------------------------- parameter spaces
    def box(self) -> tuple[Array, Array]:
        """The optimiser-space bounds as (lower, upper) arrays."""
        b = np.array(self.bounds, dtype=np.float64)
        return b[:, 0], b[:, 1]

    def to_params(self, theta: Array) -> Array:
        """Optimiser space -> reported parameters, for one (P,) point or a stack (S, P)."""
        out: Array = np.array(theta, dtype=float, copy=True)
        idx = list(self.log_indices)
        out[..., idx] = np.exp(out[..., idx])
        return out

    def from_params(self, params: Mapping[str, float]) -> Array:
        """Reported parameters (by name) -> optimiser space; clipped into the bounds."""
        missing = [p for p in self.params if p not in params]
        if missing:
            raise KeyError(f"{self.name}: missing parameters {missing}")
        theta: Array = np.array([float(params[p]) for p in self.params])
        for i in self.log_indices:
            theta[i] = math.log(max(theta[i], 1e-300))
        lo, hi = self.box()
        return np.clip(theta, lo, hi)

    def as_dict(self, theta: Array) -> dict[str, float]:
        return dict(zip(self.params, (float(v) for v in self.to_params(theta)), strict=True))

    def predict(self, params: Mapping[str, float], **x: npt.ArrayLike) -> Array:
        """The law in natural units at the inputs ``x`` (each broadcastable)."""
        theta = self.from_params(params)[None, :]
        n = np.broadcast(*[np.asarray(x[v], dtype=float) for v in self.inputs]).shape

        def coded(v: str) -> Array:
            raw = np.asarray(x[v])
            return raw.astype(int) if v in self.categorical else np.log(raw.astype(float))

        logx = {v: np.broadcast_to(coded(v), n).ravel() for v in self.inputs}
        pred, _ = self.log_predict(theta, logx)
        out: Array = np.exp(pred[0]).reshape(n)
        return out


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
    spans = MappingProxyType({"A": ("N", 3), "alpha": ("N", 3), "B": ("D", 3), "beta": ("D", 3), "E": ("D", 2)})

    def grid(self) -> Array:
        # Hoffmann et al. 2022 (Appendix D.2), as replicated by Besiroglu et al. 2024:
        # alpha, beta in 0..2 step 0.5; e in -1..1 step 0.5; a, b in 0..25 step 5.
        ab = [0.0, 5.0, 10.0, 15.0, 20.0, 25.0]
        exps = [0.0, 0.5, 1.0, 1.5, 2.0]
        es = [-1.0, -0.5, 0.0, 0.5, 1.0]
        return _product(ab, ab, es, exps, exps)

    def log_predict(self, theta: Array, logx: LogX) -> tuple[Array, Array]:
        a, b, e, al, be = (theta[:, i : i + 1] for i in range(5))
        ln, ld = logx["N"][None, :], logx["D"][None, :]
        t1, t2 = a - al * ln, b - be * ld
        t3 = np.broadcast_to(e, t1.shape)
        lse, (w1, w2, w3) = _softmax_terms([t1, t2, t3])
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
    spans = MappingProxyType({"N_c": ("N", 2), "alpha_N": ("N", 3), "D_c": ("D", 2), "alpha_D": ("D", 3)})

    def grid(self) -> Array:
        # Centred on Kaplan et al. 2020's Table 2 values, spanning ~6 decades either side.
        logs = [math.log(10.0**k) for k in (6, 9, 12, 15, 18)]
        exps = [0.05, 0.1, 0.2, 0.4, 0.8]
        return _product(logs, logs, exps, exps)

    def log_predict(self, theta: Array, logx: LogX) -> tuple[Array, Array]:
        nc, dc, an, ad = (theta[:, i : i + 1] for i in range(4))
        ln, ld = logx["N"][None, :], logx["D"][None, :]
        r = an / ad
        u1, u2 = r * (nc - ln), dc - ld
        s, (w1, w2) = _softmax_terms([u1, u2])
        pred = ad * s
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
    # The N exponent read off two model sizes is never tested (any two points lie on a power
    # law), so it needs three; k, the law extrapolated to N = 1, stands on that exponent.
    spans = MappingProxyType({"alpha": ("D_F", 2), "beta": ("N", 3), "k": ("N", 3)})

    def grid(self) -> Array:
        # A linear model has one optimum; a few starts around the published values suffice.
        return _product([0.0, 5.0, 10.0, 15.0], [0.0, 0.25, 0.5, 1.0], [0.0, 0.25, 0.5, 1.0])

    def log_predict(self, theta: Array, logx: LogX) -> tuple[Array, Array]:
        lk, al, be = (theta[:, i : i + 1] for i in range(3))
        lf, ln = logx["D_F"][None, :], logx["N"][None, :]
        pred = lk + al * lf + be * ln
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
    spans = MappingProxyType({"A": ("p", 3), "alpha": ("p", 3), "G": ("p", 2), "beta": ("f", 3), "E": ("f", 3)})

    def grid(self) -> Array:
        # The Chinchilla grid's ranges (Hoffmann et al. 2022) carried over to Barnett's terms.
        return _product(
            [0.0, 5.0, 10.0, 15.0, 20.0],
            [0.0, 0.5, 1.0, 1.5],
            [-5.0, -2.5, 0.0, 2.5, 5.0],
            [0.0, 0.5, 1.0],
            [-1.0, -0.5, 0.0, 0.5, 1.0],
        )

    def log_predict(self, theta: Array, logx: LogX) -> tuple[Array, Array]:
        a, al, g, be, e = (theta[:, i : i + 1] for i in range(5))
        lp, lf = logx["p"][None, :], logx["f"][None, :]
        t1 = a - al * lp - be * lf
        t2 = g - be * lf
        t3 = np.broadcast_to(e, t1.shape)
        lse, (w1, w2, w3) = _softmax_terms([t1, t2, t3])
        jac = np.stack([w1, -w1 * lp, w2, -(w1 + w2) * lf, w3], axis=-1)
        return lse, jac


@register
class Plateau(Law):
    """L(D) = E + B / D^beta at one model size: the from-scratch curve whose offset E is the
    plateau L(N, infinity) of Hernandez et al. 2021 (sec. 2), who read D(N), the data at which
    L(N, D) comes within 1% of it, off such a curve.

    Optimiser space (b, e, beta) with B = e^b, E = e^e, so log L = LSE(b - beta log D, e).
    """

    name = "plateau"
    inputs = ("D",)
    response = "loss"
    params = ("B", "E", "beta")
    opt_names = ("b", "e", "beta")
    log_indices = (0, 1)
    formula = "L = E + B/D^beta"
    bounds = ((-30.0, 80.0), (-15.0, 5.0), (0.0, 5.0))
    spans = MappingProxyType({"B": ("D", 3), "E": ("D", 3), "beta": ("D", 3)})

    def grid(self) -> Array:
        return _product([0.0, 2.5, 5.0, 10.0, 15.0, 20.0], [-1.0, -0.5, 0.0, 0.5, 1.0], [0.1, 0.25, 0.5, 1.0, 1.5, 2.0])

    def log_predict(self, theta: Array, logx: LogX) -> tuple[Array, Array]:
        b, e, be = (theta[:, i : i + 1] for i in range(3))
        ld = logx["D"][None, :]
        t1 = b - be * ld
        lse, (w1, w2) = _softmax_terms([t1, np.broadcast_to(e, t1.shape)])
        return lse, np.stack([w1, w2, -w1 * ld], axis=-1)


class BarnettJoint(Law):
    """Barnett's gap law fitted jointly over S pre-training sources at one model size:
    L(p, f, s) = (A_s p^-alpha_s + G_s) f^-beta + E, with beta and E shared.

    Sharing the fine-tuning exponent and the irreducible loss is what makes the gaps G_s of
    different sources comparable (the same f^-beta scale, the same floor E); each source keeps
    its own pre-training term. Optimiser space (beta, e, a_0, alpha_0, g_0, a_1, ...) with
    E = e^e, A_s = e^a_s, G_s = e^g_s; ``source`` is a categorical input (codes 0..S-1).
    """

    prefix = "barnett_joint"
    inputs = ("p", "f", "source")
    categorical = ("source",)
    response = "loss"
    _instances: ClassVar[dict[int, BarnettJoint]] = {}

    def __init__(self, n_sources: int):
        if n_sources < 1:
            raise ValueError(f"{self.prefix}: needs at least one source, got {n_sources}")
        self.n_sources = n_sources
        self.name = f"{self.prefix}:{n_sources}"
        per = [(f"A_{s}", f"alpha_{s}", f"G_{s}") for s in range(n_sources)]
        self.params = ("beta", "E", *[p for trio in per for p in trio])
        self.opt_names = ("beta", "e", *[f"{k}_{s}" for s in range(n_sources) for k in ("a", "alpha", "g")])
        self.log_indices = (1, *[i for s in range(n_sources) for i in (2 + 3 * s, 4 + 3 * s)])
        one = Barnett.bounds  # (a, alpha, g, beta, e)
        self.bounds = (one[3], one[4], *[b for _ in range(n_sources) for b in (one[0], one[1], one[2])])
        self.spans = {
            "beta": ("f", 3),
            "E": ("f", 3),
            **{p: ("p", 3) for s in range(n_sources) for p in (f"A_{s}", f"alpha_{s}")},
            **{f"G_{s}": ("p", 2) for s in range(n_sources)},
        }
        self.formula = "L = (A_s p^-alpha_s + G_s) f^-beta + E  (beta, E shared across sources s)"

    @classmethod
    def of(cls, n_sources: int) -> BarnettJoint:
        if n_sources not in cls._instances:
            cls._instances[n_sources] = cls(n_sources)
        return cls._instances[n_sources]

    def source_params(self, params: Mapping[str, float], s: int) -> dict[str, float]:
        """One source's Barnett parameters (A, alpha, G, beta, E)."""
        return {
            "A": params[f"A_{s}"],
            "alpha": params[f"alpha_{s}"],
            "G": params[f"G_{s}"],
            "beta": params["beta"],
            "E": params["E"],
        }

    def grid(self) -> Array:
        # The single-source Barnett grid's values, the same for every source, times the shared ones.
        shared = _product([0.0, 0.5, 1.0], [-1.0, -0.5, 0.0, 0.5, 1.0])
        per = _product([0.0, 5.0, 10.0, 15.0, 20.0], [0.0, 0.5, 1.0, 1.5], [-5.0, -2.5, 0.0, 2.5, 5.0])
        rows = [np.concatenate([sh, np.tile(pp, self.n_sources)]) for sh in shared for pp in per]
        return np.array(rows)

    def log_predict(self, theta: Array, logx: LogX) -> tuple[Array, Array]:
        src = np.asarray(logx["source"], dtype=int)
        lp, lf = logx["p"][None, :], logx["f"][None, :]
        ia, ial, ig = 2 + 3 * src, 3 + 3 * src, 4 + 3 * src
        be, e = theta[:, 0:1], theta[:, 1:2]
        a, al, g = theta[:, ia], theta[:, ial], theta[:, ig]
        t1 = a - al * lp - be * lf
        t2 = g - be * lf
        t3 = np.broadcast_to(e, t1.shape)
        lse, (w1, w2, w3) = _softmax_terms([t1, t2, t3])
        jac = np.zeros((*lse.shape, self.n_params))
        jac[:, :, 0] = -(w1 + w2) * lf
        jac[:, :, 1] = w3
        rows = np.arange(src.size)
        jac[:, rows, ia] = w1
        jac[:, rows, ial] = -w1 * lp
        jac[:, rows, ig] = w2
        return lse, jac


def _repeat_gain(r: Array, log_star: Array) -> tuple[Array, Array]:
    """log(1 + R*(1 - e^(-R/R*))) and its derivative in log R*: the repeated data (or excess
    parameters) R counted at a value decaying with half-life ~R* (Muennighoff et al. 2023, eq. 5)."""
    star = np.exp(log_star)
    decay = np.exp(-r / star)
    g = 1.0 + star * (1.0 - decay)
    return np.log(g), star * (1.0 - decay - (r / star) * decay) / g


class DataConstrained(Law):
    """L = E + A / N'^alpha + B / D'^beta (Muennighoff et al. 2023, "Scaling Data-Constrained
    Language Models", arXiv 2305.16264, eq. 5), with

        D' = U_D + U_D R_D* (1 - e^(-R_D / R_D*)),  R_D = D / U_D - 1 (repeated epochs),
        N' = U_N + U_N R_N* (1 - e^(-R_N / R_N*)),  R_N = N / U_N - 1 (excess parameters),

    U_D the unique tokens and U_N = min(N, the compute-optimal N for U_D under the Chinchilla
    coefficients), which the caller computes (the authors' notebook does the same). Optimiser
    space (a, b, e, alpha, beta, r_D, r_N), A = e^a, B = e^b, E = e^e, R_D* = e^r_D, R_N* = e^r_N,
    so log L = LSE(a - alpha log N', b - beta log D', e).

    The authors fit it in two stages: A, B, E, alpha and beta on single-epoch runs, then R_D* and
    R_N* with those held (their notebook ``utils/parametric_fit.ipynb``); :meth:`holding` builds
    that second stage, a law of (R_D*, R_N*) alone.
    """

    name = "data_constrained"
    inputs = ("N", "D", "U_N", "U_D")
    response = "loss"
    formula = "L = E + A/(U_N + U_N R_N*(1 - e^(-R_N/R_N*)))^alpha + B/(U_D + U_D R_D*(1 - e^(-R_D/R_D*)))^beta"
    FULL = ("A", "B", "E", "alpha", "beta", "R_D_star", "R_N_star")

    def __init__(self, held: Mapping[str, float] | None = None):
        self.held = dict(held or {})
        free = [i for i, p in enumerate(self.FULL) if p not in self.held]
        self._free = free
        self.params = tuple(self.FULL[i] for i in free)
        opt = ("a", "b", "e", "alpha", "beta", "r_D", "r_N")
        self.opt_names = tuple(opt[i] for i in free)
        self.log_indices = tuple(j for j, i in enumerate(free) if i in (0, 1, 2, 5, 6))
        # Chinchilla's bounds for its five; R* from e^-5 to e^10 (tsweep's choice: the authors'
        # 15.4 and 5.3 sit mid-range).
        full_bounds = (*Chinchilla.bounds, (-5.0, 10.0), (-5.0, 10.0))
        self.bounds = tuple(full_bounds[i] for i in free)
        spans = {"A": ("N", 3), "alpha": ("N", 3), "B": ("D", 3), "beta": ("D", 3), "E": ("D", 2)}
        spans |= {"R_D_star": ("D", 3), "R_N_star": ("N", 3)}
        self.spans = {p: spans[p] for p in self.params}
        if self.held:
            self.name = f"{self.name}|holding {','.join(sorted(self.held))}"

    @classmethod
    def holding(cls, **held: float) -> DataConstrained:
        """The law with the named parameters (reported units) held at the given values."""
        unknown = set(held) - set(cls.FULL)
        if unknown:
            raise KeyError(f"data_constrained: unknown parameters {sorted(unknown)}")
        return cls(held)

    @staticmethod
    def unique_params(unique_tokens: npt.ArrayLike, n_params: npt.ArrayLike, c: Mapping[str, float]) -> Array:
        """U_N = min(N, N_opt(U_D)): the compute-optimal size for U_D tokens under Chinchilla
        coefficients ``c`` (A, B, alpha, beta; Hoffmann et al. 2022, eq. 4, as the authors'
        notebook writes it): N_opt = G (G U_D)^(beta/alpha), G = (alpha A / (beta B))^(1/(alpha+beta))."""
        g = (c["alpha"] * c["A"] / (c["beta"] * c["B"])) ** (1.0 / (c["alpha"] + c["beta"]))
        u = np.asarray(unique_tokens, dtype=float)
        out: Array = np.minimum(np.asarray(n_params, dtype=float), g * (g * u) ** (c["beta"] / c["alpha"]))
        return out

    def _full_theta(self, theta: Array) -> Array:
        """(S, 7) optimiser-space points: the free columns of ``theta``, the held ones filled in."""
        full = np.empty((theta.shape[0], len(self.FULL)))
        for j, i in enumerate(self._free):
            full[:, i] = theta[:, j]
        for p, v in self.held.items():
            i = self.FULL.index(p)
            full[:, i] = math.log(v) if i in (0, 1, 2, 5, 6) else v
        return full

    def grid(self) -> Array:
        # The authors' starts for R_D* and R_N* (np.linspace(0, 20, 4) without 0, where the law
        # is 0/0); Chinchilla's grid for the rest.
        stars = [math.log(20 / 3), math.log(40 / 3), math.log(20.0)]
        full = [list(col) for col in Chinchilla().grid().T]
        axes = [sorted(set(full[i])) for i in range(5)] + [stars, stars]
        return _product(*[axes[i] for i in self._free])

    def log_predict(self, theta: Array, logx: LogX) -> tuple[Array, Array]:
        th = self._full_theta(theta)
        a, b, e, al, be, rd, rn = (th[:, i : i + 1] for i in range(7))
        lun, lud = logx["U_N"][None, :], logx["U_D"][None, :]
        r_n = np.maximum(np.exp(logx["N"] - logx["U_N"]) - 1.0, 0.0)[None, :]
        r_d = np.maximum(np.exp(logx["D"] - logx["U_D"]) - 1.0, 0.0)[None, :]
        gn, dgn = _repeat_gain(r_n, rn)
        gd, dgd = _repeat_gain(r_d, rd)
        t1, t2 = a - al * (lun + gn), b - be * (lud + gd)
        lse, (w1, w2, w3) = _softmax_terms([t1, t2, np.broadcast_to(e, t1.shape)])
        jac = np.stack([w1, w2, w3, -w1 * (lun + gn), -w2 * (lud + gd), -w2 * be * dgd, -w1 * al * dgn], axis=-1)
        return lse, jac[..., self._free]


register(DataConstrained)
