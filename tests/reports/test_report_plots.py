"""The report's plots: inline SVG elements that parse, name themselves, share a page, stay small and repeat."""

from __future__ import annotations

import math
import re
from collections import Counter
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any
from xml.etree import ElementTree

import pytest

from chargetwin.harness import latency
from chargetwin.harness import series as harness
from chargetwin.harness.latency import LATENCIES
from chargetwin.harness.trace import HOPS, TraceRecord
from chargetwin.reports import plots

SVG = "{http://www.w3.org/2000/svg}"
START = "2025-01-29T16:00:00+02:00"
KINDS = ("fault", "repair", "maintenance_start", "maintenance_end")
MAX_BYTES = 150_000
REFERENCE = re.compile(r"url\(#([^)]+)\)")

Data = dict[str, Any]


# --- inputs shaped as results.json has them ------------------------------------------------------


def wave(i: int, n: int) -> float:
    """0 at the ends, 1 in the middle: a day's peak."""
    return (1 - math.cos(2 * math.pi * i / n)) / 2


def latency_over_time_data(buckets: int = 60) -> Data:
    series = {}
    for k, name in enumerate(LATENCIES):
        p50 = [None if (i + k) % 7 == 0 else round(2.0 * (k + 1) * (1 + wave(i, buckets)), 1) for i in range(buckets)]
        series[name] = {"count": [0 if v is None else 5 for v in p50], "p50": p50,
                        "p99": [None if v is None else round(v * 3, 1) for v in p50]}
    return {"bucket_s": 300.0, "t_sim": [i * 300.0 for i in range(buckets)], "series": series}


