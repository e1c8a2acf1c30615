"""The world: a SimPy model of the network, the fleet and their days.

:class:`World` builds stations and drivers from a :class:`Scenario` and runs
these processes, all in simulated seconds:

- arrivals (a non-homogeneous Poisson process, :mod:`.demand`) start trips;
- a trip: open the app, choose the nearest station with a free compatible
  connector, drive there, wait (up to the patience) or balk to the next one,
  plug in, ask the app to start, charge, stop, unplug, leave;
- one sampler takes a meter sample of every transaction every
  ``meter_interval`` seconds from its start (OCPP MeterValueSampleInterval);
- failures and repairs of each charging point, and maintenance windows;
- browsing: users who are not on a trip open the app just to look at the
  map, as a non-homogeneous Poisson process that follows the demand profile
  (:func:`browsing_demand`).

Every change is published as an :mod:`event <.events>` to the subscribed
sinks. Services drive the world with commands (:meth:`World.remote_start`,
:meth:`World.remote_stop`, :meth:`World.change_availability`,
:meth:`World.set_power_cap`); in a model-only run, :class:`DirectApp` plays
the app and calls them itself. Nothing here reads the wall clock, sleeps or
opens a socket: the same world runs as fast as possible or paced by the
services.
"""

from __future__ import annotations

import heapq
import itertools
import math
import random
from collections.abc import Callable, Generator, Iterable
from dataclasses import replace
from typing import Any, Protocol

import simpy

from . import events as ev
from .config import (
    AppBehaviour,
    ChargePointSpec,
    DemandSpec,
    Distribution,
    MaintenanceWindow,
    Scenario,
    StationSpec,
)
from .demand import arrival_times, hourly_rates, local_seconds
from .entities import ChargePoint, Connector, Driver, Session, Station, Waiter
from .exceptions import UnknownTargetError
from .network import KM_PER_DEG, NearestIndex, build_fleet, build_network, charge_point
from .physics import ChargeCurve, dc_current, dc_voltage

__all__ = ["UNPLUG_DELAY", "App", "DirectApp", "Sink", "World", "browsing_demand", "draw"]

Sink = Callable[[ev.Event], None]
Process = Generator[simpy.Event, Any, None]

UNPLUG_DELAY = 60.0
"""Seconds between the end of a transaction and the driver unplugging (status Finishing)."""

STOP_WITH_APP = 0.7
"""Share of AC drivers who stop their session in the app when they leave; the others just unplug."""

APP_PEEK = 60.0
"""Seconds a driver keeps the app open when they look at a running session."""

APP_WATCH = 60.0
"""Seconds a driver who does not keep the app open watches it after starting (sees the session start)."""


class App(Protocol):
    """What a driver's app does for them. Each call returns a SimPy event whose value is the outcome."""

    def request_start(self, driver: Driver, connector: Connector) -> simpy.Event: ...

    def request_stop(self, driver: Driver, session: Session) -> simpy.Event: ...


class DirectApp:
    """The app of a model-only run: commands reach the charging point at once, always."""

    def __init__(self, world: World) -> None:
        self._world = world

    def request_start(self, driver: Driver, connector: Connector) -> simpy.Event:
        accepted = self._world.remote_start(connector.charge_point.id, connector.id, driver.id_tag)
        return self._world.env.timeout(0, value=accepted)

    def request_stop(self, driver: Driver, session: Session) -> simpy.Event:
        accepted = self._world.remote_stop(session.connector.charge_point.id, session.connector.id)
        return self._world.env.timeout(0, value=accepted)


def draw(distribution: Distribution, rng: random.Random) -> float:
    """A positive sample of ``distribution``."""
    if distribution.kind == "fixed":
        return distribution.mean
    if distribution.kind == "exponential":
        return rng.expovariate(1.0 / distribution.mean)
    sigma2 = math.log(1.0 + (distribution.sd / distribution.mean) ** 2)
    return rng.lognormvariate(math.log(distribution.mean) - sigma2 / 2, math.sqrt(sigma2))


def browsing_demand(demand: DemandSpec, app: AppBehaviour) -> DemandSpec:
    """The arrivals of browses: the profile of ``demand``, scaled to ``app.browsing_at_peak`` browsers at its peak.

    By Little's law (L = lambda W), ``browsing_at_peak`` concurrent browsers
    of mean duration ``browse_duration`` take ``browsing_at_peak /
    browse_duration`` browses per second; that is the rate of the profile's
    busiest hour, and every other hour has its share of it by weight.
    ``demand.arrivals_per_day`` and ``demand.scale`` do not matter. The
    profile must have a weight above 0 (the loader checks it).
    """
    shape = hourly_rates(replace(demand, arrivals_per_day=1.0, scale=1.0))
    peak_rate = app.browsing_at_peak / app.browse_duration
    return replace(demand, arrivals_per_day=peak_rate / max(shape), scale=1.0)


