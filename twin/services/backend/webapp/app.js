// The reference web client: what a conforming app shows (seed sections 1, 2 and 4).
//
// REST for commands (login, start, stop), the gateway's WebSocket for
// everything it is told (receive-only: this page never sends a frame), the
// twin's /twin/violations for what the checks found. state.js holds the
// protocol rules; this module does the I/O and renders. All text from the
// network goes in through textContent, never as HTML.

import {
  STATUS_LABELS, apply, closeAction, connectorClass, emptyState, formatDuration, project,
  reconnectDelay, startable, startedOverRest, stoppedOverRest, timeOfDay,
} from "./state.js";

const STORAGE = {token: "chargetwin.token", userId: "chargetwin.user_id", expiresAt: "chargetwin.expires_at",
                 email: "chargetwin.email"};
const VIOLATIONS_POLL_MS = 2000;
const SVG = "http://www.w3.org/2000/svg";

const app = {
  state: emptyState(),
  token: null,
  gatewayUrl: null,
  socket: null,
  attempt: 0,
  reconnectTimer: null,
  countdownTimer: null,
  busy: false,
  signatures: new Map(), // station_id -> what its list entry was rendered from
  mapSignature: "",
};

const $ = (testid, root = document) => root.querySelector(`[data-testid="${testid}"]`);

function element(tag, attributes = {}, ...children) {
  const node = document.createElement(tag);
  for (const [name, value] of Object.entries(attributes)) {
    if (value === false || value === null || value === undefined) continue;
    if (name === "text") node.textContent = value;
    else node.setAttribute(name, value === true ? "" : String(value));
  }
  node.append(...children.filter((c) => c !== null && c !== undefined));
  return node;
}

function svg(tag, attributes = {}, ...children) {
  const node = document.createElementNS(SVG, tag);
  for (const [name, value] of Object.entries(attributes)) {
    if (name === "text") node.textContent = value;
    else node.setAttribute(name, String(value));
  }
  node.append(...children);
  return node;
}

// --- start --------------------------------------------------------------------------

function boot() {
  $("login-form").addEventListener("submit", onLogin);
  $("logout").addEventListener("click", () => logout(""));
  $("stop-button").addEventListener("click", onStop);
  $("rest-error-dismiss").addEventListener("click", hideRestError);
  $("station-list").addEventListener("click", onStationListClick);
  $("map").addEventListener("click", onMapClick);
  $("map").addEventListener("keydown", (event) => {
    if (event.key === "Enter" || event.key === " ") onMapClick(event);
  });
  window.addEventListener("resize", () => { app.mapSignature = ""; renderMap(); });
  window.addEventListener("online", () => { if (app.reconnectTimer !== null) connect(); });
  pollViolations();
  const token = sessionStorage.getItem(STORAGE.token);
  if (token && !expired()) {
    app.token = token;
    showDashboard();
  } else {
    showLogin(token ? "Your login expired: log in again." : "");
  }
}

function expired() {
  const at = Date.parse(sessionStorage.getItem(STORAGE.expiresAt) || "");
  return Number.isFinite(at) && at <= Date.now();
}

// --- log in and out (POST /api/auth/login; SPEC-NOTES N-25) ----------------------------

function showLogin(notice) {
  $("login").hidden = false;
  $("dashboard").hidden = true;
  $("account").hidden = true;
  const error = $("login-error");
  error.textContent = notice;
  error.hidden = !notice;
  $("login-email").value ||= sessionStorage.getItem(STORAGE.email) || "";
  $("login-email").focus();
}

async function onLogin(event) {
  event.preventDefault();
  const email = $("login-email").value.trim();
  const password = $("login-password").value;
  const error = $("login-error");
  if (!email || !password) {
    error.textContent = "Enter the email and the password of a test user.";
    error.hidden = false;
    return;
  }
  $("login-submit").disabled = true;
  const result = await post("/api/auth/login", {email, password}, {auth: false});
  $("login-submit").disabled = false;
  if (!result.ok) {
    error.textContent = `${result.error}: ${result.message}`;
    error.hidden = false;
    return;
  }
  sessionStorage.setItem(STORAGE.token, result.data.token);
  sessionStorage.setItem(STORAGE.userId, String(result.data.user_id));
  sessionStorage.setItem(STORAGE.expiresAt, result.data.expires_at);
  sessionStorage.setItem(STORAGE.email, email);
  app.token = result.data.token;
  $("login-password").value = "";
  error.hidden = true;
  showDashboard();
}