def histograms_data() -> Data:
    buckets = len(latency.HISTOGRAM_EDGES_MS) + 1
    return {"edges_ms": list(latency.HISTOGRAM_EDGES_MS),
            "counts": {name: [(i * 7 + k * 3) % 11 if k // 2 + 2 <= i <= k // 2 + 8 else 0 for i in range(buckets)]
                       for k, name in enumerate(LATENCIES)}}


def throughput_data(points: int = harness.MAX_POINTS) -> Data:
    hops = {}
    for k, hop in enumerate(HOPS):
        series = [int(20 * (k + 1) * wave(i, 50)) + (i * 13 + k) % 9 for i in range(points)]
        hops[hop] = {"total": sum(series), "mean": sum(series) / points, "p50": 0.0, "p99": 0.0,
                     "peak": float(max(series)), "series": series}
    return {"bucket_s": 1.0, "series_bucket_s": 1.0, "hops": hops}


def city_data(*, buckets: int = 60, stations: int = 8, events: int = 40, bucket_s: float = 300.0) -> Data:
    """A city shaped as ``chargetwin.twin.model.series.CitySeries.result`` makes it."""
    in_use = [round(stations * 0.7 * wave(i, buckets)) for i in range(buckets)]
    unavailable = [1 if buckets // 3 <= i < buckets // 2 else 0 for i in range(buckets)]
    connectors = 4 * stations
    occupied = [2 * n for n in in_use]
    out_of_service = [2 * n for n in unavailable]
    timeline = [{"t_sim": round((j + 0.5) * buckets * bucket_s / events, 1), "kind": KINDS[j % 4],
                 "station_id": f"S{j % stations + 1}", "charge_point_id": None, "detail": None}
                for j in range(events)]
    energy = [round(40.0 * sum(occupied[:i + 1]) * bucket_s / 3600, 3) for i in range(buckets)]
    return {
        "bucket_s": bucket_s, "start": START, "t_sim": [round(i * bucket_s, 3) for i in range(buckets)],
        "sessions_active": occupied,
        "connectors": {"total": connectors, "occupied": occupied, "out_of_service": out_of_service,
                       "available": [connectors - a - b for a, b in zip(occupied, out_of_service, strict=True)]},
        "stations": {"total": stations, "in_use": in_use, "unavailable": unavailable,
                     "available": [stations - a - b for a, b in zip(in_use, unavailable, strict=True)]},
        "queue": [round(12 * wave(i, buckets) ** 3) for i in range(buckets)],
        "arrivals": [3 + i % 4 for i in range(buckets)],
        "balks": [round(5 * wave(i, buckets) ** 4) for i in range(buckets)],
        "gave_up": [1 if i % 9 == 4 else 0 for i in range(buckets)],
        "sessions_started": [2 + i % 3 for i in range(buckets)],
        "energy_kwh": energy,
        "timeline": timeline, "timeline_dropped": 0,
    }


CITY_PLOTS: dict[str, Callable[[Any], str | None]] = {
    "city_sessions": plots.city_sessions, "city_status_mix": plots.city_status_mix, "city_queue": plots.city_queue,
    "city_energy": plots.city_energy, "city_timeline": plots.city_timeline,
}
PLOTS: dict[str, Callable[[], str | None]] = {
    "latency_over_time": lambda: plots.latency_over_time(latency_over_time_data(), start=START),
    "latency_histograms": lambda: plots.latency_histograms(histograms_data()),
    "throughput": lambda: plots.throughput(throughput_data()),
    **{name: (lambda plot=plot: plot(city_data())) for name, plot in CITY_PLOTS.items()},
}


@pytest.fixture(scope="module")
def rendered() -> dict[str, str]:
    """Every plot of the inputs above, drawn once for the module."""
    svgs = {name: draw() for name, draw in PLOTS.items()}
    assert all(svg is not None for svg in svgs.values())
    return {name: svg for name, svg in svgs.items() if svg is not None}


# --- helpers -------------------------------------------------------------------------------------


def parse(svg: str) -> ElementTree.Element:
    return ElementTree.fromstring(svg)


def texts(svg: str) -> list[str]:
    return [elem.text or "" for elem in parse(svg).iter(f"{SVG}text")]


def ids(svg: str) -> list[str]:
    return [elem.attrib["id"] for elem in parse(svg).iter() if "id" in elem.attrib]


def references(svg: str) -> set[str]:
    refs = set()
    for elem in parse(svg).iter():
        refs.update(REFERENCE.findall(" ".join(elem.attrib.values())))
        href = elem.get("href")
        if href is not None:
            refs.add(href.removeprefix("#"))
    return refs


def duplicate_ids(page: str) -> list[str]:
    """Ids given more than once in a page of several SVG elements."""
    counts = Counter(elem.attrib["id"] for elem in ElementTree.fromstring(f"<div>{page}</div>").iter()
                     if "id" in elem.attrib)
    return sorted(name for name, n in counts.items() if n > 1)


def fills(svg: str) -> set[str]:
    """Fill colours, of styles (``fill: #...``) and of attributes (a hatch pattern's ``fill="#..."``)."""
    return set(re.findall(r'fill(?:: |=")(#[0-9a-f]{6})', svg))


# --- the element ---------------------------------------------------------------------------------


@pytest.mark.parametrize("name", PLOTS)
def test_each_plot_is_an_inline_svg_element(rendered: dict[str, str], name: str) -> None:
    svg = rendered[name]
    assert svg.startswith("<svg ") and svg.endswith("</svg>")
    for banned in ("<?xml", "<!DOCTYPE", "<!--", "<metadata", "xlink:"):
        assert banned not in svg
    root = parse(svg)
    assert root.tag == f"{SVG}svg"
    assert root.get("width") == "100%" and root.get("height") is None
    assert len((root.get("viewBox") or "").split()) == 4


@pytest.mark.parametrize("name", PLOTS)
def test_each_plot_names_what_it_draws(rendered: dict[str, str], name: str) -> None:
    root = parse(rendered[name])
    label = root.get("aria-label")
    assert root.get("role") == "img"
    assert label
    assert root[0].tag == f"{SVG}title" and root[0].text == label


@pytest.mark.parametrize("name", PLOTS)
def test_text_stays_text(rendered: dict[str, str], name: str) -> None:
    """svg.fonttype = none: labels are <text> elements, not glyphs drawn as paths."""
    svg = rendered[name]
    assert texts(svg)
    assert "DejaVuSans-" not in svg


@pytest.mark.parametrize("name", PLOTS)
def test_references_resolve_inside_their_own_svg(rendered: dict[str, str], name: str) -> None:
    svg = rendered[name]
    assert references(svg) <= set(ids(svg))


@pytest.mark.parametrize("name", PLOTS)
def test_the_style_sheet_applies_to_its_own_svg_only(rendered: dict[str, str], name: str) -> None:
    root = parse(rendered[name])
    sheets = [elem.text or "" for elem in root.iter(f"{SVG}style")]
    assert sheets
    assert all(sheet.startswith(f"#{root.get('id')} ") for sheet in sheets)


def test_ids_are_unique_across_a_page(rendered: dict[str, str]) -> None:
    other_city = city_data(buckets=48, stations=5, events=12, bucket_s=240.0)
    page = "".join([*rendered.values(), *(svg for plot in CITY_PLOTS.values() if (svg := plot(other_city)))])
    assert len(ids(rendered["throughput"])) > 1  # clip paths and markers: there is something to collide
    assert duplicate_ids(page) == []


def test_the_duplicate_check_finds_duplicates(rendered: dict[str, str]) -> None:
    """The one collision left: the very same figure twice on a page."""
    svg = rendered["city_energy"]
    assert duplicate_ids(svg + svg) == sorted(set(ids(svg)))


@pytest.mark.parametrize("name", PLOTS)
def test_same_input_same_svg(rendered: dict[str, str], name: str) -> None:
    assert PLOTS[name]() == rendered[name]


def test_other_input_other_ids(rendered: dict[str, str]) -> None:
    other = plots.city_energy(city_data(buckets=59))
    assert other is not None
    assert parse(other).get("id") != parse(rendered["city_energy"]).get("id")


def test_threads_draw_the_same_plots(rendered: dict[str, str]) -> None:
    names = ["throughput", "city_status_mix", "city_queue", "latency_histograms"] * 2
    with ThreadPoolExecutor(max_workers=4) as pool:
        drawn = list(pool.map(lambda name: PLOTS[name](), names))
    assert drawn == [rendered[name] for name in names]


# --- nothing to draw -----------------------------------------------------------------------------

ALL = [plots.latency_over_time, plots.latency_histograms, plots.throughput, *CITY_PLOTS.values()]


@pytest.mark.parametrize("plot", ALL, ids=lambda plot: plot.__name__)
@pytest.mark.parametrize("data", [None, {}, [], "results", {"bucket_s": 60.0}], ids=repr)
def test_no_data_no_plot(plot: Callable[[Any], str | None], data: Any) -> None:
    assert plot(data) is None


def without(data: Data, *keys: str) -> Data:
    return {key: value for key, value in data.items() if key not in keys}


NOTHING_TO_DRAW: list[tuple[Callable[[Any], str | None], Data]] = [
    (plots.latency_over_time, latency.latency_over_time([])),
    (plots.latency_over_time, {**latency_over_time_data(3), "series": {
        "rest.start": {"count": [0, 0, 0], "p50": [None, None, None], "p99": [None, None, None]}}}),
    (plots.latency_over_time, without(latency_over_time_data(), "bucket_s")),
    (plots.latency_over_time, {**latency_over_time_data(), "t_sim": ["0", "60"]}),
    (plots.latency_histograms, latency.latency_histograms([])),
    (plots.latency_histograms, without(histograms_data(), "edges_ms")),
    (plots.latency_histograms, {**histograms_data(), "counts": {"rest.start": [1, 2, 3]}}),
    (plots.throughput, harness.throughput([])),
    (plots.throughput, without(throughput_data(), "series_bucket_s")),
    (plots.throughput, {**throughput_data(), "series_bucket_s": 0.0}),
    (plots.throughput, {**throughput_data(), "hops": {"redis": {"total": 3}}}),
    *[(plot, {**city_data(), "t_sim": []}) for plot in CITY_PLOTS.values()],
    *[(plot, {**city_data(), "bucket_s": -300.0}) for plot in CITY_PLOTS.values()],
    (plots.city_sessions, without(city_data(), "sessions_active", "connectors")),
    (plots.city_status_mix, without(city_data(), "stations")),
    (plots.city_status_mix, {**city_data(), "stations": {"total": 8, "available": "8"}}),
    (plots.city_queue, without(city_data(), "queue", "balks")),
    (plots.city_energy, without(city_data(), "energy_kwh")),
    (plots.city_energy, {**city_data(), "energy_kwh": [1.0, True, 3.0]}),
    (plots.city_timeline, {**city_data(), "timeline": []}),
    (plots.city_timeline, {**city_data(), "timeline": [{"kind": "fault", "station_id": "S1"}]}),
]


@pytest.mark.parametrize(("plot", "data"), NOTHING_TO_DRAW,
                         ids=[f"{plot.__name__}-{i}" for i, (plot, _) in enumerate(NOTHING_TO_DRAW)])
def test_missing_or_empty_series_give_no_plot(plot: Callable[[Any], str | None], data: Data) -> None:
    assert plot(data) is None


def test_draws_the_harness_own_throughput() -> None:
    records = [TraceRecord(hop=hop, channel="websocket", direction="receive", message={}, t_sim=0.0,
                           t_wall=i * 0.25 + k)
               for k, hop in enumerate(HOPS) for i in range(8 * (k + 1))]
    svg = plots.throughput(harness.throughput(records))
    assert svg is not None
    assert "redis: 32 messages, peak 4/s" in texts(svg)


def test_a_partial_city_draws_what_it_has() -> None:
    svg = plots.city_sessions(without(city_data(), "connectors"))
    assert svg is not None
    assert "sessions active" in texts(svg) and "connectors available" not in texts(svg)


# --- what the plots show -------------------------------------------------------------------------


def test_status_mix_draws_the_map_colours(rendered: dict[str, str]) -> None:
    svg = rendered["city_status_mix"]
    assert {"#009e73", "#0072b2", "#d55e00"} <= fills(svg)  # available green, in use blue, unavailable red
    assert {"available", "in use", "unavailable"} <= set(texts(svg))
    assert parse(svg).find(f".//{SVG}pattern") is not None  # unavailable is hatched, for greyscale print


def test_status_mix_leaves_out_absent_statuses() -> None:
    city = city_data()
    city["stations"] = without(city["stations"], "unavailable")
    svg = plots.city_status_mix(city)
    assert svg is not None
    assert "#d55e00" not in fills(svg) and "unavailable" not in texts(svg)


def test_city_time_reads_as_clock_time(rendered: dict[str, str]) -> None:
    labels = texts(rendered["city_sessions"])
    assert {"16:00", "18:00", "20:00"} <= set(labels)
    assert "simulated time (2025-01-29, UTC+02:00)" in labels


def test_latency_time_is_clock_time_with_a_start_else_time_since_the_start(rendered: dict[str, str]) -> None:
    assert "16:00" in texts(rendered["latency_over_time"])
    svg = plots.latency_over_time(latency_over_time_data())
    assert svg is not None
    assert {"0:00", "2:00", "4:00"} <= set(texts(svg))  # 5 hours, at most 4 ticks a panel
    assert "simulated time since the start (h:mm)" in texts(svg)


def test_axes_name_their_units(rendered: dict[str, str]) -> None:
    assert "latency (ms, log)" in texts(rendered["latency_over_time"])
    assert "messages/s" in texts(rendered["throughput"])
    assert "energy delivered (kWh)" in texts(rendered["city_energy"])
    assert "share of samples (%)" in texts(rendered["latency_histograms"])


def test_timeline_has_a_row_per_station_when_few(rendered: dict[str, str]) -> None:
    labels = set(texts(rendered["city_timeline"]))
    assert {f"S{i}" for i in range(1, 9)} <= labels
    assert {"fault", "repair", "maintenance starts", "maintenance ends"} <= labels  # the legend


def test_timeline_has_a_row_per_kind_when_many_stations() -> None:
    svg = plots.city_timeline({**city_data(stations=20, events=60), "timeline_dropped": 37})
    assert svg is not None
    labels = texts(svg)
    assert "S17" not in labels
    assert labels.count("maintenance starts") == 2  # the row and the legend
    assert "37 later entries not kept by the run" in labels


def test_data_text_is_drawn_as_written() -> None:
    """A station id is text, not mathtext nor markup."""
    city = city_data(stations=2, events=4)
    city["timeline"][0]["station_id"] = "S$1$ <&>"
    svg = plots.city_timeline(city)
    assert svg is not None
    assert "S$1$ <&>" in texts(svg)


# --- size ----------------------------------------------------------------------------------------


def test_a_full_throughput_stays_small(rendered: dict[str, str]) -> None:
    assert len(rendered["throughput"].encode()) < MAX_BYTES  # 400 points x 6 hops


def test_a_longer_throughput_is_summed_to_the_same_size(rendered: dict[str, str]) -> None:
    svg = plots.throughput(throughput_data(points=10 * harness.MAX_POINTS))
    assert svg is not None
    assert len(svg.encode()) < 1.2 * len(rendered["throughput"].encode())


@pytest.mark.parametrize("name", CITY_PLOTS)
def test_a_full_city_stays_small(rendered: dict[str, str], name: str) -> None:
    assert len(rendered[name].encode()) < MAX_BYTES  # 60 buckets


def test_a_full_timeline_stays_small() -> None:
    svg = plots.city_timeline(city_data(events=500, stations=120))  # the series' default cap
    assert svg is not None
    assert len(svg.encode()) < MAX_BYTES
