"""The learning inbox: what the next dream will learn from, counted the same way the export builds it."""

from __future__ import annotations

from typing import Any

from desktop.export import build_rows
from desktop.signals import Signals


def learning_inbox(signals: Signals) -> dict[str, Any]:
    """Counts and lists for the inbox and `nightschool inbox`; excluded marks and corrections listed, uncounted."""
    rows = build_rows(signals)
    marks = signals.marks(include_excluded=True)
    corrections = signals.corrections(include_excluded=True)
    counted = [m["value"] for m in marks if not m["excluded"]]
    verdicts = dict(signals.db.execute(
        """SELECT value, count(*) FROM signals WHERE kind = 'verification' AND excluded = 0 GROUP BY value"""
    ).fetchall())
    taught = signals.taught_items(include_excluded=False)
    train_tasks = signals.tasks("train")
    counts = {
        "taught": len(taught),
        "corrections": sum(not c["excluded"] for c in corrections),
        "marked_correct": counted.count("correct"),
        "marked_incorrect": counted.count("incorrect"),
        "verified_passed": verdicts.get("passed", 0),
        "verified_failed": verdicts.get("failed", 0),
        "pending_tasks": len(train_tasks),
        "eval_tasks": len(signals.tasks("eval")),
        "sft_rows": len(rows["sft"]),
        "preference_pairs": len(rows["preference"]),
        "kto_rows": len(rows["kto"]),
    }
    return {"counts": counts, "taught": taught, "corrections": corrections, "marks": marks, "tasks": train_tasks}
