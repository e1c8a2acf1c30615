"""Build the network and the fleet of a scenario, and find the stations near a place.

Generation is deterministic for a seed: the same scenario and seed give the
same stations, charging points, users and cars.
"""

from __future__ import annotations

import math
import random
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from .config import ChargePointSpec, EVModel, FleetSpec, NetworkGeneration, NetworkSpec, PowerOption, StationSpec
from .entities import ChargePoint, Connector, Driver, Station

__all__ = ["KM_PER_DEG", "NearestIndex", "Network", "build_fleet", "build_network", "generate_stations"]

KM_PER_DEG = 111.32
"""Kilometres per degree of latitude (and of longitude at the equator)."""

_STREETS = ("Tahrir", "Nile Corniche", "Salah Salem", "Abbas El Akkad", "Makram Ebeid", "Gameat El Dowal",
            "Shehab", "Mohandiseen", "Ramses", "El Nasr", "Omar Ibn El Khattab", "Mostafa El Nahas",
            "Road 9", "El Thawra", "Merghany", "El Hegaz", "Ahmed Orabi", "26th of July")
_DISTRICTS = ("Downtown", "Zamalek", "Dokki", "Heliopolis", "Nasr City", "Maadi", "Mohandessin",
              "Garden City", "New Cairo", "Sheikh Zayed", "6th of October", "Shubra", "Abbassia")
_PLACES = ("Mall", "Plaza", "Club", "Tower", "Hub", "Park", "Square", "Center")


@dataclass(slots=True)
class Network:
    """Every station with its charging points and connectors, and where they are."""

    stations: list[Station]
    center_latitude: float
    center_longitude: float

    def charge_points(self) -> Iterable[ChargePoint]:
        for station in self.stations:
            yield from station.charge_points

    def connectors(self) -> Iterable[Connector]:
        for cp in self.charge_points():
            yield from cp.connectors


def build_network(spec: NetworkSpec, rng: random.Random) -> Network:
    """Stations of ``spec`` (listed, or generated with ``rng``) as runtime entities."""
    if spec.generate is not None:
        specs = generate_stations(spec.generate, rng)
        lat0, lon0 = spec.generate.center_latitude, spec.generate.center_longitude
    else:
        specs = list(spec.stations)
        lat0 = sum(s.latitude for s in specs) / len(specs)
        lon0 = sum(s.longitude for s in specs) / len(specs)
    scale = KM_PER_DEG * math.cos(math.radians(lat0))
    stations = []
    for station_spec in specs:
        station = Station(station_spec, (station_spec.longitude - lon0) * scale,
                          (station_spec.latitude - lat0) * KM_PER_DEG)
        station.charge_points.extend(charge_point(cp_spec, station, rng) for cp_spec in station_spec.charge_points)
        stations.append(station)
    return Network(stations, lat0, lon0)


def charge_point(spec: ChargePointSpec, station: Station, rng: random.Random) -> ChargePoint:
    """A charging point of ``station`` with its connectors, their registers at random meter readings."""
    cp = ChargePoint(spec, station)
    cp.connectors = [Connector(cp, n, register=float(rng.randrange(10_000, 5_000_000)))
                     for n in range(1, spec.connectors + 1)]
    return cp


def _ids(prefix: str, count: int) -> list[str]:
    """``prefix`` and a number of at least three digits: STATION001 ... STATION1000 (as the loader expects)."""
    return [f"{prefix}{n:03d}" for n in range(1, count + 1)]


def _weighted(rng: random.Random, options: Sequence[PowerOption]) -> PowerOption:
    return rng.choices(options, weights=[o.weight for o in options])[0]


