"""Model generations: what each dream promoted, which one the app runs, and rolling back to an earlier one."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Sequence

from desktop.store import Store, utc_now

ACTIVE_KEY = "active_generation"
"""app_state key holding the active generation's id; empty means the base model itself."""


def _decode(row: dict[str, Any]) -> dict[str, Any]:
    row["metrics"] = json.loads(row.pop("metrics_json"))
    return row


class Generations:
    """Reads and switches generations; a dream records itself (and what it promoted) in one transaction."""

    def __init__(self, store: Store) -> None:
        self.store = store
        self.db = store.db

    def active(self, base_path: Path) -> dict[str, Any] | None:
        """The generation to load over this base model, or None for the base itself."""
        row = self.db.execute("SELECT value FROM app_state WHERE key = ?", (ACTIVE_KEY,)).fetchone()
        generation = self.get(int(row[0])) if row and row[0] else None
        return generation if generation and generation["base_path"] == str(base_path) else None

    def get(self, generation_id: int) -> dict[str, Any] | None:
        rows = list(self.db.query("SELECT * FROM generations WHERE id = ?", (generation_id,)))
        return _decode(rows[0]) if rows else None

    def lineage(self, generation: dict[str, Any] | None) -> list[dict[str, Any]]:
        """The generation and its ancestors, oldest first: their adapters stack into it."""
        chain = []
        while generation is not None:
            chain.append(generation)
            generation = self.get(generation["parent_id"]) if generation["parent_id"] else None
        return chain[::-1]

    def history(self, base_path: Path) -> list[dict[str, Any]]:
        """This base model's generations, oldest first."""
        rows = self.db.query("SELECT * FROM generations WHERE base_path = ? ORDER BY id", (str(base_path),))
        return [_decode(row) for row in rows]

    def activate(self, generation_id: int | None) -> None:
        """Switches the app to a generation (None: back to the base model); no file is deleted."""
        if generation_id is not None and self.get(generation_id) is None:
            raise KeyError(f"no generation {generation_id}")
        with self.store.transaction():
            self._set_active(generation_id)

    def _set_active(self, generation_id: int | None) -> None:
        """Inside the caller's transaction: remembers which generation to load."""
        self.db.execute(
            "INSERT INTO app_state (key, value) VALUES (?, ?) ON CONFLICT (key) DO UPDATE SET value = excluded.value",
            (ACTIVE_KEY, "" if generation_id is None else str(generation_id)),
        )

    def record_dream(self, started_at: str, outcome: str, reason: str, report: dict[str, Any],
                     promoted: dict[str, Any] | None = None, learned: tuple[int, ...] = (),
                     solutions: Sequence[tuple[Any, str]] = ()) -> int:
        """Stores a finished dream; a promoted one also becomes the active generation and marks what it learned.

        solutions are (task, answer) pairs a verifier passed; they were sampled from the current generation, so
        they are kept whatever the candidate's fate.
        """
        with self.store.transaction():
            dream_id = self.db.execute(
                "INSERT INTO dreams (started_at, finished_at, outcome, reason, report_json) VALUES (?, ?, ?, ?, ?)",
                (started_at, utc_now(), outcome, reason, json.dumps(report)),
            ).lastrowid
            if promoted is not None:
                generation_id = self.db.execute(
                    """INSERT INTO generations (parent_id, base_path, model_path, adapter_path, dream_id, metrics_json, created_at)
                       VALUES (?, ?, ?, ?, ?, ?, ?)""",
                    (promoted["parent_id"], promoted["base_path"], promoted["model_path"], promoted["adapter_path"],
                     dream_id, json.dumps(promoted["metrics"]), utc_now()),
                ).lastrowid
                self._set_active(generation_id)
                self.db.conn.executemany(
                    "UPDATE taught SET learned_generation_id = ? WHERE id = ?", [(generation_id, t) for t in learned]
                )
            self.db.conn.executemany(
                "INSERT OR IGNORE INTO solutions (task_key, prompt, answer, dream_id, created_at) VALUES (?, ?, ?, ?, ?)",
                [(task.key, task.prompt, answer, dream_id, utc_now()) for task, answer in solutions],
            )
        return dream_id

    def promoted_by_dream(self) -> dict[int, int]:
        """dream id → the generation it promoted."""
        return dict(self.db.execute("SELECT dream_id, id FROM generations").fetchall())

    def last_dream_at(self) -> str | None:
        """When the latest dream started: newer signals are what the next idle dream is for."""
        return self.db.execute("SELECT max(started_at) FROM dreams").fetchone()[0]

    def retries(self) -> int:
        """Dreams since the last promotion: a retry on the same signals must train differently, or it repeats itself."""
        outcomes = [row[0] for row in self.db.execute("SELECT outcome FROM dreams ORDER BY id DESC")]
        return next((n for n, outcome in enumerate(outcomes) if outcome == "promoted"), len(outcomes))

    def dreams(self) -> list[dict[str, Any]]:
        """Every dream, newest first, with its report decoded."""
        rows = list(self.db.query("SELECT * FROM dreams ORDER BY id DESC"))
        for row in rows:
            row["report"] = json.loads(row.pop("report_json"))
        return rows
