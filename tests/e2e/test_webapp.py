"""The reference web client at ``/app/`` in a real browser, against the real stack.

Debian's Chromium, headless, driven by Playwright's sync API, while the
stack (Redis, CMS, backend, gateway, charge points, model) runs on its own
loop in a background thread (``webapp_testkit.StackThread``). A test user
logs in, sees the map's icons (seed 2: green with X/Y), starts a session,
watches charge % and cost rise, gets a REST error shown, stops, sees a
station put under maintenance turn red, rides out a gateway restart, fits a
phone's width, and is sent back to login by a refused token. What the
stack cannot produce on demand (a blue station, the violations panel, a
capacity close) is played from the seed's own examples by a scripted
gateway. Screenshots of each step are kept (``webapp_testkit.artifacts_dir``).
The page must log no console error beyond the HTTP errors a test provokes,
and ask nothing of any other machine; the Redis traffic behind it must have
no contract violation.
"""

from __future__ import annotations

import json
import re
import time
from pathlib import Path
from typing import Any

import httpx
from conftest import seed_message
from stack_testkit import quiet, settings_for
from webapp_testkit import PageWatch, ScriptedTwin, StackThread, artifacts_dir, chromium

from chargetwin.twin.services.users import PASSWORD

SPEED = 600.0  # 10 simulated minutes a second: a meter value every 0.1 s, charge % visibly rising
ADMIN_TOKEN = "webapp-test-admin-token"
USER = 1
COLOURS = {"available": "rgb(27, 127, 59)", "in_use": "rgb(20, 88, 199)", "unavailable": "rgb(196, 43, 43)"}
WAIT_MS = 20_000
NO_VALUE = "\N{EN DASH}"  # what the page shows before a figure arrives
ANY_VALUE = re.compile(r".+")


def _marker(page: Any, station_id: str) -> Any:
    return page.locator(f"[data-testid='station-marker'][data-station-id='{station_id}']")


def _pin_colour(page: Any, station_id: str) -> str:
    colour: str = _marker(page, station_id).locator(".pin").evaluate("e => getComputedStyle(e).fill")
    return colour


def _value(page: Any, testid: str) -> float:
    raw = page.locator(f"[data-testid='{testid}']").get_attribute("data-value")
    assert raw is not None, f"{testid} shows no value"
    return float(raw)


def _maintenance(running: StackThread, http: httpx.Client, station_id: str) -> None:
    """Put ``station_id`` under maintenance through the twin's control API."""
    response = http.post(f"{running.stack.urls.backend}/twin/stations/{station_id}/maintenance",
                         headers={"X-Twin-Token": ADMIN_TOKEN},
                         json={"under_maintenance": True, "reason": "Scheduled maintenance"})
    assert response.status_code == 200, response.text


