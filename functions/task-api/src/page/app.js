// The dashboard page: reads GET dashboard/stats and ops/overview every few seconds and
// draws them; offers a redrive of dead letters, counted first and confirmed.
// Every value reaches the page through textContent or an SVG attribute, never as markup.
'use strict';

(function () {
  const REFRESH_MS = 5000;
  const SVG = 'http://www.w3.org/2000/svg';
  const STATUSES = ['Pending', 'InProgress', 'Completed', 'Failed'];
  const TYPES = ['BugFix', 'Feature', 'Refactor', 'Test', 'Documentation', 'Deployment'];
  const COMPLEXITIES = ['Simple', 'Medium', 'Complex', 'Epic'];
  const KINDS = ['TaskCreated', 'TaskStarted', 'TaskCompleted', 'TaskFailed'];
  const KIND_LABELS = {
    TaskCreated: 'Created',
    TaskStarted: 'Started',
    TaskCompleted: 'Completed',
    TaskFailed: 'Failed',
  };
  const STATUS_LABELS = { InProgress: 'In progress' };
  // sessionStorage: gone when the tab closes, never shared with other tabs.
  const KEYS = { token: 'dashboard.token', user: 'dashboard.user', scopes: 'dashboard.scopes' };

  const $ = (id) => document.getElementById(id);
  let scheme = null; // 'bearer' (AWS) or 'local-headers' (the local server)
  let lastRefreshed = null;
  let timer = null;
  let signingIn = false;

  const integer = new Intl.NumberFormat('en-US', { maximumFractionDigits: 0 });
  const money = new Intl.NumberFormat('en-US', {
    style: 'currency',
    currency: 'USD',
    minimumFractionDigits: 2,
    maximumFractionDigits: 4,
  });

  function clock(date) {
    const two = (n) => String(n).padStart(2, '0');
    return `${two(date.getHours())}:${two(date.getMinutes())}:${two(date.getSeconds())}`;
  }

  function duration(ms) {
    if (ms === null || ms === undefined) return '–';
    if (ms < 1000) return `${integer.format(ms)} ms`;
    if (ms < 60000) return `${(ms / 1000).toFixed(1)} s`;
    const minutes = Math.floor(ms / 60000);
    return `${minutes} min ${Math.round((ms % 60000) / 1000)} s`;
  }

  function percent(rate) {
    return rate === null || rate === undefined ? '–' : `${(rate * 100).toFixed(1)} %`;
  }

  function setStatus(kind, text) {
    const status = $('status');
    status.className = `status status-${kind}`;
    status.textContent = text;
  }

  // A figure shows its text; data-value keeps the number it came from.
  function setFigure(id, value, text) {
    const element = $(id);
    element.textContent = text;
    if (value === null || value === undefined) {
      element.removeAttribute('data-value');
    } else {
      element.setAttribute('data-value', String(value));
    }
  }

  function svg(name, attributes, parent) {
    const element = document.createElementNS(SVG, name);
    for (const [key, value] of Object.entries(attributes)) {
      element.setAttribute(key, String(value));
    }
    if (parent) parent.appendChild(element);
    return element;
  }

  function text(name, attributes, content, parent) {
    const element = svg(name, attributes, parent);
    element.textContent = content;
    return element;
  }

  // Horizontal bars, one per key, known keys first in their order, then any others.
  function barChart(container, counts, order, cssPrefix, labels) {
    const keys = order.slice();
    for (const key of Object.keys(counts || {}).sort()) {
      if (!keys.includes(key)) keys.push(key);
    }
    const values = keys.map((key) => Number((counts || {})[key] || 0));
    const max = Math.max(1, ...values);
    const row = 28;
    const width = 360;
    const labelWidth = 110;
    const valueWidth = 50;
    const barSpace = width - labelWidth - valueWidth;
    const chart = svg('svg', {
      viewBox: `0 0 ${width} ${keys.length * row}`,
      role: 'img',
      class: 'bars',
    });
    keys.forEach((key, i) => {
      const y = i * row;
      const group = svg('g', { 'data-key': key, 'data-value': values[i] }, chart);
      text('title', {}, `${(labels && labels[key]) || key}: ${values[i]}`, group);
      text('text', { x: 0, y: y + 18, class: 'label' }, (labels && labels[key]) || key, group);
      const known = order.includes(key) ? `${cssPrefix}-${key}` : `${cssPrefix}-other`;
      svg('rect', {
        x: labelWidth,
        y: y + 5,
        width: Math.max(values[i] > 0 ? 2 : 0, (values[i] / max) * barSpace),
        height: row - 10,
        rx: 3,
        class: `bar ${known}`,
      }, group);
      text('text', { x: width, y: y + 18, class: 'value', 'text-anchor': 'end' },
        integer.format(values[i]), group);
    });
    container.replaceChildren(chart);
  }

  // One stacked column per minute, oldest left; a legend with the hour's totals.
  function eventsChart(container, legend, minutes) {
    const width = 800;
    const height = 200;
    const left = 34;
    const bottom = 22;
    const plotHeight = height - bottom - 8;
    const slot = (width - left) / Math.max(1, minutes.length);
    const totals = Object.fromEntries(KINDS.map((kind) => [kind, 0]));
    let max = 1;
    for (const minute of minutes) {
      let sum = 0;
      for (const kind of KINDS) {
        const count = Number((minute.counts || {})[kind] || 0);
        totals[kind] += count;
        sum += count;
      }
      max = Math.max(max, sum);
    }
    const chart = svg('svg', { viewBox: `0 0 ${width} ${height}`, role: 'img', class: 'series' });
    const base = 8 + plotHeight;
    svg('line', { x1: left, y1: base, x2: width, y2: base, class: 'axis' }, chart);
    text('text', { x: left - 4, y: 16, class: 'tick', 'text-anchor': 'end' }, integer.format(max), chart);
    text('text', { x: left - 4, y: base, class: 'tick', 'text-anchor': 'end' }, '0', chart);
    minutes.forEach((minute, i) => {
      const x = left + i * slot;
      const start = new Date(minute.minute);
      const column = svg('g', { 'data-minute': minute.minute }, chart);
      const parts = KINDS.map((kind) => `${KIND_LABELS[kind]} ${Number((minute.counts || {})[kind] || 0)}`);
      text('title', {}, `${clock(start).slice(0, 5)}: ${parts.join(', ')}`, column);
      svg('rect', { x, y: 8, width: slot, height: plotHeight, class: 'hover' }, column);
      let y = base;
      for (const kind of KINDS) {
        const count = Number((minute.counts || {})[kind] || 0);
        if (count === 0) continue;
        const h = (count / max) * plotHeight;
        y -= h;
        svg('rect', {
          x: x + 1,
          y,
          width: Math.max(1, slot - 2),
          height: h,
          class: `bar k-${kind}`,
          'data-kind': kind,
          'data-value': count,
        }, column);
      }
      if (i % 15 === 0 || i === minutes.length - 1) {
        const anchor = i === minutes.length - 1 ? 'end' : 'start';
        const label = i === minutes.length - 1 ? 'now' : clock(start).slice(0, 5);
        text('text', { x: i === minutes.length - 1 ? width : x, y: height - 4, class: 'tick', 'text-anchor': anchor },
          label, chart);
      }
    });
    container.replaceChildren(chart);
    legend.replaceChildren(...KINDS.map((kind) => {
      const item = document.createElement('li');
      item.setAttribute('data-kind', kind);
      const swatch = document.createElement('span');
      swatch.className = `swatch k-${kind}`;
      const name = document.createElement('span');
      name.textContent = KIND_LABELS[kind];
      const total = document.createElement('strong');
      total.textContent = integer.format(totals[kind]);
      total.setAttribute('data-value', String(totals[kind]));
      item.append(swatch, name, total);
      return item;
    }));
  }

  function render(stats) {
    setFigure('tasks-total', stats.tasks_total, integer.format(stats.tasks_total));
    setFigure('success-rate', stats.success_rate, percent(stats.success_rate));
    $('finished').textContent = `${integer.format(stats.completed)} completed, ${integer.format(stats.failed)} failed`;
    setFigure('tokens-total', stats.tokens_used_total, integer.format(stats.tokens_used_total));
    setFigure('cost-total', stats.cost_usd_total, money.format(stats.cost_usd_total));
    const d = stats.duration || {};
    setFigure('duration-average', d.average_ms, duration(d.average_ms));
    setFigure('duration-p95', d.p95_ms, duration(d.p95_ms));
    $('duration-count').textContent = `over ${integer.format(d.count || 0)} finished`;
    barChart($('chart-status'), stats.by_status, STATUSES, 's', STATUS_LABELS);
    barChart($('chart-type'), stats.by_type, TYPES, 't');
    barChart($('chart-complexity'), stats.by_complexity, COMPLEXITIES, 'c');
    eventsChart($('chart-events'), $('events-legend'), stats.events_per_minute || []);
  }

  // What the page may not show any longer once the caller changed or was refused.
  function clear() {
    for (const id of ['tasks-total', 'success-rate', 'tokens-total', 'cost-total', 'duration-average', 'duration-p95']) {
      setFigure(id, null, '–');
    }
    for (const id of ['finished', 'duration-count', 'chart-status', 'chart-type', 'chart-complexity', 'chart-events', 'events-legend', 'ops-rows']) {
      $(id).replaceChildren();
    }
    lastRefreshed = null;
  }

  function describeCaller() {
    let who = '';
    if (scheme === 'bearer' && sessionStorage.getItem(KEYS.token)) {
      who = 'with an access token';
    } else if (scheme === 'local-headers' && sessionStorage.getItem(KEYS.user)) {
      const scopes = sessionStorage.getItem(KEYS.scopes);
      who = `as ${sessionStorage.getItem(KEYS.user)}${scopes ? ` (${scopes})` : ''}`;
    }
    $('identity-summary').textContent = who;
  }

  function credentials() {
    if (scheme === 'bearer') {
      const token = sessionStorage.getItem(KEYS.token);
      return token ? { Authorization: `Bearer ${token}` } : null;
    }
    if (scheme === 'local-headers') {
      const user = sessionStorage.getItem(KEYS.user);
      if (!user) return null;
      return { 'X-User-Id': user, 'X-User-Scopes': sessionStorage.getItem(KEYS.scopes) || '' };
    }
    return null;
  }

  function stale(reason) {
    const since = lastRefreshed ? ` Showing the statistics of ${clock(lastRefreshed)}.` : '';
    setStatus('error', `${reason}${since} Trying again every ${REFRESH_MS / 1000} s.`);
  }

  async function refresh() {
    if (scheme === null) {
      await loadScheme();
      if (scheme === null) return;
    }
    describeCaller();
    const headers = credentials();
    if (!headers) {
      clear();
      setStatus('wait', scheme === 'bearer'
        ? 'Enter an access token to see the statistics.'
        : 'Enter a user id (and the operator scope) to see the statistics.');
      return;
    }
    let response;
    try {
      response = await fetch('dashboard/stats', { headers, cache: 'no-store', credentials: 'omit' });
    } catch (err) {
      stale('The API cannot be reached.');
      return;
    }
    if (response.status === 401) {
      clear();
      setStatus('denied', 'The API did not accept your identity (401). Sign in again.');
      return;
    }
    if (response.status === 403) {
      clear();
      setStatus('denied', 'You may not see the statistics (403): they need the operator scope, orchestration/operator.');
      await refreshOps(headers);
      return;
    }
    if (!response.ok) {
      stale(`The API answered ${response.status}.`);
      return;
    }
    let stats;
    try {
      stats = await response.json();
    } catch (err) {
      stale('The API answered with something that is not the statistics.');
      return;
    }
    render(stats);
    if (signingIn) {
      // Out of the way once it worked; the summary still says who is asking.
      $('identity').open = false;
      signingIn = false;
    }
    await refreshOps(headers);
    lastRefreshed = new Date();
    setStatus('ok', `Last refreshed at ${clock(lastRefreshed)}; refreshes every ${REFRESH_MS / 1000} s.`);
    $('status').setAttribute('data-refreshed', lastRefreshed.toISOString());
  }

  // The server says how callers name themselves: a bearer token in AWS, identity
  // headers on the local server.
  async function loadScheme() {
    try {
      const response = await fetch('dashboard/identity.json', { cache: 'no-store', credentials: 'omit' });
      if (!response.ok) throw new Error(String(response.status));
      const body = await response.json();
      scheme = body.scheme === 'local-headers' ? 'local-headers' : 'bearer';
    } catch (err) {
      setStatus('error', `The API cannot be reached. Trying again every ${REFRESH_MS / 1000} s.`);
      return;
    }
    $('bearer-fields').hidden = scheme !== 'bearer';
    $('local-fields').hidden = scheme !== 'local-headers';
    $('user-id').value = sessionStorage.getItem(KEYS.user) || '';
    $('scopes').value = sessionStorage.getItem(KEYS.scopes) || '';
  }

  // What an event changed, in a few words, from its data.
  function changed(event) {
    const data = event.data || {};
    switch (event.type) {
      case 'task.created.v1':
        return `created${data.title ? ` “${data.title}”` : ''}${data.user_id ? ` by ${data.user_id}` : ''}`;
      case 'task.started.v1':
        return `started (${[data.task_type, data.complexity, data.strategy].filter(Boolean).join(', ')})`;
      case 'task.completed.v1':
        return `completed: ${data.tokens_used} tokens, $${data.cost_usd}, ${duration(data.duration_ms)}`;
      case 'task.completed.v2':
        return `completed: ${data.tokens_used} tokens, $${data.cost_micro_usd / 1e6}, ${duration(data.duration_ms)}`;
      case 'task.failed.v1':
        return `failed${data.error_message ? `: ${data.error_message}` : ''} (${data.tokens_used} tokens, ${duration(data.duration_ms)})`;
      default:
        return event.type;
    }
  }

  async function showTimeline(taskId) {
    const status = $('timeline-status');
    const table = $('timeline');
    const rows = $('timeline-rows');
    const headers = credentials();
    if (!headers) {
      status.textContent = 'Sign in first: the timeline needs the operator scope too.';
      return;
    }
    if (!/^[0-9a-fA-F-]{36}$/.test(taskId)) {
      status.textContent = 'A task id is a UUID, such as 0b9d8f0e-6a3e-4c43-9d43-7d3cfa0b2a11.';
      return;
    }
    status.textContent = 'Loading…';
    const events = [];
    let cursor = null;
    try {
      // At most ten pages: a task has a handful of events.
      for (let page = 0; page < 10; page += 1) {
        const query = `limit=100${cursor ? `&cursor=${encodeURIComponent(cursor)}` : ''}`;
        const response = await fetch(`dashboard/tasks/${encodeURIComponent(taskId)}/events?${query}`,
          { headers, cache: 'no-store', credentials: 'omit' });
        if (response.status === 403) {
          status.textContent = 'You may not see tasks\' events (403): they need the operator scope.';
          return;
        }
        if (!response.ok) {
          status.textContent = `The API answered ${response.status}.`;
          return;
        }
        const body = await response.json();
        events.push(...body.items);
        cursor = body.next_cursor;
        if (!cursor) break;
      }
    } catch (err) {
      status.textContent = 'The API cannot be reached.';
      return;
    }
    rows.replaceChildren();
    for (const event of events) {
      const row = document.createElement('tr');
      row.className = 'timeline-event';
      for (const cell of [new Date(event.time).toISOString(), event.type, Number(event.sequence), changed(event)]) {
        const td = document.createElement('td');
        td.textContent = String(cell);
        row.appendChild(td);
      }
      rows.appendChild(row);
    }
    table.hidden = events.length === 0;
    status.textContent = events.length === 0
      ? 'No events archived for that task (yet).'
      : `${events.length} event${events.length === 1 ? '' : 's'}, oldest first.`;
  }

  // The operations view: each consumer's queue, dead letters and objective, the outbox.
  const CONSUMERS = ['ml-classifier', 'dashboard', 'cicd-monitor', 'event-archive'];

  function ageText(secs) {
    if (secs === null || secs === undefined) return '–';
    return duration(secs * 1000);
  }

  function cell(row, field, value, content) {
    const td = document.createElement('td');
    td.setAttribute('data-field', field);
    if (value !== null && value !== undefined) td.setAttribute('data-value', String(value));
    td.textContent = content;
    row.appendChild(td);
  }

  function renderOps(view) {
    const rows = $('ops-rows');
    rows.replaceChildren();
    const byName = Object.fromEntries((view.consumers || []).map((c) => [c.consumer, c]));
    for (const name of CONSUMERS) {
      const c = byName[name];
      if (!c) continue;
      const row = document.createElement('tr');
      row.setAttribute('data-consumer', name);
      const th = document.createElement('th');
      th.scope = 'row';
      th.textContent = name;
      row.appendChild(th);
      cell(row, 'visible', c.queue.visible, integer.format(c.queue.visible));
      cell(row, 'in_flight', c.queue.in_flight, integer.format(c.queue.in_flight));
      cell(row, 'oldest', c.oldest_message_age_secs, ageText(c.oldest_message_age_secs));
      const dead = c.dead_letters.visible + c.dead_letters.in_flight + c.dead_letters.delayed;
      cell(row, 'dead_letters', dead, integer.format(dead));
      const o = c.objective;
      cell(row, 'objective', o.target_percent, `${o.target_percent} % within ${o.within_secs} s`);
      const attained = o.attained_percent === null || o.attained_percent === undefined
        ? 'no events'
        : `${o.attained_percent.toFixed(2)} % of ${integer.format(o.events)}${o.burn_rate > 1 ? ` (burning ${o.burn_rate.toFixed(1)}×)` : ''}`;
      cell(row, 'attained', o.attained_percent, attained);
      if (dead > 0) row.className = 'has-dead-letters';
      rows.appendChild(row);
    }
    const outbox = view.outbox || {};
    const outboxText = $('ops-outbox');
    outboxText.textContent = `Outbox: ${integer.format(outbox.pending || 0)} pending`
      + `${outbox.oldest_pending_age_secs !== null && outbox.oldest_pending_age_secs !== undefined ? ` (oldest ${ageText(outbox.oldest_pending_age_secs)})` : ''}`
      + `, ${integer.format(outbox.parked || 0)} parked.`;
    outboxText.setAttribute('data-pending', String(outbox.pending || 0));
    outboxText.setAttribute('data-parked', String(outbox.parked || 0));
  }

  async function refreshOps(headers) {
    const status = $('ops-status');
    let response;
    try {
      response = await fetch('ops/overview', { headers, cache: 'no-store', credentials: 'omit' });
    } catch (err) {
      status.textContent = 'The operations view cannot be reached.';
      return;
    }
    if (response.status === 403) {
      $('ops-rows').replaceChildren();
      status.textContent = 'The operations view needs the operator scope (403).';
      return;
    }
    if (!response.ok) {
      status.textContent = `The operations view answered ${response.status}.`;
      return;
    }
    try {
      renderOps(await response.json());
    } catch (err) {
      status.textContent = 'The operations view answered with something that is not a view.';
      return;
    }
    status.textContent = `Queues as SQS counts them; objectives over the last hour. Refreshed at ${clock(new Date())}.`;
  }

  // A redrive counts first (a dry run), then moves what it counted once confirmed.
  let counted = null;

  function redriveRequest(dryRun) {
    const filter = {};
    const type = $('redrive-type').value.trim();
    const reason = $('redrive-reason').value.trim();
    if (type) filter.type = type;
    if (reason) filter.reason = reason;
    return { consumer: $('redrive-consumer').value, filter, dry_run: dryRun };
  }

  async function redrive(dryRun) {
    const status = $('redrive-status');
    const headers = credentials();
    if (!headers) {
      status.textContent = 'Sign in first: a redrive needs the operator scope.';
      return null;
    }
    const request = redriveRequest(dryRun);
    let response;
    try {
      response = await fetch('ops/dead-letters/redrive', {
        method: 'POST',
        headers: { ...headers, 'Content-Type': 'application/json' },
        body: JSON.stringify(request),
        cache: 'no-store',
        credentials: 'omit',
      });
    } catch (err) {
      status.textContent = 'The API cannot be reached.';
      return null;
    }
    const body = await response.json().catch(() => ({}));
    if (!response.ok) {
      status.textContent = `Refused (${response.status}): ${body.message || 'no reason given'}.`;
      return null;
    }
    return { request, outcome: body };
  }

  function forgetCount() {
    counted = null;
    $('redrive-confirm').hidden = true;
  }

  async function tick() {
    clearTimeout(timer);
    try {
      await refresh();
    } finally {
      timer = setTimeout(tick, REFRESH_MS);
    }
  }

  function start() {
    $('identity-form').addEventListener('submit', (event) => {
      event.preventDefault();
      if (scheme === 'bearer') {
        const token = $('token').value.trim();
        $('token').value = '';
        if (token) sessionStorage.setItem(KEYS.token, token);
      } else {
        sessionStorage.setItem(KEYS.user, $('user-id').value.trim());
        sessionStorage.setItem(KEYS.scopes, $('scopes').value.trim());
      }
      signingIn = true;
      clear();
      tick();
    });
    $('timeline-form').addEventListener('submit', (event) => {
      event.preventDefault();
      showTimeline($('timeline-task').value.trim());
    });
    $('redrive-form').addEventListener('submit', async (event) => {
      event.preventDefault();
      forgetCount();
      const result = await redrive(true);
      if (!result) return;
      const n = result.outcome.matched;
      const status = $('redrive-status');
      status.setAttribute('data-matched', String(n));
      status.textContent = `${integer.format(n)} of ${integer.format(result.outcome.scanned)} dead letters of ${result.request.consumer} match${result.outcome.truncated ? ' (more may be left)' : ''}.`;
      if (n > 0) {
        counted = result.request;
        const confirm = $('redrive-confirm');
        confirm.textContent = `Redrive ${integer.format(n)} to ${result.request.consumer}'s queue`;
        confirm.hidden = false;
      }
    });
    for (const id of ['redrive-consumer', 'redrive-type', 'redrive-reason']) {
      $(id).addEventListener('input', forgetCount);
    }
    $('redrive-confirm').addEventListener('click', async () => {
      if (!counted) return;
      const what = JSON.stringify(counted.filter);
      if (!window.confirm(`Send the dead letters of ${counted.consumer} matching ${what} back to its queue?`)) return;
      forgetCount();
      const result = await redrive(false);
      if (!result) return;
      const status = $('redrive-status');
      status.setAttribute('data-moved', String(result.outcome.moved));
      status.textContent = `Moved ${integer.format(result.outcome.moved)} to ${result.request.consumer}'s queue`
        + `${result.outcome.failed ? `; ${integer.format(result.outcome.failed)} could not be moved and stay` : ''}.`;
      const headers = credentials();
      if (headers) await refreshOps(headers);
    });
    $('sign-out').addEventListener('click', () => {
      for (const key of Object.values(KEYS)) sessionStorage.removeItem(key);
      $('user-id').value = '';
      $('scopes').value = '';
      $('token').value = '';
      clear();
      tick();
    });
    tick();
  }

  if (document.readyState === 'loading') {
    document.addEventListener('DOMContentLoaded', start);
  } else {
    start();
  }
})();
