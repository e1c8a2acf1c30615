"""The twin's control API: HTTP routes under ``/twin/`` on the backend, for people and test tools.

Every action needs the admin token in the ``X-Twin-Token`` header
(``Settings.admin_token``; ``chargetwin serve`` prints it). Answers use the
backend's envelope: ``{"success": true, "data": ...}``, or ``{"success":
false, "error", "message"}`` with the status of :mod:`.control`. The
document of these routes is served at ``/twin/openapi.json``; the app's own
API is the contract (``contracts/openapi/backend.openapi.yaml``), not this.
"""

from __future__ import annotations

import hmac
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Header, Path
from pydantic import BaseModel, ConfigDict, Field

from .control import TwinControl
from .model.config import ChargePointSpec, StationSpec
from .services.backend.exceptions import ApiError
from .services.settings import Settings

__all__ = ["control_router"]

Envelope = dict[str, Any]


class _Body(BaseModel):
    model_config = ConfigDict(extra="forbid")


class Maintenance(_Body):
    under_maintenance: bool = Field(description="true: into maintenance; false: back in service")
    reason: str | None = Field(None, max_length=200, examples=["Scheduled maintenance"])


class ChargePointIn(_Body):
    id: str = Field(min_length=1, max_length=100, pattern=r"^[A-Za-z0-9._-]+$", examples=["CP100"])
    kind: Literal["AC", "DC"] = "AC"
    max_power_kw: float = Field(22.0, gt=0, le=1000)
    connectors: int = Field(2, ge=1, le=16)
    phases: Literal[1, 3] = 3
    voltage: float = Field(230.0, gt=0, le=1000)
    simulated: bool = Field(True, description="false: the twin does not simulate it; a charge point of yours "
                                              "connects to the CMS with this id (an OCPP test tool, say)")

    def spec(self) -> ChargePointSpec:
        return ChargePointSpec(self.id, self.kind, self.max_power_kw, self.connectors, self.phases, self.voltage)


class StationIn(_Body):
    id: str = Field(min_length=1, max_length=100, pattern=r"^[A-Za-z0-9._-]+$", examples=["STATION100"])
    name: str = Field(min_length=1, max_length=200, examples=["New Station"])
    address: str = Field(min_length=1, max_length=300, examples=["1 Test Street, Cairo"])
    latitude: float = Field(ge=-90, le=90)
    longitude: float = Field(ge=-180, le=180)
    tariff_per_kwh: float = Field(3.39, ge=0)
    currency: str = Field("EGP", min_length=3, max_length=3)
    charge_points: list[ChargePointIn] = Field(min_length=1, max_length=50)

    def spec(self) -> StationSpec:
        cps = tuple(cp.spec() for cp in self.charge_points)
        if len({cp.id for cp in cps}) != len(cps):
            raise ApiError(422, "Invalid request body", "Each charge point of a station needs its own id.")
        return StationSpec(self.id, self.name, self.address, self.latitude, self.longitude, self.tariff_per_kwh,
                           self.currency, cps)


class Fault(_Body):
    error_code: str = Field("OtherError", description="an OCPP 1.6 ChargePointErrorCode",
                            examples=["GroundFailure"])
    connector_id: int | None = Field(None, ge=1, description="one connector; omitted: the whole charge point")


class Repair(_Body):
    connector_id: int | None = Field(None, ge=1, description="one connector; omitted: the whole charge point")


class SessionJump(_Body):
    soc: float | None = Field(None, ge=0, le=100, description="jump the car's state of charge to this %")
    finish: bool = Field(False, description="end the session as a driver at the charger does (StopTransaction "
                                            "Local: the app gets session_completed)")


class Notification(_Body):
    title: str = Field(min_length=1, max_length=200, examples=["Tariff change"])
    message: str = Field(min_length=1, max_length=2000, examples=["Prices drop by 10 % tonight."])
    data: dict[str, Any] = Field(default_factory=dict)


class SessionError(_Body):
    error: str = Field("Charger error", min_length=1, max_length=200)
    message: str = Field("The charger reported an error.", min_length=1, max_length=2000)
    error_code: str | None = Field(None, description="an OCPP 1.6 ChargePointErrorCode, or null")


class IdTagStatus(_Body):
    status: Literal["Accepted", "Blocked", "Expired", "Invalid"] = Field(
        description="what the CMS answers Authorize and StartTransaction for this tag (OCPP 1.6 AuthorizationStatus)")


class Clock(_Body):
    speed: float = Field(gt=0, le=100_000, description="simulated seconds per wall second")


_ERRORS: dict[int | str, dict[str, Any]] = {
    401: {"description": "no or wrong X-Twin-Token"}, 404: {"description": "no such station, charge point or user"},
    409: {"description": "the state does not allow it"}, 422: {"description": "the body is not valid"}}


def _guard(settings: Settings) -> Any:
    async def admin(x_twin_token: Annotated[str | None, Header()] = None) -> None:
        expected = settings.admin_token
        if not expected:
            raise ApiError(404, "Control API off", "Start the twin with an admin token (CHARGETWIN_ADMIN_TOKEN; "
                                                   "chargetwin serve makes one) to use /twin/.")
        if not x_twin_token or not hmac.compare_digest(x_twin_token.encode(), expected.encode()):
            raise ApiError(401, "Admin token required", "Send the twin's admin token in the X-Twin-Token header.")
    return Depends(admin)


