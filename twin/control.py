"""The twin's operator: what the control API (:mod:`.control_api`) does to a running :class:`~.stack.Stack`.

Every action goes the way the real system would carry it, so that what an
app sees is what it would see in production:

- maintenance: the CMS sends ChangeAvailability (connector 0) to each charge
  point of the station; once their Unavailable statuses reached the backend,
  the back office marks the station, so that one ``charger_status_update``
  carries both (the seed's maintenance example);
- faults, repairs, a session's state of charge, its end: the model changes,
  and the simulated charge points report it over OCPP;
- a charge point's connection: the simulated charge point drops it, and
  queues its messages until it connects again;
- notifications and ``session_error``: the backend publishes them;
- any OCPP 1.6J call of the central system: the CMS sends it and returns
  the charge point's answer (also to a charge point that is not ours).

Errors are :class:`~.services.backend.exceptions.ApiError` (the backend's
error envelope): 404 for an unknown station, charge point or user, 409 for
an action the state does not allow, 422 for a payload that is not valid,
502/504 when a charge point refuses or does not answer.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterable, Sequence
from dataclasses import asdict, is_dataclass, replace
from datetime import UTC
from typing import TYPE_CHECKING, Any

from ocpp.charge_point import camel_to_snake_case, remove_nones, snake_to_camel_case
from ocpp.exceptions import OCPPError
from ocpp.messages import Call, validate_payload
from ocpp.v16 import call as ocpp_call

from .model.config import ChargePointSpec, StationSpec
from .model.exceptions import UnknownTargetError
from .services.backend.exceptions import ApiError
from .services.backend.state import Network
from .services.cms.exceptions import (
    ChargePointOfflineError,
    ChargePointTimeoutError,
    CmsError,
    CommandRejectedError,
)

if TYPE_CHECKING:
    from .stack import Stack

__all__ = ["CENTRAL_SYSTEM_CALLS", "TwinControl"]

CENTRAL_SYSTEM_CALLS = frozenset({
    "CancelReservation", "ChangeAvailability", "ChangeConfiguration", "ClearCache", "ClearChargingProfile",
    "DataTransfer", "GetCompositeSchedule", "GetConfiguration", "GetDiagnostics", "GetLocalListVersion",
    "RemoteStartTransaction", "RemoteStopTransaction", "ReserveNow", "Reset", "SendLocalList",
    "SetChargingProfile", "TriggerMessage", "UnlockConnector", "UpdateFirmware",
})
"""OCPP 1.6J calls a central system may send to a charge point (OCPP 1.6 section 5)."""

STATUS_WAIT_S = 5.0
"""How long (wall seconds) maintenance waits for the connectors' statuses to reach the backend."""


def _not_found(error: UnknownTargetError) -> ApiError:
    return ApiError(404, "Not found", str(error))