function showDashboard() {
  $("login").hidden = true;
  $("dashboard").hidden = false;
  $("account").hidden = false;
  $("account-email").textContent = sessionStorage.getItem(STORAGE.email) || `user ${sessionStorage.getItem(STORAGE.userId)}`;
  app.state = emptyState();
  app.signatures.clear();
  app.mapSignature = "";
  renderAll();
  startGateway();
}

function logout(notice) {
  disconnect(1000, "Logged out");
  for (const key of [STORAGE.token, STORAGE.userId, STORAGE.expiresAt]) sessionStorage.removeItem(key);
  app.token = null;
  app.state = emptyState();
  showLogin(notice);
}

// --- REST (seed 1; errors: D6, the {success:false, error, message} envelope) --------------

async function post(path, body, {auth = true} = {}) {
  const headers = {"Content-Type": "application/json", Accept: "application/json"};
  if (auth) headers.Authorization = `Bearer ${app.token}`;
  let response;
  try {
    response = await fetch(path, {method: "POST", headers, body: JSON.stringify(body)});
  } catch (error) {
    return {ok: false, status: 0, error: "Backend unreachable", message: `The request did not get an answer (${error.message}).`};
  }
  let payload = null;
  try {
    payload = await response.json();
  } catch {
    payload = null;
  }
  if (response.ok && payload?.success === true) return {ok: true, data: payload.data};
  return {
    ok: false,
    status: response.status,
    error: typeof payload?.error === "string" ? payload.error : `HTTP ${response.status}`,
    message: typeof payload?.message === "string" ? payload.message : "The answer was not the error envelope of the API.",
  };
}

function showRestError(what, result) {
  $("rest-error-title").textContent = `${what} failed: ${result.error}`;
  $("rest-error-message").textContent = `${result.message}${result.status ? ` (HTTP ${result.status})` : ""}`;
  $("rest-error").hidden = false;
}

function hideRestError() {
  $("rest-error").hidden = true;
}

async function whileBusy(work) {
  if (app.busy) return;
  app.busy = true;
  document.body.classList.add("busy");
  try {
    await work();
  } finally {
    app.busy = false;
    document.body.classList.remove("busy");
    renderStations();
    renderSession();
  }
}

function onStationListClick(event) {
  const button = event.target.closest("[data-testid='start-button']");
  if (button === null || button.disabled) return;
  const chargerId = button.dataset.chargerId;
  const connectorId = Number(button.dataset.connectorId);
  whileBusy(async () => {
    hideRestError();
    const result = await post("/api/charging/start", {charger_id: chargerId, connector_id: connectorId});
    if (result.status === 401) return logout(`Your login is no longer accepted (${result.error}): log in again.`);
    if (!result.ok) return showRestError(`Start on ${chargerId} connector ${connectorId}`, result);
    startedOverRest(app.state, result.data);
  });
}

function onStop() {
  const session = app.state.session;
  whileBusy(async () => {
    hideRestError();
    const body = session?.charger_id ? {charger_id: session.charger_id} : {};
    const result = await post("/api/charging/stop", body);
    if (result.status === 401) return logout(`Your login is no longer accepted (${result.error}): log in again.`);
    if (!result.ok) return showRestError("Stop", result);
    stoppedOverRest(app.state, result.data);
  });
}

// --- the gateway (seed 2; close codes: contracts/close-codes.json) ---------------------------