def generate_stations(gen: NetworkGeneration, rng: random.Random) -> list[StationSpec]:
    """``gen.stations`` stations spread uniformly over a disc around the centre.

    A station's charging points are all of one kind (AC sites, DC hubs), its
    tariff that of its kind. Ids: ``STATION001``..., ``CP001``... (at least
    three digits, numbered across the whole network).
    """
    station_ids = _ids("STATION", gen.stations)
    counts = [rng.randint(gen.charge_points_per_station.min, gen.charge_points_per_station.max)
              for _ in station_ids]
    cp_ids = iter(_ids("CP", sum(counts)))
    scale = KM_PER_DEG * math.cos(math.radians(gen.center_latitude))
    specs = []
    for station_id, count in zip(station_ids, counts, strict=True):
        option = _weighted(rng, gen.power_options)
        radius, angle = gen.radius_km * math.sqrt(rng.random()), rng.uniform(0, 2 * math.pi)
        charge_points = tuple(
            ChargePointSpec(next(cp_ids), option.kind, option.max_power_kw,
                            rng.randint(gen.connectors_per_charge_point.min, gen.connectors_per_charge_point.max),
                            phases=option.phases)
            for _ in range(count))
        district, street = rng.choice(_DISTRICTS), rng.choice(_STREETS)
        specs.append(StationSpec(
            id=station_id,
            name=f"{district} {rng.choice(_PLACES)} {'Fast ' if option.kind == 'DC' else ''}Charging",
            address=f"{rng.randint(1, 120)} {street} Street, {district}, {gen.city}",
            latitude=round(gen.center_latitude + radius * math.sin(angle) / KM_PER_DEG, 6),
            longitude=round(gen.center_longitude + radius * math.cos(angle) / scale, 6),
            tariff_per_kwh=gen.tariff_dc_per_kwh if option.kind == "DC" else gen.tariff_ac_per_kwh,
            currency=gen.currency,
            charge_points=charge_points,
        ))
    return specs


def build_fleet(spec: FleetSpec, radius_km: float, rng: random.Random) -> list[Driver]:
    """``spec.users`` drivers: homes spread evenly over the area, workplaces gathered towards the centre.

    Workplaces are normal around the centre with a standard deviation of half
    the radius: a city centre, but not a single business district that would
    leave its few stations queueing all day.
    """
    models: Sequence[EVModel] = spec.ev_models
    weights = [m.weight for m in models]
    drivers = []
    for user_id in range(1, spec.users + 1):
        r, a = radius_km * math.sqrt(rng.random()), rng.uniform(0, 2 * math.pi)
        work = (rng.gauss(0, radius_km / 2), rng.gauss(0, radius_km / 2))
        drivers.append(Driver(user_id, f"TAG{user_id:08d}", rng.choices(models, weights=weights)[0],
                              (r * math.cos(a), r * math.sin(a)), work))
    return drivers


class NearestIndex:
    """The stations nearest to a point, by a uniform grid (no dependency beyond the standard library)."""

    def __init__(self, stations: Sequence[Station]) -> None:
        self._stations = list(stations)
        xs = [s.x for s in self._stations] or [0.0]
        ys = [s.y for s in self._stations] or [0.0]
        self._x0, self._y0 = min(xs), min(ys)
        span = max(max(xs) - self._x0, max(ys) - self._y0, 1e-6)
        self._cell = max(span / max(1.0, math.sqrt(len(self._stations))), 1e-3)
        self._grid: dict[tuple[int, int], list[Station]] = {}
        for station in self._stations:
            self._grid.setdefault(self._key(station.x, station.y), []).append(station)
        self._max_ring = int(span / self._cell) + 2

    def _key(self, x: float, y: float) -> tuple[int, int]:
        return int((x - self._x0) // self._cell), int((y - self._y0) // self._cell)

    def nearest(self, x: float, y: float, count: int) -> list[tuple[float, Station]]:
        """Up to ``count`` (distance km, station) pairs, nearest first."""
        cx, cy = self._key(x, y)
        found: list[tuple[float, Station]] = []
        for ring in range(self._max_ring + 1):
            for gx in range(cx - ring, cx + ring + 1):
                for gy in (cy - ring, cy + ring) if abs(gx - cx) != ring else range(cy - ring, cy + ring + 1):
                    for station in self._grid.get((gx, gy), ()):
                        found.append((math.hypot(station.x - x, station.y - y), station))
            if len(found) >= count:
                found.sort(key=lambda pair: pair[0])
                # every station of a farther ring is at least ring * cell away
                if found[count - 1][0] <= ring * self._cell:
                    return found[:count]
        found.sort(key=lambda pair: pair[0])
        return found[:count]
