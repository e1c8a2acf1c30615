"""``chargetwin serve``'s state folder: where it is, what --fresh forgets, what a broken one says."""

from __future__ import annotations

import stat
import subprocess
import sys
from pathlib import Path

import pytest

from chargetwin._serve_state import StateError, default_state_dir, open_state


def test_the_default_is_the_platforms_data_folder_unless_configured(monkeypatch: pytest.MonkeyPatch,
                                                                     tmp_path: Path) -> None:
    monkeypatch.delenv("CHARGETWIN_STATE", raising=False)
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "data"))
    assert default_state_dir() == tmp_path / "data" / "chargetwin" / "serve"
    monkeypatch.setenv("CHARGETWIN_STATE", str(tmp_path / "mine"))
    assert default_state_dir() == tmp_path / "mine"


def test_the_admin_token_is_made_once_kept_and_private(tmp_path: Path) -> None:
    state = open_state(tmp_path / "state")
    token = state.admin_token()
    assert len(token) >= 24 and open_state(tmp_path / "state").admin_token() == token
    assert stat.S_IMODE((tmp_path / "state" / "admin-token").stat().st_mode) == 0o600


def test_fresh_forgets_the_database_and_keeps_the_token(tmp_path: Path) -> None:
    state = open_state(tmp_path)
    token = state.admin_token()
    for name in ("backend.sqlite3", "backend.sqlite3-wal"):
        (tmp_path / name).write_bytes(b"")
    assert not open_state(tmp_path, fresh=True).database.exists()
    assert not (tmp_path / "backend.sqlite3-wal").exists()
    assert open_state(tmp_path).admin_token() == token


def test_a_file_that_is_not_a_database_is_refused_with_what_to_do(tmp_path: Path) -> None:
    (tmp_path / "backend.sqlite3").write_bytes(b"this is not SQLite at all, but long enough to look like a header")
    with pytest.raises(StateError, match=r"not a chargetwin database.*--fresh"):
        open_state(tmp_path)


def test_serve_says_which_folder_is_unusable(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("x")
    result = subprocess.run([sys.executable, "-m", "chargetwin", "serve", "--state", str(blocker / "sub")],
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 2
    assert "cannot use" in result.stderr and "--state DIR" in result.stderr and "Traceback" not in result.stderr