async function startGateway() {
  const fromQuery = new URLSearchParams(location.search).get("gateway");
  if (fromQuery) {
    app.gatewayUrl = fromQuery;
  } else {
    setConnection("connecting", "Looking up the gateway…");
    app.gatewayUrl = await gatewayFromInfo();
  }
  if (!app.token) return; // logged out meanwhile
  if (!/^wss?:\/\//.test(app.gatewayUrl || "")) {
    setConnection("closed", "No gateway: open this page with ?gateway=ws://HOST:PORT");
    return;
  }
  if (fromQuery && !trustedHost(app.gatewayUrl)) { // a link must not send the token elsewhere
    setConnection("closed", `Not sending your token to ${new URL(app.gatewayUrl).host}: ?gateway= must name this page's host`);
    return;
  }
  app.attempt = 0;
  connect();
}

/** The query parameter's gateway may be on this page's host (any port), or on loopback when the page is. */
function trustedHost(url) {
  const loopback = (host) => host === "localhost" || host === "[::1]" || /^127\.\d+\.\d+\.\d+$/.test(host);
  const host = new URL(url).hostname;
  return host === location.hostname || (loopback(host) && loopback(location.hostname));
}

async function gatewayFromInfo() {
  try {
    const response = await fetch("/twin/info", {headers: {Accept: "application/json"}});
    if (!response.ok) return null;
    const payload = await response.json();
    return payload?.data?.gateway_url ?? null;
  } catch {
    return null;
  }
}

function connect() {
  clearTimers();
  if (!app.token) return;
  if (expired()) return logout("Your login expired: log in again.");
  const url = new URL(app.gatewayUrl);
  url.searchParams.set("token", app.token);
  setConnection("connecting", "Connecting…");
  let socket;
  try {
    socket = new WebSocket(url.href);
  } catch (error) {
    setConnection("closed", `Cannot open the gateway URL: ${error.message}`);
    return;
  }
  app.socket = socket;
  socket.addEventListener("message", (event) => onFrame(socket, event));
  socket.addEventListener("close", (event) => onClose(socket, event));
}

function disconnect(code, reason) {
  clearTimers();
  const socket = app.socket;
  app.socket = null;
  if (socket === null) return;
  if (socket.readyState <= WebSocket.OPEN) socket.close(code, reason);
  setConnection("closed", `Closed: ${code} ${reason}`, {closeCode: code});
}

function clearTimers() {
  clearTimeout(app.reconnectTimer);
  clearInterval(app.countdownTimer);
  app.reconnectTimer = app.countdownTimer = null;
}

function onFrame(socket, event) {
  if (socket !== app.socket) return;
  let message;
  try {
    message = JSON.parse(event.data);
  } catch {
    return; // not JSON: nothing a conforming gateway sends; ignored like an unknown type (N-49)
  }
  if (message?.type === "connected") {
    app.attempt = 0;
    setConnection("connected", "Connected");
  }
  const changed = apply(app.state, message);
  if (changed.has("stations")) { renderStations(); renderMap(); }
  if (changed.has("session")) { renderSession(); renderStations(); }
  if (changed.has("notifications")) renderNotifications();
}

function onClose(socket, event) {
  if (socket !== app.socket) return; // a socket this page closed itself
  app.socket = null;
  const what = `${event.code}${event.reason ? ` ${event.reason}` : ""}`;
  if (closeAction(event.code, event.reason) === "login") {
    logout(`The gateway refused your login (${what}): log in again.`);
    setConnection("closed", `Closed: ${what}`, {closeCode: event.code});
    return;
  }
  const delay = reconnectDelay(app.attempt, Math.random);
  app.attempt += 1;
  const due = Date.now() + delay;
  const tick = () => {
    const seconds = Math.max(0, Math.ceil((due - Date.now()) / 1000));
    setConnection("reconnecting", `Closed (${what}); reconnecting in ${seconds} s`, {closeCode: event.code});
  };
  tick();
  app.countdownTimer = setInterval(tick, 250);
  app.reconnectTimer = setTimeout(connect, delay);
}