def test_the_reference_app_shows_the_map_a_session_and_maintenance(tmp_path: Path) -> None:
    browser_path = chromium()
    from playwright.sync_api import expect, sync_playwright

    shots = artifacts_dir("webapp")
    watch = PageWatch()
    expected_http_errors = {(409, "/api/charging/start")}  # provoked below: a second session
    with StackThread(quiet(), settings_for(tmp_path, admin_token=ADMIN_TOKEN), speed=SPEED) as running, \
            httpx.Client(timeout=10) as http:
        stack = running.stack
        stations = {s.id: sum(len(cp.connectors) for cp in s.charge_points) for s in stack.world.network.stations}
        specs = {s.id: s.spec for s in stack.world.network.stations}
        info = http.get(f"{stack.urls.backend}/twin/info")
        assert info.status_code == 200 and info.json()["data"]["gateway_url"] == stack.urls.gateway
        assert http.get(f"{stack.urls.backend}/twin/violations").status_code == 200
        url = f"{stack.urls.backend}/app/"  # the page asks /twin/info where the gateway is

        with sync_playwright() as playwright:
            browser = playwright.chromium.launch(executable_path=browser_path, args=["--no-sandbox"])
            try:
                page = browser.new_page(viewport={"width": 1280, "height": 900})
                watch.attach(page)
                by_id = page.get_by_test_id

                # Log in (POST /api/auth/login); the token goes to sessionStorage.
                page.goto(url, wait_until="load")
                expect(by_id("login-form")).to_be_visible()
                page.screenshot(path=str(shots / "01-login.png"))
                by_id("login-email").fill(f"user{USER}@chargetwin.example")
                by_id("login-password").fill(PASSWORD)
                by_id("login-submit").click()
                expect(by_id("dashboard")).to_be_visible()
                expect(by_id("connection-state")).to_have_attribute("data-state", "connected", timeout=WAIT_MS)
                token = page.evaluate("sessionStorage.getItem('chargetwin.token')")
                assert isinstance(token, str) and token.count(".") == 2

                # The map (seed 2, 4.7): every station green with X/Y, all connectors free.
                expect(by_id("station-marker")).to_have_count(len(stations))
                for station_id, total in stations.items():
                    marker = _marker(page, station_id)
                    expect(marker).to_have_attribute("data-status", "available")
                    expect(marker.get_by_test_id("station-display")).to_have_text(f"{total}/{total}")
                    assert _pin_colour(page, station_id) == COLOURS["available"]
                    spec = specs[station_id]
                    expect(marker.locator("title")).to_have_text(
                        f"{spec.name} · Available {total}/{total} · {spec.address}")
                expect(by_id("violations-panel")).to_be_visible()
                page.screenshot(path=str(shots / "02-map.png"), full_page=True)

                # Start a session (POST /api/charging/start); charge % and cost rise with the meter values.
                start = page.locator("[data-testid='start-button'][data-charger-id='CP001'][data-connector-id='1']")
                expect(start).to_be_enabled()
                start.click()
                expect(by_id("session-active")).to_be_visible()
                expect(by_id("session-cost")).to_have_attribute("data-value", ANY_VALUE, timeout=WAIT_MS)
                first_charge, first_cost = _value(page, "session-charge"), _value(page, "session-cost")
                page.wait_for_function(
                    """([charge, cost]) => {
                         const value = (id) => document.querySelector(`[data-testid='${id}']`).dataset.value;
                         return Number(value('session-charge')) > charge && Number(value('session-cost')) > cost;
                       }""", arg=[first_charge, first_cost], timeout=WAIT_MS)
                for testid in ("session-energy", "session-power", "session-duration", "session-time-remaining"):
                    expect(by_id(testid)).not_to_have_text(NO_VALUE)
                expect(by_id("session-status")).to_have_text("active")
                expect(_marker(page, "STATION001").get_by_test_id("station-display")).to_have_text(
                    f"{stations['STATION001'] - 1}/{stations['STATION001']}")
                page.screenshot(path=str(shots / "03-charging.png"), full_page=True)

                # A REST error is shown as the backend's envelope says it (D6: one session per user, 409).
                page.locator("[data-testid='start-button'][data-charger-id='CP003'][data-connector-id='1']").click()
                expect(by_id("rest-error")).to_be_visible()
                expect(by_id("rest-error-title")).to_contain_text("Session already active")
                expect(by_id("rest-error-message")).to_contain_text("HTTP 409")
                page.screenshot(path=str(shots / "04-rest-error.png"), full_page=True)
                by_id("rest-error-dismiss").click()
                expect(by_id("rest-error")).to_be_hidden()

                # Stop it (POST /api/charging/stop): the session ends, the station is free again.
                charged = _value(page, "session-charge")
                assert charged > first_charge
                by_id("stop-button").click()
                expect(by_id("session-none")).to_be_visible(timeout=WAIT_MS)
                expect(by_id("session-summary")).to_contain_text("kWh")
                expect(_marker(page, "STATION001").get_by_test_id("station-display")).to_have_text(
                    f"{stations['STATION001']}/{stations['STATION001']}", timeout=WAIT_MS)
                expect(by_id("notification").first).to_be_visible(timeout=WAIT_MS)
                page.screenshot(path=str(shots / "05-stopped.png"), full_page=True)

                # Maintenance (control API): the station turns red, without a number, and cannot be started.
                _maintenance(running, http, "STATION001")
                red = _marker(page, "STATION001")
                expect(red).to_have_attribute("data-status", "unavailable", timeout=WAIT_MS)
                expect(red.get_by_test_id("station-display")).to_have_count(0)
                assert _pin_colour(page, "STATION001") == COLOURS["unavailable"]
                card = page.locator("[data-testid='station'][data-station-id='STATION001']")
                expect(card.get_by_test_id("station-maintenance")).to_contain_text("Scheduled maintenance")
                for button in card.get_by_test_id("start-button").all():
                    expect(button).to_be_disabled()
                expect(_marker(page, "STATION002")).to_have_attribute("data-status", "available")
                page.screenshot(path=str(shots / "06-maintenance.png"), full_page=True)

                # The gateway goes away and comes back: the page counts down and reconnects by itself
                # (seed: Best Practices 6), and the welcome messages bring the map back (N-50).
                running.call(stack.stop_gateway())
                state = by_id("connection-state")
                expect(state).to_have_attribute("data-state", "reconnecting", timeout=WAIT_MS)
                expect(state).to_have_attribute("data-close-code", re.compile(r"^(1001|1006)$"))
                expect(state).to_contain_text("reconnecting in")
                page.screenshot(path=str(shots / "07-reconnecting.png"))
                running.call(stack.start_gateway())
                expect(state).to_have_attribute("data-state", "connected", timeout=WAIT_MS)
                expect(_marker(page, "STATION001")).to_have_attribute("data-status", "unavailable")
                expect(by_id("station-marker")).to_have_count(len(stations))

                # A phone's width: one column, nothing wider than the screen.
                page.set_viewport_size({"width": 390, "height": 844})
                expect(by_id("station-marker")).to_have_count(len(stations))
                assert page.evaluate("document.documentElement.scrollWidth") <= 390
                page.screenshot(path=str(shots / "08-phone.png"), full_page=True)

                # A token the gateway refuses (1008 "Invalid authentication token"): back to login, no loop.
                page.evaluate("sessionStorage.setItem('chargetwin.token', 'eyJhbGciOiJIUzI1NiJ9.e30.bad')")
                page.reload(wait_until="load")
                expect(by_id("login-form")).to_be_visible(timeout=WAIT_MS)
                expect(by_id("login-error")).to_contain_text("Invalid authentication token")
                assert page.evaluate("sessionStorage.getItem('chargetwin.token')") is None
                page.screenshot(path=str(shots / "09-refused-token.png"), full_page=True)
            finally:
                browser.close()

    assert watch.outside == []
    assert watch.unexpected_errors(expected_http_errors, refused_sockets=stack.urls.gateway) == []
    assert any(status == 409 and path == "/api/charging/start" for status, _, path in watch.statuses)
    assert all(socket.startswith(stack.urls.gateway) for socket in watch.sockets)
    assert running.traffic.violations() == []
    assert stack.watch is not None  # the app's own traffic, judged live: only the token refused on purpose
    assert stack.watch.by_rule == {"handshake_token_valid": 1}, stack.watch.snapshot()