class TwinControl:
    """Actions on one running stack; each returns what the control API answers in ``data``."""

    def __init__(self, stack: Stack) -> None:
        self._stack = stack
        self._external: set[str] = set()  # charge points added for someone else's to connect as

    # --- stations --------------------------------------------------------------------

    async def maintenance(self, station_id: str, under: bool, reason: str | None) -> dict[str, Any]:
        """A station into maintenance (connectors Unavailable over OCPP) or out of it."""
        stack = self._stack
        station = stack.world.stations.get(station_id)
        if station is None:
            raise ApiError(404, "Station not found", f"There is no station {station_id!r}.")
        stack.world.set_under_maintenance(station_id, under)
        answers = {}
        for cp in station.charge_points:
            answers[cp.id] = await self._availability(cp.id, operative=not under)
        wanted = {"Unavailable"} if under else {"Available", "Preparing", "Charging", "SuspendedEV",
                                                "SuspendedEVSE", "Finishing", "Faulted"}
        await self._statuses_reached([(cp.id, c.id) for cp in station.charge_points for c in cp.connectors],
                                     wanted, running_ok=under)
        await self._backend().service.set_maintenance(station_id, under, reason=reason if under else None)
        return {"station_id": station_id, "under_maintenance": under, "reason": reason if under else None,
                "change_availability": answers}

    async def _availability(self, charge_point_id: str, *, operative: bool) -> str:
        cms = self._stack.cms
        assert cms is not None
        try:
            return await cms.change_availability(charge_point_id, 0, operative=operative)
        except CmsError as error:  # offline: it will report its statuses when it boots again
            return f"not sent: {error}"

    async def _statuses_reached(self, connectors: Iterable[tuple[str, int]], wanted: set[str], *,
                                running_ok: bool) -> None:
        """Wait until the backend has one of ``wanted`` for every connector (or one still carries a session)."""
        logic = self._backend().service.logic
        pending = list(connectors)
        deadline = time.monotonic() + STATUS_WAIT_S
        while pending and time.monotonic() < deadline:
            pending = [(cp, c) for cp, c in pending if logic.status_of(cp, c) not in wanted
                       and not (running_ok and logic.session_on(cp, c) is not None)]
            if pending:
                await asyncio.sleep(0.02)

    async def add_station(self, spec: StationSpec, *, external: Iterable[str] = ()) -> dict[str, Any]:
        """A new station with its charge points: on every app's list, known to the CMS, and simulated and
        connected unless ``external`` names them (left for a charge point of someone else's to connect)."""
        stack = self._stack
        outside = set(external)
        if spec.id in self._network().stations or any(self._listed(cp.id) for cp in spec.charge_points):
            raise ApiError(409, "Already in the network", f"{spec.id} or one of its charge points is listed.")
        stack.world.add_station(replace(spec, charge_points=tuple(cp for cp in spec.charge_points
                                                                  if cp.id not in outside)))
        self._external |= outside
        await self._connect_new(spec, [cp for cp in spec.charge_points if cp.id not in outside])
        return {"station_id": spec.id, "charge_points": [cp.id for cp in spec.charge_points],
                "external": sorted(outside)}

    async def remove_station(self, station_id: str) -> dict[str, Any]:
        """Take a station out: its charge points disconnect for good, and apps get the shorter list."""
        stack = self._stack
        assert stack.cms is not None and stack.fleet is not None
        listed = self._network().stations.get(station_id)
        if listed is None:
            raise ApiError(404, "Station not found", f"There is no station {station_id!r}.")
        try:
            stack.world.remove_station(station_id)
        except ValueError as error:
            raise ApiError(409, "Station in use", str(error)) from None
        ids = [cp.id for cp in listed.charge_points]
        await stack.fleet.remove(ids)
        stack.cms.central.forget(ids)
        self._external -= set(ids)
        await self._backend().service.change_network(None, removed=station_id)
        return {"station_id": station_id, "removed": True, "charge_points": ids}

    async def add_charge_point(self, station_id: str, spec: ChargePointSpec, *,
                               external: bool = False) -> dict[str, Any]:
        """A new charge point at a station: on every app's list, simulated and connected unless ``external``."""
        listed = self._network().stations.get(station_id)
        if listed is None:
            raise ApiError(404, "Station not found", f"There is no station {station_id!r}.")
        if self._listed(spec.id):
            raise ApiError(409, "Already in the network", f"Charge point {spec.id!r} is already listed.")
        if external:
            self._external.add(spec.id)
        else:
            self._stack.world.add_charge_point(station_id, spec)
        station = replace(listed, charge_points=(*listed.charge_points, spec))
        await self._connect_new(station, [] if external else [spec])
        return {"station_id": station_id, "charge_point_id": spec.id, "external": external}

    async def remove_charge_point(self, charge_point_id: str) -> dict[str, Any]:
        """Take a charge point out of its station: it disconnects for good, and apps get the new list."""
        stack = self._stack
        assert stack.cms is not None and stack.fleet is not None
        network = self._network()
        listed = network.station_of.get(charge_point_id)
        if listed is None:
            raise ApiError(404, "Charge point not found", f"There is no charge point {charge_point_id!r}.")
        if len(listed.charge_points) == 1:
            raise ApiError(409, "Charge point in use", f"{charge_point_id} is the last charge point of "
                                                       f"{listed.id}: remove the station instead")
        if charge_point_id not in self._external:
            try:
                stack.world.remove_charge_point(charge_point_id)
            except ValueError as error:
                raise ApiError(409, "Charge point in use", str(error)) from None
        self._external.discard(charge_point_id)
        await stack.fleet.remove([charge_point_id])
        stack.cms.central.forget([charge_point_id])
        station = replace(listed, charge_points=tuple(cp for cp in listed.charge_points if cp.id != charge_point_id))
        await self._backend().service.change_network(station)
        return {"station_id": listed.id, "charge_point_id": charge_point_id, "removed": True}

    async def _connect_new(self, station: StationSpec, simulated: Sequence[ChargePointSpec]) -> None:
        """Charge points new to the network: the CMS knows them, the backend lists them, the simulated ones
        boot, and the list goes out again with the statuses they reported."""
        stack = self._stack
        assert stack.cms is not None and stack.fleet is not None and stack.clock is not None
        stack.cms.central.add(station)
        service = self._backend().service
        await service.change_network(station)
        if simulated:
            stack.fleet.add(stack.world, stack.clock, [cp.id for cp in simulated])
            await self._statuses_reached([(cp.id, n) for cp in simulated for n in range(1, cp.connectors + 1)],
                                         {"Available"}, running_ok=False)
            await service.change_network(station)

    def _network(self) -> Network:
        """The network as the backend lists it (the model holds only the simulated charge points)."""
        network: Network = self._backend().service.network
        return network

    def _listed(self, charge_point_id: str) -> bool:
        return charge_point_id in self._network().charge_points

    # --- charge points ---------------------------------------------------------------

    def fault(self, charge_point_id: str, error_code: str, connector_id: int | None) -> dict[str, Any]:
        try:
            self._stack.world.fault(charge_point_id, error_code, connector_id=connector_id)
        except UnknownTargetError as error:
            raise _not_found(error) from None
        return {"charge_point_id": charge_point_id, "connector_id": connector_id, "error_code": error_code,
                "faulted": True}

    def repair(self, charge_point_id: str, connector_id: int | None) -> dict[str, Any]:
        try:
            self._stack.world.repair(charge_point_id, connector_id=connector_id)
        except UnknownTargetError as error:
            raise _not_found(error) from None
        return {"charge_point_id": charge_point_id, "connector_id": connector_id, "faulted": False}

    async def disconnect(self, charge_point_id: str) -> dict[str, Any]:
        simulated = self._simulated(charge_point_id)
        await simulated.disconnect()
        return {"charge_point_id": charge_point_id, "connected": False}

    async def reconnect(self, charge_point_id: str, wait_s: float = 10.0) -> dict[str, Any]:
        simulated = self._simulated(charge_point_id)
        simulated.reconnect()
        try:
            async with asyncio.timeout(wait_s):
                await simulated.ready.wait()
        except TimeoutError:
            raise ApiError(504, "Charge point did not reconnect",
                           f"{charge_point_id} did not boot again within {wait_s:g} s.") from None
        return {"charge_point_id": charge_point_id, "connected": True}

    def _simulated(self, charge_point_id: str) -> Any:
        fleet = self._stack.fleet
        simulated = None if fleet is None else fleet.charge_points.get(charge_point_id)
        if simulated is None:
            raise ApiError(404, "Charge point not found", f"There is no simulated charge point {charge_point_id!r}.")
        return simulated

    async def ocpp(self, charge_point_id: str, action: str, payload: dict[str, Any]) -> dict[str, Any]:
        """Send an OCPP 1.6J call from the CMS to a charge point; the charge point's answer."""
        if action not in CENTRAL_SYSTEM_CALLS:
            raise ApiError(404, "Unknown OCPP call", f"{action!r} is not a call a central system sends in "
                                                     f"OCPP 1.6J; one of: {', '.join(sorted(CENTRAL_SYSTEM_CALLS))}.")
        try:
            await validate_payload(Call(unique_id="control", action=action, payload=payload), ocpp_version="1.6")
            request = getattr(ocpp_call, action)(**camel_to_snake_case(payload))
        except OCPPError as error:
            raise ApiError(422, "Invalid OCPP payload", f"{action}: {error.description}: {error.details}") \
                from None
        except TypeError as error:
            raise ApiError(422, "Invalid OCPP payload", f"{action}: {error}") from None
        cms = self._stack.cms
        assert cms is not None and cms.ocpp is not None
        try:
            answer = await cms.ocpp.call(charge_point_id, request)
        except ChargePointOfflineError as error:
            raise ApiError(409, "Charge point offline", str(error)) from None
        except ChargePointTimeoutError as error:
            raise ApiError(504, "Charge point did not answer", str(error)) from None
        except CommandRejectedError as error:
            return {"charge_point_id": charge_point_id, "action": action, "call_error": str(error)}
        return {"charge_point_id": charge_point_id, "action": action,
                "answer": snake_to_camel_case(remove_nones(_as_dict(answer)))}

    def set_id_tag(self, id_tag: str, status: str) -> dict[str, Any]:
        """What the CMS answers Authorize and StartTransaction for ``id_tag`` from now on."""
        cms = self._stack.cms
        assert cms is not None
        cms.central.id_tags.set(id_tag, status)
        return {"id_tag": id_tag, "status": status}

    # --- sessions and users ----------------------------------------------------------

    def jump_session(self, user_id: int, soc_percent: float) -> dict[str, Any]:
        try:
            session = self._stack.world.jump_session(user_id, soc_percent / 100)
        except UnknownTargetError as error:
            raise ApiError(404, "No running session", str(error)) from None
        except ValueError as error:
            raise ApiError(409, "Cannot jump there", str(error)) from None
        return {"user_id": user_id, "charge_point_id": session.charge_point_id,
                "connector_id": session.connector_id, "soc": round(soc_percent)}

    def finish_session(self, user_id: int) -> dict[str, Any]:
        try:
            session = self._stack.world.finish_session(user_id)
        except UnknownTargetError as error:
            raise ApiError(404, "No running session", str(error)) from None
        return {"user_id": user_id, "charge_point_id": session.charge_point_id,
                "connector_id": session.connector_id, "finished": True}

    async def notify(self, user_id: int, title: str, text: str, data: dict[str, Any]) -> dict[str, Any]:
        await self._backend().service.notify(user_id, title, text, data)
        return {"user_id": user_id, "title": title}

    async def session_error(self, user_id: int, error: str, text: str, error_code: str | None) -> dict[str, Any]:
        await self._backend().service.session_error(user_id, error, text, error_code)
        return {"user_id": user_id, "error": error}

    # --- the clock -------------------------------------------------------------------

    def clock(self) -> dict[str, Any]:
        clock = self._stack.clock
        assert clock is not None
        now = clock.now().astimezone(UTC).replace(microsecond=0)
        runner = self._stack.runner
        return {"speed": clock.speed, "now": now.isoformat().replace("+00:00", "Z"),
                "waiting_for_services": clock.paused, "waited_s": round(runner.held_s, 1) if runner else 0.0,
                "backlog": self._stack.backlog}

    def set_speed(self, speed: float) -> dict[str, Any]:
        clock = self._stack.clock
        assert clock is not None
        clock.set_speed(speed)
        self._stack.speed = speed
        return self.clock()

    def _backend(self) -> Any:
        backend = self._stack.backend
        if backend is None:
            raise ApiError(503, "Backend stopping", "The backend is not running.")
        return backend


def _as_dict(answer: Any) -> dict[str, Any]:
    """An ``ocpp`` call result (a dataclass) as a plain dict, nested dataclasses too."""
    return asdict(answer) if is_dataclass(answer) and not isinstance(answer, type) else dict(answer or {})