function setConnection(state, text, {closeCode} = {}) {
  const node = $("connection-state");
  node.dataset.state = state;
  if (closeCode === undefined) delete node.dataset.closeCode;
  else node.dataset.closeCode = String(closeCode);
  if (node.textContent !== text) node.textContent = text;
}

// --- the violations panel (GET /twin/violations) -----------------------------------------

async function pollViolations() {
  let payload = null;
  try {
    const response = await fetch("/twin/violations", {headers: {Accept: "application/json"}});
    if (response.status === 404) { // this backend has no such endpoint: no panel, no more polling
      $("violations-panel").hidden = true;
      return;
    }
    if (response.ok) payload = await response.json();
  } catch {
    payload = null;
  }
  if (payload?.success === true) renderViolations(payload.data ?? {});
  setTimeout(pollViolations, VIOLATIONS_POLL_MS);
}

function renderViolations(data) {
  const violations = Array.isArray(data.violations) ? data.violations : [];
  $("violations-panel").hidden = false;
  $("violations-total").textContent = String(data.total ?? violations.length);
  const list = $("violations");
  const items = violations.slice(-50).reverse().map((v) => element("li", {"data-testid": "violation", "data-rule": v.rule},
    element("p", {class: "rule"}, element("strong", {text: v.rule ?? "?"}), ` ${v.source ?? ""} ${v.channel ?? ""} ${v.direction ?? ""}`),
    element("p", {text: v.message ?? ""}),
    element("p", {class: "meta", text: `${v.pointer ? `at ${v.pointer} · ` : ""}${v.at ?? ""}`})));
  list.replaceChildren(...items);
}

// --- rendering ------------------------------------------------------------------------

function renderAll() {
  renderMap();
  renderStations();
  renderSession();
  renderNotifications();
}

function markerTitle(station) {
  const label = STATUS_LABELS[station.status] ?? station.status;
  const parts = [station.name, station.display ? `${label} ${station.display}` : label];
  if (station.maintenance) parts.push(`under maintenance${station.maintenanceReason ? `: ${station.maintenanceReason}` : ""}`);
  if (station.address) parts.push(station.address);
  return parts.join(" · ");
}

function renderMap() {
  const map = $("map");
  const stations = [...app.state.stations.values()];
  $("map-empty").hidden = app.state.listLoaded;
  const width = Math.max(280, Math.round(map.getBoundingClientRect().width || 640));
  const height = Math.round(Math.min(420, Math.max(240, width * 0.55)));
  const signature = JSON.stringify([width, stations.map((s) => [s.id, s.status, s.display, s.maintenance,
    s.maintenanceReason, s.latitude, s.longitude, s.name])]);
  if (signature === app.mapSignature) return;
  app.mapSignature = signature;
  map.setAttribute("viewBox", `0 0 ${width} ${height}`);
  map.setAttribute("height", String(height));
  const positions = project(stations, width, height, 48);
  const layers = [svg("rect", {class: "ground", x: 0, y: 0, width, height})];
  for (let x = 40; x < width; x += 80) layers.push(svg("line", {class: "grid", x1: x, y1: 0, x2: x, y2: height}));
  for (let y = 40; y < height; y += 80) layers.push(svg("line", {class: "grid", x1: 0, y1: y, x2: width, y2: y}));
  layers.push(svg("text", {class: "north", x: width - 16, y: 24, "text-anchor": "middle", "aria-hidden": "true", text: "N↑"}));
  for (const station of stations) {
    const at = positions.get(station.id);
    if (at !== undefined) layers.push(marker(station, at));
  }
  map.replaceChildren(...layers);
}

