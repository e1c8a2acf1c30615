"""The checks as a stream: violations as soon as they are certain, state that follows what is live, bounded keeping."""

from __future__ import annotations

import copy

from trace_testkit import SEED_LINES, TraceKit, charger_status, good_session, meter_value, seed, session_started

from chargetwin.harness.checks import MAX_KEPT, MAX_LISTS_KEPT, CheckParams, Checks, GroundTruth, StationTruth
from chargetwin.harness.trace import TraceRecord
from chargetwin.harness.truth import SESSION

TARIFFS = {"STATION001": 7.5}
TRUTH = GroundTruth(stations={"STATION001": StationTruth("available", 3, 4)}, tariffs=TARIFFS)


def _feed(checks: Checks, records: list[TraceRecord]) -> list[tuple[int, str]]:
    """Feed ``records`` in order; (index of the record being fed, check) of each violation as it is reported."""
    found = []
    for index, record in enumerate(records):
        found.extend((index, v.check) for v in checks.observe(record))
    return found


def test_a_lost_message_is_reported_once_a_later_one_on_its_channel_arrives_not_at_the_end() -> None:
    kit = TraceKit()
    kit.connect(1, 10, 0)
    kit.start(1, 456, 1)
    kit.push(1, [10], session_started(456), 2)
    kit.publish(1, meter_value(456, 1.0, timestamp="2025-01-29T12:01:00Z"), 60)  # never delivered
    kit.push(1, [10], meter_value(456, 2.0, timestamp="2025-01-29T12:02:00Z"), 120)
    for t in range(130, 600, 10):  # the run goes on
        kit.receive(1, 10, charger_status(), t)
    checks = Checks(CheckParams(deadline_s=30), truth=TRUTH)
    found = _feed(checks, kit.records)
    lost = [index for index, check in found if check == "no_message_lost"]
    assert lost and kit.records[lost[0]].t_sim <= 121  # when the next meter_value reached the socket
    assert not [v for v in checks.settle() if v.check == "no_message_lost"]


def test_a_meter_going_back_is_reported_at_the_record_that_shows_it() -> None:
    kit = good_session()
    back = copy.deepcopy(kit.records[-3].message)  # the third meter_value, 3 kWh ...
    back["data"].update(energy_consumed=0.5, energy_delivered=0.5, meter_value=500, cost=3.75)
    kit.publish(1, back, 200)  # ... then 0.5 kWh
    checks = Checks(CheckParams(deadline_s=30), truth=TRUTH)
    found = _feed(checks, kit.records)
    assert (len(kit.records) - 1, "meters_monotonic") in found


def test_state_follows_what_is_live_not_how_long_the_run_is() -> None:
    """A hundred sessions one after another hold no more state at the end than ten did."""

    def state_after(sessions: int) -> int:
        kit = TraceKit()
        for n in range(sessions):
            t0, user = n * 3600.0, 1 + n % 5
            good_session(kit, user=user, socket=100 + n, session=1000 + n, t0=t0)
            kit.close(user, 100 + n, t0 + 300)
            _model_session(kit, n, user, t0)
        checks = Checks(CheckParams(deadline_s=30), tariffs=TARIFFS)
        _feed(checks, sorted(kit.records, key=lambda r: r.t_sim))
        checks.advance(sessions * 3600.0 + 3600, sessions * 3600.0 + 3600)
        results = checks.results()
        assert all(r.violation_count == 0 for r in results), [r.violations[:1] for r in results]
        # judged by all but the map (no truth of the stations here) and the restored session (no app reopens)
        assert all(r.checked for r in results if r.name not in ("map_converges", "active_session_restored")), \
            [(r.name, r.checked) for r in results]
        return checks.state_size()

    assert state_after(100) <= state_after(10)


def _model_session(kit: TraceKit, n: int, user: int, t0: float) -> None:
    """The model's transaction behind one ``good_session``: 1 kWh a minute for three minutes."""
    common = {"session": 9000 + n}
    kit.add(TraceRecord("twin", SESSION, "started", {**common, "user_id": user, "charger_id": "CP001",
                                                       "connector_id": 1, "t": t0 + 1.5, "energy_wh": 0.0},
                        t0 + 1.5, t0 + 1.5))
    for minute, wh in ((1, 1000.0), (2, 2000.0), (3, 3000.0)):
        kit.add(TraceRecord("twin", SESSION, "sample", {**common, "t": t0 + 60 * minute, "energy_wh": wh},
                            t0 + 60 * minute, t0 + 60 * minute))
    kit.add(TraceRecord("twin", SESSION, "stopped", {**common, "t": t0 + 239, "energy_wh": 3000.0}, t0 + 239, t0 + 239))


def test_every_violation_is_counted_and_the_first_thousand_kept() -> None:
    kit = TraceKit()
    kit.connect(1, 10, 0)
    wrong = charger_status()
    wrong["data"]["display"] = "9/9"  # display_matches_status, on every copy
    for n in range(MAX_KEPT + 50):
        kit.receive(1, 10, wrong, n * 0.01)
    checks = Checks(CheckParams(deadline_s=30), truth=TRUTH)
    _feed(checks, kit.records)
    schema = checks.results()[0]
    assert schema.violation_count == MAX_KEPT + 50 and len(schema.violations) == MAX_KEPT
    assert schema.rules == {"display_matches_status": MAX_KEPT + 50}


def test_past_a_few_violations_a_whole_charger_list_is_noted_not_kept() -> None:
    listing = next(m for m in (seed(line) for line in SEED_LINES) if m.get("type") == "charger_list_update")
    station = listing["data"]["chargers"][0]
    listing["data"]["chargers"] = [{**station, "station_id": f"STATION{n:03d}"} for n in range(120)]
    listing["action"] = "replace_all"  # one violation per list: an action the spec does not show
    kit = TraceKit()
    for n in range(MAX_LISTS_KEPT + 5):
        kit.add(TraceRecord("gateway-app", "websocket", "receive", listing, n, n, user_id=1, socket_id=n, line=n + 1))
    checks = Checks(CheckParams(deadline_s=30))
    _feed(checks, kit.records)
    kept = [v for v in checks.results()[0].violations]
    whole = [v for v in kept if "chargers" in v.records[0].message["data"]]
    noted = [v for v in kept if "chargers_not_kept" in v.records[0].message["data"]]
    assert len({v.records[0].line for v in whole}) == MAX_LISTS_KEPT
    assert noted and "the trace has it at line" in noted[0].records[0].message["data"]["chargers_not_kept"]