class World:
    """A scenario's network and fleet, alive in a SimPy environment.

    Call order: make the world (it builds everything and starts its
    processes), :meth:`subscribe` sinks, then :meth:`run` (or step
    ``world.env`` yourself). Commands may be called at any time between steps.
    Users 1..``reserved_users`` never set out by themselves nor browse: they
    are left to people using the app (``chargetwin serve``).
    """

    def __init__(self, scenario: Scenario, *, sinks: Iterable[Sink] = (), app: App | None = None,
                 env: simpy.Environment | None = None, reserved_users: int = 0) -> None:
        self.scenario = scenario
        self.reserved_users = reserved_users
        self.env = env or simpy.Environment()
        seed = scenario.run.seed
        self._rngs = {name: random.Random(f"{seed}:{name}")
                      for name in ("network", "fleet", "arrivals", "trips", "faults", "maintenance", "people",
                                   "browsing")}
        self.network = build_network(scenario.network, self._rngs["network"])
        radius = (scenario.network.generate.radius_km if scenario.network.generate
                  else max((math.hypot(s.x, s.y) for s in self.network.stations), default=1.0) + 1.0)
        self.drivers = build_fleet(scenario.fleet, radius, self._rngs["fleet"])
        self._drivers_by_tag = {d.id_tag: d for d in self.drivers}
        self.stations = {s.id: s for s in self.network.stations}
        self.charge_points = {cp.id: cp for cp in self.network.charge_points()}
        self._index_stations()
        self._local_offset = local_seconds(scenario.run.start)
        self._sinks: list[Sink] = list(sinks)
        self.app: App = app or DirectApp(self)
        self._session_ids = iter(range(1, 2**31))
        self.sessions: dict[int, Session] = {}
        self._browse_numbers = itertools.count(1)
        self._browses: dict[int, int] = {}  # user id -> number of the browse that opened their app
        self._sampler = _Sampler(self, scenario.run.meter_interval)
        self._start_processes()

    # --- public ----------------------------------------------------------------------

    def subscribe(self, sink: Sink) -> None:
        """Send every later event to ``sink`` too."""
        self._sinks.append(sink)

    def run(self, until: float | None = None, *,
            progress: Callable[[float, float], None] | None = None) -> None:
        """Run to ``until`` seconds (default: the scenario's duration) as fast as possible."""
        end = self.scenario.run.duration if until is None else until
        step = max(60.0, end / 200)
        while self.env.now < end:
            self.env.run(until=min(end, self.env.now + step))
            if progress is not None:
                progress(self.env.now, end)

    def is_browsing(self, user_id: int) -> bool:
        """Whether that user has the app open just to look at the map (a browse, not a trip's app)."""
        driver = self.drivers[user_id - 1]
        return user_id in self._browses and driver.app_open and not driver.busy

    def charge_point(self, charge_point_id: str) -> ChargePoint:
        try:
            return self.charge_points[charge_point_id]
        except KeyError:
            raise UnknownTargetError(f"no charging point {charge_point_id!r} in this network") from None

    def connector(self, charge_point_id: str, connector_id: int) -> Connector:
        cp = self.charge_point(charge_point_id)
        if not 1 <= connector_id <= len(cp.connectors):
            raise UnknownTargetError(f"charging point {charge_point_id} has connectors 1..{len(cp.connectors)}, "
                                     f"not {connector_id}")
        return cp.connectors[connector_id - 1]

    # --- commands (OCPP central system -> charging point) ---------------------------

    def remote_start(self, charge_point_id: str, connector_id: int, id_tag: str) -> bool:
        """RemoteStartTransaction: start charging the car plugged in there.

        On a free connector, ``id_tag`` of an idle user starts that user's car
        (a person using the app: see :meth:`_start_for_person`). False when
        neither applies.
        """
        connector = self.connector(charge_point_id, connector_id)
        driver = connector.driver
        if driver is None:
            return self._start_for_person(connector, id_tag)
        if connector.session is not None or connector.status != "Preparing":
            return False
        self._start_transaction(connector, driver, id_tag)
        return True

    def remote_stop(self, charge_point_id: str, connector_id: int, *, reason: str = "Remote") -> bool:
        """RemoteStopTransaction of the transaction on that connector (``reason`` DeAuthorized: the central
        system did not accept its id tag). False if there is none."""
        session = self.connector(charge_point_id, connector_id).session
        if session is None or session.stop_reason is not None:
            return False
        self._stop(session, reason)
        return True

    def change_availability(self, charge_point_id: str, connector_id: int, *, operative: bool) -> str:
        """ChangeAvailability (connector 0: all). ``Accepted``, or ``Scheduled`` while a car is plugged in."""
        cp = self.charge_point(charge_point_id)
        targets = cp.connectors if connector_id == 0 else [self.connector(charge_point_id, connector_id)]
        answer = "Accepted"
        for connector in targets:
            connector.inoperative = not operative
            if connector.driver is None:
                self._release(connector)
            elif not operative:
                answer = "Scheduled"
        return answer

    def set_power_cap(self, charge_point_id: str, cap_kw: float | None) -> None:
        """Cap the power of a charging point (None lifts the cap); running sessions follow at once."""
        cp = self.charge_point(charge_point_id)
        cp.power_cap_kw = cap_kw
        for connector in cp.connectors:
            session = connector.session
            if session is not None and session.stop_reason is None:
                session.reanchor(self.env.now, charging=session.charging)
                session.curve = self._curve(cp, session.driver)
                if session.changed is not None and not session.changed.triggered:
                    session.changed.succeed()

    # --- commands of the twin's operator (the control API) -----------------------------

    def fault(self, charge_point_id: str, error_code: str, *, connector_id: int | None = None) -> None:
        """Fault a whole charging point (``connector_id`` None) or one connector: its session ends
        (StopTransaction ``Other``) and it reports Faulted with ``error_code`` until :meth:`repair`."""
        cp = self.charge_point(charge_point_id)
        targets = cp.connectors if connector_id is None else [self.connector(charge_point_id, connector_id)]
        if connector_id is None:
            cp.faulted = True
            self._emit(ev.Fault(self.env.now, cp.station.id, cp.id, error_code))
        for connector in targets:
            if connector_id is not None:  # the connector reports its fault first, then ends the transaction
                connector.fault_code = error_code
                self._set_status(connector, "Faulted", error_code)
            if connector.session is not None and connector.session.stop_reason is None:
                self._stop(connector.session, "Other", error_code=error_code)
            self._set_status(connector, "Faulted", error_code)
        self._dismiss_waiters(cp.station)

    def repair(self, charge_point_id: str, *, connector_id: int | None = None) -> None:
        """End a fault of :meth:`fault` (the whole charging point, or one connector)."""
        cp = self.charge_point(charge_point_id)
        targets = cp.connectors if connector_id is None else [self.connector(charge_point_id, connector_id)]
        if connector_id is None and cp.faulted:
            cp.faulted = False
            self._emit(ev.Repair(self.env.now, cp.station.id, cp.id))
        for connector in targets:
            connector.fault_code = None
            if connector.driver is None:
                self._release(connector)

    def set_under_maintenance(self, station_id: str, under: bool) -> None:
        """Drivers avoid a station under maintenance (the OCPP side goes through ChangeAvailability)."""
        station = self._station(station_id)
        station.under_maintenance = under
        if under:
            self._dismiss_waiters(station)
        for cp in station.charge_points:
            for connector in cp.connectors:
                if connector.driver is None:
                    self._release(connector)

    def add_station(self, spec: StationSpec) -> Station:
        """A new station, open from now on (its connectors Available, registers at random readings)."""
        if spec.id in self.stations:
            raise ValueError(f"station {spec.id!r} is already in the network")
        taken = [cp.id for cp in spec.charge_points if cp.id in self.charge_points]
        if taken:
            raise ValueError(f"charging point {taken[0]!r} is already in the network")
        network, rng = self.network, self._rngs["network"]
        scale = KM_PER_DEG * math.cos(math.radians(network.center_latitude))
        station = Station(spec, (spec.longitude - network.center_longitude) * scale,
                          (spec.latitude - network.center_latitude) * KM_PER_DEG)
        for cp_spec in spec.charge_points:
            cp = charge_point(cp_spec, station, rng)
            station.charge_points.append(cp)
            self.charge_points[cp.id] = cp
        network.stations.append(station)
        self.stations[spec.id] = station
        self._index_stations()
        return station

    def remove_station(self, station_id: str) -> Station:
        """Take a station out of the network; refused (:class:`ValueError`) while a car charges there."""
        station = self._station(station_id)
        busy = [c for cp in station.charge_points for c in cp.connectors if c.driver is not None]
        if busy:
            cp_id = busy[0].charge_point.id
            raise ValueError(f"a car is plugged in at {cp_id}, connector {busy[0].id}: finish that session first")
        station.under_maintenance = True  # drivers already on their way find it closed
        self._dismiss_waiters(station)
        self.network.stations.remove(station)
        del self.stations[station_id]
        for cp in station.charge_points:
            del self.charge_points[cp.id]
        self._index_stations()
        return station

    def add_charge_point(self, station_id: str, spec: ChargePointSpec) -> Station:
        """A new charging point at a station, open from now on."""
        station = self._station(station_id)
        if spec.id in self.charge_points:
            raise ValueError(f"charging point {spec.id!r} is already in the network")
        cp = charge_point(spec, station, self._rngs["network"])
        station.charge_points.append(cp)
        station.spec = replace(station.spec, charge_points=(*station.spec.charge_points, spec))
        self.charge_points[spec.id] = cp
        self._index_stations()
        return station

    def remove_charge_point(self, charge_point_id: str) -> Station:
        """Take a charging point out of its station; refused (:class:`ValueError`) while a car is plugged in."""
        cp = self.charge_point(charge_point_id)
        busy = [c for c in cp.connectors if c.driver is not None]
        if busy:
            raise ValueError(f"a car is plugged in at {cp.id}, connector {busy[0].id}: finish that session first")
        station = cp.station
        cp.faulted = True  # drivers already on their way find it closed
        station.charge_points.remove(cp)
        station.spec = replace(station.spec, charge_points=tuple(c for c in station.spec.charge_points
                                                                 if c.id != charge_point_id))
        del self.charge_points[charge_point_id]
        self._dismiss_waiters(station)
        self._index_stations()
        return station

    def _station(self, station_id: str) -> Station:
        try:
            return self.stations[station_id]
        except KeyError:
            raise UnknownTargetError(f"no station {station_id!r} in this network") from None

    def _index_stations(self) -> None:
        by_kind = {kind: [s for s in self.network.stations if kind in s.kinds()] for kind in ("AC", "DC")}
        self._nearest = {kind: NearestIndex(stations) for kind, stations in by_kind.items()}
        self._has_kind = {kind: bool(stations) for kind, stations in by_kind.items()}

    def session_of(self, user_id: int) -> Session | None:
        """The running transaction of a user's car, if any."""
        for session in self.sessions.values():
            if session.driver.user_id == user_id and session.stop_reason is None:
                return session
        return None

    def jump_session(self, user_id: int, soc: float) -> Session:
        """Move a user's running session on to ``soc`` (0..1) now, as if it had charged that far."""
        session = self.session_of(user_id)
        if session is None:
            raise UnknownTargetError(f"user {user_id} has no running session")
        now = self.env.now
        current = session.soc_at(now)
        if not current <= soc <= 1.0:
            raise ValueError(f"the car is at {current * 100:.0f} %: jump to between that and 100 %")
        session.reanchor(now, charging=session.charging)
        session.anchor_soc = soc
        session.curve = self._curve(session.connector.charge_point, session.driver)
        if session.changed is not None and not session.changed.triggered:
            session.changed.succeed()
        self._emit(self.sample(session, now))  # MeterValues at once: the app sees the jump
        return session

    def finish_session(self, user_id: int) -> Session:
        """End a user's running session as a driver ending it at the charger does (StopTransaction ``Local``)."""
        session = self.session_of(user_id)
        if session is None:
            raise UnknownTargetError(f"user {user_id} has no running session")
        self._stop(session, "Local")
        return session

    # --- processes -------------------------------------------------------------------

    def _start_processes(self) -> None:
        self.env.process(self._arrivals())
        if self.scenario.faults.enabled:
            for cp in self.charge_points.values():
                self.env.process(self._failures(cp))
        for window in self._maintenance_windows():
            self.env.process(self._maintenance(window))
        if self.scenario.fleet.app.browsing_at_peak > 0:
            self.env.process(self._browsing())

    def _arrivals(self) -> Process:
        run, rng = self.scenario.run, self._rngs["arrivals"]
        for t in arrival_times(self.scenario.demand, run.start, run.duration, rng):
            yield self.env.timeout(t - self.env.now)
            driver = self._idle_driver(rng)
            if driver is not None:
                driver.busy = True
                self.env.process(self._trip(driver))

    def _idle_driver(self, rng: random.Random) -> Driver | None:
        """A random driver who is not on a trip; users 1..``reserved_users`` are left to people."""
        for _ in range(20):
            driver = self.drivers[rng.randrange(len(self.drivers))]
            if not driver.busy and driver.user_id > self.reserved_users:
                return driver
        return None

    def local_hour(self, t: float) -> int:
        """The hour of the local day (0..23) at ``t`` seconds into the run."""
        return int((self._local_offset + t) % 86400.0 // 3600.0)

    def _plan_trip(self, driver: Driver, rng: random.Random) -> tuple[str, tuple[float, float]]:
        demand = self.scenario.demand
        kind = "DC" if driver.can_charge("DC") and rng.random() < demand.dc_share else "AC"
        if not self._has_kind[kind]:
            kind = "AC" if kind == "DC" else "DC"
        driver.soc = rng.uniform(demand.arrival_soc.min, demand.arrival_soc.max)
        target = demand.dc_target_soc if kind == "DC" else demand.target_soc
        driver.target_soc = max(driver.soc, rng.uniform(target.min, target.max))
        driver.departure = math.inf
        origin = driver.work if 6 <= self.local_hour(self.env.now) < 15 else driver.home
        return kind, origin

    def _trip(self, driver: Driver) -> Process:
        env, rng, demand = self.env, self._rngs["trips"], self.scenario.demand
        kind, position = self._plan_trip(driver, rng)
        if rng.random() < self.scenario.fleet.app.open_before_driving:
            self._open_app(driver)
        candidates = [s for _, s in self._nearest[kind].nearest(*position, demand.search_stations)]
        tried: set[Station] = set()
        first_arrival: float | None = None
        connector: Connector | None = None
        station: Station | None = None
        while connector is None:
            station = self._choose(candidates, tried, kind)
            if station is None or len(tried) > demand.max_balks:
                self._leave(driver, station, "gave_up")
                return
            distance = math.hypot(station.x - position[0], station.y - position[1])
            yield env.timeout(distance / demand.travel_speed_kmh * 3600.0)
            position = (station.x, station.y)
            arrived = env.now
            first_arrival = arrived if first_arrival is None else first_arrival
            self._emit(ev.Arrival(arrived, driver.user_id, station.id, kind))
            connector = station.free_connector(kind)
            if connector is None and station.usable_for(kind):
                connector = yield from self._wait(station, driver, kind)
            if connector is None:
                self._emit(ev.Balk(env.now, driver.user_id, station.id, env.now - arrived))
                tried.add(station)
        assert station is not None and first_arrival is not None
        yield from self._charge(driver, connector, env.now - first_arrival)

    def _choose(self, candidates: list[Station], tried: set[Station], kind: str) -> Station | None:
        """The nearest station with a free connector, else the nearest that could serve after a wait."""
        usable = [s for s in candidates if s not in tried and s.usable_for(kind)]
        for station in usable:
            if station.free_connector(kind) is not None:
                return station
        return usable[0] if usable else None

    def _wait(self, station: Station, driver: Driver, kind: str) -> Generator[simpy.Event, Any, Connector | None]:
        waiter = Waiter(kind, self.env.event(), driver)
        station.queue.append(waiter)
        yield waiter.event | self.env.timeout(self.scenario.demand.patience)
        if waiter.event.triggered:
            connector: Connector | None = waiter.event.value
            return connector
        station.queue.remove(waiter)
        return None

    def _charge(self, driver: Driver, connector: Connector, waited: float) -> Process:
        env = self.env
        connector.driver = driver
        cp = connector.charge_point
        self._emit(ev.PlugIn(env.now, driver.user_id, cp.station.id, cp.id, connector.id, waited))
        self._set_status(connector, "Preparing")
        if cp.kind == "AC":
            driver.departure = env.now + draw(self.scenario.demand.ac_dwell, self._rngs["trips"])
        self._open_app(driver)
        accepted = yield self.app.request_start(driver, connector)
        session = connector.session
        if not accepted or session is None:
            self._unplug(connector)
            self._leave(driver, cp.station, "rejected")
            return
        if self._rngs["trips"].random() >= self.scenario.fleet.app.keep_open_while_charging:
            env.process(self._app_peeks(driver, session, first_close=APP_WATCH))
        yield from self._until_stop(driver, session)
        yield from self._finish(driver, session)

    def _finish(self, driver: Driver, session: Session) -> Process:
        """After the transaction: Finishing, unplug, leave (at once if the car was unplugged or a fault hit)."""
        connector = session.connector
        cp = connector.charge_point
        if session.stop_reason not in ("EVDisconnected",) and not cp.faulted and connector.fault_code is None:
            self._set_status(connector, "Finishing")
            yield self.env.timeout(UNPLUG_DELAY)
        self._unplug(connector)
        self._leave(driver, cp.station, "fault" if session.stop_reason == "Other" else "done")

    def _start_for_person(self, connector: Connector, id_tag: str) -> bool:
        """RemoteStart on a free connector for a user of the app (a person, e.g. a mobile developer).

        The model plugs in that user's car and charges it until the person
        stops the session (remote stop), the car is full (it then waits,
        SuspendedEV) or a fault ends it.
        """
        driver = self._drivers_by_tag.get(id_tag)
        cp = connector.charge_point
        if driver is None or driver.busy or not connector.free or not driver.can_charge(cp.kind):
            return False
        rng, demand = self._rngs["people"], self.scenario.demand
        driver.busy = True
        driver.soc = rng.uniform(demand.arrival_soc.min, demand.arrival_soc.max)
        driver.target_soc, driver.departure = 1.0, math.inf
        connector.driver = driver
        self._emit(ev.PlugIn(self.env.now, driver.user_id, cp.station.id, cp.id, connector.id, 0.0))
        self._set_status(connector, "Preparing")
        self._start_transaction(connector, driver, id_tag)
        self.env.process(self._person_session(driver, connector.session))
        return True

    def _person_session(self, driver: Driver, session: Session | None) -> Process:
        assert session is not None
        yield from self._until_stop(driver, session, person=True)
        yield from self._finish(driver, session)

    def _until_stop(self, driver: Driver, session: Session, *, person: bool = False) -> Process:
        """Charge until the driver stops (DC: at the target; AC: on leaving), or something ends it.

        A ``person`` (a real user of the app) never stops by themselves: only a
        remote stop or a fault ends their session; a full car waits plugged in.
        """
        env, rng = self.env, self._rngs["trips"]
        assert session.ended is not None
        while session.stop_reason is None:
            curve = session.curve
            reach = math.inf
            if session.charging:
                target = min(session.target_soc, curve.full_soc)
                reach = session.anchor_t + curve.seconds_to(session.anchor_soc, target)
            stop_at = math.inf if person else reach if session.kind == "DC" else session.departure
            suspend_at = reach if reach < stop_at else math.inf
            session.changed = env.event()
            yield env.timeout(max(0.0, min(stop_at, suspend_at) - env.now)) | session.ended | session.changed
            if session.stop_reason is not None or session.changed.triggered:
                continue
            if env.now >= stop_at:
                if session.kind == "DC" or rng.random() < STOP_WITH_APP:
                    yield self.app.request_stop(driver, session)
                if session.stop_reason is None:
                    self._stop(session, "EVDisconnected")
                return
            session.reanchor(env.now, charging=False)
            self._set_status(session.connector, "SuspendedEV")

    def _app_peeks(self, driver: Driver, session: Session, *, first_close: float = 0.0) -> Process:
        """Close the app after watching the start for ``first_close`` s, then look in now and then."""
        interval = self.scenario.fleet.app.reopen_interval
        rng = self._rngs["trips"]
        yield self.env.timeout(first_close)
        if session.stop_reason is not None:
            return
        self._close_app(driver)
        while True:
            yield self.env.timeout(rng.expovariate(1.0 / interval))
            if session.stop_reason is not None or driver.app_open:
                return
            self._open_app(driver)
            yield self.env.timeout(APP_PEEK)
            if session.stop_reason is not None:
                return
            self._close_app(driver)

    def _browsing(self) -> Process:
        """Start the browses (:func:`browsing_demand`); one with nobody free to browse is skipped."""
        run, rng = self.scenario.run, self._rngs["browsing"]
        demand = browsing_demand(self.scenario.demand, self.scenario.fleet.app)
        for t in arrival_times(demand, run.start, run.duration, rng):
            yield self.env.timeout(t - self.env.now)
            driver = self._free_browser(rng)
            if driver is not None:
                self.env.process(self._browse(driver, rng))

    def _free_browser(self, rng: random.Random) -> Driver | None:
        """A driver drawn uniformly among those who may browse (:meth:`_may_browse`), or None if nobody may.

        A few draws from the whole fleet first (cheap while most users are
        free), then a pass over it: each step draws uniformly among the same
        drivers, so the result is uniform.
        """
        for _ in range(20):
            driver = self.drivers[rng.randrange(len(self.drivers))]
            if self._may_browse(driver):
                return driver
        free = [d for d in self.drivers if self._may_browse(d)]
        return rng.choice(free) if free else None

    def _may_browse(self, driver: Driver) -> bool:
        """Neither on a trip nor with the app open, and not left to people (``reserved_users``)."""
        return not driver.busy and not driver.app_open and driver.user_id > self.reserved_users

    def _browse(self, driver: Driver, rng: random.Random) -> Process:
        """Open the app, keep it open for an exponential time, close it.

        A trip the user starts meanwhile takes the open app over: the browse
        then leaves it to the trip, which closes it when the driver leaves.
        """
        number = next(self._browse_numbers)
        self._browses[driver.user_id] = number
        self._open_app(driver)
        yield self.env.timeout(rng.expovariate(1.0 / self.scenario.fleet.app.browse_duration))
        if self._browses.get(driver.user_id) != number:
            return  # a trip took the app over, ended, and a later browse opened it again
        del self._browses[driver.user_id]
        if not driver.busy:
            self._close_app(driver)

    def _failures(self, cp: ChargePoint) -> Process:
        faults, rng = self.scenario.faults, self._rngs["faults"]
        while True:
            yield self.env.timeout(draw(faults.mtbf, rng))
            code = rng.choice(faults.error_codes)
            cp.faulted = True
            self._emit(ev.Fault(self.env.now, cp.station.id, cp.id, code))
            for connector in cp.connectors:
                if connector.session is not None and connector.session.stop_reason is None:
                    self._stop(connector.session, "Other", error_code=code)
                self._set_status(connector, "Faulted", code)
            self._dismiss_waiters(cp.station)
            yield self.env.timeout(draw(faults.mttr, rng))
            cp.faulted = False
            self._emit(ev.Repair(self.env.now, cp.station.id, cp.id))
            for connector in cp.connectors:
                if connector.driver is None:
                    self._release(connector)

    def _maintenance_windows(self) -> list[MaintenanceWindow]:
        spec, rng = self.scenario.maintenance, self._rngs["maintenance"]
        windows = list(spec.windows)
        if spec.generate is not None:
            gen = spec.generate
            chosen = rng.sample(self.network.stations, min(gen.stations, len(self.network.stations)))
            windows += [MaintenanceWindow(s.id, rng.uniform(gen.within.min, gen.within.max), gen.duration,
                                          gen.reason) for s in chosen]
        return windows

    def _maintenance(self, window: MaintenanceWindow) -> Process:
        station = self.stations[window.station_id]
        yield self.env.timeout(window.start)
        station.under_maintenance = True
        self._emit(ev.MaintenanceStarted(self.env.now, station.id, window.reason))
        self._dismiss_waiters(station)
        for cp in station.charge_points:
            for connector in cp.connectors:
                if connector.driver is None:
                    self._release(connector)
        yield self.env.timeout(window.duration)
        station.under_maintenance = False
        self._emit(ev.MaintenanceEnded(self.env.now, station.id))
        for cp in station.charge_points:
            for connector in cp.connectors:
                if connector.driver is None:
                    self._release(connector)

    # --- state changes ---------------------------------------------------------------

    def _emit(self, event: ev.Event) -> None:
        for sink in self._sinks:
            sink(event)

    def _set_status(self, connector: Connector, status: str, error_code: str | None = None) -> None:
        if status == connector.status:
            return
        previous, connector.status = connector.status, status
        cp = connector.charge_point
        self._emit(ev.ConnectorStatusChanged(self.env.now, cp.station.id, cp.id, connector.id, status,
                                             previous, error_code))

    def _curve(self, cp: ChargePoint, driver: Driver) -> ChargeCurve:
        car = driver.ev
        ev_max = car.max_ac_kw if cp.kind == "AC" else car.max_dc_kw
        limit = min(cp.spec.max_power_kw, ev_max, cp.power_cap_kw if cp.power_cap_kw is not None else math.inf)
        return ChargeCurve(car.battery_kwh, limit, ev_max, car.transition_soc)

    def _start_transaction(self, connector: Connector, driver: Driver, id_tag: str) -> None:
        env, cp = self.env, connector.charge_point
        session = Session(
            id=next(self._session_ids), driver=driver, connector=connector, kind=cp.kind,
            curve=self._curve(cp, driver), started=env.now, meter_start=connector.register_wh,
            register_start=connector.register, soc_start=driver.soc, target_soc=driver.target_soc,
            departure=driver.departure, anchor_t=env.now, anchor_soc=driver.soc,
            phases=min(cp.spec.phases, driver.ev.ac_phases) if cp.kind == "AC" else 0,
            ended=env.event(), charge_point_id=cp.id, connector_id=connector.id, ac_voltage=cp.spec.voltage)
        connector.session = session
        self.sessions[session.id] = session
        self._set_status(connector, "Charging")
        self._emit(ev.TransactionStarted(env.now, session.id, driver.user_id, id_tag, cp.station.id, cp.id,
                                         connector.id, session.meter_start, session.soc_start))
        self._sampler.add(session)

    def sample(self, session: Session, t: float) -> ev.MeterSample:
        """The meter sample of ``session`` at ``t`` (what MeterValues would report)."""
        curve = session.curve
        if not session.charging:
            soc, power = session.anchor_soc, 0.0
        else:
            # the constant-power stage, inlined (most samples fall in it); the curve does the rest
            soc = session.anchor_soc + curve.limit_kw * (t - session.anchor_t) / (curve.capacity_kwh * 3600.0)
            if soc <= curve.knee_soc:
                power = curve.limit_kw
            else:
                soc = curve.soc_after(session.anchor_soc, t - session.anchor_t)
                power = curve.power_at(soc)
        register = math.floor(session.register_start + (soc - session.soc_start) * curve.capacity_kwh * 1000.0)
        if session.phases:
            voltage = session.ac_voltage
            current = power * 1000.0 / (session.phases * voltage)  # physics.ac_current, inlined: a hot path
        else:
            car = session.driver.ev
            voltage = dc_voltage(soc, car.dc_voltage_min, car.dc_voltage_max)
            current = dc_current(power, voltage)
        return ev.MeterSample(t, session.id, session.charge_point_id, session.connector_id, register,
                              register - session.meter_start, power, voltage, current, session.phases, soc)

    def _stop(self, session: Session, reason: str, *, error_code: str | None = None) -> None:
        now, connector = self.env.now, session.connector
        session.reanchor(now, charging=False)
        connector.register = session.register_at(now)
        session.stop_reason = reason
        meter_stop = connector.register_wh
        self._emit(ev.TransactionStopped(now, session.id, session.driver.user_id, connector.charge_point.id,
                                         connector.id, meter_stop, meter_stop - session.meter_start,
                                         session.anchor_soc, reason, error_code))
        del self.sessions[session.id]
        assert session.ended is not None
        session.ended.succeed()

    def _unplug(self, connector: Connector) -> None:
        connector.driver = None
        connector.session = None
        self._release(connector)

    def _release(self, connector: Connector) -> None:
        """Show the idle status of a connector nobody uses, and give it to the first driver waiting."""
        if connector.driver is not None:
            return
        cp = connector.charge_point
        if cp.faulted or connector.fault_code is not None:
            self._set_status(connector, "Faulted", connector.fault_code)
            return
        if connector.inoperative or cp.station.under_maintenance:
            self._set_status(connector, "Unavailable")
            return
        self._set_status(connector, "Available")
        queue = cp.station.queue
        for waiter in queue:
            if waiter.kind == cp.kind:
                queue.remove(waiter)
                connector.driver = waiter.driver
                waiter.event.succeed(connector)
                return

    def _dismiss_waiters(self, station: Station) -> None:
        """Send on the drivers waiting for a kind of connector the station can no longer offer."""
        for waiter in [w for w in station.queue if not station.usable_for(w.kind)]:
            station.queue.remove(waiter)
            waiter.event.succeed(None)

    def _leave(self, driver: Driver, station: Station | None, reason: str) -> None:
        self._emit(ev.Departure(self.env.now, driver.user_id, station.id if station else None, reason))
        self._close_app(driver)
        driver.busy = False

    def _open_app(self, driver: Driver) -> None:
        if not driver.app_open:
            driver.app_open = True
            self._emit(ev.AppOpened(self.env.now, driver.user_id))

    def _close_app(self, driver: Driver) -> None:
        if driver.app_open:
            driver.app_open = False
            self._emit(ev.AppClosed(self.env.now, driver.user_id))


class _Sampler:
    """Meter samples of every transaction, every ``interval`` s from its start, by one process.

    Due times are whole seconds (the first at ``ceil(start + interval)``), kept
    in buckets, so that the SimPy scheduler sees one event per busy second,
    not one per sample.
    """

    def __init__(self, world: World, interval: float) -> None:
        self._world = world
        self._interval = interval
        self._buckets: dict[int, list[Session]] = {}
        self._due: list[int] = []
        self._idle: simpy.Event | None = None
        world.env.process(self._run())

    def add(self, session: Session) -> None:
        self._schedule(session, math.ceil(self._world.env.now + self._interval))
        if self._idle is not None and not self._idle.triggered:
            self._idle.succeed()

    def _schedule(self, session: Session, due: int) -> None:
        bucket = self._buckets.get(due)
        if bucket is None:
            self._buckets[due] = [session]
            heapq.heappush(self._due, due)
        else:
            bucket.append(session)

    def _schedule_all(self, sessions: list[Session], due: int) -> None:
        bucket = self._buckets.get(due)
        if bucket is None:
            self._buckets[due] = sessions
            heapq.heappush(self._due, due)
        else:
            bucket.extend(sessions)

    def _run(self) -> Process:
        env, world = self._world.env, self._world
        sample, emit, interval = world.sample, world._emit, self._interval
        while True:
            if not self._due:
                self._idle = env.event()
                yield self._idle
                self._idle = None
                continue
            due = heapq.heappop(self._due)
            if due > env.now:
                yield env.timeout(due - env.now)
            running = [session for session in self._buckets.pop(due) if session.stop_reason is None]
            for session in running:
                emit(sample(session, due))
            if running:
                self._schedule_all(running, math.ceil(due + interval))
