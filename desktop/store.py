"""Every conversation, message and model reference, kept in one SQLite file with forward-only migrations."""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Callable, Iterator
from contextlib import closing, contextmanager
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from sqlite_utils import Database

SQLITE_HEADER = b"SQLite format 3\x00"
SQLITE_SIDECARS = ("-wal", "-shm")
DEFAULT_TITLE = "New chat"
ROLES = ("system", "user", "assistant")
FINISH_REASONS = ("stop", "length", "stopped", "error")
AUTHORS = ("model", "user", "app", "import")
WRITE_HINT = "Fix its permissions or set NIGHTSCHOOL_HOME to a folder you can write."
HOME_HINT = "Move it aside or set NIGHTSCHOOL_HOME to another folder; the file was left untouched."


class StoreError(Exception):
    """Raised when the database file cannot be used; the message names the file and says what to do."""


class NewerSchemaError(StoreError):
    """Raised when the file was written by a newer Nightschool, so we must not touch it."""


def _create_chat_tables(db: Database) -> None:
    """Version 1: models, conversations and the message tree."""
    db.execute(
        """CREATE TABLE models (
            id INTEGER PRIMARY KEY,
            path TEXT NOT NULL,
            name TEXT NOT NULL,
            architecture TEXT NOT NULL,
            quantization TEXT NOT NULL,
            size_bytes INTEGER NOT NULL,
            created_at TEXT NOT NULL,
            UNIQUE (path, size_bytes)
        )"""
    )
    db.execute(
        """CREATE TABLE conversations (
            id INTEGER PRIMARY KEY,
            title TEXT NOT NULL,
            system_prompt TEXT NOT NULL,
            created_at TEXT NOT NULL,
            updated_at TEXT NOT NULL,
            current_leaf_id INTEGER
        )"""
    )
    db.execute(
        """CREATE TABLE messages (
            id INTEGER PRIMARY KEY,
            conversation_id INTEGER NOT NULL REFERENCES conversations(id) ON DELETE CASCADE,
            parent_id INTEGER REFERENCES messages(id),
            role TEXT NOT NULL CHECK (role IN ('system', 'user', 'assistant')),
            content TEXT NOT NULL,
            created_at TEXT NOT NULL,
            model_id INTEGER REFERENCES models(id),
            finish_reason TEXT CHECK (finish_reason IN ('stop', 'length', 'stopped', 'error')),
            stats_json TEXT
        )"""
    )
    db.execute("CREATE INDEX idx_messages_conversation ON messages(conversation_id)")
    db.execute("CREATE INDEX idx_messages_parent ON messages(parent_id)")


