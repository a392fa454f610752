"""``tsweep advise``: more pre-training or more target data? Read off the fitted gap law.

``advise`` reads each source's gap law at its headline size (the joint fit over sources, Barnett
2024, arXiv 2408.16947): L(p, f) = (A p^-alpha + G) f^-beta + E. Only a source whose G is
identified gets advice. At the sweep's current p (final checkpoint) and f
(largest fine-tune set) it compares the loss bought by 2x pre-training with 2x fine-tuning data,
and for a target loss X solves for f at the current p, f = ((A p^-alpha + G)/(X - E))^(1/beta),
and for p at the current f, p = (A / ((X - E) f^beta - G))^(1/alpha); the latter has no solution
when X <= G f^-beta + E, the floor that no amount of pre-training crosses (the point of G).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

from tsweep.analysis.laws import get_law
from tsweep.analysis.records import TransferReport


def advice(report: TransferReport, table: Any, target_loss: float | None = None) -> list[dict[str, Any]]:
    """Per source, what 2x pre-training vs 2x fine-tuning data buys, and what reaching a target takes."""
    law = get_law("barnett")
    rows = [r for r in table.to_pylist() if r["kind"] == "finetune" and r["status"] == "ok"]
    out = []
    for s in report.sources:
        entry: dict[str, Any] = {"source": s.source, "size": s.gap_size}
        gap = report.gap_fit(s.gap_size) if s.gap_size else None
        if gap is None:
            entry["note"] = f"no identified gap law for this source: {s.G.reason}"
            out.append(entry)
            continue
        prm = gap.source_params(s.source)
        mine = [r for r in rows if r["source"] == s.source and r["size"] == s.gap_size and r["pretrain_tokens"] > 0]
        p = float(max(r["pretrain_tokens"] for r in mine))
        f = float(max(r["data_tokens"] for r in mine))
        now, l2p, l2f = (float(law.predict(prm, p=pp, f=ff)) for pp, ff in ((p, f), (2 * p, f), (p, 2 * f)))
        floor = prm["G"] * f ** -prm["beta"] + prm["E"]
        entry.update(
            {
                "p": p,
                "f": f,
                "loss_now": now,
                "loss_2x_pretrain": l2p,
                "loss_2x_finetune": l2f,
                "gain_2x_pretrain": now - l2p,
                "gain_2x_finetune": now - l2f,
                "better": "fine-tune data" if now - l2f > now - l2p else "pre-training",
                "pretrain_floor_at_f": floor,
                "G": prm["G"],
            }
        )
        if target_loss is not None:
            entry.update(_solve_target(prm, p, f, target_loss, now))
        out.append(entry)
    return out


def _solve_target(prm: Mapping[str, float], p: float, f: float, x: float, now: float) -> dict[str, Any]:
    a, alpha, g, beta, e = (prm[k] for k in ("A", "alpha", "G", "beta", "E"))
    res: dict[str, Any] = {"target_loss": x}
    if x >= now:
        res["finetune_tokens_needed"] = f
        res["pretrain_tokens_needed"] = p
        res["note"] = "already at or below the target"
        return res
    if x <= e:
        res["finetune_tokens_needed"] = None
        res["pretrain_tokens_needed"] = None
        res["note"] = f"target <= E = {e:.4g}: unreachable under this law"
        return res
    res["finetune_tokens_needed"] = ((a * p**-alpha + g) / (x - e)) ** (1.0 / beta) if beta > 0 else None
    room = (x - e) * f**beta - g
    if room > 0 and alpha > 0 and a > 0:
        res["pretrain_tokens_needed"] = (a / room) ** (1.0 / alpha)
    else:
        res["pretrain_tokens_needed"] = None
        res["note"] = (
            f"no amount of pre-training reaches {x:.4g} at f = {f:.3g}: "
            f"the floor G f^-beta + E is {g * f**-beta + e:.4g}"
        )
    return res


def _fmt_tokens(x: float | None) -> str:
    return "unreachable" if x is None or not math.isfinite(x) else f"{x:.3g}"


def format_advice(entries: list[dict[str, Any]], target_loss: float | None = None) -> str:
    """The advice as readable lines (``tsweep advise``)."""
    out: list[str] = []
    for a in entries:
        if "note" in a and "loss_now" not in a:
            out.append(f"{a['source']}: {a['note']}")
            continue
        out.append(f"{a['source']} (size {a['size']}, p = {a['p']:.3g}, f = {a['f']:.3g}): loss {a['loss_now']:.4g}")
        out.append(
            f"  2x pre-training tokens -> {a['loss_2x_pretrain']:.4g} (-{a['gain_2x_pretrain']:.3g}); "
            f"2x fine-tune tokens -> {a['loss_2x_finetune']:.4g} (-{a['gain_2x_finetune']:.3g}): "
            f"{a['better']} buys more"
        )
        out.append(f"  floor with unlimited pre-training at this f: {a['pretrain_floor_at_f']:.4g} (G = {a['G']:.3g})")
        if target_loss is not None:
            out.append(
                f"  to reach {target_loss:g}: {_fmt_tokens(a['finetune_tokens_needed'])} fine-tune tokens at "
                f"p = {a['p']:.3g}, or {_fmt_tokens(a['pretrain_tokens_needed'])} pre-training tokens at "
                f"f = {a['f']:.3g}"
            )
            if a.get("note"):
                out.append(f"  note: {a['note']}")
    out.append("(point estimates of the headline Barnett fit per source; its intervals: `tsweep gaps`)")
    return "\n".join(out)