function marker(station, at) {
  const group = svg("g", {
    class: "marker", "data-testid": "station-marker", "data-station-id": station.id, "data-status": station.status,
    transform: `translate(${at.x.toFixed(1)} ${at.y.toFixed(1)})`, tabindex: 0, role: "button",
    "aria-label": markerTitle(station),
  });
  group.append(
    svg("title", {text: markerTitle(station)}),
    svg("path", {class: "pin", d: "M0 0 C-4 -9 -16 -14 -16 -26 A16 16 0 1 1 16 -26 C16 -14 4 -9 0 0 Z"}),
    svg("path", {class: "bolt", d: "M2 -38 L-7 -24 L-1 -24 L-3 -14 L7 -29 L1 -29 Z"}),
  );
  // Seed 2: green shows X/Y; blue and red show no number.
  if (station.status === "available" && station.display) {
    group.append(
      svg("rect", {class: "count-bg", x: -19, y: 4, width: 38, height: 18, rx: 9}),
      svg("text", {class: "count", "data-testid": "station-display", x: 0, y: 17, "text-anchor": "middle", text: station.display}),
    );
  }
  return group;
}

function onMapClick(event) {
  const target = event.target.closest?.("[data-station-id]");
  if (!target) return;
  event.preventDefault();
  const card = document.getElementById(`station-${target.dataset.stationId}`);
  if (card) {
    card.scrollIntoView({behavior: "smooth", block: "nearest"});
    card.focus({preventScroll: true});
  }
}

function renderStations() {
  const list = $("station-list");
  const stations = [...app.state.stations.values()];
  const canStart = !app.busy;
  const seen = new Set();
  let previous = null;
  for (const station of stations) {
    seen.add(station.id);
    const signature = JSON.stringify([canStart, station.status, station.display, station.maintenance,
      station.maintenanceReason, station.name, station.address,
      [...station.chargers.values()].map((c) => [c.id, c.status, c.display, c.available, [...c.connectors]]),
      app.state.session && [app.state.session.charger_id, app.state.session.connector_id]]);
    let card = document.getElementById(`station-${station.id}`);
    if (card === null || app.signatures.get(station.id) !== signature) {
      const fresh = stationCard(station, canStart);
      if (card === null) list.append(fresh);
      else card.replaceWith(fresh);
      card = fresh;
      app.signatures.set(station.id, signature);
    }
    const expectedPosition = previous === null ? list.firstElementChild : previous.nextElementSibling;
    if (card !== expectedPosition) list.insertBefore(card, expectedPosition);
    previous = card;
  }
  for (const card of [...list.children]) {
    if (!seen.has(card.dataset.stationId)) {
      app.signatures.delete(card.dataset.stationId);
      card.remove();
    }
  }
}

function stationCard(station, canStart) {
  const label = STATUS_LABELS[station.status] ?? station.status;
  const badge = element("span", {class: `badge ${station.status}`, "data-testid": "station-status",
                                 text: station.status === "available" && station.display ? station.display : label});
  const card = element("li", {class: "station", id: `station-${station.id}`, tabindex: -1,
                               "data-testid": "station", "data-station-id": station.id, "data-status": station.status},
    element("div", {class: "station-head"}, element("h3", {text: station.name}), badge),
    station.address ? element("p", {class: "address", "data-testid": "station-address", text: station.address}) : null,
    station.maintenance ? element("p", {class: "maintenance", "data-testid": "station-maintenance",
      text: `Under maintenance${station.maintenanceReason ? `: ${station.maintenanceReason}` : ""}`}) : null);
  const chargers = element("ul", {class: "chargers"});
  for (const charger of station.chargers.values()) chargers.append(chargerItem(station, charger, canStart));
  card.append(chargers);
  return card;
}

function chargerItem(station, charger, canStart) {
  const session = app.state.session;
  const connectors = element("ul", {class: "connectors"});
  for (const [connectorId, status] of charger.connectors) {
    const mine = Boolean(session && session.charger_id === charger.id && session.connector_id === connectorId);
    const open = startable(station, charger, status);
    const shown = mine ? "Your session" : (status ?? (charger.available > 0 ? "maybe free" : STATUS_LABELS[charger.status] ?? "?"));
    const cls = mine ? "mine" : (connectorClass(status) ?? charger.status);
    connectors.append(element("li", {class: "connector", "data-testid": "connector", "data-charger-id": charger.id,
                                     "data-connector-id": connectorId, "data-connector-status": status ?? ""},
      element("span", {class: `dot ${cls}`, "aria-hidden": "true"}),
      element("span", {class: "connector-name", text: `Connector ${connectorId}`}),
      element("span", {class: "connector-status", text: shown}),
      element("button", {type: "button", class: "start", "data-testid": "start-button", "data-charger-id": charger.id,
                         "data-connector-id": connectorId, disabled: !(open && canStart) || mine,
                         "aria-label": `Start charging at ${charger.id} connector ${connectorId}`, text: "Start"})));
  }
  return element("li", {class: "charger", "data-testid": "charger", "data-charger-id": charger.id},
    element("p", {class: "charger-head"}, element("strong", {text: charger.id}),
      ` ${charger.display ?? STATUS_LABELS[charger.status] ?? charger.status}`),
    connectors);
}

