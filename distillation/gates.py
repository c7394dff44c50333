"""Quality gates a model version must pass before it may serve (numpy only, no Django).

Defaults follow the practice for operational automated scoring (Williamson, Xi & Breyer 2012,
"A Framework for Evaluation and Use of Automated Scoring"): quadratic weighted kappa with the human
score at least .70; machine-human QWK no more than .10 below human-human QWK where a second rating
exists; standardized mean difference between machine and human scores within .15 overall (and .10
within each subgroup). Two more gates are the product's own: a distilled student may not lose more
than .02 QWK to its teacher, nor fall below the strongest baseline trained on the same data.

``evaluate(entry, thresholds)`` reads one item's report entry (``distillation.evaluation``) and
returns one :class:`Gate` per rule, each with a sentence an admin can read.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, fields

import numpy as np

from distillation.metrics import qwk

BASELINES = ("student_no_kd", "tfidf")
MIN_GROUP_SIZE = 20  # smaller groups are reported but not gated: their SMD is noise


@dataclass(frozen=True)
class GateThresholds:
    min_qwk: float = 0.70
    max_below_human: float = 0.10
    max_abs_smd: float = 0.15
    max_abs_smd_group: float = 0.10
    max_below_teacher: float = 0.02
    beat_baselines: bool = True
    max_below_active: float = 0.02

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: Mapping | None) -> GateThresholds:
        known = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in (data or {}).items() if k in known and v is not None})


@dataclass(frozen=True)
class Gate:
    name: str
    passed: bool | None  # None: not applicable (e.g. no second human rating)
    value: float | None
    threshold: float | None
    message: str

    def to_dict(self) -> dict:
        return asdict(self)


def smd(human: Sequence[float], machine: Sequence[float]) -> float:
    """Standardized mean difference (machine - human) over the pooled standard deviation."""
    h = np.asarray(human, dtype=np.float64)
    m = np.asarray(machine, dtype=np.float64)
    if len(h) == 0:
        return float("nan")
    pooled = np.sqrt((h.var(ddof=1) + m.var(ddof=1)) / 2) if len(h) > 1 else 0.0
    diff = float(m.mean() - h.mean())
    if pooled == 0:
        return 0.0 if diff == 0 else float(np.sign(diff)) * float("inf")
    return diff / float(pooled)


def group_breakdown(human: Sequence[int], machine: Sequence[int], groups: Mapping[str, Sequence[str]],
                    labels: Sequence[int]) -> dict:
    """Agreement per value of each group column: ``{column: {value: {n, qwk, exact, smd}}}``."""
    h, m = np.asarray(human), np.asarray(machine)
    out: dict = {}
    for column, values in groups.items():
        vals = np.asarray([str(v) for v in values])
        per: dict = {}
        for v in sorted(set(vals.tolist())):
            sel = vals == v
            per[v] = {
                "n": int(sel.sum()),
                "qwk": round(qwk(h[sel], m[sel], labels), 6),
                "exact": round(float((h[sel] == m[sel]).mean()), 6),
                "smd": round(smd(h[sel], m[sel]), 6),
            }
        out[column] = per
    return out


def _fmt(x: float | None, limit: float | None = None) -> str:
    """``x`` to 3 decimals, or more where 3 would print a failing value as its limit ("0.150, at most 0.15")."""
    if x is None:
        return "n/a"
    digits = 3
    while limit is not None and digits < 6 and abs(x) != limit and round(abs(x), digits) == round(limit, digits):
        digits += 1
    return f"{x:.{digits}f}"


def evaluate(entry: Mapping, thresholds: GateThresholds | None = None, *, model: str = "student",
             active_qwk: float | None = None) -> list[Gate]:
    """The gates for ``entry["models"][model]`` (keys ``qwk`` and ``smd``) against the entry's human-human
    QWK, teacher, baselines and subgroup breakdown; ``active_qwk`` is the serving version's test QWK."""
    t = thresholds or GateThresholds()
    models = entry.get("models", {})
    me = models.get(model) or {}
    q = me.get("qwk")
    gates = [Gate("qwk", q is not None and q >= t.min_qwk, q, t.min_qwk,
                  f"Agreement with the human score (QWK) is {_fmt(q)}; at least {t.min_qwk:.2f} is required.")]

    hh = entry.get("human_human_qwk")
    if hh is None:
        gates.append(Gate("human_gap", None, None, t.max_below_human,
                          "No second human rating in the data: the machine-human gap cannot be checked."))
    else:
        gap = None if q is None else round(hh - q, 6)
        gates.append(Gate("human_gap", gap is not None and gap <= t.max_below_human, gap, t.max_below_human,
                          f"Two humans agree at QWK {hh:.3f}; the model is {_fmt(gap, t.max_below_human)} below them "
                          f"(at most {t.max_below_human:.2f} allowed)."))

    s = me.get("smd")
    gates.append(Gate("smd", s is not None and abs(s) <= t.max_abs_smd, s, t.max_abs_smd,
                      f"The model's mean score differs from the humans' by {_fmt(s, t.max_abs_smd)} standard "
                      f"deviations (at most {t.max_abs_smd:.2f} either way)."))

    worst = None
    for column, per in (entry.get("groups") or {}).items():
        for value, g in per.items():
            big = g.get("n", 0) >= MIN_GROUP_SIZE and g.get("smd") is not None
            if big and (worst is None or abs(g["smd"]) > abs(worst[2])):
                worst = (column, value, g["smd"])
    if worst is None:
        gates.append(Gate("group_smd", None, None, t.max_abs_smd_group,
                          "No group column (e.g. school, language background) in the data: fairness across "
                          "groups cannot be checked."))
    else:
        column, value, gs = worst
        gates.append(Gate("group_smd", abs(gs) <= t.max_abs_smd_group, gs, t.max_abs_smd_group,
                          f"The largest difference within one group is {gs:.3f} standard deviations "
                          f"({column} = {value}); at most {t.max_abs_smd_group:.2f} allowed."))

    if model == "student":
        tq = (models.get("teacher") or {}).get("qwk")
        if tq is None:
            gates.append(Gate("teacher_gap", None, None, t.max_below_teacher, "No teacher in the report."))
        else:
            gap = None if q is None else round(tq - q, 6)
            gates.append(Gate("teacher_gap", gap is not None and gap <= t.max_below_teacher, gap,
                              t.max_below_teacher,
                              f"The student is {_fmt(gap)} QWK below its teacher ({tq:.3f}); at most "
                              f"{t.max_below_teacher:.2f} allowed."))
        if t.beat_baselines:
            base = {b: (models.get(b) or {}).get("qwk") for b in BASELINES}
            base = {b: v for b, v in base.items() if v is not None}
            if base:
                best = max(base, key=base.get)
                ok = q is not None and q >= base[best]
                gates.append(Gate("baselines", ok, round(base[best], 6), None,
                                  f"The strongest baseline ({best.replace('_', ' ')}) reaches QWK "
                                  f"{base[best]:.3f}; the student {_fmt(q)}."))

    if active_qwk is not None:
        gap = None if q is None else round(active_qwk - q, 6)
        gates.append(Gate("active_gap", gap is not None and gap <= t.max_below_active, gap, t.max_below_active,
                          f"The version serving now reaches QWK {active_qwk:.3f}; this one is {_fmt(gap)} below "
                          f"it (at most {t.max_below_active:.2f} allowed)."))
    return gates


def passed(gates: Sequence[Gate]) -> bool:
    """True when no applicable gate failed."""
    return all(g.passed is not False for g in gates)


def failed_messages(gates: Sequence[Gate]) -> list[str]:
    return [g.message for g in gates if g.passed is False]
