// The reference client's protocol state, without I/O: messages in, state out.
//
// apply(state, message) folds one gateway message (seed section 4) into the
// state and returns which parts changed; app.js renders them. Nothing here
// touches the DOM, the network or the clock, so the rules can be read (and
// driven) on their own. Rulings cited as N-xx are contracts/SPEC-NOTES.md.

export const STATUS_LABELS = Object.freeze({
  available: "Available",
  in_use: "In use",
  unavailable: "Unavailable",
});

// N-06: OCPP 1.6 connector statuses (plus Occupied) and how each one counts.
const IN_USE = new Set([
  "Preparing", "Charging", "SuspendedEV", "SuspendedEVSE", "Finishing", "Reserved", "Occupied",
]);

const MAX_NOTIFICATIONS = 100;

export function connectorClass(status) {
  if (status === "Available") return "available";
  if (IN_USE.has(status)) return "in_use";
  return status == null ? null : "unavailable";
}

export function emptyState() {
  return {
    userId: null,
    stations: new Map(),      // station_id -> station (see stationFromList)
    session: null,            // the user's active session, or null
    lastSession: null,        // how the last session ended (session_stopped / session_completed)
    endedSessions: new Set(), // session ids that ended: late pushes must not revive them
    notifications: [],        // newest first
    listLoaded: false,
  };
}

// --- one message -----------------------------------------------------------------------

const HANDLERS = {
  connected: onConnected,
  charger_list_update: onChargerList,
  charger_status_update: onChargerStatus,
  charger_update: onChargerUpdate,
  session_update: onSessionUpdate,
  active_session_update: onActiveSession,
  notification: onNotification,
  response: onResponse,
  error: onError,
};

/** Fold one message into ``state``; a Set of the parts that changed ("stations", "session", "notifications"). */
export function apply(state, message) {
  const handler = message && typeof message === "object" ? HANDLERS[message.type] : undefined;
  if (handler === undefined) return new Set(); // N-49: apps ignore types they do not handle
  return new Set(handler(state, message) || []);
}

function onConnected(state, message) {
  state.userId = message.userId ?? null;
  return [];
}

// --- stations (seed 2, 3.3, 4.6, 4.7) -----------------------------------------------------

function onChargerList(state, message) {
  // N-16: always a full snapshot. N-47: it has counts, not connectors, and no maintenance flag.
  const previous = state.stations;
  state.stations = new Map();
  for (const entry of message.data?.chargers ?? []) {
    state.stations.set(entry.station_id, stationFromList(entry, previous.get(entry.station_id)));
  }
  state.listLoaded = true;
  return ["stations"];
}

function stationFromList(entry, old) {
  const underMaintenance = entry.station_status === "unavailable" && Boolean(old?.maintenance);
  const station = {
    id: entry.station_id,
    name: entry.station_name,
    address: entry.location?.address ?? "",
    latitude: entry.location?.latitude,
    longitude: entry.location?.longitude,
    status: entry.station_status,
    display: entry.display ?? null,
    total: entry.total_connectors,
    available: entry.available_connectors,
    maintenance: underMaintenance,
    maintenanceReason: underMaintenance ? old.maintenanceReason : null,
    chargers: new Map(),
  };
  for (const c of entry.chargers ?? []) {
    station.chargers.set(c.charger_id, chargerFromList(c, old?.chargers.get(c.charger_id)));
  }
  return station;
}

function chargerFromList(entry, old) {
  const charger = {
    id: entry.charger_id,
    total: entry.total_connectors,
    available: entry.available_connectors,
    status: entry.status,
    display: entry.display ?? null,
    connectors: new Map(),
  };
  for (let id = 1; id <= entry.total_connectors; id += 1) {
    charger.connectors.set(id, old?.connectors.get(id) ?? null);
  }
  const known = [...charger.connectors.values()];
  const knownAvailable = known.filter((s) => s === "Available").length;
  if (known.every((s) => s !== null) && knownAvailable === entry.available_connectors) return charger;
  // What we knew disagrees with the counts: trust the counts, which decide each connector only when all are free.
  const all = entry.available_connectors === entry.total_connectors ? "Available" : null;
  for (const id of charger.connectors.keys()) charger.connectors.set(id, all);
  return charger;
}

function stationFor(state, stationId, chargerId) {
  let station = state.stations.get(stationId);
  if (station === undefined) { // not in a list yet: known, but without a place on the map
    station = {
      id: stationId, name: stationId, address: "", latitude: undefined, longitude: undefined,
      status: "unavailable", display: null, total: 0, available: 0, maintenance: false,
      maintenanceReason: null, chargers: new Map(),
    };
    state.stations.set(stationId, station);
  }
  if (chargerId != null && !station.chargers.has(chargerId)) {
    station.chargers.set(chargerId, {
      id: chargerId, total: 0, available: 0, status: "unavailable", display: null, connectors: new Map(),
    });
  }
  return station;
}

