"""Every cross-message check passes a conforming trace and fails each kind of trace it must catch."""

from __future__ import annotations

import copy
from typing import Any

from hypothesis import given
from hypothesis import strategies as st
from trace_testkit import (
    TARIFF,
    TraceKit,
    charger_status,
    good_session,
    meter_value,
    notification,
    seed,
    session_error,
    session_started,
    session_stopped,
)

from chargetwin.harness.checks import (
    CHECK_NAMES,
    CHECKS,
    GroundTruth,
    StationTruth,
    active_session_restored,
    causality_and_latency,
    consistent_across_hops,
    cost_matches_tariff,
    energy_matches_model,
    isolation,
    map_converges,
    meters_monotonic,
    no_message_lost,
    run_checks,
)

MODEL = {456: [(0.0, 0.0), (60.0, 1000.0), (120.0, 2000.0), (180.0, 3000.0), (240.0, 3000.0)]}
TRUTH = GroundTruth(energy_wh=MODEL, stations={"STATION001": StationTruth("available", 3, 4)},
                    tariffs={"STATION001": TARIFF})


def _events(kit: TraceKit) -> list[str]:
    return [v.message for v in causality_and_latency(kit.records, deadline_s=30).violations]


def _with_map(kit: TraceKit, *, user: int = 1, socket: int = 10) -> TraceKit:
    kit.push(user, [socket], charger_status(available=3, total=4), 250)
    return kit


# --- all checks on a conforming run ------------------------------------------------------


def test_every_check_is_described_with_a_spec_section_of_the_seed(seed_text: str) -> None:
    assert list(CHECKS) == list(CHECK_NAMES)
    for name, (words, section) in CHECKS.items():
        assert words.endswith("."), name
        title = section.split(" ", 1)[1] if section[0].isdigit() else section
        assert title in seed_text, (name, section)


def test_a_conforming_run_passes_every_check() -> None:
    kit = _with_map(good_session())
    _reopen(kit, 1, 11, 100, 456)  # a second app of the user looks in during the session
    kit.close(1, 11, 110)
    results = run_checks(kit.records, TRUTH, deadline_s=30)
    assert [r.name for r in results] == list(CHECK_NAMES)
    assert {r.name: [v.message for v in r.violations] for r in results} == {name: [] for name in CHECK_NAMES}
    assert all(r.checked > 0 for r in results), [(r.name, r.checked) for r in results]


# --- causality_and_latency ---------------------------------------------------------------


def _session(*, started_at: float | None = 2, meters: tuple[float, ...] = (60,), end_at: float | None = 240,
             end: str = "stopped", trace_end: float = 300) -> TraceKit:
    kit = TraceKit()
    kit.connect(1, 10, 0)
    kit.start(1, 456, 1)
    timeline: list[tuple[float, dict[str, object]]] = [(t, meter_value(456, 1.0)) for t in meters]
    if started_at is not None:
        timeline.append((started_at, session_started(456)))
    if end_at is not None:
        timeline.append((end_at, session_stopped(456) if end == "stopped" else session_error(456)))
    for t, message in sorted(timeline, key=lambda item: item[0]):
        kit.push(1, [10], message, t)  # type: ignore[arg-type]
    kit.receive(1, 10, charger_status(), trace_end)
    return kit


def test_causality_passes_in_order_within_the_deadline() -> None:
    result = causality_and_latency(_session().records, deadline_s=30)
    assert result.passed and result.checked == 1


def test_causality_missing_session_started() -> None:
    (problem,) = _events(_session(started_at=None, meters=(), end_at=None))
    assert "no session_started" in problem


def test_causality_missing_is_not_judged_before_the_deadline_passed() -> None:
    assert _events(_session(started_at=None, meters=(), end_at=None, trace_end=20)) == []


def test_causality_late_session_started() -> None:
    (problem,) = _events(_session(started_at=45, meters=(60,)))
    assert "44.1 s after" in problem


def test_causality_session_started_after_a_meter_value() -> None:
    (problem,) = _events(_session(started_at=20, meters=(10, 60)))
    assert "meter_value came before session_started" in problem


