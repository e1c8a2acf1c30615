"""Exceptions of the reference gateway.

.. code-block:: text

    GatewayError
    └── GatewayStartError   the gateway could not start (port taken, Redis unreachable)

Bad tokens raise :class:`chargetwin.twin.services.auth.AuthError`. Close codes
sent to apps are not exceptions: they are decisions of
:class:`~chargetwin.twin.services.gateway.routing.Router` (see ``Rejection``).
"""

from __future__ import annotations

__all__ = ["GatewayError", "GatewayStartError"]


class GatewayError(Exception):
    """Base class of the gateway's exceptions."""


class GatewayStartError(GatewayError):
    """The gateway could not start; the message says what to check."""
