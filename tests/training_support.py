"""Helpers for the training tests: small uploads built in the test, an admin user."""

from __future__ import annotations

import csv
import io

from scoring.demo_data import DEMO_RESPONSES

HEADER = ["item_id", "question", "reference_answer", "response_id", "response", "score"]


def csv_bytes(rows: list[list], header: list[str] | None = None) -> bytes:
    buf = io.StringIO()
    w = csv.writer(buf)
    w.writerow(header or HEADER)
    w.writerows(rows)
    return buf.getvalue().encode("utf-8")


def demo_rows() -> tuple[list[str], list[list[str]]]:
    """The demo item's 36 human-scored answers (header, rows)."""
    with open(DEMO_RESPONSES, newline="", encoding="utf-8") as f:
        rows = list(csv.reader(f))
    return rows[0], rows[1:]


def demo_upload(prefix: str = "up", extra: dict[str, list[str]] | None = None) -> bytes:
    """The demo answers as an upload, with fresh response ids (and optional extra columns)."""
    header, rows = demo_rows()
    out = []
    for i, r in enumerate(rows):
        r = list(r)
        r[3] = f"{prefix}-{i:03d}"
        out.append(r + [v[i % len(v)] for v in (extra or {}).values()])
    return csv_bytes(out, header + list(extra or {}))


# Gate thresholds every real version passes (the admin-action tests are about verification, not quality).
LENIENT_GATES = {"min_qwk": 0.0, "max_below_human": 1.0, "max_abs_smd": 100.0, "max_abs_smd_group": 100.0,
                 "max_below_teacher": 1.0, "beat_baselines": False, "max_below_active": 1.0}


def lenient_gates(item, *versions) -> None:
    """Give ``item`` the lenient gate policy; reports from before the SMD was part of them get an SMD of 0
    (no shift) so the SMD gate can be judged.  A report that has its own SMD keeps it."""
    from training.models import GatePolicy

    GatePolicy.objects.update_or_create(item=item, defaults=LENIENT_GATES)
    for v in versions:
        v.metrics.setdefault("models", {}).setdefault("student", {}).setdefault("smd", 0.0)
        v.save(update_fields=["metrics"])
