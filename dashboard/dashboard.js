// lb4's dashboard: polls the admin API's JSON once a second and draws it. Plain browser
// JavaScript with no build step; uPlot (served by the same admin API) draws the charts. Every
// value from the API goes into the page as text (textContent), never as markup: a backend id is
// whatever the config says.
'use strict';

(() => {
  const pollMs = 1000;
  /** Five minutes of one-second samples. */
  const historyLength = 300;
  const tokenKey = 'lb4-admin-token';

  const $ = (id) => document.getElementById(id);
  let token = sessionStorage.getItem(tokenKey);

  // --- the admin API ---------------------------------------------------------------------------

  class ApiError extends Error {
    constructor(status, message) {
      super(message);
      this.status = status;
    }
  }

  async function api(method, path, body) {
    const headers = {};
    if (token) headers.authorization = `Bearer ${token}`;
    if (body !== undefined) headers['content-type'] = 'application/json';
    const res = await fetch(path, { method, headers, body: body === undefined ? undefined : JSON.stringify(body), cache: 'no-store' });
    const text = await res.text();
    const json = text ? JSON.parse(text) : null;
    if (!res.ok) throw new ApiError(res.status, json?.error?.message ?? `${res.status} ${res.statusText}`);
    return json;
  }

  function askForToken(message) {
    $('token-form').hidden = false;
    showProblem(message);
  }

  $('token-form').addEventListener('submit', (event) => {
    event.preventDefault();
    token = $('token').value.trim() || null;
    if (token) sessionStorage.setItem(tokenKey, token);
    else sessionStorage.removeItem(tokenKey);
    $('token-form').hidden = true;
    showProblem(null);
    void poll();
  });

  function showProblem(message) {
    $('problem').hidden = message === null;
    $('problem').textContent = message ?? '';
  }

  // --- numbers ---------------------------------------------------------------------------------

  function bytesPerSecond(n) {
    if (n === null) return '–';
    const units = ['B/s', 'KiB/s', 'MiB/s', 'GiB/s'];
    let i = 0;
    while (n >= 1024 && i < units.length - 1) {
      n /= 1024;
      i++;
    }
    return `${n.toFixed(n < 10 && i > 0 ? 1 : 0)} ${units[i]}`;
  }

  const perSecond = (n) => (n === null ? '–' : n < 10 ? n.toFixed(1) : n.toFixed(0));

  const active = (c) => (c.flows_active ?? 0) + (c.sessions_active ?? 0);
  const opened = (c) => (c.flows_total ?? 0) + (c.sessions_total ?? 0);

  /** Rates between two counter snapshots taken `seconds` apart; null before there are two. */
  function rates(before, after, seconds) {
    if (!before || seconds <= 0) return { flows: null, in: null, out: null };
    // A counter that went down belongs to a backend removed and added again: no rate this once.
    const delta = (a, b) => (b >= a ? (b - a) / seconds : null);
    return { flows: delta(opened(before), opened(after)), in: delta(before.bytes_to_backend, after.bytes_to_backend), out: delta(before.bytes_to_client, after.bytes_to_client) };
  }

  // --- tables ----------------------------------------------------------------------------------

  /** Rows kept by key and updated in place, so a weight being typed is not wiped by a refresh. */
  function keyedRows(tbody, build) {
    const rows = new Map();
    return (items, keyOf, update) => {
      const seen = new Set();
      for (const item of items) {
        const key = keyOf(item);
        seen.add(key);
        let row = rows.get(key);
        if (!row) {
          row = build(item);
          rows.set(key, row);
        }
        tbody.appendChild(row.tr); // keeps the API's order
        update(row, item);
      }
      for (const [key, row] of rows) {
        if (!seen.has(key)) {
          row.tr.remove();
          rows.delete(key);
        }
      }
    };
  }

  function cells(tr, count) {
    return Array.from({ length: count }, (_, i) => {
      const td = document.createElement('td');
      tr.appendChild(td);
      return td;
    });
  }

  const listenerRows = keyedRows($('listener-rows'), () => {
    const tr = document.createElement('tr');
    const td = cells(tr, 9);
    for (const i of [5, 6, 7, 8]) td[i].className = 'n';
    return { tr, td };
  });

  function healthText(h) {
    if (!h) return 'none';
    return `${h.type}${h.path ? ` ${h.path}` : ''} every ${h.interval} ms`;
  }

  function renderListeners(listeners, rateOf) {
    listenerRows(listeners, (l) => l.name, ({ td }, l) => {
      const r = rateOf(l);
      td[0].textContent = l.name;
      td[1].textContent = `${l.address.includes(':') ? `[${l.address}]` : l.address}:${l.port}`;
      td[2].textContent = l.algorithm ?? '';
      td[3].textContent = healthText(l.health);
      td[4].textContent = String(l.backends);
      td[5].textContent = String(active(l.counters));
      td[6].textContent = perSecond(r.flows);
      td[7].textContent = bytesPerSecond(r.in);
      td[8].textContent = bytesPerSecond(r.out);
    });
  }

  const backendKey = (b) => `${b.listener}\u0000${b.id}`;

  /** What an operator reads first: the state they set unless it is up, then what health checks say. */
  const condition = (b) => (b.state !== 'up' ? b.state : b.health === 'down' ? 'down' : 'up');

  function backendAction(b, method, action, body) {
    const path = `/backends/${encodeURIComponent(b.id)}/${action}?listener=${encodeURIComponent(b.listener)}`;
    api(method, path, body)
      .then(() => {
        showProblem(null);
        return poll();
      })
      .catch((err) => (err.status === 401 ? askForToken(`${action}: ${err.message}`) : showProblem(`${action} ${b.id}: ${err.message}`)));
  }

  const backendRows = keyedRows($('backend-rows'), (b) => {
    const tr = document.createElement('tr');
    tr.dataset.backend = b.id;
    tr.dataset.listener = b.listener;
    const td = cells(tr, 11);
    for (const i of [5, 6, 7, 8, 9]) td[i].className = 'n';
    td[3].dataset.field = 'state';
    td[4].dataset.field = 'health';
    const button = (label, run) => {
      const el = document.createElement('button');
      el.type = 'button';
      el.textContent = label;
      el.addEventListener('click', run);
      actions.appendChild(el);
      return el;
    };
    // The buttons sit in a box of their own: a flex table cell would lose its row's border.
    const actions = document.createElement('div');
    actions.className = 'actions';
    td[10].appendChild(actions);
    const drain = button('drain', () => backendAction(b, 'POST', 'drain'));
    const enable = button('enable', () => backendAction(b, 'POST', 'enable'));
    const weight = document.createElement('input');
    weight.type = 'number';
    weight.min = '0';
    weight.setAttribute('aria-label', `weight of ${b.id}`);
    actions.appendChild(weight);
    button('set weight', () => backendAction(b, 'PUT', 'weight', { weight: Number(weight.value) }));
    return { tr, td, drain, enable, weight };
  });

  function renderBackends(backends, rateOf) {
    backendRows(backends, backendKey, ({ tr, td, drain, enable, weight }, b) => {
      const r = rateOf(b);
      const shown = condition(b);
      tr.dataset.state = shown;
      td[0].textContent = b.listener;
      td[1].textContent = b.id;
      td[2].textContent = b.address;
      td[3].textContent = shown;
      td[3].className = `state ${shown}`;
      td[4].replaceChildren(document.createTextNode(b.health));
      td[4].className = `state ${b.health}`;
      if (b.healthReason) {
        const reason = document.createElement('div');
        reason.className = 'reason';
        reason.textContent = b.healthReason;
        td[4].appendChild(reason);
      }
      td[5].textContent = b.effectiveWeight === b.weight ? String(b.weight) : `${b.effectiveWeight}/${b.weight}`;
      td[6].textContent = String(active(b.counters));
      td[7].textContent = perSecond(r.flows);
      td[8].textContent = bytesPerSecond(r.in);
      td[9].textContent = bytesPerSecond(r.out);
      drain.disabled = b.state === 'draining';
      enable.disabled = b.state === 'up';
      if (document.activeElement !== weight) weight.placeholder = String(b.weight);
    });
  }

  function renderCluster(c) {
    const rows = [
      ['this node', `${c.node.id}: ${c.node.state}, priority ${c.node.priority}, ${c.node.healthyBackends} healthy backends`],
      ['peer', c.peer.up ? `${c.peer.id}: ${c.peer.state}, priority ${c.peer.priority}, heard ${c.peer.lastHeartbeatAgeMs} ms ago` : `${c.peer.address}:${c.peer.port}: not heard`],
      ['VIPs', c.vips.map((v) => `${v.address} on ${v.dev}${v.held ? ' (held)' : ''}`).join(', ') || 'none'],
      ['transitions', String(c.transitions)],
    ];
    if (c.generationMismatch) rows.push(['warning', 'the two nodes have different backend sets']);
    $('cluster-rows').replaceChildren(
      ...rows.map(([name, value]) => {
        const tr = document.createElement('tr');
        const [a, b] = cells(tr, 2);
        a.textContent = name;
        b.textContent = value;
        return tr;
      }),
    );
    $('cluster').hidden = false;
  }

  // --- charts ----------------------------------------------------------------------------------

  const history = { t: [], in: [], out: [], flows: [], active: [] };
  let charts = null;

  function makeCharts() {
    const width = Math.min(560, Math.max(320, Math.floor(window.innerWidth / 2) - 60));
    const axisBytes = { values: (_, ticks) => ticks.map((v) => bytesPerSecond(v).replace('/s', '')), size: 70 };
    const bytes = new uPlot(
      { width, height: 180, series: [{}, { label: 'in', stroke: '#0969da', value: (_, v) => bytesPerSecond(v) }, { label: 'out', stroke: '#8250df', value: (_, v) => bytesPerSecond(v) }], axes: [{}, axisBytes] },
      [history.t, history.in, history.out],
      $('chart-bytes'),
    );
    const flows = new uPlot(
      { width, height: 180, series: [{}, { label: 'flows/s', stroke: '#1a7f37', value: (_, v) => perSecond(v) }, { label: 'active', stroke: '#9a6700' }] },
      [history.t, history.flows, history.active],
      $('chart-flows'),
    );
    return { bytes, flows };
  }

  function record(seconds, sums) {
    history.t.push(seconds);
    history.in.push(sums.in);
    history.out.push(sums.out);
    history.flows.push(sums.flows);
    history.active.push(sums.active);
    if (history.t.length > historyLength) for (const series of Object.values(history)) series.shift();
    if (typeof uPlot === 'undefined') return; // the chart library failed to load: tables still work
    charts ??= makeCharts();
    charts.bytes.setData([history.t, history.in, history.out]);
    charts.flows.setData([history.t, history.flows, history.active]);
  }

  // --- the poll --------------------------------------------------------------------------------

  let previous = null; // { at, listeners: Map, backends: Map } of counters
  let clustered = true; // until /cluster says 404
  let timer = null;
  let polling = null;

  async function fetchAll() {
    const [status, listeners, backends, cluster] = await Promise.all([
      api('GET', '/status'),
      api('GET', '/listeners'),
      api('GET', '/backends'),
      clustered
        ? api('GET', '/cluster').catch((err) => {
            if (err.status !== 404) throw err;
            clustered = false;
            return null;
          })
        : null,
    ]);
    return { status, listeners, backends, cluster };
  }

  async function pollOnce() {
    const at = performance.now();
    const { status, listeners, backends, cluster } = await fetchAll();
    const seconds = previous ? (at - previous.at) / 1000 : 0;
    const listenerRates = new Map(listeners.map((l) => [l.name, rates(previous?.listeners.get(l.name), l.counters, seconds)]));
    const backendRates = new Map(backends.map((b) => [backendKey(b), rates(previous?.backends.get(backendKey(b)), b.counters, seconds)]));
    renderListeners(listeners, (l) => listenerRates.get(l.name));
    renderBackends(backends, (b) => backendRates.get(backendKey(b)));
    if (cluster) renderCluster(cluster);
    const b = status.backends;
    $('summary').textContent = `v${status.version} · up ${Math.floor(status.uptimeSeconds)} s · ${status.listeners} listeners · backends ${b.up} up, ${b.down} down, ${b.draining} draining, ${b.maintenance} in maintenance · ${status.openFlows} open flows`;
    if (previous) {
      const sums = { in: 0, out: 0, flows: 0, active: 0 };
      for (const l of listeners) {
        const r = listenerRates.get(l.name);
        sums.in += r.in ?? 0;
        sums.out += r.out ?? 0;
        sums.flows += r.flows ?? 0;
        sums.active += active(l.counters);
      }
      record(Date.now() / 1000, sums);
    }
    previous = {
      at,
      listeners: new Map(listeners.map((l) => [l.name, l.counters])),
      backends: new Map(backends.map((x) => [backendKey(x), x.counters])),
    };
    document.body.dataset.polls = String(Number(document.body.dataset.polls ?? 0) + 1);
  }

  /** One poll at a time: an action's refresh joins the one under way instead of racing it. */
  function poll() {
    clearTimeout(timer);
    polling ??= pollOnce()
      .then(() => {
        if ($('problem').dataset.kind === 'unreachable') showProblem(null);
        $('problem').dataset.kind = '';
      })
      .catch((err) => {
        if (err.status === 401) return askForToken(err.message);
        $('problem').dataset.kind = 'unreachable';
        showProblem(err instanceof ApiError ? err.message : `cannot reach the admin API (${err.message})`);
      })
      .finally(() => {
        polling = null;
        // No polling behind a token prompt: each try would only be refused again.
        if ($('token-form').hidden) timer = setTimeout(poll, pollMs);
      });
    return polling;
  }

  void poll();
})();