def _ok(data: Any) -> Envelope:
    return {"success": True, "data": data}


StationId = Annotated[str, Path(max_length=100, examples=["STATION001"])]
ChargePointId = Annotated[str, Path(max_length=100, examples=["CP001"])]
UserId = Annotated[int, Path(ge=1)]


def control_router(control: TwinControl, settings: Settings, *, info: dict[str, Any]) -> APIRouter:
    """The ``/twin/`` routes acting on ``control``; ``info`` is what ``GET /twin/info`` tells anyone."""
    router = APIRouter(prefix="/twin", tags=["twin control"], responses=_ERRORS)
    guarded = APIRouter(dependencies=[_guard(settings)])

    @router.get("/info", summary="Where the twin's services are (no token needed)")
    async def twin_info() -> Envelope:
        return _ok(info)

    @guarded.post("/stations/{station_id}/maintenance", summary="Put a station into or out of maintenance")
    async def maintenance(station_id: StationId, body: Maintenance) -> Envelope:
        return _ok(await control.maintenance(station_id, body.under_maintenance, body.reason))

    @guarded.post("/stations", summary="Add a station with its charge points (apps get charger_list_update)")
    async def add_station(body: StationIn) -> Envelope:
        external = [cp.id for cp in body.charge_points if not cp.simulated]
        return _ok(await control.add_station(body.spec(), external=external))

    @guarded.delete("/stations/{station_id}", summary="Remove a station (apps get charger_list_update)")
    async def remove_station(station_id: StationId) -> Envelope:
        return _ok(await control.remove_station(station_id))

    @guarded.post("/stations/{station_id}/charge-points",
                  summary="Add a charge point to a station (apps get charger_list_update)")
    async def add_charge_point(station_id: StationId, body: ChargePointIn) -> Envelope:
        return _ok(await control.add_charge_point(station_id, body.spec(), external=not body.simulated))

    @guarded.delete("/charge-points/{charge_point_id}",
                    summary="Remove a charge point (apps get charger_list_update)")
    async def remove_charge_point(charge_point_id: ChargePointId) -> Envelope:
        return _ok(await control.remove_charge_point(charge_point_id))

    @guarded.post("/charge-points/{charge_point_id}/fault", summary="Fault a charge point or one connector")
    async def fault(charge_point_id: ChargePointId, body: Fault) -> Envelope:
        return _ok(control.fault(charge_point_id, body.error_code, body.connector_id))

    @guarded.post("/charge-points/{charge_point_id}/repair", summary="Repair a charge point or one connector")
    async def repair(charge_point_id: ChargePointId, body: Repair | None = None) -> Envelope:
        return _ok(control.repair(charge_point_id, body.connector_id if body else None))

    @guarded.post("/charge-points/{charge_point_id}/disconnect",
                  summary="Drop a charge point's OCPP connection (it queues its messages)")
    async def disconnect(charge_point_id: ChargePointId) -> Envelope:
        return _ok(await control.disconnect(charge_point_id))

    @guarded.post("/charge-points/{charge_point_id}/reconnect", summary="Let a charge point connect again")
    async def reconnect(charge_point_id: ChargePointId) -> Envelope:
        return _ok(await control.reconnect(charge_point_id))

    @guarded.post("/charge-points/{charge_point_id}/ocpp/{action}",
                  summary="Make the CMS send an OCPP 1.6J call; the charge point's answer")
    async def ocpp(charge_point_id: ChargePointId, action: Annotated[str, Path(examples=["GetConfiguration"])],
                   payload: dict[str, Any] | None = None) -> Envelope:
        return _ok(await control.ocpp(charge_point_id, action, payload or {}))

    @guarded.post("/users/{user_id}/session", summary="Jump a user's session to a state of charge, or finish it")
    async def session(user_id: UserId, body: SessionJump) -> Envelope:
        if body.finish:
            return _ok(control.finish_session(user_id))
        if body.soc is None:
            raise ApiError(422, "Invalid request body", "Give soc (0-100) or finish: true.")
        return _ok(control.jump_session(user_id, body.soc))

    @guarded.post("/users/{user_id}/notifications", summary="Send a user a notification")
    async def notify(user_id: UserId, body: Notification) -> Envelope:
        return _ok(await control.notify(user_id, body.title, body.message, body.data))

    @guarded.post("/users/{user_id}/session-error", summary="Send a session_error about a user's session")
    async def session_error(user_id: UserId, body: SessionError) -> Envelope:
        return _ok(await control.session_error(user_id, body.error, body.message, body.error_code))

    @guarded.put("/id-tags/{id_tag}", summary="Block, expire or accept an id tag at the CMS")
    async def id_tag(id_tag: Annotated[str, Path(max_length=20, examples=["TAG00000001"])],
                     body: IdTagStatus) -> Envelope:
        return _ok(control.set_id_tag(id_tag, body.status))

    @guarded.get("/clock", summary="The simulated clock: now and speed")
    async def clock() -> Envelope:
        return _ok(control.clock())

    @guarded.put("/clock", summary="Set the clock's speed")
    async def set_clock(body: Clock) -> Envelope:
        return _ok(control.set_speed(body.speed))

    router.include_router(guarded)
    return router