def _send(twin: ScriptedTwin, *lines: int) -> None:
    """The seed's JSON examples that start at these lines, from the scripted gateway's latest connection."""
    for line in lines:
        twin.connections[-1].send(json.dumps(seed_message(line)))


def test_the_app_shows_the_seeds_own_examples() -> None:
    """The seed's messages, played by a scripted gateway: what the real stack cannot show on demand.

    A blue (all in use) icon, the seed's maintenance example, a session's
    figures, every kind of notification, the violations panel, the gateway
    found through ``/twin/info``, a capacity close (reconnect) and an
    authentication close (back to login, no further attempt).
    """
    browser_path = chromium()
    from playwright.sync_api import expect, sync_playwright

    shots = artifacts_dir("webapp")
    violation = {"at": "2025-01-29T12:00:00Z", "source": "gateway", "channel": "websocket", "direction": "receive",
                 "rule": "display_matches_status", "pointer": "/data/display",
                 "message": "display must be null unless the station is available"}
    twin = ScriptedTwin(welcome=[seed_message(488), seed_message(743), seed_message(812)],  # D5: 4.1, 4.7, 4.8
                        violations={"violations": [violation], "total": 1},
                        login={"token": "aaa.bbb.ccc", "user_id": 123, "expires_at": "2099-01-01T00:00:00Z"})
    watch = PageWatch()
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=browser_path, args=["--no-sandbox"])
        try:
            page = browser.new_page(viewport={"width": 1280, "height": 900})
            watch.attach(page)
            twin.attach(page)
            by_id = page.get_by_test_id
            # A link naming another host's gateway gets no token; /twin/info (same origin) is trusted.
            page.goto(f"{twin.ORIGIN}/app/?gateway=ws://gateway.example.com:8080", wait_until="load")
            by_id("login-email").fill("user123@chargetwin.example")
            by_id("login-password").fill(PASSWORD)
            by_id("login-submit").click()
            state = by_id("connection-state")
            expect(state).to_have_attribute("data-state", "closed")
            expect(state).to_contain_text("Not sending your token to gateway.example.com:8080")
            page.goto(f"{twin.ORIGIN}/app/", wait_until="load")  # still logged in: sessionStorage
            expect(state).to_have_attribute("data-state", "connected")
            assert len(twin.connections) == 1

            # 4.7: the station is green with the station's X/Y; its charging points list their own.
            station = _marker(page, "STATION001")
            expect(station.get_by_test_id("station-display")).to_have_text("3/6")
            assert station.locator("title").text_content() == "Main Street Station · Available 3/6 · 123 Main Street"
            card = page.locator("[data-testid='station'][data-station-id='STATION001']")
            expect(card.get_by_test_id("charger")).to_have_count(2)
            # CP001 has 3 of 4 free, and the list does not say which (N-47): all four are offered.
            expect(card.locator("[data-testid='start-button']:enabled")).to_have_count(4)
            expect(by_id("violations-total")).to_have_text("1")
            expect(by_id("violation")).to_contain_text("display_matches_status")

            # 4.6: all in use is blue with no number; under maintenance is red with no number.
            _send(twin, 658)
            expect(station).to_have_attribute("data-status", "in_use")
            expect(station.get_by_test_id("station-display")).to_have_count(0)
            assert _pin_colour(page, "STATION001") == COLOURS["in_use"]
            page.screenshot(path=str(shots / "10-seed-in-use.png"), full_page=True)
            _send(twin, 697)
            expect(station).to_have_attribute("data-status", "unavailable")
            assert _pin_colour(page, "STATION001") == COLOURS["unavailable"]
            expect(card.get_by_test_id("station-maintenance")).to_have_text("Under maintenance: Scheduled maintenance")

            # 4.8 and 4.4: the session and its figures; 3.2: how it ended.
            _send(twin, 792, 553)
            expect(by_id("session-charge")).to_have_text("50 %")
            for testid, text in (("session-time-remaining", "20 min"), ("session-energy", "42.50 kWh"),
                                 ("session-cost", "315.00 EGP"), ("session-power", "22.0 kW"),
                                 ("session-duration", "2hr 15min"), ("session-station", "Cillout Mansoura")):
                expect(by_id(testid)).to_have_text(text)
            _send(twin, 535, 517, 826)  # 4.3, 4.2 (failed), 4.9
            expect(by_id("notification")).to_have_count(3)
            assert [by_id("notification").nth(i).get_attribute("data-kind") for i in range(3)] == [
                "error", "response-failed", "notification"]
            page.screenshot(path=str(shots / "11-seed-session.png"), full_page=True)
            _send(twin, 332)
            expect(by_id("session-none")).to_be_visible()
            expect(by_id("session-summary")).to_have_text("Last session stopped: 14.50 kWh in 1hr 0min, 315.00 EGP.")

            # 1008 "Server at capacity" is worth another try; 1008 "Invalid authentication token" is not.
            twin.connections[-1].close(code=1008, reason="Server at capacity")
            expect(state).to_have_attribute("data-state", "reconnecting")
            expect(state).to_have_attribute("data-close-code", "1008")
            expect(state).to_have_attribute("data-state", "connected", timeout=WAIT_MS)
            assert len(twin.connections) == 2
            twin.connections[-1].close(code=1008, reason="Invalid authentication token")
            expect(by_id("login-error")).to_contain_text("1008 Invalid authentication token")
            expect(state).to_have_attribute("data-state", "closed")
            page.wait_for_timeout(2500)  # longer than the first two reconnection delays
            assert len(twin.connections) == 2
        finally:
            browser.close()
    assert watch.outside == []
    assert watch.unexpected_errors(set()) == []


