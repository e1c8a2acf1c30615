"""The backend's session logic, without I/O (docs/stack.md, "The backend's session logic").

:class:`BackendLogic` is a state machine. Its inputs are REST requests (split
in two steps around the CMS call: ``begin_*`` before, ``*_accepted`` /
``*_rejected`` after) and CMS events (:meth:`BackendLogic.handle`); its
outputs are :class:`Effects`: messages to publish, Redis keys to write, rows to
save. It never reads a clock (``now`` is an argument), a socket or a file;
the adapters in :mod:`.service` do that. Call order for a start::

    session, effects = logic.begin_start(user_id, charger_id, connector_id, now=...)   # may raise ApiError
    # ... persist effects, call the CMS ...
    data, effects = logic.start_accepted(session, transaction_id, now=...)   # or start_rejected(...)
"""

from __future__ import annotations

import json
from collections import OrderedDict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from ...model.config import StationSpec
from . import messages as msg
from .exceptions import ApiError
from .state import (
    UNKNOWN_STATUS,
    ConnectorState,
    Network,
    Session,
    SessionStatus,
    Users,
)

__all__ = [
    "ACTIVE_SESSION_KEY",
    "CHARGER_LIST_KEY",
    "CONNECTED_USERS_KEY",
    "STARTABLE_STATUSES",
    "BackendLogic",
    "Effects",
    "channel",
    "fan_out",
]

CHARGER_LIST_KEY = "chargetwin:charger_list"
ACTIVE_SESSION_KEY = "chargetwin:active_session:{user_id}"
CONNECTED_USERS_KEY = "chargetwin:connected_users"

STARTABLE_STATUSES = frozenset({"Available", "Preparing"})
"""Connector statuses a start is accepted on: free, or a car plugged in and waiting (OCPP 1.6 Preparing)."""

_REMOTE_REASONS = frozenset({"Remote", "RemoteStop"})
_FAULT_REASONS = frozenset({"Other", "EmergencyStop", "PowerLoss"})
_FREE_STATUSES = frozenset({"Available", "Preparing"})
"""Connector statuses that say no transaction runs there (OCPP 1.6 section 4.9)."""
_RECENT_ENDS = 256
"""How many ended transactions are remembered to answer a repeated ``session_stopped`` the same way (a CMS
repeats the head of one charger's queue when its delivery failed: the latest ends are the ones that come back)."""


def channel(user_id: int, suffix: str) -> str:
    """``user:{userId}:{suffix}`` (seed 3)."""
    return f"user:{user_id}:{suffix}"


def _dumps(value: Any) -> str:
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False)


@dataclass(slots=True)
class Effects:
    """What one step of the logic asks the adapters to do, in this order: save, then publish.

    ``publish``: (channel, message) for one user. ``broadcast``: messages for
    ``user:{id}:charger_updates`` of every connected user (DESIGN ruling 1).
    ``keys``: Redis string keys to set (JSON text) or delete (None), last write wins.
    """

    publish: list[tuple[str, msg.Message]] = field(default_factory=list)
    broadcast: list[msg.Message] = field(default_factory=list)
    keys: dict[str, str | None] = field(default_factory=dict)
    sessions: dict[int, Session] = field(default_factory=dict)
    connectors: dict[tuple[str, int], ConnectorState] = field(default_factory=dict)
    maintenance: dict[str, tuple[bool, str | None]] = field(default_factory=dict)

    def to_user(self, user_id: int, suffix: str, message: msg.Message) -> None:
        self.publish.append((channel(user_id, suffix), message))

    def save(self, session: Session) -> None:
        self.sessions[session.session_id] = session

    def merge(self, other: Effects) -> None:
        """Add a sub-step's messages to users, keys and rows after this step's own."""
        self.publish += other.publish
        self.keys.update(other.keys)
        self.sessions.update(other.sessions)


def fan_out(broadcast: Iterable[msg.Message], user_ids: Iterable[int]) -> list[tuple[str, msg.Message]]:
    """Each charger message on ``user:{id}:charger_updates`` of each connected user, and nobody else."""
    users = sorted(set(user_ids))
    return [(channel(user_id, "charger_updates"), message) for message in broadcast for user_id in users]