function onChargerStatus(state, message) {
  // N-33 / D2: the counts, display and status are the station's; connector_status is charger_id's.
  const data = message.data ?? {};
  const station = stationFor(state, message.station_id, message.charger_id);
  station.status = message.status;
  station.display = data.display ?? null;
  station.total = data.total_connectors ?? station.total;
  station.available = data.available_connectors ?? station.available;
  station.maintenance = Boolean(data.is_under_maintenance);
  station.maintenanceReason = station.maintenance ? (data.maintenance_reason ?? null) : null;
  const charger = station.chargers.get(message.charger_id);
  for (const item of data.connector_status ?? []) charger.connectors.set(item.connector_id, item.status);
  charger.total = Math.max(charger.total, charger.connectors.size);
  recount(charger, station.maintenance);
  return ["stations"];
}

function onChargerUpdate(state, message) {
  const data = message.data ?? {};
  if (message.event === "maintenance_mode" && data.station_id !== undefined) {
    const station = stationFor(state, data.station_id, null);
    station.maintenance = Boolean(data.is_under_maintenance);
    station.maintenanceReason = station.maintenance ? (data.maintenance_reason ?? null) : null;
    return ["stations"];
  }
  if (message.event === "connector_status_changed" || (message.event === "status_changed" && data.connector_id >= 1)) {
    for (const station of state.stations.values()) {
      const charger = station.chargers.get(message.charger_id);
      if (charger === undefined) continue;
      charger.connectors.set(data.connector_id, data.status);
      recount(charger, station.maintenance);
      return ["stations"];
    }
    return [];
  }
  if (message.event === "error") {
    notify(state, {
      kind: "charger-error",
      title: `Charger ${message.charger_id}: ${data.error_code ?? "error"}`,
      message: data.info || (data.connector_id ? `Connector ${data.connector_id}` : "The whole charging point"),
      timestamp: message.timestamp,
    });
    return ["notifications"];
  }
  return [];
}

/** A charging point's own counts from its connectors, where every connector's status is known (D3, N-07). */
function recount(charger, underMaintenance) {
  const statuses = [...charger.connectors.values()];
  if (statuses.some((s) => s === null)) return;
  const classes = statuses.map(connectorClass);
  charger.available = underMaintenance ? 0 : classes.filter((c) => c === "available").length;
  if (underMaintenance || classes.every((c) => c === "unavailable")) charger.status = "unavailable";
  else charger.status = charger.available > 0 ? "available" : "in_use";
  charger.display = charger.status === "available" ? `${charger.available}/${charger.total}` : null;
}

/** Whether the app offers to start on this connector: it reports Available (or the counts say one is). */
export function startable(station, charger, connectorStatus) {
  if (station.maintenance || station.status === "unavailable" || charger.status === "unavailable") return false;
  if (connectorStatus === null || connectorStatus === undefined) return charger.available > 0;
  return connectorStatus === "Available";
}

// --- the session (seed 3.2, 4.4, 4.8) ----------------------------------------------------

/** The session a ``session_started`` or ``meter_value`` update tells of, kept with what was known of it. */
function activeSession(state, message, extra) {
  const data = message.data ?? {};
  return {
    ...sameSession(state, message.session_id),
    session_id: message.session_id,
    transaction_id: message.transaction_id,
    charger_id: data.charger_id,
    connector_id: data.connector_id,
    status: "active",
    ...extra,
  };
}

function onSessionUpdate(state, message) {
  const id = message.session_id;
  const data = message.data ?? {};
  switch (message.event) {
    case "session_started":
      if (state.endedSessions.has(id)) return [];
      state.session = activeSession(state, message, { start_time: data.start_time });
      return ["session", "stations"];
    case "meter_value":
      if (state.endedSessions.has(id)) return [];
      state.session = activeSession(state, message, { station_id: data.station_id, meter: data });
      return ["session"];
    case "session_stopped":
    case "session_completed":
      state.endedSessions.add(id);
      state.lastSession = {
        session_id: id, event: message.event, ...data,
        cost: state.session?.session_id === id ? state.session.meter?.cost : undefined,
        cost_currency: state.session?.session_id === id ? state.session.meter?.cost_currency : undefined,
      };
      if (state.session?.session_id === id) state.session = null;
      return ["session", "stations"];
    case "session_error":
      notify(state, {
        kind: "session-error",
        title: data.error ?? "Session error",
        message: data.message ?? "",
        timestamp: message.timestamp,
      });
      return ["notifications"];
    default:
      return [];
  }
}

function sameSession(state, sessionId) {
  return state.session?.session_id === sessionId ? state.session : {};
}

function onActiveSession(state, message) {
  if (!message.has_active_session || message.data == null) {
    if (state.session === null) return [];
    state.session = null;
    return ["session", "stations"];
  }
  const data = message.data;
  if (state.endedSessions.has(data.session_id)) return [];
  const old = sameSession(state, data.session_id);
  state.session = {
    ...old,
    ...data,
    status: old.status === "active" ? "active" : data.status, // never back from active to initiated
  };
  return ["session", "stations"];
}

/** The session as the REST start response tells it (N-36: pushes may have come first). */
export function startedOverRest(state, data) {
  if (state.endedSessions.has(data.session_id)) return;
  const old = sameSession(state, data.session_id);
  state.session = {
    ...data,
    ...old,
    transaction_id: old.transaction_id ?? data.transaction_id,
    status: old.status === "active" ? "active" : (data.status ?? "initiated"),
  };
}

