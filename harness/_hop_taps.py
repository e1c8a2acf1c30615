"""The taps on a stack's hops, each turned into one trace record: shared by ``run`` and ``serve --record``."""

from __future__ import annotations

import json
from abc import ABC, abstractmethod
from typing import Any, Final

__all__ = ["HopTaps"]

_OCPP_DIRECTION: Final = {"receive": "send", "send": "receive"}  # the CMS's view -> the charge point's (trace)


class HopTaps(ABC):
    """What the model, the apps, the OCPP links and the backend <-> CMS hops tell, as :meth:`record` calls."""

    @abstractmethod
    def record(self, hop: str, channel: str, direction: str, message: Any, *, status: int | None = None,
               user_id: int | None = None, socket_id: int | None = None, charger_id: str | None = None,
               request_id: str | None = None) -> None:
        """One message seen on ``hop`` (docs/trace-format.md)."""

    def twin(self, channel: str, direction: str, message: dict[str, Any]) -> None:
        """The twin's own records: the model's truth, the run's header and end."""
        self.record("twin", channel, direction, message)

    def app(self, channel: str, direction: str, message: Any, status: int | None, user_id: int | None,
            socket_id: int | None) -> None:
        """An app's REST call or WebSocket frame."""
        hop = "gateway-app" if channel == "websocket" else "app-backend"
        self.record(hop, channel, direction, message, status=status, user_id=user_id, socket_id=socket_id)

    def ocpp(self, charge_point_id: str, direction: str, frame: str) -> None:
        """An OCPP frame, as the CMS saw it (recorded from the charge point's side); text if it is not JSON."""
        try:
            message: Any = json.loads(frame)
        except ValueError:
            message = frame
        self.record("ocpp", f"ocpp:{charge_point_id}", _OCPP_DIRECTION.get(direction, direction), message,
                    charger_id=charge_point_id)

    def http(self, hop: str, channel: str, direction: str, message: Any, status: int | None,
             request_id: str) -> None:
        """A backend <-> CMS exchange (an :class:`~.http_tap.ExchangeTap`), with the charger a body names."""
        charger = message.get("charger_id") if isinstance(message, dict) else None
        self.record(hop, channel, direction, message, status=status, request_id=request_id,
                    charger_id=charger if isinstance(charger, str) else None)
