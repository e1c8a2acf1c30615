"""Where ``chargetwin serve`` keeps what must survive a restart: the backend's database and the control token.

::

    state = open_state(Path("~/.local/share/chargetwin/serve"), fresh=False)
    state.database        # .../backend.sqlite3: users, sessions, connector statuses, maintenance
    state.admin_token()   # the control API's token, made once and kept (readable by its owner only)

A restarted ``serve`` reads the database back; its backend then ends the
sessions the new world no longer carries (``BackendLogic.reconcile`` and the
chargers' boot statuses), so nobody is locked out.
"""

from __future__ import annotations

import os
import secrets
import sqlite3
from contextlib import closing
from dataclasses import dataclass
from pathlib import Path

import platformdirs

__all__ = ["ServeState", "StateError", "default_state_dir", "open_state"]

_DATABASE = "backend.sqlite3"
_TOKEN = "admin-token"


class StateError(Exception):
    """The state folder cannot be used; the message says which and what to do."""


def default_state_dir() -> Path:
    """``CHARGETWIN_STATE``, else ``serve`` in chargetwin's per-user data folder of this platform."""
    configured = os.environ.get("CHARGETWIN_STATE")
    if configured:
        return Path(configured).expanduser()
    return Path(platformdirs.user_data_dir("chargetwin", appauthor=False)) / "serve"


@dataclass(frozen=True, slots=True)
class ServeState:
    folder: Path

    @property
    def database(self) -> Path:
        return self.folder / _DATABASE

    def admin_token(self) -> str:
        """The control API's token: read from the folder, or made and written there the first time."""
        path = self.folder / _TOKEN
        try:
            token = path.read_text(encoding="utf-8").strip()
        except FileNotFoundError:
            token = ""
        except OSError as error:
            raise StateError(f"cannot read {path}: {error}") from None
        if token:
            return token
        token = secrets.token_urlsafe(24)
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
            with os.fdopen(fd, "w", encoding="utf-8") as out:
                out.write(token + "\n")
        except OSError as error:
            raise StateError(f"cannot write the control API's token to {path}: {error}") from None
        return token


def open_state(folder: Path, *, fresh: bool = False) -> ServeState:
    """The state folder, made if missing and checked usable; ``fresh`` forgets the stored sessions first."""
    folder = folder.expanduser()
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise StateError(f"cannot use {folder} as the state folder: {error}; choose another with --state DIR") \
            from None
    if not os.access(folder, os.W_OK | os.X_OK):
        raise StateError(f"the state folder {folder} is not writable; choose another with --state DIR")
    state = ServeState(folder)
    if fresh:
        for suffix in ("", "-wal", "-shm", "-journal"):
            (folder / (_DATABASE + suffix)).unlink(missing_ok=True)
    elif state.database.exists():
        _check_database(state.database)
    return state


def _check_database(path: Path) -> None:
    """A database file that SQLite cannot read is refused here, with what to do, not as a traceback later."""
    try:
        with closing(sqlite3.connect(f"file:{path}?mode=ro", uri=True)) as db:
            db.execute("SELECT name FROM sqlite_master LIMIT 1").fetchall()
    except sqlite3.Error as error:
        raise StateError(f"{path} is not a chargetwin database ({error}); move it away, or start with --fresh "
                         "to replace it") from None