def _create_signal_tables(db: Database) -> None:
    """Version 2: judgements about answers (marks, corrections, verifications), checks, taught items, probes, tasks."""
    db.execute(
        "ALTER TABLE messages ADD COLUMN author TEXT NOT NULL DEFAULT 'model' "
        "CHECK (author IN ('model', 'user', 'app', 'import'))"
    )
    db.execute("UPDATE messages SET author = 'user' WHERE role IN ('user', 'system')")
    db.execute(
        """CREATE TABLE signals (
            id INTEGER PRIMARY KEY,
            message_id INTEGER NOT NULL REFERENCES messages(id) ON DELETE CASCADE,
            kind TEXT NOT NULL CHECK (kind IN ('mark', 'correction', 'verification')),
            value TEXT NOT NULL,
            reason TEXT NOT NULL DEFAULT '',
            source TEXT NOT NULL CHECK (source IN ('user', 'verifier', 'import')),
            correction_id INTEGER REFERENCES messages(id) ON DELETE CASCADE,
            spec_json TEXT,
            result_json TEXT,
            model_id INTEGER REFERENCES models(id),
            excluded INTEGER NOT NULL DEFAULT 0,
            created_at TEXT NOT NULL,
            revoked_at TEXT
        )"""
    )
    db.execute("CREATE INDEX idx_signals_message ON signals(message_id)")
    db.execute(
        """CREATE TABLE checks (
            id INTEGER PRIMARY KEY,
            message_id INTEGER NOT NULL REFERENCES messages(id) ON DELETE CASCADE,
            spec_json TEXT NOT NULL,
            source TEXT NOT NULL CHECK (source IN ('user', 'proposed', 'import')),
            created_at TEXT NOT NULL
        )"""
    )
    db.execute("CREATE INDEX idx_checks_message ON checks(message_id)")
    db.execute(
        """CREATE TABLE taught (
            id INTEGER PRIMARY KEY,
            conversation_id INTEGER REFERENCES conversations(id) ON DELETE SET NULL,
            user_message_id INTEGER REFERENCES messages(id) ON DELETE SET NULL,
            answer_message_id INTEGER REFERENCES messages(id) ON DELETE SET NULL,
            text TEXT NOT NULL,
            acknowledgement TEXT NOT NULL,
            original_text TEXT NOT NULL,
            excluded INTEGER NOT NULL DEFAULT 0,
            source TEXT NOT NULL CHECK (source IN ('user', 'import')),
            external_id TEXT,
            created_at TEXT NOT NULL,
            updated_at TEXT NOT NULL,
            UNIQUE (source, external_id)
        )"""
    )
    db.execute(
        """CREATE TABLE probes (
            id INTEGER PRIMARY KEY,
            taught_id INTEGER NOT NULL REFERENCES taught(id) ON DELETE CASCADE,
            kind TEXT NOT NULL CHECK (kind IN ('probe', 'near_miss')),
            question TEXT NOT NULL,
            strings_json TEXT NOT NULL
        )"""
    )
    db.execute(
        """CREATE TABLE tasks (
            id INTEGER PRIMARY KEY,
            external_id TEXT,
            family TEXT NOT NULL,
            prompt TEXT NOT NULL,
            spec_json TEXT NOT NULL,
            split TEXT NOT NULL CHECK (split IN ('train', 'eval')),
            source TEXT NOT NULL,
            excluded INTEGER NOT NULL DEFAULT 0,
            created_at TEXT NOT NULL,
            UNIQUE (source, external_id)
        )"""
    )


def _create_dream_tables(db: Database) -> None:
    """Version 3: dreams, the model generations they promote, and which generation learned each taught item."""
    db.execute(
        """CREATE TABLE dreams (
            id INTEGER PRIMARY KEY,
            started_at TEXT NOT NULL,
            finished_at TEXT NOT NULL,
            outcome TEXT NOT NULL CHECK (outcome IN ('promoted', 'kept', 'failed')),
            reason TEXT NOT NULL,
            report_json TEXT NOT NULL
        )"""
    )
    db.execute(
        """CREATE TABLE generations (
            id INTEGER PRIMARY KEY,
            parent_id INTEGER REFERENCES generations(id),
            base_path TEXT NOT NULL,
            model_path TEXT NOT NULL,
            adapter_path TEXT NOT NULL,
            dream_id INTEGER NOT NULL REFERENCES dreams(id),
            metrics_json TEXT NOT NULL,
            created_at TEXT NOT NULL
        )"""
    )
    db.execute("CREATE TABLE app_state (key TEXT PRIMARY KEY, value TEXT)")
    db.execute("ALTER TABLE taught ADD COLUMN learned_generation_id INTEGER REFERENCES generations(id)")


def _create_solution_table(db: Database) -> None:
    """Version 4: sampled answers a verifier passed (rejection sampling), supervised data for later dreams."""
    db.execute(
        """CREATE TABLE solutions (
            id INTEGER PRIMARY KEY,
            task_key TEXT NOT NULL,
            prompt TEXT NOT NULL,
            answer TEXT NOT NULL,
            dream_id INTEGER NOT NULL REFERENCES dreams(id),
            created_at TEXT NOT NULL,
            UNIQUE (task_key, answer)
        )"""
    )


MIGRATIONS: list[Callable[[Database], None]] = [
    _create_chat_tables, _create_signal_tables, _create_dream_tables, _create_solution_table,
]
"""Migration i brings the schema from version i to i + 1; append, never edit."""


def utc_now() -> str:
    """ISO-8601 UTC with microseconds, so rows written in one second still order correctly."""
    return datetime.now(timezone.utc).isoformat(timespec="microseconds")


def _like_pattern(text: str) -> str:
    """Escapes LIKE wildcards so a search for '50%' or 'a_b' matches literally."""
    escaped = text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return f"%{escaped}%"