def test_causality_end_before_start() -> None:
    (problem,) = _events(_session(started_at=20, meters=(), end_at=10))
    assert "session_stopped came before session_started" in problem


def test_causality_meter_value_after_the_end() -> None:
    (problem,) = _events(_session(meters=(60, 250), end_at=240))
    assert "after the session ended" in problem


def test_causality_an_error_without_start_is_a_failed_start() -> None:
    assert _events(_session(started_at=None, meters=(), end_at=10, end="error")) == []


def test_causality_a_stop_without_start_is_flagged() -> None:
    (problem,) = _events(_session(started_at=None, meters=(), end_at=10))
    assert "without a session_started" in problem


# --- consistent_across_hops -------------------------------------------------------------


def test_consistency_passes_a_null_transaction_id_at_start() -> None:
    assert consistent_across_hops(good_session().records).passed


def test_consistency_transaction_id_differs_between_rest_and_websocket() -> None:
    kit = TraceKit()
    kit.connect(1, 10, 0)
    kit.start(1, 456, 1, transaction_id=790)
    kit.push(1, [10], session_started(456, transaction=789), 2)
    found = consistent_across_hops(kit.records).violations
    assert [(v.hop, v.expected, v.actual) for v in found] == [("redis", 790, 789), ("gateway-app", 790, 789)]


def test_consistency_websocket_copy_differs_from_redis() -> None:
    kit = good_session()
    original = meter_value(456, 4.0, timestamp="2025-01-29T12:09:00Z")
    kit.publish(1, original, 200)
    changed = copy.deepcopy(original)
    changed["data"]["energy_consumed"] = 4.5
    kit.receive(1, 10, changed, 200.1)
    (violation,) = consistent_across_hops(kit.records).violations
    assert violation.hop == "gateway-app"
    assert violation.expected == {"/data/energy_consumed": 4.0} and violation.actual == {"/data/energy_consumed": 4.5}


# --- isolation --------------------------------------------------------------------------


def test_isolation_passes_two_users_each_with_their_own() -> None:
    kit = good_session(user=1, socket=10, session=456)
    good_session(kit, user=2, socket=20, session=457, t0=1000)
    result = isolation(kit.records)
    assert result.passed and result.checked == 2 * 6


def test_isolation_session_update_of_user_2_on_user_1s_socket() -> None:
    kit = good_session(user=2, socket=20, session=457)
    kit.connect(1, 10, 0)
    kit.receive(1, 10, meter_value(457, 1.0), 61)
    (violation,) = isolation(kit.records).violations
    assert (violation.expected, violation.actual, violation.hop) == (1, 2, "gateway-app")


def test_isolation_notification_of_another_user() -> None:
    kit = TraceKit()
    kit.connect(1, 10, 0)
    kit.connect(2, 20, 0)
    kit.publish(2, notification(457, "Charging Stopped"), 5)
    kit.receive(1, 10, notification(457, "Charging Stopped"), 5.1)
    (violation,) = isolation(kit.records).violations
    assert "notification of user 2" in violation.message


def test_isolation_connected_names_another_user() -> None:
    kit = TraceKit()
    kit.connect(1, 10, 0)
    kit.records[0] = kit.records[0].__class__(**{**_as_kwargs(kit.records[0]), "user_id": 3})
    assert not isolation(kit.records).passed


def _as_kwargs(record: object) -> dict[str, object]:
    return {name: getattr(record, name) for name in record.__dataclass_fields__}  # type: ignore[attr-defined]


# --- meters_monotonic -------------------------------------------------------------------


def test_meters_going_backwards_are_flagged_per_stream() -> None:
    kit = good_session()
    kit.push(1, [10], meter_value(456, 2.5), 200)
    found = meters_monotonic(kit.records).violations
    assert {v.hop for v in found} == {"redis", "gateway-app"}
    assert {v.actual for v in found} == {2500, 2.5}


@given(st.lists(st.integers(min_value=0, max_value=10_000_000), min_size=1, max_size=30))
def test_any_non_decreasing_sequence_passes(readings: list[int]) -> None:
    kit = TraceKit()
    for i, wh in enumerate(sorted(readings)):
        kit.push(1, [10, 11], meter_value(456, wh / 1000), float(i))
    result = meters_monotonic(kit.records)
    assert result.passed and result.checked == 3 * len(readings)


