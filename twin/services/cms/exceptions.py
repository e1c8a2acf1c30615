"""Errors of the CMS stub's commands, each with the HTTP status its REST API answers::

    CmsError
    ├── CmsStartError               (-)  the CMS cannot listen on a port (raised by start())
    ├── UnknownChargePointError     404  no such charge point in the network
    ├── UnknownConnectorError       404  the charge point has no such connector
    ├── NoTransactionError          404  no running transaction matches a stop
    ├── AmbiguousTransactionError   409  a stop naming only the charger finds several
    ├── CommandRejectedError        409  the charge point answered Rejected (or a CallError)
    ├── ChargePointOfflineError     503  the charge point has no OCPP connection
    └── ChargePointTimeoutError     504  the charge point did not answer in time

``title`` is the short, stable ``error`` of the REST envelope
(``rest/error.schema.json``); the exception's text is its ``message``.
"""

from __future__ import annotations

__all__ = [
    "AmbiguousTransactionError",
    "ChargePointOfflineError",
    "ChargePointTimeoutError",
    "CmsError",
    "CmsStartError",
    "CommandRejectedError",
    "NoTransactionError",
    "UnknownChargePointError",
    "UnknownConnectorError",
]


class CmsError(Exception):
    """Base class: a command the CMS could not carry out."""

    status: int = 500
    title: str = "CMS error"


class CmsStartError(CmsError):
    """A port is taken or cannot be bound; the message names it and the setting to change."""


class UnknownChargePointError(CmsError):
    status, title = 404, "Unknown charger"


class UnknownConnectorError(CmsError):
    status, title = 404, "Unknown connector"


class NoTransactionError(CmsError):
    status, title = 404, "No active transaction"


class AmbiguousTransactionError(CmsError):
    status, title = 409, "Ambiguous stop"


class CommandRejectedError(CmsError):
    status, title = 409, "Rejected by charger"


class ChargePointOfflineError(CmsError):
    status, title = 503, "Charger offline"


class ChargePointTimeoutError(CmsError):
    status, title = 504, "Charger timeout"
