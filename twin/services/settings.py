"""Settings shared by the reference services: ports, URLs, secrets, limits.

One frozen :class:`Settings` is made by ``chargetwin serve`` (or a test) and
handed to every service. Environment variables override the defaults
(:meth:`Settings.from_env`), so a service can also run on its own.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, fields, replace

from .faults import check_fault

__all__ = ["Settings"]


@dataclass(frozen=True, slots=True)
class Settings:
    """Where each service listens and what it trusts.

    Ports 0 mean "any free port" (tests); the defaults are DESIGN.md's.
    """

    host: str = "127.0.0.1"
    backend_port: int = 8000
    cms_port: int = 8001
    ocpp_port: int = 9000
    gateway_port: int = 8080
    redis_url: str | None = None
    backend_base_url: str | None = None  # where the others reach the backend; None: http://host:backend_port
    cms_base_url: str | None = None  # where the backend reaches the CMS's REST API; None: http://host:cms_port
    jwt_secret: str = "chargetwin-development-secret-for-test-systems-only-change-it-in-production"
    jwt_ttl_s: int = 24 * 3600
    internal_token: str = "chargetwin-internal-token"
    admin_token: str | None = None  # the twin's control API (/twin/...); None: the control API is off
    max_body_bytes: int = 64 * 1024  # request bodies above this are answered 413 before they are read
    cors_origins: str = "loopback"  # origins a browser app may call from: "loopback", "*" or a comma-separated list
    database: str = "chargetwin.sqlite3"
    cms_timeout_s: float = 10.0
    gateway_max_connections: int = 10_000
    gateway_ping_interval_s: float = 30.0
    gateway_ping_timeout_s: float = 30.0
    gateway_max_buffer_bytes: int = 1 << 20
    gateway_max_connections_per_user: int = 10  # SPEC-NOTES N-57
    gateway_max_client_frame_bytes: int = 4096  # a larger frame from an app closes its socket with 1009
    gateway_client_frames_per_10s: int = 20  # more frames from an app close its socket (1008 Too many messages)
    gateway_open_timeout_s: float = 10.0  # a handshake not done by then is dropped
    inject_fault: str | None = None  # tests only: twin/services/faults.py

    def __post_init__(self) -> None:
        check_fault(self.inject_fault)

    @property
    def backend_url(self) -> str:
        return self.backend_base_url or f"http://{self.host}:{self.backend_port}"

    @property
    def cms_url(self) -> str:
        return self.cms_base_url or f"http://{self.host}:{self.cms_port}"

    @property
    def ocpp_url(self) -> str:
        return f"ws://{self.host}:{self.ocpp_port}"

    @property
    def gateway_url(self) -> str:
        return f"ws://{self.host}:{self.gateway_port}"

    @classmethod
    def from_env(cls, environ: dict[str, str] | None = None) -> Settings:
        """Defaults overridden by ``CHARGETWIN_<FIELD>`` variables, and ``REDIS_URL``."""
        env = os.environ if environ is None else environ
        settings = cls(redis_url=env.get("REDIS_URL") or None)
        changes: dict[str, object] = {}
        for f in fields(cls):
            raw = env.get(f"CHARGETWIN_{f.name.upper()}")
            if raw is None:
                continue
            kind = type(getattr(settings, f.name)) if getattr(settings, f.name) is not None else str
            try:
                changes[f.name] = kind(raw)
            except ValueError:
                raise ValueError(f"CHARGETWIN_{f.name.upper()}={raw!r} is not a valid {kind.__name__}") from None
        return replace(settings, **changes)  # type: ignore[arg-type]