function setField(testid, text, value) {
  const node = $(testid);
  node.textContent = text;
  if (value === undefined || value === null || !Number.isFinite(value)) delete node.dataset.value;
  else node.dataset.value = String(value);
}

function renderSession() {
  const session = app.state.session;
  $("session-none").hidden = session !== null;
  $("session-active").hidden = session === null;
  const summary = $("session-summary");
  const last = app.state.lastSession;
  summary.hidden = session !== null || last === null;
  if (last !== null) {
    const how = last.event === "session_completed" ? "completed" : "stopped";
    const cost = Number.isFinite(last.cost) ? `, ${last.cost.toFixed(2)} ${last.cost_currency ?? ""}` : "";
    summary.textContent = `Last session ${how}: ${formatNumber(last.energy_delivered, 2)} kWh in ${formatDuration(last.duration)}${cost}.`;
  }
  if (session === null) return;
  const meter = session.meter ?? {};
  const station = app.state.stations.get(session.station_id ?? meter.station_id)
    ?? [...app.state.stations.values()].find((s) => s.chargers.has(session.charger_id));
  $("session-station").textContent = meter.station_name ?? station?.name ?? "";
  $("session-address").textContent = meter.station_address ?? station?.address ?? "";
  $("session-charger").textContent = `${session.charger_id ?? "?"} · connector ${session.connector_id ?? "?"}`;
  const status = $("session-status");
  status.textContent = session.status ?? "";
  status.dataset.status = session.status ?? "";
  const percent = meter.charge_percentage;
  setField("session-charge", Number.isFinite(percent) ? `${percent} %` : "–", percent);
  $("session-charge-bar").value = Number.isFinite(percent) ? percent : 0;
  setField("session-time-remaining", meter.time_remaining_display ?? "–", meter.time_remaining);
  const energy = meter.energy_consumed ?? session.energy_delivered;
  setField("session-energy", Number.isFinite(energy) ? `${formatNumber(energy, 2)} ${meter.energy_consumed_unit ?? "kWh"}` : "–", energy);
  setField("session-cost", Number.isFinite(meter.cost) ? `${meter.cost.toFixed(2)} ${meter.cost_currency ?? ""}` : "–", meter.cost);
  const power = meter.output_power ?? meter.power;
  setField("session-power", Number.isFinite(power) ? `${formatNumber(power, 1)} ${meter.output_power_unit ?? "kW"}` : "–", power);
  const duration = meter.charging_duration ?? session.duration;
  setField("session-duration", meter.charging_duration_display ?? (Number.isFinite(duration) ? formatDuration(duration) : "–"), duration);
  $("stop-button").disabled = app.busy;
}

function formatNumber(value, digits) {
  return Number.isFinite(value) ? value.toFixed(digits) : "–";
}

function renderNotifications() {
  const entries = app.state.notifications;
  $("notifications-empty").hidden = entries.length > 0;
  $("notifications").replaceChildren(...entries.map((n) => element("li",
    {class: `notification ${n.kind}`, "data-testid": "notification", "data-kind": n.kind},
    element("p", {class: "title"}, element("strong", {text: n.title ?? ""}),
      element("time", {datetime: n.timestamp ?? "", text: timeOfDay(n.timestamp)})),
    n.message ? element("p", {text: n.message}) : null)));
}

boot();
