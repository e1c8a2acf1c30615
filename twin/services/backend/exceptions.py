"""Errors of the reference backend.

Every error the app sees is an :class:`ApiError`: an HTTP status, a short
stable title (``error``) and a sentence for people (``message``), sent as the
``{success: false, error, message}`` envelope (DESIGN ruling 6)::

    BackendError              anything the backend raises on purpose
    ├── ApiError              an answer to the client: status, error, message
    │   └── CmsError          the CMS failed, refused or could not be reached
    └── BackendStartError     the backend could not start (database, Redis)
"""

from __future__ import annotations

__all__ = ["ApiError", "BackendError", "BackendStartError", "CmsError"]


class BackendError(Exception):
    """Base of the backend's errors."""


class ApiError(BackendError):
    """An error answer: HTTP ``status``, title ``error`` and ``message`` (ruling 6)."""

    def __init__(self, status: int, error: str, message: str) -> None:
        super().__init__(f"{status} {error}: {message}")
        self.status = status
        self.error = error
        self.message = message

    def envelope(self) -> dict[str, object]:
        """The JSON body: ``rest/error.schema.json``."""
        return {"success": False, "error": self.error, "message": self.message}


class CmsError(ApiError):
    """The CMS did not do what was asked; ``status`` is what the app gets (404, 409, 502, 503)."""


class BackendStartError(BackendError):
    """The backend could not open its database or reach Redis at start."""