def _check_finish_reason(finish_reason: str | None) -> None:
    """Fails in Python with a readable message instead of deep inside a CHECK constraint."""
    if finish_reason is not None and finish_reason not in FINISH_REASONS:
        raise ValueError(f"finish_reason must be one of {FINISH_REASONS}, not {finish_reason!r}")


def _encode_stats(stats: dict[str, Any] | None) -> str | None:
    """Generation stats vary by backend, so they are stored as one JSON text column."""
    return json.dumps(stats) if stats is not None else None


def _decode_message(row: dict[str, Any]) -> dict[str, Any]:
    """Callers want stats as a dict, not the JSON text it is stored as."""
    stats_json = row.pop("stats_json")
    row["stats"] = json.loads(stats_json) if stats_json is not None else None
    return row


def _prepare_file(path: Path) -> None:
    """Creates the folder and validates an existing file before anything is written to it."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise StoreError(f"Cannot create the folder '{path.parent}' ({err.strerror or err}). {WRITE_HINT}") from err
    if path.is_dir():
        raise StoreError(f"'{path}' is a folder, not a database file. {HOME_HINT}")
    if not path.exists():
        return
    with path.open("rb") as handle:
        header = handle.read(len(SQLITE_HEADER))
    if not header:
        return  # an empty file is an empty SQLite database
    if header != SQLITE_HEADER:
        raise StoreError(f"'{path}' is not a Nightschool database (it is not an SQLite file). {HOME_HINT}")
    sidecars = [path.with_name(path.name + suffix) for suffix in SQLITE_SIDECARS]
    ours = [sidecar for sidecar in sidecars if not sidecar.exists()]
    try:
        _check_sqlite_contents(path)
    except StoreError:
        for sidecar in ours:  # a read-only look at a WAL-mode file may create them; leave the folder as it was
            sidecar.unlink(missing_ok=True)
        raise


def _check_sqlite_contents(path: Path) -> None:
    """Reads integrity and schema version through a read-only connection, which cannot change the file."""
    try:
        with closing(sqlite3.connect(f"{path.resolve().as_uri()}?mode=ro", uri=True)) as conn:
            problems = [row[0] for row in conn.execute("PRAGMA quick_check")]
            version = conn.execute("PRAGMA user_version").fetchone()[0]
            table_count = conn.execute("SELECT count(*) FROM sqlite_master WHERE type = 'table'").fetchone()[0]
    except sqlite3.DatabaseError as err:
        raise StoreError(f"'{path}' is not a Nightschool database ({err}). {HOME_HINT}") from err
    if problems != ["ok"]:
        raise StoreError(f"'{path}' is not a Nightschool database (it is damaged). {HOME_HINT}")
    if version > len(MIGRATIONS):
        raise NewerSchemaError(
            f"'{path}' has schema version {version}, but this Nightschool knows only up to {len(MIGRATIONS)}. "
            "It was written by a newer Nightschool; update the app. The file was left untouched."
        )
    if version == 0 and table_count:
        raise StoreError(f"'{path}' is not a Nightschool database (it holds another program's tables). {HOME_HINT}")


class Store:
    """The app's only door to SQLite: chats are trees of messages, and one branch per chat is active."""

    def __init__(self, path: str | Path | None) -> None:
        """Opens (creating or migrating) the file at path; None keeps everything in memory so the app stays usable."""
        self.path: Path | None = Path(path) if path is not None else None
        if self.path is not None:
            _prepare_file(self.path)
        try:
            self._db = Database(self.path) if self.path is not None else Database(memory=True)
        except sqlite3.Error as err:
            raise StoreError(f"'{self.path}' cannot be opened ({err}). {WRITE_HINT}") from err
        try:
            self._db.execute("PRAGMA foreign_keys=ON")
            self._db.execute("PRAGMA synchronous=NORMAL")
            if self.path is not None:
                self._db.enable_wal()
            self._migrate()
        except sqlite3.Error as err:
            self._db.close()
            raise StoreError(f"'{self.path}' cannot be written ({err}). {WRITE_HINT}") from err

    @property
    def schema_version(self) -> int:
        """The migration count applied to this file, from PRAGMA user_version."""
        return self._db.execute("PRAGMA user_version").fetchone()[0]

    @property
    def is_memory(self) -> bool:
        """True when nothing is saved, so the UI can warn the user."""
        return self.path is None

    def close(self) -> None:
        """Closes the connection so the WAL is checkpointed into the main file."""
        self._db.close()

    @property
    def db(self) -> Database:
        """The connection, for modules that keep their own tables in this file (signals)."""
        return self._db

    @contextmanager
    def transaction(self) -> Iterator[None]:
        """Groups writes so a failure leaves none of them behind; a full disk becomes a StoreError that says so."""
        try:
            self._db.conn.execute("BEGIN")
            yield
            self._db.conn.execute("COMMIT")
        except BaseException as err:
            if self._db.conn.in_transaction:
                self._db.conn.execute("ROLLBACK")
            if isinstance(err, sqlite3.OperationalError):
                raise StoreError(
                    f"Could not save to '{self.path or 'memory'}' ({err}). Nothing was changed; "
                    "free some disk space and try again."
                ) from err
            raise

    def _migrate(self) -> None:
        """Applies the missing migrations, one transaction each, so a crash never leaves a half-migrated file."""
        for version in range(self.schema_version, len(MIGRATIONS)):
            with self.transaction():
                MIGRATIONS[version](self._db)
                self._db.execute(f"PRAGMA user_version = {version + 1}")

    def _one(self, sql: str, params: tuple[Any, ...], what: str) -> dict[str, Any]:
        """Fetches exactly one row, so an unknown id fails loudly instead of returning garbage."""
        rows = list(self._db.query(sql, params))
        if not rows:
            raise KeyError(f"no {what} {params[0]}")
        return rows[0]

    def _write(self, sql: str, params: tuple[Any, ...], what: str) -> None:
        """Runs one UPDATE/DELETE by id and raises KeyError when the id does not exist."""
        with self.transaction():
            if self._db.execute(sql, params).rowcount == 0:
                raise KeyError(f"no {what} {params[-1]}")

    def upsert_model(self, path: str, name: str, architecture: str, quantization: str, size_bytes: int) -> int:
        """Records a model file once per (path, size) so messages can say which model wrote them."""
        with self.transaction():
            self._db.execute(
                """INSERT INTO models (path, name, architecture, quantization, size_bytes, created_at)
                   VALUES (?, ?, ?, ?, ?, ?)
                   ON CONFLICT (path, size_bytes) DO UPDATE SET
                   name = excluded.name, architecture = excluded.architecture, quantization = excluded.quantization""",
                (path, name, architecture, quantization, size_bytes, utc_now()),
            )
            row = self._db.execute("SELECT id FROM models WHERE path = ? AND size_bytes = ?", (path, size_bytes))
            return row.fetchone()[0]

    def model(self, model_id: int) -> dict[str, Any] | None:
        """Looks up a model reference; None when the id is unknown."""
        rows = list(self._db.query("SELECT * FROM models WHERE id = ?", (model_id,)))
        return rows[0] if rows else None

    def create_conversation(self, title: str = DEFAULT_TITLE, system_prompt: str = "") -> int:
        """Starts an empty chat; its first message becomes the root."""
        now = utc_now()
        with self.transaction():
            cursor = self._db.execute(
                "INSERT INTO conversations (title, system_prompt, created_at, updated_at) VALUES (?, ?, ?, ?)",
                (title, system_prompt, now, now),
            )
        return cursor.lastrowid

    def rename_conversation(self, cid: int, title: str) -> None:
        """Sets the title shown in the sidebar."""
        self._write("UPDATE conversations SET title = ? WHERE id = ?", (title, cid), "conversation")

    def set_system_prompt(self, cid: int, text: str) -> None:
        """Sets the instructions sent before every turn of this chat."""
        self._write("UPDATE conversations SET system_prompt = ? WHERE id = ?", (text, cid), "conversation")

    def delete_conversation(self, cid: int) -> None:
        """Removes a chat; ON DELETE CASCADE takes its messages with it."""
        self._write("DELETE FROM conversations WHERE id = ?", (cid,), "conversation")

    def conversation(self, cid: int) -> dict[str, Any]:
        """One chat's row; KeyError when it does not exist."""
        return self._one("SELECT * FROM conversations WHERE id = ?", (cid,), "conversation")

    def list_conversations(self, search: str = "") -> list[dict[str, Any]]:
        """Sidebar contents, most recently active first, filtered by title or message text (ASCII case-insensitive)."""
        pattern = _like_pattern(search)
        return list(
            self._db.query(
                r"""SELECT * FROM conversations AS c
                    WHERE ? = '' OR c.title LIKE ? ESCAPE '\' OR EXISTS (
                        SELECT 1 FROM messages AS m WHERE m.conversation_id = c.id AND m.content LIKE ? ESCAPE '\')
                    ORDER BY c.updated_at DESC, c.id DESC""",
                (search, pattern, pattern),
            )
        )

    def add_message(
        self,
        cid: int,
        role: str,
        content: str,
        parent_id: int | None = None,
        model_id: int | None = None,
        finish_reason: str | None = None,
        stats: dict[str, Any] | None = None,
        author: str | None = None,
    ) -> int:
        """Appends a message under parent_id and makes it the chat's active leaf; author defaults by role."""
        if role not in ROLES:
            raise ValueError(f"role must be one of {ROLES}, not {role!r}")
        author = author or ("model" if role == "assistant" else "user")
        if author not in AUTHORS:
            raise ValueError(f"author must be one of {AUTHORS}, not {author!r}")
        _check_finish_reason(finish_reason)
        self.conversation(cid)
        if parent_id is not None and self.message(parent_id)["conversation_id"] != cid:
            raise ValueError(f"message {parent_id} belongs to another conversation than {cid}")
        now = utc_now()
        with self.transaction():
            mid = self._db.execute(
                """INSERT INTO messages
                   (conversation_id, parent_id, role, content, created_at, model_id, finish_reason, stats_json, author)
                   VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)""",
                (cid, parent_id, role, content, now, model_id, finish_reason, _encode_stats(stats), author),
            ).lastrowid
            self._db.execute(
                "UPDATE conversations SET current_leaf_id = ?, updated_at = ? WHERE id = ?", (mid, now, cid)
            )
        return mid

    def message(self, mid: int) -> dict[str, Any]:
        """One message with its stats decoded; KeyError when it does not exist."""
        return _decode_message(self._one("SELECT * FROM messages WHERE id = ?", (mid,), "message"))

    def path_to(self, mid: int) -> list[dict[str, Any]]:
        """The messages from the root down to mid: exactly what the model sees for that branch."""
        self.message(mid)
        rows = self._db.query(
            """WITH RECURSIVE chain(id, depth) AS (
                   SELECT id, 0 FROM messages WHERE id = ?
                   UNION ALL
                   SELECT m.parent_id, chain.depth + 1 FROM messages AS m JOIN chain ON m.id = chain.id
                   WHERE m.parent_id IS NOT NULL)
               SELECT messages.* FROM chain JOIN messages ON messages.id = chain.id ORDER BY chain.depth DESC""",
            (mid,),
        )
        return [_decode_message(row) for row in rows]

    def active_path(self, cid: int) -> list[dict[str, Any]]:
        """The branch the user is looking at; [] for a chat without messages."""
        leaf = self.conversation(cid)["current_leaf_id"]
        return self.path_to(leaf) if leaf is not None else []

    def siblings(self, mid: int) -> list[dict[str, Any]]:
        """Alternatives at mid's position (regenerations or edits), mid included, oldest first."""
        msg = self.message(mid)
        rows = self._db.query(
            "SELECT * FROM messages WHERE conversation_id = ? AND parent_id IS ? ORDER BY id",
            (msg["conversation_id"], msg["parent_id"]),
        )
        return [_decode_message(row) for row in rows]

    def select_branch(self, mid: int) -> int:
        """Switches to mid's branch, following the newest child down to a leaf, and returns that leaf."""
        cid = self.message(mid)["conversation_id"]
        leaf = mid
        newest_child = "SELECT max(id) FROM messages WHERE parent_id = ?"
        while (child := self._db.execute(newest_child, (leaf,)).fetchone()[0]) is not None:
            leaf = child
        self.set_leaf(cid, leaf)
        return leaf

    def set_leaf(self, cid: int, mid: int) -> None:
        """Makes mid the end of the chat's active branch."""
        if self.message(mid)["conversation_id"] != cid:
            raise ValueError(f"message {mid} belongs to another conversation than {cid}")
        self._write("UPDATE conversations SET current_leaf_id = ? WHERE id = ?", (mid, cid), "conversation")
