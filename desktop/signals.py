"""Judgements about answers, from the person or a verifier, kept with their provenance; what the dreams learn from."""

from __future__ import annotations

import json
import re
from typing import Any

from desktop.memory import MemoryItem
from desktop.store import Store, utc_now
from desktop.verifiers import VerifierResult, parse_spec

MARKS = ("correct", "incorrect")
TASK_SPLITS = ("train", "eval")
_SECOND_PERSON = {
    "i": "you", "me": "you", "my": "your", "mine": "yours", "myself": "yourself", "i'm": "you're",
    "i've": "you've", "i'll": "you'll", "i'd": "you'd", "we": "you", "us": "you", "our": "your",
    "ours": "yours", "am": "are",
}
_WORD = re.compile(r"(?<![A-Za-z0-9'])[A-Za-z']+(?![A-Za-z0-9'])")
_I_WAS = re.compile(r"\bI (was)(n't)?\b", re.IGNORECASE)


def acknowledge(text: str) -> str:
    """The assistant's reply to a taught item restates it in the second person, as a prototype found teaches best."""
    text = _I_WAS.sub(lambda m: f"you were{m.group(2) or ''}", text.strip().rstrip(".!"))
    restated = _WORD.sub(lambda m: _SECOND_PERSON.get(m.group(0).lower(), m.group(0)), text)
    return f"Noted: {restated}."


def _decode(row: dict[str, Any], *columns: str) -> dict[str, Any]:
    """JSON columns come back as Python values, named without the _json suffix."""
    for column in columns:
        value = row.pop(f"{column}_json")
        row[column] = json.loads(value) if value is not None else None
    return row


