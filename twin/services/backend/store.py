"""The backend's SQLite database (``settings.database``): users, sessions, connector statuses, maintenance.

Every change the logic makes is saved here before anything is published, so
a restarted backend (a new app on the same file) continues every session.

The stdlib ``sqlite3`` runs inline on the event loop: each save is one small
transaction in WAL mode with ``synchronous=NORMAL`` (no fsync per commit),
tens of microseconds, cheaper than a hop to a worker thread.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import sqlite3
from collections.abc import Iterable
from dataclasses import astuple, dataclass, fields
from pathlib import Path

from ..users import TestUser
from .logic import Effects
from .state import CLOSED_STATUSES, ConnectorState, Session

__all__ = ["Store", "StoredState"]

_SCHEMA = """
CREATE TABLE IF NOT EXISTS users (
    user_id INTEGER PRIMARY KEY,
    id_tag TEXT NOT NULL UNIQUE,
    email TEXT NOT NULL UNIQUE,
    name TEXT NOT NULL,
    password_salt TEXT NOT NULL,
    password_hash TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS sessions (
    session_id INTEGER PRIMARY KEY,
    user_id INTEGER NOT NULL,
    id_tag TEXT NOT NULL,
    charger_id TEXT NOT NULL,
    connector_id INTEGER NOT NULL,
    station_id TEXT NOT NULL,
    status TEXT NOT NULL,
    created_at TEXT NOT NULL,
    transaction_id INTEGER,
    meter_start INTEGER,
    start_time TEXT,
    meter_wh INTEGER NOT NULL,
    soc INTEGER,
    soc_first INTEGER,
    wh_at_soc_first INTEGER,
    power_kw REAL NOT NULL,
    stop_requested INTEGER NOT NULL,
    meter_stop INTEGER,
    stop_time TEXT,
    stop_reason TEXT
);
CREATE INDEX IF NOT EXISTS sessions_open ON sessions (status);
CREATE TABLE IF NOT EXISTS connectors (
    charger_id TEXT NOT NULL,
    connector_id INTEGER NOT NULL,
    status TEXT NOT NULL,
    error_code TEXT,
    updated_at TEXT,
    PRIMARY KEY (charger_id, connector_id)
);
CREATE TABLE IF NOT EXISTS maintenance (
    station_id TEXT PRIMARY KEY,
    reason TEXT
);
"""

_SESSION_COLUMNS = [f.name for f in fields(Session)]
_SAVE_SESSION = (f"INSERT OR REPLACE INTO sessions ({', '.join(_SESSION_COLUMNS)}) "
                 f"VALUES ({', '.join('?' * len(_SESSION_COLUMNS))})")
_CLOSED = ", ".join(f"'{s}'" for s in sorted(CLOSED_STATUSES))


def _hash(password: str, salt: str) -> str:
    # A test system's users with a known password: a salted SHA-256 is enough, and fast for thousands of users.
    return hashlib.sha256(f"{salt}:{password}".encode()).hexdigest()


@dataclass(slots=True)
class StoredState:
    """What :meth:`Store.load` found: open sessions, connector statuses, maintenance, the next session id."""

    sessions: list[Session]
    connectors: list[ConnectorState]
    maintenance: dict[str, str | None]
    next_session_id: int


class Store:
    """One SQLite connection; make it, :meth:`load`, :meth:`save` many times, :meth:`close`."""

    def __init__(self, path: str | Path) -> None:
        self.path = str(path)
        self._db = sqlite3.connect(self.path, isolation_level=None)
        try:
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA synchronous=NORMAL")
            self._db.executescript(_SCHEMA)
        except sqlite3.Error:
            self._db.close()
            raise

    def close(self) -> None:
        self._db.close()

    def sync_users(self, users: Iterable[TestUser]) -> None:
        """Make the ``users`` table hold exactly these users (passwords salted and hashed)."""
        rows = []
        for user in users:
            salt = secrets.token_hex(8)
            rows.append((user.user_id, user.id_tag, user.email, user.name, salt, _hash(user.password, salt)))
        with self._transaction():
            self._db.execute("DELETE FROM users")
            self._db.executemany("INSERT INTO users VALUES (?, ?, ?, ?, ?, ?)", rows)

    def check_password(self, email: str, password: str) -> int | None:
        """The user id of ``email`` if ``password`` is theirs, else None."""
        row = self._db.execute("SELECT user_id, password_salt, password_hash FROM users "
                               "WHERE email = ? COLLATE NOCASE", (email,)).fetchone()
        if row is None:
            _hash(password, "no such user")  # about the same work either way
            return None
        user_id, salt, stored = row
        return int(user_id) if hmac.compare_digest(_hash(password, salt), stored) else None

    def load(self) -> StoredState:
        """Open sessions, connector statuses, maintenance and the next free session id."""
        sessions = [Session(*row) for row in self._db.execute(
            f"SELECT {', '.join(_SESSION_COLUMNS)} FROM sessions WHERE status NOT IN ({_CLOSED})")]
        for session in sessions:
            session.stop_requested = bool(session.stop_requested)
        connectors = [ConnectorState(*row) for row in self._db.execute(
            "SELECT charger_id, connector_id, status, error_code, updated_at FROM connectors")]
        maintenance = dict(self._db.execute("SELECT station_id, reason FROM maintenance").fetchall())
        (last,) = self._db.execute("SELECT COALESCE(MAX(session_id), 0) FROM sessions").fetchone()
        return StoredState(sessions, connectors, maintenance, int(last) + 1)

    def next_transaction_id(self) -> int:
        """One more than the highest transaction id ever stored (1 for a new database).

        A CMS started next to this backend numbers its transactions from here,
        so that ids never collide with those of earlier runs.
        """
        (last,) = self._db.execute("SELECT COALESCE(MAX(transaction_id), 0) FROM sessions").fetchone()
        return int(last) + 1

    def session(self, session_id: int) -> Session | None:
        """One session row, open or closed."""
        row = self._db.execute(f"SELECT {', '.join(_SESSION_COLUMNS)} FROM sessions WHERE session_id = ?",
                               (session_id,)).fetchone()
        if row is None:
            return None
        session = Session(*row)
        session.stop_requested = bool(session.stop_requested)
        return session

    def save(self, effects: Effects) -> None:
        """Save the rows ``effects`` changed, in one transaction."""
        if not (effects.sessions or effects.connectors or effects.maintenance):
            return
        with self._transaction():
            self._db.executemany(_SAVE_SESSION, [astuple(s) for s in effects.sessions.values()])
            self._db.executemany("INSERT OR REPLACE INTO connectors VALUES (?, ?, ?, ?, ?)",
                                 [astuple(c) for c in effects.connectors.values()])
            for station_id, (under, reason) in effects.maintenance.items():
                if under:
                    self._db.execute("INSERT OR REPLACE INTO maintenance VALUES (?, ?)", (station_id, reason))
                else:
                    self._db.execute("DELETE FROM maintenance WHERE station_id = ?", (station_id,))

    def _transaction(self) -> _Transaction:
        return _Transaction(self._db)


class _Transaction:
    """``BEGIN`` ... ``COMMIT``, or ``ROLLBACK`` on an exception (the connection is in autocommit mode)."""

    def __init__(self, db: sqlite3.Connection) -> None:
        self._db = db

    def __enter__(self) -> None:
        self._db.execute("BEGIN")

    def __exit__(self, kind: object, value: object, traceback: object) -> None:
        self._db.execute("COMMIT" if kind is None else "ROLLBACK")