@given(st.lists(st.integers(min_value=0, max_value=10_000_000), min_size=2, max_size=30, unique=True))
def test_any_decrease_is_found(readings: list[int]) -> None:
    ordered = sorted(readings)
    ordered[-1], ordered[-2] = ordered[-2], ordered[-1]
    kit = TraceKit()
    for i, wh in enumerate(ordered):
        kit.receive(1, 10, meter_value(456, wh / 1000), float(i))
    assert len(meters_monotonic(kit.records).violations) == 3  # meter_value, energy_consumed, energy_delivered


# --- energy_matches_model ---------------------------------------------------------------


def test_energy_matches_model_passes_and_flags_a_wrong_reading() -> None:
    kit = good_session()
    assert energy_matches_model(kit.records, MODEL).passed
    kit.receive(1, 10, meter_value(456, 2.9), 230)  # the model is at 3000 Wh since t=180
    (violation,) = energy_matches_model(kit.records, MODEL, lag_s=10).violations
    assert violation.actual == 2900 and violation.expected == [2990.0, 3010.0]


def test_energy_reading_taken_within_the_lag_passes() -> None:
    kit = TraceKit()
    kit.receive(1, 10, meter_value(456, 1.0), 100)  # read at t=60, delivered 40 s later
    assert energy_matches_model(kit.records, MODEL, lag_s=60).passed
    assert not energy_matches_model(kit.records, MODEL, lag_s=30).passed


# --- cost_matches_tariff ----------------------------------------------------------------


def test_cost_matches_tariff() -> None:
    kit = good_session()
    assert cost_matches_tariff(kit.records, {"STATION001": TARIFF}).checked == 6
    kit.push(1, [10], meter_value(456, 3.0, cost=30.0), 200)
    found = cost_matches_tariff(kit.records, {"STATION001": TARIFF}).violations
    assert [(v.hop, v.expected, v.actual) for v in found] == [("redis", 22.5, 30.0), ("gateway-app", 22.5, 30.0)]


# --- map_converges ----------------------------------------------------------------------


def test_map_converges_to_the_last_status() -> None:
    kit = _with_map(good_session())
    assert map_converges(kit.records, TRUTH.stations).passed


def test_map_last_status_differs_from_truth() -> None:
    kit = _with_map(good_session())
    kit.push(1, [10], charger_status(available=0, total=4), 260)
    (violation,) = map_converges(kit.records, TRUTH.stations).violations
    assert violation.actual == {"status": "in_use", "available_connectors": 0, "total_connectors": 4}


def test_map_that_never_showed_a_station_and_closed_sockets() -> None:
    kit = good_session()
    (violation,) = map_converges(kit.records, TRUTH.stations).violations
    assert "never showed" in violation.message
    kit.close(1, 10, 300)
    assert map_converges(kit.records, TRUTH.stations).checked == 0


# --- no_message_lost --------------------------------------------------------------------


def test_no_message_lost_counts_every_owed_delivery() -> None:
    kit = good_session()
    result = no_message_lost(kit.records, grace_s=5)
    # five publishes, one socket; the last (t=240) is within the grace window of the trace's end: not owed
    assert result.passed and result.checked == 4


def test_a_message_not_delivered_to_a_connected_socket_is_lost() -> None:
    kit = good_session()
    kit.connect(1, 11, 0)  # a second app of user 1 that receives nothing
    kit.receive(1, 11, session_started(456), 2.1)
    kit.publish(1, notification(456), 100)
    records = sorted(kit.records, key=lambda r: r.t_sim)  # the checks read a stream in the order it was seen
    found = no_message_lost(records, grace_s=5).violations
    lost = {(v.records[0].message.get("event"), v.expected, v.actual) for v in found}
    assert (None, 1, 0) in lost  # the notification, on both sockets
    assert ("meter_value", 1, 0) in lost and ("session_started", 1, 1) not in lost