/** The stop as the REST stop response tells it; session_stopped brings the final figures later (N-42). */
export function stoppedOverRest(state, data) {
  if (state.endedSessions.has(data.session_id)) return;
  state.endedSessions.add(data.session_id);
  const meter = state.session?.session_id === data.session_id ? state.session.meter : undefined;
  state.lastSession = {
    session_id: data.session_id, event: "session_stopped", energy_delivered: data.energy_delivered,
    duration: data.duration, cost: meter?.cost, cost_currency: meter?.cost_currency,
  };
  if (state.session?.session_id === data.session_id) state.session = null;
}

// --- notifications (seed 3.1, 4.2, 4.3, 4.9) ----------------------------------------------

function notify(state, entry) {
  state.notifications.unshift(entry);
  state.notifications.length = Math.min(state.notifications.length, MAX_NOTIFICATIONS);
}

function onNotification(state, message) {
  notify(state, {kind: "notification", title: message.title, message: message.message, timestamp: message.timestamp});
  return ["notifications"];
}

function onResponse(state, message) {
  // N-03, N-43: the outcome of a start or stop requested over REST.
  const data = message.data ?? {};
  const verb = message.action === "stop_charging" ? "Stop" : "Start";
  notify(state, {
    kind: data.success ? "response" : "response-failed",
    title: data.success ? `${verb} confirmed` : `${verb} failed: ${data.error ?? "error"}`,
    message: data.message ?? "",
    timestamp: message.timestamp,
  });
  return ["notifications"];
}

function onError(state, message) {
  notify(state, {kind: "error", title: "Gateway error", message: message.message ?? "", timestamp: message.timestamp});
  return ["notifications"];
}

// --- formatting ------------------------------------------------------------------------

/** N-09: "M min" under an hour, "Hhr Mmin" from one hour on (minutes rounded down). */
export function formatDuration(seconds) {
  if (!Number.isFinite(seconds) || seconds < 0) return "–";
  const minutes = Math.floor(seconds / 60);
  if (minutes < 60) return `${minutes} min`;
  return `${Math.floor(minutes / 60)}hr ${minutes % 60}min`;
}

/** The time of day of an RFC 3339 timestamp as the twin wrote it (simulated time, its own offset). */
export function timeOfDay(timestamp) {
  const match = /T(\d{2}:\d{2}:\d{2})/.exec(timestamp ?? "");
  return match ? match[1] : "";
}

// --- the WebSocket's life (seed: Error Handling, Best Practices 3 and 6) -------------------

// close-codes.json: 1008 with these reasons means the token is the problem; so do 4001-4003,
// which other gateways use for it. Reconnecting would only loop: the app asks to log in again.
const AUTH_REASONS = new Set(["Authentication required", "Invalid authentication token"]);
const AUTH_CODES = new Set([4001, 4002, 4003]);

/** "login" when a close means the token is not accepted, else "reconnect". */
export function closeAction(code, reason) {
  if (AUTH_CODES.has(code)) return "login";
  if (code === 1008 && (AUTH_REASONS.has(reason) || /auth|token/i.test(reason ?? ""))) return "login";
  return "reconnect";
}

/** Milliseconds before reconnection ``attempt`` (0, 1, ...): exponential, capped, half of it random. */
export function reconnectDelay(attempt, random, {baseMs = 1000, capMs = 30000} = {}) {
  const ceiling = Math.min(capMs, baseMs * 2 ** Math.min(attempt, 16));
  return Math.round(ceiling / 2 + random() * (ceiling / 2));
}

// --- the map ---------------------------------------------------------------------------

/**
 * Screen positions of the stations that have coordinates: an equirectangular
 * projection around their mean latitude, fitted into width x height less ``pad``
 * and centred; at least ``minSpanDeg`` degrees are shown, so one station sits in the middle.
 */
export function project(stations, width, height, pad, {minSpanDeg = 0.01} = {}) {
  const located = stations.filter((s) => Number.isFinite(s.latitude) && Number.isFinite(s.longitude));
  const positions = new Map();
  if (located.length === 0) return positions;
  const meanLat = located.reduce((sum, s) => sum + s.latitude, 0) / located.length;
  const k = Math.cos((meanLat * Math.PI) / 180);
  const xs = located.map((s) => s.longitude * k);
  const ys = located.map((s) => -s.latitude);
  const [minX, maxX, minY, maxY] = [Math.min(...xs), Math.max(...xs), Math.min(...ys), Math.max(...ys)];
  const spanX = Math.max(maxX - minX, minSpanDeg);
  const spanY = Math.max(maxY - minY, minSpanDeg);
  const scale = Math.min((width - 2 * pad) / spanX, (height - 2 * pad) / spanY);
  const [centreX, centreY] = [(minX + maxX) / 2, (minY + maxY) / 2];
  located.forEach((s, i) => {
    positions.set(s.id, {x: width / 2 + (xs[i] - centreX) * scale, y: height / 2 + (ys[i] - centreY) * scale});
  });
  return positions;
}
