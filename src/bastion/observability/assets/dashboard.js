// Bastion security dashboard: polls /dashboard/api/stats, draws inline SVG charts, and sends
// block / unblock / revoke actions with the session's CSRF token. No external assets.
"use strict";
(function () {
  const csrf = document.querySelector('meta[name="csrf-token"]').content;
  const history = [];
  let previous = null;
  const SVG = "http://www.w3.org/2000/svg";

  function el(tag, attrs, text) {
    const node = document.createElementNS(SVG, tag);
    for (const [k, v] of Object.entries(attrs || {})) node.setAttribute(k, String(v));
    if (text !== undefined) node.textContent = text;
    return node;
  }
  function fmt(n) { return n === null || n === undefined ? "–" : Number(n).toLocaleString(); }
  function ms(q) { return q && q.p50 !== null ? `${q.p50} / ${q.p99} ms` : "–"; }
  function setText(id, text) { document.getElementById(id).textContent = text; }

  function rows(table, header, data) {
    table.replaceChildren();
    const head = table.insertRow();
    for (const h of header) { const th = document.createElement("th"); th.textContent = h; head.appendChild(th); }
    for (const r of data) {
      const tr = table.insertRow();
      for (const cell of r) {
        const td = tr.insertCell();
        if (cell instanceof Node) td.appendChild(cell); else td.textContent = String(cell);
      }
    }
  }

  function drawLines(svg, series) {
    svg.replaceChildren();
    const w = 600, h = 150, n = 60;
    const max = Math.max(1, ...series.flatMap((s) => s.values));
    for (const s of series) {
      const pts = s.values.slice(-n).map((v, i, a) =>
        `${(w * (i + n - a.length)) / (n - 1)},${h - (h - 10) * (v / max)}`);
      if (pts.length > 1) svg.appendChild(el("polyline", { class: s.cls, points: pts.join(" ") }));
    }
    svg.appendChild(el("text", { x: 4, y: 12 }, `max ${max.toFixed(1)}/s`));
  }

  function drawBars(svg, byReason, before, dt) {
    svg.replaceChildren();
    const entries = Object.entries(byReason).sort((a, b) => b[1] - a[1]).slice(0, 8);
    const max = Math.max(1, ...entries.map((e) => e[1]));
    entries.forEach(([reason, count], i) => {
      const y = i * 19 + 2;
      svg.appendChild(el("rect", { x: 120, y, height: 14, width: Math.max(1, (170 * count) / max) }));
      svg.appendChild(el("text", { x: 0, y: y + 11 }, reason.slice(0, 22)));
      const rate = before && dt ? Math.max(0, (count - (before[reason] || 0)) / dt) : 0;
      svg.appendChild(el("text", { x: 124, y: y + 11 }, `${fmt(count)} (${rate.toFixed(1)}/s)`));
    });
  }

  async function post(name, body) {
    const res = await fetch(`/dashboard/api/${name}`, {
      method: "POST", credentials: "same-origin",
      headers: { "Content-Type": "application/json", "X-CSRF-Token": csrf },
      body: JSON.stringify(body),
    });
    const data = await res.json().catch(() => ({}));
    setText("action-result", res.ok ? `${name}: done` : `${name} failed: ${data.detail || data.code || res.status}`);
    await refresh();
  }

  function unblockButton(b) {
    const button = document.createElement("button");
    button.textContent = "Unblock";
    button.className = "unblock";
    button.addEventListener("click", () => post("unblock", { kind: b.kind, value: b.value }));
    return button;
  }

  async function refresh() {
    let s;
    try {
      const res = await fetch("/dashboard/api/stats", { credentials: "same-origin" });
      if (res.status === 401) { location.reload(); return; }
      s = await res.json();
    } catch (e) { setText("updated", "disconnected"); return; }
    let rate = 0, denyRate = 0, dt = 0;
    const before = previous ? previous.by_reason : null;
    if (previous) {
      dt = Math.max(0.001, s.time - previous.time);
      rate = Math.max(0, (s.requests - previous.requests) / dt);
      denyRate = Math.max(0, (s.denied - previous.denied) / dt);
      history.push({ rate, denyRate });
      if (history.length > 60) history.shift();
    }
    previous = s;
    setText("total", fmt(s.requests));
    setText("denied", fmt(s.denied));
    setText("rate", `${rate.toFixed(1)}/s`);
    setText("deny-rate", `${denyRate.toFixed(1)}/s`);
    setText("overhead", ms(s.overhead_ms));
    setText("upstream", ms(s.upstream_ms));
    setText("updated", `updated ${new Date(s.time * 1000).toLocaleTimeString()}`);
    drawLines(document.getElementById("chart"), [
      { cls: "req", values: history.map((h) => h.rate) },
      { cls: "deny", values: history.map((h) => h.denyRate) },
    ]);
    drawBars(document.getElementById("reasons"), s.by_reason, before, dt);
    rows(document.getElementById("principals"), ["principal", "requests", "denied"],
      s.top_principals.map((r) => [r.value, fmt(r.requests), fmt(r.denied)]));
    rows(document.getElementById("ips"), ["client IP", "requests", "denied"],
      s.top_ips.map((r) => [r.value, fmt(r.requests), fmt(r.denied)]));
    rows(document.getElementById("blocks"), ["kind", "value", "until", "reason", ""],
      s.blocks.map((b) => [b.kind, b.value,
        b.until ? new Date(b.until * 1000).toLocaleTimeString() : "unblocked by hand",
        b.reason, unblockButton(b)]));
    const list = document.getElementById("incidents");
    list.replaceChildren();
    for (const a of s.incidents) {
      const li = document.createElement("li");
      li.className = a.severity;
      const acts = (a.actions || []).map((x) => `${x.action}:${x.outcome}`).join(", ");
      li.textContent = `${new Date(a.time * 1000).toLocaleTimeString()} ${a.detector} — ${a.summary}` +
        (acts ? ` [${acts}]` : "");
      list.appendChild(li);
    }
  }

  document.getElementById("block-form").addEventListener("submit", (ev) => {
    ev.preventDefault();
    const ttl = document.getElementById("block-ttl").value;
    post("block", {
      kind: document.getElementById("block-kind").value,
      value: document.getElementById("block-value").value,
      ttl: ttl ? Number(ttl) : null,
      reason: "dashboard",
    });
  });
  document.getElementById("revoke-form").addEventListener("submit", (ev) => {
    ev.preventDefault();
    post("revoke", { subject: document.getElementById("revoke-subject").value, reason: "dashboard" });
  });
  refresh();
  setInterval(refresh, 2000);
})();