class Signals:
    """Records and reads the learning signals in the app's database; nothing the person wrote is overwritten."""

    def __init__(self, store: Store) -> None:
        self.store = store
        self.db = store.db

    def _insert(self, table: str, row: dict[str, Any]) -> int:
        columns = ", ".join(row)
        marks = ", ".join("?" for _ in row)
        with self.store.transaction():
            return self.db.execute(f"INSERT INTO {table} ({columns}) VALUES ({marks})", tuple(row.values())).lastrowid

    def _answer(self, message_id: int) -> dict[str, Any]:
        message = self.store.message(message_id)
        if message["role"] != "assistant":
            raise ValueError(f"message {message_id} is not an answer; only answers can be judged")
        return message

    # ---- marks ------------------------------------------------------------------------------------

    def mark(self, message_id: int, value: str, reason: str = "", source: str = "user") -> int:
        """Marks an answer; a new mark supersedes (revokes) the previous one, which stays in the history."""
        if value not in MARKS:
            raise ValueError(f"a mark is one of {MARKS}, not {value!r}")
        answer = self._answer(message_id)
        self.unmark(message_id)
        return self._insert(
            "signals",
            {"message_id": message_id, "kind": "mark", "value": value, "reason": reason, "source": source,
             "model_id": answer["model_id"], "created_at": utc_now()},
        )

    def unmark(self, message_id: int) -> None:
        """Undo: the active mark no longer counts, but its row is kept."""
        with self.store.transaction():
            self.db.execute(
                "UPDATE signals SET revoked_at = ? WHERE message_id = ? AND kind = 'mark' AND revoked_at IS NULL",
                (utc_now(), message_id),
            )

    def current_mark(self, message_id: int) -> dict[str, Any] | None:
        """The mark that counts now, if any."""
        rows = list(self.db.query(
            "SELECT * FROM signals WHERE message_id = ? AND kind = 'mark' AND revoked_at IS NULL ORDER BY id DESC LIMIT 1",
            (message_id,),
        ))
        return _decode(rows[0], "spec", "result") if rows else None

    def marks(self, include_excluded: bool = False) -> list[dict[str, Any]]:
        """Marks that count now, each with the answer it judges."""
        return list(self.db.query(
            """SELECT s.*, m.content AS answer FROM signals AS s JOIN messages AS m ON m.id = s.message_id
               WHERE s.kind = 'mark' AND s.revoked_at IS NULL AND (? OR s.excluded = 0) ORDER BY s.id""",
            (include_excluded,),
        ))

    # ---- corrections ------------------------------------------------------------------------------

    def correct(self, message_id: int, text: str) -> int:
        """Stores the person's right answer as a sibling of the original (kept as the rejected one); returns its id."""
        answer = self._answer(message_id)
        corrected = self.store.add_message(
            answer["conversation_id"], "assistant", text, parent_id=answer["parent_id"], author="user"
        )
        self._insert(
            "signals",
            {"message_id": message_id, "kind": "correction", "value": "corrected", "source": "user",
             "correction_id": corrected, "model_id": answer["model_id"], "created_at": utc_now()},
        )
        return corrected

    def corrections(self, include_excluded: bool = False) -> list[dict[str, Any]]:
        """Correction signals joined with both texts."""
        return list(self.db.query(
            """SELECT s.*, o.content AS original, c.content AS corrected FROM signals AS s
               JOIN messages AS o ON o.id = s.message_id JOIN messages AS c ON c.id = s.correction_id
               WHERE s.kind = 'correction' AND (? OR s.excluded = 0) ORDER BY s.id""",
            (include_excluded,),
        ))

    def set_signal_excluded(self, signal_id: int, excluded: bool) -> None:
        """A mark or correction the person no longer wants learned stays listed, but no dream trains on it."""
        with self.store.transaction():
            update = self.db.execute("UPDATE signals SET excluded = ? WHERE id = ?", (int(excluded), signal_id))
        if not update.rowcount:
            raise KeyError(f"no signal {signal_id}")

    # ---- checks and verification ------------------------------------------------------------------

    def add_check(self, user_message_id: int, spec: dict | str, source: str = "user") -> int:
        """Attaches a verifier to a question, so every answer to it (regenerations too) gets checked."""
        if self.store.message(user_message_id)["role"] != "user":
            raise ValueError(f"message {user_message_id} is not a question; checks attach to questions")
        return self._insert(
            "checks",
            {"message_id": user_message_id, "spec_json": json.dumps(parse_spec(spec)), "source": source,
             "created_at": utc_now()},
        )

    def checks_for(self, user_message_id: int) -> list[dict[str, Any]]:
        """The checks attached to a question, oldest first."""
        rows = self.db.query("SELECT * FROM checks WHERE message_id = ? ORDER BY id", (user_message_id,))
        return [_decode(row, "spec") for row in rows]

    def record_verification(self, message_id: int, spec: dict, result: VerifierResult) -> int:
        """A verifier's verdict on one answer counts as a signal, like a person's mark."""
        answer = self._answer(message_id)
        return self._insert(
            "signals",
            {"message_id": message_id, "kind": "verification", "value": result.status, "reason": result.reason,
             "source": "verifier", "spec_json": json.dumps(spec), "result_json": json.dumps(result.to_json()),
             "model_id": answer["model_id"], "created_at": utc_now()},
        )

    def verifications(self, message_id: int) -> list[dict[str, Any]]:
        """Every verdict on one answer, oldest first."""
        rows = self.db.query(
            "SELECT * FROM signals WHERE message_id = ? AND kind = 'verification' ORDER BY id", (message_id,)
        )
        return [_decode(row, "spec", "result") for row in rows]

    # ---- taught items -----------------------------------------------------------------------------

    def teach(self, conversation_id: int, text: str, acknowledgement: str | None = None,
              source: str = "user", external_id: str | None = None) -> int:
        """Records 'remember this' as an exchange in the chat plus a taught item the user can edit or exclude."""
        conversation = self.store.conversation(conversation_id)
        ack = acknowledgement or acknowledge(text)
        author = "import" if source == "import" else "user"
        user_id = self.store.add_message(conversation_id, "user", text, parent_id=conversation["current_leaf_id"], author=author)
        answer_id = self.store.add_message(conversation_id, "assistant", ack, parent_id=user_id,
                                           author="import" if source == "import" else "app")
        now = utc_now()
        return self._insert(
            "taught",
            {"conversation_id": conversation_id, "user_message_id": user_id, "answer_message_id": answer_id,
             "text": text, "acknowledgement": ack, "original_text": text, "source": source,
             "external_id": external_id, "created_at": now, "updated_at": now},
        )

    def taught_items(self, include_excluded: bool = True) -> list[dict[str, Any]]:
        """What the assistant has been taught, oldest first."""
        return list(self.db.query(
            "SELECT * FROM taught WHERE ? OR excluded = 0 ORDER BY id", (include_excluded,)
        ))

    def taught_item(self, taught_id: int) -> dict[str, Any]:
        rows = list(self.db.query("SELECT * FROM taught WHERE id = ?", (taught_id,)))
        if not rows:
            raise KeyError(f"no taught item {taught_id}")
        return rows[0]

    def edit_taught(self, taught_id: int, text: str, acknowledgement: str | None = None) -> None:
        """Changes what is learned; the original wording stays in original_text and in the chat."""
        self.taught_item(taught_id)
        with self.store.transaction():
            self.db.execute(
                "UPDATE taught SET text = ?, acknowledgement = ?, updated_at = ? WHERE id = ?",
                (text, acknowledgement or acknowledge(text), utc_now(), taught_id),
            )

    def set_taught_excluded(self, taught_id: int, excluded: bool) -> None:
        """Excluded items stay listed but are never trained on."""
        self.taught_item(taught_id)
        with self.store.transaction():
            self.db.execute("UPDATE taught SET excluded = ?, updated_at = ? WHERE id = ?", (int(excluded), utc_now(), taught_id))

    def delete_taught(self, taught_id: int) -> None:
        """The person's explicit wish: the item and its probes go; the chat messages stay."""
        self.taught_item(taught_id)
        with self.store.transaction():
            self.db.execute("DELETE FROM taught WHERE id = ?", (taught_id,))

    def add_probe(self, taught_id: int, kind: str, question: str, strings: list[str]) -> int:
        """Probes and near-misses measure recall and leaks; they are never trained on."""
        return self._insert(
            "probes", {"taught_id": taught_id, "kind": kind, "question": question, "strings_json": json.dumps(strings)}
        )

    def probes(self, taught_id: int | None = None) -> list[dict[str, Any]]:
        rows = self.db.query(
            "SELECT * FROM probes WHERE ? IS NULL OR taught_id = ? ORDER BY id", (taught_id, taught_id)
        )
        return [_decode(row, "strings") for row in rows]

    # ---- verifiable tasks -------------------------------------------------------------------------

    def add_task(self, prompt: str, spec: dict, split: str, source: str, family: str = "",
                 external_id: str | None = None) -> int | None:
        """Adds a checkable prompt to the pool; importing the same file twice adds nothing twice."""
        if split not in TASK_SPLITS:
            raise ValueError(f"split is one of {TASK_SPLITS}, not {split!r}")
        normalized = parse_spec(spec)
        with self.store.transaction():
            cursor = self.db.execute(
                """INSERT OR IGNORE INTO tasks (external_id, family, prompt, spec_json, split, source, created_at)
                   VALUES (?, ?, ?, ?, ?, ?, ?)""",
                (external_id, family or normalized["kind"], prompt, json.dumps(normalized), split, source, utc_now()),
            )
        return cursor.lastrowid if cursor.rowcount else None

    def tasks(self, split: str | None = None) -> list[dict[str, Any]]:
        rows = self.db.query(
            "SELECT * FROM tasks WHERE (? IS NULL OR split = ?) AND excluded = 0 ORDER BY id", (split, split)
        )
        return [_decode(row, "spec") for row in rows]

    def checked_questions(self) -> list[dict[str, Any]]:
        """Questions from chats with a check attached: each is a verifiable prompt for dreams."""
        rows = self.db.query(
            """SELECT checks.id, checks.spec_json, messages.content AS prompt FROM checks
               JOIN messages ON messages.id = checks.message_id ORDER BY checks.id"""
        )
        return [_decode(row, "spec") for row in rows]

    def solutions(self) -> list[dict[str, Any]]:
        """Sampled answers a verifier passed, newest first: rejection-sampled supervised data."""
        return list(self.db.query("SELECT * FROM solutions ORDER BY id DESC"))

    def count_since(self, moment: str | None) -> int:
        """Taught items, judgements, tasks and checks (not excluded) recorded after moment (all of them when None)."""
        after = moment or ""
        queries = ("SELECT count(*) FROM taught WHERE excluded = 0 AND created_at > ?",
                   "SELECT count(*) FROM signals WHERE excluded = 0 AND created_at > ?",
                   "SELECT count(*) FROM tasks WHERE excluded = 0 AND created_at > ?",
                   "SELECT count(*) FROM checks WHERE created_at > ?")
        return sum(self.db.execute(query, (after,)).fetchone()[0] for query in queries)

    def memory_items(self) -> list[MemoryItem]:
        """Everything short-term memory may draw on: taught items and corrections that are not excluded."""
        items = [MemoryItem(t["text"], "taught", t["id"]) for t in self.taught_items(include_excluded=False)]
        for c in self.corrections():
            question = self.store.message(self.store.message(c["message_id"])["parent_id"])["content"]
            items.append(MemoryItem(f"Asked “{question}”, the right answer is: {c['corrected']}", "correction", c["id"]))
        return items

    # ---- what the chat shows ----------------------------------------------------------------------

    def badges(self, message_id: int) -> dict[str, Any]:
        """What one answer's card shows: its mark, its latest verdict per check, and correction links."""
        verdicts = {json.dumps(v["spec"], sort_keys=True): v for v in self.verifications(message_id)}
        corrected_by = self.db.execute(
            "SELECT correction_id FROM signals WHERE kind = 'correction' AND message_id = ?", (message_id,)
        ).fetchone()
        correction_of = self.db.execute(
            "SELECT message_id FROM signals WHERE kind = 'correction' AND correction_id = ?", (message_id,)
        ).fetchone()
        return {
            "mark": self.current_mark(message_id),
            "verifications": list(verdicts.values()),
            "corrected_by": corrected_by[0] if corrected_by else None,
            "correction_of": correction_of[0] if correction_of else None,
        }