class BackendLogic:
    """Sessions, connector statuses and maintenance, and what to publish when they change.

    Build it from the static network and users and whatever the store had
    (sessions still open, connector statuses, maintenance, the next session id).
    """

    def __init__(self, network: Network, users: Users, *, sessions: Iterable[Session] = (),
                 connectors: Iterable[ConnectorState] = (), maintenance: Mapping[str, str | None] | None = None,
                 next_session_id: int = 1) -> None:
        self.network = network
        self.users = users
        self.sessions: dict[int, Session] = {}
        self._by_transaction: dict[tuple[str, int], int] = {}
        self._recent_ends: OrderedDict[tuple[str, int], Effects] = OrderedDict()
        self.connectors: dict[tuple[str, int], ConnectorState] = {}
        self.maintenance: dict[str, str | None] = dict(maintenance or {})
        self._list_fragments: dict[str, str] = {}
        self.next_session_id = next_session_id
        for session in sessions:
            if session.is_open:
                self._track(session)
            self.next_session_id = max(self.next_session_id, session.session_id + 1)
        for connector in connectors:
            self.connectors[connector.charger_id, connector.connector_id] = connector

    # --- queries --------------------------------------------------------------------------

    def status_of(self, charger_id: str, connector_id: int) -> str:
        state = self.connectors.get((charger_id, connector_id))
        return UNKNOWN_STATUS if state is None else state.status

    def open_session_of(self, user_id: int) -> Session | None:
        """The user's active session (at most one: SPEC-NOTES N-45), or None."""
        found = [s for s in self.sessions.values() if s.user_id == user_id]
        return max(found, key=lambda s: s.session_id) if found else None

    def session_on(self, charger_id: str, connector_id: int) -> Session | None:
        for session in self.sessions.values():
            if session.charger_id == charger_id and session.connector_id == connector_id:
                return session
        return None

    def charger_list(self) -> list[msg.Message]:
        """``data.chargers`` of a ``charger_list_update`` (the ``chargetwin:charger_list`` key)."""
        return msg.charger_list(list(self.network.stations.values()), self.status_of, self.maintenance)

    def charger_list_json(self, changed: Iterable[str] | None = None) -> str:
        """The ``chargetwin:charger_list`` key's JSON, re-encoding only the ``changed`` stations.

        Each station's entry is kept encoded; a status change re-encodes one
        station, not the city (about 4 ms for 250 stations, on every event).
        ``None`` rebuilds every entry.
        """
        fragments = self._list_fragments
        if changed is None or not fragments:
            fragments.clear()
            changed = self.network.stations
        for station_id in changed:
            station = self.network.stations[station_id]
            fragments[station_id] = _dumps(msg.station_entry(station, self.status_of,
                                                             under=station_id in self.maintenance))
        return "[" + ",".join(fragments[station_id] for station_id in self.network.stations) + "]"

    # --- start (REST) ---------------------------------------------------------------------

    def begin_start(self, user_id: int, charger_id: str, connector_id: int, *,
                    now: datetime) -> tuple[Session, Effects]:
        """Check a start request and open an ``initiated`` session; raises :class:`ApiError` (404, 409)."""
        user = self.users.by_id[user_id]
        if charger_id not in self.network.charge_points:
            raise ApiError(404, "Charger not found", f"There is no charger {charger_id!r}.")
        if not self.network.has_connector(charger_id, connector_id):
            raise ApiError(404, "Connector not found", f"Charger {charger_id!r} has no connector {connector_id}.")
        if (active := self.open_session_of(user_id)) is not None:
            raise ApiError(409, "Session already active",
                           f"You already have a charging session ({active.session_id} on {active.charger_id}); "
                           "stop it first.")
        if self.status_of(charger_id, connector_id) not in STARTABLE_STATUSES or \
                self.session_on(charger_id, connector_id) is not None or \
                self.network.station_of[charger_id].id in self.maintenance:
            raise ApiError(409, "Charger not available", "The requested charger is currently unavailable")
        session = Session(session_id=self.next_session_id, user_id=user_id, id_tag=user.id_tag,
                          charger_id=charger_id, connector_id=connector_id,
                          station_id=self.network.station_of[charger_id].id,
                          status=SessionStatus.INITIATED, created_at=msg.rfc3339(now))
        self.next_session_id += 1
        self._track(session)
        effects = Effects()
        effects.save(session)
        return session, effects

    def start_accepted(self, session: Session, transaction_id: int | None, *,
                       now: datetime) -> tuple[msg.Message, Effects]:
        """The CMS accepted the remote start: the REST answer's ``data`` and a ``response``."""
        if session.transaction_id is None and transaction_id is not None:
            self._assign_transaction(session, transaction_id)
        data = {"session_id": session.session_id, "transaction_id": session.transaction_id,
                "charger_id": session.charger_id, "connector_id": session.connector_id,
                "status": "initiated", "message": "Charging session started"}
        return data, _accepted(session, "start_charging", "Charging session started", now=now)

    def start_rejected(self, session: Session, error: ApiError, *, now: datetime) -> Effects:
        """The CMS refused or failed: the session fails, with a ``response`` and a ``session_error``."""
        stamp = msg.rfc3339(now)
        self._untrack(session)
        session.status = SessionStatus.FAILED
        effects = Effects()
        effects.save(session)
        effects.to_user(session.user_id, "notifications", msg.response(
            "start_charging", {"success": False, "error": error.error, "message": error.message}, now=stamp))
        effects.to_user(session.user_id, "session_updates", msg.session_update(
            session, "session_error",
            msg.session_error_data(session, error=error.error, text=error.message, error_code=None, at=stamp),
            now=stamp))
        return effects

    # --- stop (REST) ----------------------------------------------------------------------

    def begin_stop(self, user_id: int, charger_id: str | None) -> Session:
        """The session a stop request means; raises :class:`ApiError` (404, 409)."""
        if charger_id is not None and charger_id not in self.network.charge_points:
            raise ApiError(404, "Charger not found", f"There is no charger {charger_id!r}.")
        session = self.open_session_of(user_id)
        if session is None or (charger_id is not None and session.charger_id != charger_id):
            where = "" if charger_id is None else f" on charger {charger_id!r}"
            raise ApiError(404, "No active session", f"You have no active charging session{where}.")
        if session.transaction_id is None:
            raise ApiError(409, "Session not started",
                           "The charger has not started the transaction yet; try again in a moment.")
        return session

    def stop_accepted(self, session: Session, *, now: datetime) -> tuple[msg.Message, Effects]:
        """The CMS accepted the remote stop: the REST answer (energy and duration) and a ``response``.

        Seed 1 and Example 4 give the stop response the same ``energy_delivered``
        and ``duration`` as the ``session_stopped`` that follows. Both tell the
        charger's figures (StopTransaction's meterStop and timestamp) once the
        backend has them: the reference CMS answers a stop only after the charge
        point's StopTransaction has reached the backend (or a second has passed),
        so the two agree. A CMS that answers before (SPEC-NOTES N-42) gets the
        figures so far: the last meter value's energy and the time until ``now``;
        ``session_stopped`` then tells the final ones.
        """
        assert session.transaction_id is not None and session.start_time is not None
        session.stop_requested = True
        duration = (msg.session_duration(session) if session.stop_time is not None
                    else msg.seconds_between(session.start_time, now))
        data = {"session_id": session.session_id, "transaction_id": session.transaction_id, "status": "stopped",
                "energy_delivered": session.energy_kwh, "duration": duration,
                "message": "Charging session stopped"}
        return data, _accepted(session, "stop_charging", "Charging session stopped", now=now)

    def stop_rejected(self, session: Session, error: ApiError, *, now: datetime) -> Effects:
        """The CMS refused or failed the stop: the session goes on; a ``response`` says why."""
        effects = Effects()
        effects.to_user(session.user_id, "notifications", msg.response(
            "stop_charging", {"success": False, "error": error.error, "message": error.message},
            now=msg.rfc3339(now)))
        return effects

    # --- CMS events -----------------------------------------------------------------------

    def handle(self, event: Mapping[str, Any], *, now: datetime) -> Effects:
        """Effects of one CMS event (``contracts/schemas/cms/events/*``, already validated)."""
        kind = event["event"]
        if kind == "session_started":
            return self.on_session_started(event, now=now)
        if kind == "meter_value":
            return self.on_meter_value(event, now=now)
        if kind == "session_stopped":
            return self.on_session_stopped(event, now=now)
        if kind == "connector_status_changed":
            return self.on_connector_status(event, now=now)
        raise ValueError(f"unknown CMS event {kind!r}")

    def on_session_started(self, event: Mapping[str, Any], *, now: datetime) -> Effects:
        """StartTransaction: the session gets its transaction id and becomes active."""
        charger_id, transaction_id, data = event["charger_id"], event["transaction_id"], event["data"]
        session = self._by_tx(charger_id, transaction_id)
        if session is None:
            session = self._session_for_start(charger_id, data["connector_id"], data["id_tag"], now)
            if session is None:
                return Effects()  # an id tag of no user (an RFID card): nobody to tell
            self._assign_transaction(session, transaction_id)
        session.status = SessionStatus.ACTIVE
        session.meter_start = data["meter_start"]
        session.start_time = data["start_time"]
        session.connector_id = data["connector_id"]
        stamp = msg.rfc3339(now)
        effects = Effects()
        effects.save(session)
        effects.to_user(session.user_id, "session_updates", msg.session_update(session, "session_started", {
            "charger_id": charger_id, "connector_id": session.connector_id, "id_tag": data["id_tag"],
            "meter_start": data["meter_start"], "start_time": data["start_time"]}, now=stamp))
        effects.to_user(session.user_id, "notifications", msg.notification(
            "Charging Started", "Your charging session has started",
            {"session_id": session.session_id, "charger_id": charger_id}, now=stamp))
        self._announce_active(session, effects, now)
        return effects

    def on_meter_value(self, event: Mapping[str, Any], *, now: datetime) -> Effects:
        """MeterValues: the full ``meter_value`` update (seed 3.2), and the active-session key refreshed."""
        session = self._by_tx(event["charger_id"], event["transaction_id"])
        if session is None or session.start_time is None:
            return Effects()
        data = event["data"]
        stamp = msg.rfc3339(now)
        measured_at = data.get("timestamp") or stamp
        session.meter_wh = data["meter_value"]
        session.power_kw = data["power"]
        soc = data["charge_percentage"]
        if soc is not None:
            session.soc = soc
            if session.soc_first is None:
                session.soc_first, session.wh_at_soc_first = soc, session.meter_wh
        remaining = data["time_remaining"]
        if remaining is None:
            power = session.power_kw
            if power < msg.MIN_CHARGING_KW:  # a paused car tells no rate: at least as long as at full power
                power = self.network.charge_points[session.charger_id].max_power_kw
            remaining = msg.estimate_time_remaining(soc=session.soc, power_kw=power,
                                                    capacity_kwh=self._capacity_kwh(session))
        station = self.network.station_of[session.charger_id]
        effects = Effects()
        effects.save(session)
        effects.to_user(session.user_id, "session_updates", msg.session_update(
            session, "meter_value",
            msg.meter_value_data(session, station, meter_wh=session.meter_wh, power_kw=data["power"],
                                 voltage=data["voltage"], current=data["current"],
                                 charge_percentage=session.soc or 0, time_remaining=remaining or 0,
                                 measured_at=measured_at),
            now=stamp))
        effects.keys[ACTIVE_SESSION_KEY.format(user_id=session.user_id)] = _dumps(
            msg.active_session_data(session, now=now))
        return effects

    def on_session_stopped(self, event: Mapping[str, Any], *, now: datetime) -> Effects:
        """StopTransaction: ``session_stopped``, ``session_completed`` or ``session_error``, and no active session."""
        key = (event["charger_id"], event["transaction_id"])
        session = self._by_tx(*key)
        if session is None:
            repeat = self._recent_ends.get(key)
            return Effects(publish=list(repeat.publish), keys=dict(repeat.keys)) if repeat else Effects()
        data = event["data"]
        session.meter_stop = data["meter_stop"]
        session.stop_time = data["stop_time"]
        session.stop_reason = data["stop_reason"]
        if session.meter_start is None:
            session.meter_start = session.meter_stop
        connector = self.connectors.get((session.charger_id, session.connector_id))
        if connector is None or connector.status != "Faulted":  # or the charge point as a whole (connector 0)
            connector = self.connectors.get((session.charger_id, 0))
        faulted = connector is not None and connector.status == "Faulted"
        stamp = msg.rfc3339(now)
        effects = Effects()
        if session.stop_reason == "DeAuthorized":  # the CMS did not accept the id tag (OCPP 1.6 StartTransaction.conf)
            session.status = SessionStatus.ERROR
            effects.to_user(session.user_id, "session_updates", msg.session_update(
                session, "session_error",
                msg.session_error_data(session, error="Not authorized",
                                       text="The charger ended the session: the CMS did not accept your id tag.",
                                       error_code=None, at=session.stop_time), now=stamp))
            title, text = "Charging Error", "Your charging session was not authorized"
        elif session.stop_reason in _FAULT_REASONS and faulted:
            session.status = SessionStatus.ERROR
            code = connector.error_code if connector is not None else None
            effects.to_user(session.user_id, "session_updates", msg.session_update(
                session, "session_error",
                msg.session_error_data(session, error="Charger fault",
                                       text=f"The charger stopped the session ({session.stop_reason}).",
                                       error_code=code, at=session.stop_time), now=stamp))
            title, text = "Charging Error", "Your charging session was ended by a charger fault"
        elif session.stop_requested or session.stop_reason in _REMOTE_REASONS:
            session.status = SessionStatus.STOPPED
            effects.to_user(session.user_id, "session_updates", msg.session_update(
                session, "session_stopped", msg.session_end_data(session), now=stamp))
            title, text = "Charging Stopped", "Your charging session has stopped"
        else:
            session.status = SessionStatus.COMPLETED
            effects.to_user(session.user_id, "session_updates", msg.session_update(
                session, "session_completed", msg.session_end_data(session), now=stamp))
            title, text = "Charging Completed", "Your charging session is complete"
        effects.to_user(session.user_id, "session_updates", msg.active_session_update(None, now=stamp))
        effects.to_user(session.user_id, "notifications", msg.notification(title, text, {
            "session_id": session.session_id, "charger_id": session.charger_id,
            "energy_delivered": session.energy_kwh}, now=stamp))
        effects.keys[ACTIVE_SESSION_KEY.format(user_id=session.user_id)] = None
        self._untrack(session)
        self._remember_end(key, effects)
        effects.save(session)
        return effects

    def on_connector_status(self, event: Mapping[str, Any], *, now: datetime) -> Effects:
        """StatusNotification: store it; every connected user gets the event and the station aggregate."""
        charger_id, data = event["charger_id"], event["data"]
        connector_id = data["connector_id"]
        cp = self.network.charge_points.get(charger_id)
        if cp is None or connector_id > cp.connectors:
            return Effects()  # not in the backend's network: nothing to show on the map
        previous = self.connectors.get((charger_id, connector_id))
        state = ConnectorState(charger_id, connector_id, data["status"], data["error_code"], data["timestamp"])
        self.connectors[charger_id, connector_id] = state
        stamp, at = msg.rfc3339(now), data["timestamp"]
        before = None if previous is None else previous.status
        effects = Effects()
        effects.connectors[charger_id, connector_id] = state
        if connector_id == 0:
            effects.broadcast.append(msg.status_changed(charger_id, status=state.status, previous=before,
                                                        at=at, now=stamp))
        else:
            effects.broadcast.append(msg.connector_status_changed(
                charger_id, connector_id, status=state.status, previous=before, error_code=state.error_code,
                at=at, now=stamp))
        if state.error_code not in (None, "NoError"):
            assert state.error_code is not None
            effects.broadcast.append(msg.charger_error(charger_id, connector_id, error_code=state.error_code,
                                                       info=data.get("info"), at=at, now=stamp))
        self._abandon_start(charger_id, connector_id, before, state.status, effects, now=now)
        self._drop_lost_session(charger_id, connector_id, state.status, effects, now=now)
        self._station_changed(self.network.station_of[charger_id].id, [charger_id], effects, at=at, now=now)
        return effects

    def _abandon_start(self, charger_id: str, connector_id: int, before: str | None, status: str,
                       effects: Effects, *, now: datetime) -> None:
        """A start the charger accepted but will not begin: the connector failed, or the car left (OCPP 1.6
        ConnectionTimeOut: Preparing -> Available). The session fails instead of blocking its user."""
        session = self.session_on(charger_id, connector_id)
        if session is None or session.status != SessionStatus.INITIATED:
            return
        if status in ("Faulted", "Unavailable") or (before == "Preparing" and status == "Available"):
            failed = self.start_rejected(session, ApiError(409, "Charging did not start",
                                                           f"The charger reported {status} before the "
                                                           "transaction began."), now=now)
            effects.publish += [(c, m) for c, m in failed.publish if m["type"] == "session_update"]
            effects.sessions.update(failed.sessions)

    def _drop_lost_session(self, charger_id: str, connector_id: int, status: str, effects: Effects, *,
                           now: datetime) -> None:
        """An active session on a connector that reports itself free (Available, or Preparing for a new
        car) is no longer carried by the charger: it restarted without it, or the world behind it did
        (``chargetwin serve`` stopped and started again). End it instead of locking its user out."""
        session = self.session_on(charger_id, connector_id)
        if session is None or session.status != SessionStatus.ACTIVE or status not in _FREE_STATUSES:
            return
        lost = self.end_lost_session(session, f"The charger reported the connector {status} without ending "
                                              "the session; it was ended and billed to its last meter value.",
                                     now=now)
        effects.merge(lost)

    def end_lost_session(self, session: Session, reason: str, *, now: datetime) -> Effects:
        """End an active session the world no longer carries: a ``session_error``, billed to its last
        ``meter_value``; its user can charge again."""
        stamp = msg.rfc3339(now)
        if session.meter_start is None:
            session.meter_start = 0
        session.meter_stop = session.meter_start + session.meter_wh
        session.stop_time = stamp
        session.stop_reason = "Other"
        session.status = SessionStatus.ERROR
        effects = Effects()
        effects.to_user(session.user_id, "session_updates", msg.session_update(
            session, "session_error",
            msg.session_error_data(session, error="Session lost", text=reason, error_code=None, at=stamp),
            now=stamp))
        effects.to_user(session.user_id, "session_updates", msg.active_session_update(None, now=stamp))
        effects.to_user(session.user_id, "notifications", msg.notification(
            "Charging Ended", "Your charging session ended: the charger no longer carries it", {
                "session_id": session.session_id, "charger_id": session.charger_id,
                "energy_delivered": session.energy_kwh}, now=stamp))
        effects.keys[ACTIVE_SESSION_KEY.format(user_id=session.user_id)] = None
        self._untrack(session)
        effects.save(session)
        return effects

    def reconcile(self, *, now: datetime) -> Effects:
        """At start: fail the starts the last backend left half done, and end the stored sessions on
        chargers this network no longer has (a changed scenario). Active sessions on chargers it has are
        settled by their chargers' next status (:meth:`on_connector_status`).
        """
        effects = Effects()
        for session in list(self.sessions.values()):
            if session.status == SessionStatus.INITIATED and session.transaction_id is None:
                # its start request died with the last backend; a StartTransaction still coming opens a new one
                failed = self.start_rejected(session, ApiError(
                    503, "Start interrupted", "The backend restarted before the charger began the transaction."),
                    now=now)
                effects.merge(failed)
                continue
            if session.charger_id in self.network.charge_points:
                continue
            if session.status != SessionStatus.ACTIVE:
                session.status = SessionStatus.FAILED
                self._untrack(session)
                effects.save(session)
                continue
            lost = self.end_lost_session(session, f"Charger {session.charger_id} is no longer in the network.",
                                         now=now)
            effects.merge(lost)
        return effects

    # --- maintenance (no CMS event carries it; the twin's control API will) --------------------------

    def set_maintenance(self, station_id: str, under_maintenance: bool, *, reason: str | None = None,
                        now: datetime) -> Effects:
        """A station enters or leaves maintenance: ``maintenance_mode`` and the aggregate per charging point."""
        station = self.network.stations[station_id]
        if under_maintenance:
            self.maintenance[station_id] = reason
        else:
            self.maintenance.pop(station_id, None)
            reason = None
        stamp = msg.rfc3339(now)
        effects = Effects()
        effects.maintenance[station_id] = (under_maintenance, reason)
        for cp in station.charge_points:
            effects.broadcast.append(msg.maintenance_mode(cp.id, station_id, under_maintenance=under_maintenance,
                                                          reason=reason, at=stamp, now=stamp))
        self._station_changed(station_id, [cp.id for cp in station.charge_points], effects, at=stamp, now=now)
        return effects

    # --- the twin's control API ------------------------------------------------------------

    def change_network(self, station: StationSpec | None, *, removed: str | None = None,
                       now: datetime) -> Effects:
        """Add or replace ``station``, or remove the station ``removed``: every connected user gets the
        new ``charger_list_update`` (SPEC-NOTES N-04, N-16). Sessions on charging points that leave end."""
        effects = Effects()
        if removed is not None:
            gone = self.network.remove(removed)
            self.maintenance.pop(removed, None)
            effects.maintenance[removed] = (False, None)
            leaving = {cp.id for cp in gone.charge_points}
        else:
            assert station is not None
            before = self.network.stations.get(station.id)
            kept = {cp.id for cp in station.charge_points}
            leaving = {cp.id for cp in before.charge_points if cp.id not in kept} if before else set()
            self.network.add(station)
        for session in [s for s in self.sessions.values() if s.charger_id in leaving]:
            ended = (self.end_lost_session(session, f"Charger {session.charger_id} left the network.", now=now)
                     if session.status == SessionStatus.ACTIVE else
                     self.start_rejected(session, ApiError(404, "Charger removed",
                                                           f"Charger {session.charger_id} left the network."),
                                         now=now))
            effects.merge(ended)
        stamp = msg.rfc3339(now)
        listed = self.charger_list_json(None)
        effects.keys[CHARGER_LIST_KEY] = listed
        effects.broadcast.append({"type": "charger_list_update", "action": "update",
                                  "data": {"chargers": json.loads(listed), "timestamp": stamp}, "timestamp": stamp})
        return effects

    def notify(self, user_id: int, title: str, text: str, data: Mapping[str, Any], *, now: datetime) -> Effects:
        """A ``notification`` for one user (seed 4.1)."""
        if user_id not in self.users.by_id:
            raise ApiError(404, "User not found", f"There is no user {user_id}.")
        effects = Effects()
        effects.to_user(user_id, "notifications", msg.notification(title, text, data, now=msg.rfc3339(now)))
        return effects

    def session_error(self, user_id: int, error: str, text: str, error_code: str | None, *,
                      now: datetime) -> Effects:
        """A ``session_error`` about the user's open session, which goes on (an error the charger survived)."""
        session = self.open_session_of(user_id)
        if session is None:
            raise ApiError(404, "No active session", f"User {user_id} has no active charging session.")
        stamp = msg.rfc3339(now)
        effects = Effects()
        effects.to_user(user_id, "session_updates", msg.session_update(
            session, "session_error",
            msg.session_error_data(session, error=error, text=text, error_code=error_code, at=stamp), now=stamp))
        return effects

    # --- start of the service -------------------------------------------------------------

    def snapshot(self, *, now: datetime) -> Effects:
        """The Redis keys as they must be: the charger list and every active session."""
        effects = Effects()
        effects.keys[CHARGER_LIST_KEY] = self.charger_list_json(None)
        for session in self.sessions.values():
            if session.status == SessionStatus.ACTIVE:
                effects.keys[ACTIVE_SESSION_KEY.format(user_id=session.user_id)] = _dumps(
                    msg.active_session_data(session, now=now))
        return effects

    # --- helpers --------------------------------------------------------------------------

    def _track(self, session: Session) -> None:
        self.sessions[session.session_id] = session
        if session.transaction_id is not None:
            self._by_transaction[session.charger_id, session.transaction_id] = session.session_id

    def _untrack(self, session: Session) -> None:
        self.sessions.pop(session.session_id, None)
        if session.transaction_id is not None:
            self._by_transaction.pop((session.charger_id, session.transaction_id), None)

    def _assign_transaction(self, session: Session, transaction_id: int) -> None:
        session.transaction_id = transaction_id
        self._by_transaction[session.charger_id, transaction_id] = session.session_id

    def _by_tx(self, charger_id: str, transaction_id: int) -> Session | None:
        session_id = self._by_transaction.get((charger_id, transaction_id))
        return None if session_id is None else self.sessions.get(session_id)

    def _session_for_start(self, charger_id: str, connector_id: int, id_tag: str, now: datetime) -> Session | None:
        """The initiated session a StartTransaction belongs to, or a new one for a start at the charger."""
        waiting = [s for s in self.sessions.values()
                   if s.charger_id == charger_id and s.id_tag == id_tag and s.transaction_id is None]
        waiting.sort(key=lambda s: (s.connector_id != connector_id, s.session_id))
        if waiting:
            return waiting[0]
        user = self.users.by_id_tag.get(id_tag)
        station = self.network.station_of.get(charger_id)
        if user is None or station is None:
            return None
        session = Session(session_id=self.next_session_id, user_id=user.user_id, id_tag=id_tag,
                          charger_id=charger_id, connector_id=connector_id, station_id=station.id,
                          status=SessionStatus.INITIATED, created_at=msg.rfc3339(now))
        self.next_session_id += 1
        self._track(session)
        return session

    def _announce_active(self, session: Session, effects: Effects, now: datetime) -> None:
        data = msg.active_session_data(session, now=now)
        effects.to_user(session.user_id, "session_updates", msg.active_session_update(data, now=msg.rfc3339(now)))
        effects.keys[ACTIVE_SESSION_KEY.format(user_id=session.user_id)] = _dumps(data)

    @staticmethod
    def _capacity_kwh(session: Session) -> float:
        """Battery capacity from energy per % of SoC since the first SoC sample, once the SoC rose by
        :data:`~.messages.MIN_SOC_GAIN` points; until then (the first sample: one SoC, no rate) the default."""
        if session.soc is None or session.soc_first is None or session.wh_at_soc_first is None:
            return msg.DEFAULT_CAPACITY_KWH
        gained = session.soc - session.soc_first
        energy = session.meter_wh - session.wh_at_soc_first
        if gained < msg.MIN_SOC_GAIN or energy <= 0:
            return msg.DEFAULT_CAPACITY_KWH
        return energy / 1000 / gained * 100

    def _station_changed(self, station_id: str, charger_ids: list[str], effects: Effects, *, at: str,
                         now: datetime) -> None:
        station = self.network.stations[station_id]
        under = station_id in self.maintenance
        stamp = msg.rfc3339(now)
        for charger_id in charger_ids:
            effects.broadcast.append(msg.charger_status_update(
                station, charger_id, self.status_of, maintenance_reason=self.maintenance.get(station_id),
                under_maintenance=under, at=at, now=stamp))
        effects.keys[CHARGER_LIST_KEY] = self.charger_list_json([station_id])

    def _remember_end(self, key: tuple[str, int], effects: Effects) -> None:
        """Keep what a repeat publishes again: the messages and keys, not the session row (a third of the size)."""
        self._recent_ends[key] = Effects(publish=list(effects.publish), keys=dict(effects.keys))
        while len(self._recent_ends) > _RECENT_ENDS:
            self._recent_ends.popitem(last=False)


def _accepted(session: Session, action: str, message: str, *, now: datetime) -> Effects:
    """The session saved and a successful ``response`` for ``action`` pushed to its user (ruling 4)."""
    effects = Effects()
    effects.save(session)
    effects.to_user(session.user_id, "notifications", msg.response(action, {
        "success": True, "session_id": session.session_id, "transaction_id": session.transaction_id,
        "charger_id": session.charger_id, "message": message}, now=msg.rfc3339(now)))
    return effects