def test_a_socket_closed_at_publish_time_is_not_owed() -> None:
    kit = TraceKit()
    kit.connect(1, 10, 0)
    kit.close(1, 10, 50)
    kit.publish(1, notification(456), 100)  # published after the close
    kit.publish(1, notification(457), 48)  # published within the grace window before the close
    kit.connect(1, 11, 200)
    kit.publish(1, notification(458), 199)  # before the new socket was connected
    kit.receive(1, 11, charger_status(), 300)
    result = no_message_lost(kit.records, grace_s=5)
    assert result.passed and result.checked == 0


# --- active_session_restored ------------------------------------------------------------


def _active_session(session: int | None) -> dict[str, Any]:
    """The seed's active_session_update (4.8): with ``session``, or the "No Active Session" one."""
    if session is None:
        return dict(seed(812))
    message = seed(792)
    message["data"]["session_id"] = session
    return dict(message)


def _reopen(kit: TraceKit, user: int, socket: int, t: float, session: int | None) -> TraceKit:
    """A new socket of ``user``: ``connected`` at ``t``, then the active session it is told about."""
    kit.connect(user, socket, t)
    kit.receive(user, socket, _active_session(session), t + 0.02)
    return kit


def _told(session: int | None, at: float) -> list[tuple[Any, Any]]:
    """(expected, actual) of each violation when socket 11 reopens at ``at`` and is told ``session``."""
    kit = _reopen(good_session(), 1, 11, at, session)  # session 456: started at 2, stopped at 240
    return [(v.expected, v.actual) for v in active_session_restored(kit.records).violations]


def test_a_reopened_app_during_the_session_is_told_it() -> None:
    kit = _reopen(good_session(), 1, 11, 100, 456)
    result = active_session_restored(kit.records)
    assert result.passed and result.checked == 1  # socket 10 connected 2 s before the start: a race


def test_a_reopened_app_before_and_after_a_session_is_told_none() -> None:
    kit = _reopen(TraceKit(), 1, 9, 0, None)
    good_session(kit, t0=100)
    _reopen(kit, 1, 11, 400, None)
    result = active_session_restored(kit.records)
    assert result.passed and result.checked == 2


def test_an_active_session_reported_as_none_fails() -> None:
    assert _told(None, 100) == [({"has_active_session": True, "session_id": 456},
                                 {"has_active_session": False, "session_id": None})]


def test_an_active_session_with_the_wrong_id_fails() -> None:
    kit = _reopen(good_session(), 1, 11, 100, 457)
    (violation,) = active_session_restored(kit.records).violations
    assert violation.actual == {"has_active_session": True, "session_id": 457}
    assert violation.records[0].socket_id == 11 and "socket 11 of user 1" in violation.message


def test_a_session_that_ended_reported_as_active_fails() -> None:
    assert _told(456, 300) == [({"has_active_session": False, "session_id": None},
                                {"has_active_session": True, "session_id": 456})]


def test_a_socket_that_never_got_an_active_session_update_fails() -> None:
    kit = good_session()
    missing = kit.connect(1, 11, 100)
    (violation,) = active_session_restored(kit.records).violations
    assert violation.records == (missing,) and violation.actual is None
    assert "no active_session_update arrived" in violation.message


def test_a_socket_closed_or_cut_off_within_the_grace_is_not_judged() -> None:
    kit = TraceKit()
    kit.connect(1, 10, 0)
    kit.close(1, 10, 2)
    kit.connect(2, 20, 50)
    kit.receive(2, 20, charger_status(), 52)  # the trace ends 2 s after the connect
    result = active_session_restored(kit.records, grace_s=5)
    assert result.passed and result.checked == 0
    assert len(active_session_restored(kit.records, grace_s=1).violations) == 2


def test_only_the_first_update_after_connected_counts() -> None:
    kit = _reopen(good_session(), 1, 11, 100, None)
    kit.receive(1, 11, _active_session(456), 101)
    assert not active_session_restored(kit.records).passed


def test_a_start_or_end_racing_the_connect_is_not_judged() -> None:
    for at, session in ((1, None), (3, None), (6.9, 456), (236, None), (244, 456)):
        result = active_session_restored(_reopen(good_session(), 1, 11, at, session).records, race_s=5)
        assert result.passed and result.checked == 0, at
    assert _told(None, 8) and _told(456, 246)  # just outside the window: judged
