"""The learning inbox: what the next dream will learn from, counted the same way the export builds it."""

from __future__ import annotations

from typing import Any

from desktop.export import build_rows
from desktop.signals import Signals


def learning_inbox(signals: Signals) -> dict[str, Any]:
    """Counts and item lists for the inbox panel and `nightschool inbox`."""
    rows = build_rows(signals)
    marks = dict(signals.db.execute(
        "SELECT value, count(*) FROM signals WHERE kind = 'mark' AND revoked_at IS NULL AND excluded = 0 GROUP BY value"
    ).fetchall())
    verdicts = dict(signals.db.execute(
        """SELECT value, count(*) FROM signals WHERE kind = 'verification' AND excluded = 0 GROUP BY value"""
    ).fetchall())
    taught = signals.taught_items(include_excluded=False)
    corrections = signals.corrections()
    train_tasks = signals.tasks("train")
    counts = {
        "taught": len(taught),
        "corrections": len(corrections),
        "marked_correct": marks.get("correct", 0),
        "marked_incorrect": marks.get("incorrect", 0),
        "verified_passed": verdicts.get("passed", 0),
        "verified_failed": verdicts.get("failed", 0),
        "pending_tasks": len(train_tasks),
        "eval_tasks": len(signals.tasks("eval")),
        "sft_rows": len(rows["sft"]),
        "preference_pairs": len(rows["preference"]),
        "kto_rows": len(rows["kto"]),
    }
    return {"counts": counts, "taught": taught, "corrections": corrections, "tasks": train_tasks}
