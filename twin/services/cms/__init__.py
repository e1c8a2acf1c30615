"""The CMS stub (the seed's "Python CMS"): an OCPP 1.6J central system, its REST API, events to the backend.

Start it in a running asyncio loop::

    cms = Cms(settings=settings, stations=[s.spec for s in world.network.stations], clock=clock)
    await cms.start()          # OCPP on settings.ocpp_port, REST on settings.cms_port
    ...
    await cms.stop()

Modules: :mod:`.central` (what the central system knows and decides, no
I/O), :mod:`.ocpp_server` (OCPP-J over websockets), :mod:`.rest` (FastAPI),
:mod:`.delivery` (events to the backend), :mod:`.service` (:class:`Cms`).
"""

from __future__ import annotations

from .central import CentralSystem, Transaction
from .delivery import EventDelivery
from .exceptions import (
    AmbiguousTransactionError,
    ChargePointOfflineError,
    ChargePointTimeoutError,
    CmsError,
    CmsStartError,
    CommandRejectedError,
    NoTransactionError,
    UnknownChargePointError,
    UnknownConnectorError,
)
from .service import Cms

__all__ = [
    "AmbiguousTransactionError",
    "CentralSystem",
    "ChargePointOfflineError",
    "ChargePointTimeoutError",
    "Cms",
    "CmsError",
    "CmsStartError",
    "CommandRejectedError",
    "EventDelivery",
    "NoTransactionError",
    "Transaction",
    "UnknownChargePointError",
    "UnknownConnectorError",
]
