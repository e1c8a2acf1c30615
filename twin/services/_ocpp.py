"""Typed handles on the ``ocpp`` package (which ships no type information), shared by the CMS and the charge points.

``OcppChargePoint`` is ``ocpp.v16.ChargePoint`` (OCPP 1.6J over any object
with ``recv``/``send``); ``on`` is ``ocpp.routing.on``, typed so that
decorated handlers keep their signatures.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any, TypeVar, cast

import ocpp.routing

__all__ = ["SUBPROTOCOL", "OcppChargePoint", "after", "on"]

SUBPROTOCOL = "ocpp1.6"
"""The WebSocket subprotocol of OCPP 1.6J (OCPP-J 1.6, section 3.1.2)."""

_Handler = TypeVar("_Handler", bound=Callable[..., Any])


def on(action: str) -> Callable[[_Handler], _Handler]:
    """``ocpp.routing.on``: mark a method as the handler of ``action`` (an ``ocpp.v16.enums.Action``)."""
    return cast(Callable[[_Handler], _Handler], ocpp.routing.on(action))


def after(action: str) -> Callable[[_Handler], _Handler]:
    """``ocpp.routing.after``: mark a method to run once ``action`` has been answered."""
    return cast(Callable[[_Handler], _Handler], ocpp.routing.after(action))


if TYPE_CHECKING:

    class OcppChargePoint:
        """What chargetwin uses of ``ocpp.v16.ChargePoint``."""

        id: str

        def __init__(self, id: str, connection: Any, response_timeout: float = 30) -> None: ...

        async def start(self) -> None: ...

        async def call(self, payload: Any, suppress: bool = True, unique_id: Any = None,
                       skip_schema_validation: bool = False) -> Any: ...

        async def route_message(self, raw_msg: str) -> None: ...

        async def _send(self, message: str) -> None: ...

else:
    from ocpp.exceptions import NotImplementedError as _NotImplemented
    from ocpp.exceptions import NotSupportedError as _NotSupported
    from ocpp.v16 import ChargePoint as _ChargePoint
    from ocpp.v16.enums import Action as _Action

    _ACTIONS = frozenset(action.value for action in _Action)

    class OcppChargePoint(_ChargePoint):
        """``ocpp.v16.ChargePoint`` answering an unhandled CALL with OCPP-J 1.6's CALLERROR code (section 4.2.3):
        ``NotSupported`` for an OCPP 1.6 action this side does not support, ``NotImplemented`` for an action
        OCPP 1.6 does not know. (The ``ocpp`` package answers them the other way round.)"""

        async def _handle_call(self, msg: Any) -> None:
            if "_on_action" not in self.route_map.get(msg.action, {}):
                if msg.action in _ACTIONS:
                    raise _NotSupported(description="Requested Action is recognized but not supported by the "
                                                    "receiver", details={"cause": f"{msg.action} is not supported"})
                raise _NotImplemented(description="Requested Action is not known by receiver",
                                      details={"cause": f"{msg.action!r} is not an OCPP 1.6 action"})
            await super()._handle_call(msg)