def test_the_page_watch_sees_console_errors_and_outside_requests() -> None:
    """The checks above can fail: a tile, a remote gateway and a console error are all caught."""
    browser_path = chromium()
    from playwright.sync_api import sync_playwright

    watch = PageWatch()
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=browser_path, args=["--no-sandbox"])
        try:
            page = browser.new_page()
            watch.attach(page)
            page.set_content("<img src='https://tiles.example.com/0/0/0.png' alt=''>"
                             "<script>new WebSocket('wss://gateway.example.com/?token=x');"
                             "console.error('broken script')</script>")
            deadline = time.monotonic() + 10
            while len(watch.outside) < 2 and time.monotonic() < deadline:
                page.wait_for_timeout(50)
        finally:
            browser.close()
    assert sorted(watch.outside) == ["https://tiles.example.com/0/0/0.png", "wss://gateway.example.com/?token=x"]
    assert "broken script" in [text for text, _ in watch.unexpected_errors(set())]


def test_only_the_provoked_errors_are_forgiven() -> None:
    conflict = "Failed to load resource: the server responded with a status of 409 (Conflict)"
    failure = "Failed to load resource: the server responded with a status of 500 (Internal Server Error)"
    refused = "WebSocket connection to '{}/?token=t' failed: net::ERR_CONNECTION_REFUSED"
    start = "http://127.0.0.1:8000/api/charging/start"
    watch = PageWatch(errors=[(conflict, start), (failure, start), (refused.format("ws://127.0.0.1:8080"), ""),
                              (refused.format("ws://127.0.0.1:9999"), ""), ("broken script", start)])
    left = watch.unexpected_errors({(409, "/api/charging/start")}, refused_sockets="ws://127.0.0.1:8080")
    assert [text for text, _ in left] == [failure, refused.format("ws://127.0.0.1:9999"), "broken script"]
