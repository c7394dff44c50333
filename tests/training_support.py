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
