// The live page: one server-sent event a second carries every recording client of the
// trainer (GET /live/events); the table is rebuilt from it with text only (no HTML from
// the server is ever inserted).
"use strict";
(function () {
  const body = document.querySelector("#live tbody");
  const empty = document.getElementById("live-empty");
  const state = document.getElementById("live-state");
  const show = (v, digits) => (v === null || v === undefined ? "–" : digits === undefined ? String(v) : Number(v).toFixed(digits));
  function machine(d) {
    const parts = [];
    if (d.power_w !== null) parts.push(d.power_w + " W");
    if (d.cadence_rpm !== null) parts.push(Math.round(d.cadence_rpm) + " /min");
    if (d.speed_kmh !== null) parts.push(Number(d.speed_kmh).toFixed(1) + " km/h");
    return parts.length ? d.activity_type + ": " + parts.join(", ") : d.activity_type;
  }
  function homework(c) {
    return c.homework.map((h) => h.homework + ": " + Math.round(h.achieved) + "/" + Math.round(h.target) + " " + h.unit).join("; ") || "–";
  }
  function render(view) {
    const rows = [];
    for (const c of view.clients) {
      for (const d of c.devices) {
        const cells = [c.name, d.device, show(d.bpm), show(d.pct_max), show(d.zone), show(d.session_min, 1), show(d.cardio_min, 1),
          machine(d), d.battery_pct === null ? "–" : d.battery_pct + " %", d.rssi_dbm === null ? "–" : d.rssi_dbm + " dBm", homework(c)];
        const tr = document.createElement("tr");
        cells.forEach((text, i) => {
          const td = document.createElement("td");
          if (i >= 2 && i <= 6 || i === 8 || i === 9) td.className = "num";
          td.textContent = text;
          tr.appendChild(td);
        });
        rows.push(tr);
      }
    }
    body.replaceChildren(...rows);
    empty.hidden = rows.length > 0;
    state.textContent = "As of " + view.at.replace("T", " ").slice(0, 19) + " UTC, live.";
  }
  const events = new EventSource("/live/events");
  events.addEventListener("live", (e) => render(JSON.parse(e.data)));
  events.addEventListener("error", () => { state.textContent = "Connection lost; reconnecting…"; });
})();
