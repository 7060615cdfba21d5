// Drives the dashboard page in headless Chromium as a person would, while tasks run
// through the API, and checks that its figures and charts follow.
// Run by tests/tests/it/dashboard_page.rs with BASE_URL, CHROMIUM, BROWSER_TOOLS_DIR and
// SCREENSHOT_DIR set; exits 0 when every check held, 1 otherwise.
'use strict';

const path = require('path');

const { required, WAIT_MS, log, sleep, until, launch } = require('./common.cjs');

const BASE_URL = required('BASE_URL');
const CHROMIUM = required('CHROMIUM');
const SCREENSHOT_DIR = required('SCREENSHOT_DIR');
const puppeteer = require(path.join(required('BROWSER_TOOLS_DIR'), 'node_modules', 'puppeteer-core'));

const OPERATOR_SCOPE = 'orchestration/operator';
const STATS_NEED_OPERATOR = true;
const OWNER = `page-owner-${Date.now()}`;

async function api(method, route, body) {
  const response = await fetch(BASE_URL + route, {
    method,
    headers: { 'X-User-Id': OWNER, 'Content-Type': 'application/json' },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  const text = await response.text();
  if (!response.ok) throw new Error(`${method} ${route}: ${response.status} ${text}`);
  return JSON.parse(text);
}

// The dashboard's duration buckets: upper bounds 10 ms × 2^(i/4), p95 reported as one.
function bucketUpper(ms) {
  const bucket = ms <= 10 ? 0 : Math.min(96, Math.ceil(4 * Math.log2(ms / 10)));
  return Math.round(10 * 2 ** (bucket / 4));
}

// What the page shows, read from its DOM.
function readPage(page) {
  return page.evaluate(() => {
    const el = (id) => document.getElementById(id);
    const figure = (id) => ({ text: el(id).textContent, value: el(id).getAttribute('data-value') });
    const bars = (id) => Object.fromEntries(
      [...el(id).querySelectorAll('g[data-key]')].map((g) => [g.getAttribute('data-key'), Number(g.getAttribute('data-value'))]),
    );
    const legend = Object.fromEntries(
      [...el('events-legend').querySelectorAll('li[data-kind]')].map((li) => [li.getAttribute('data-kind'), Number(li.querySelector('strong').getAttribute('data-value'))]),
    );
    const columns = {};
    for (const rect of el('chart-events').querySelectorAll('rect[data-kind]')) {
      const kind = rect.getAttribute('data-kind');
      columns[kind] = (columns[kind] || 0) + Number(rect.getAttribute('data-value'));
    }
    return {
      status: { text: el('status').textContent, kind: el('status').className },
      refreshed: el('status').getAttribute('data-refreshed'),
      total: figure('tasks-total'),
      success: figure('success-rate'),
      tokens: figure('tokens-total'),
      cost: figure('cost-total'),
      average: figure('duration-average'),
      p95: figure('duration-p95'),
      byStatus: bars('chart-status'),
      byType: bars('chart-type'),
      byComplexity: bars('chart-complexity'),
      minutes: el('chart-events').querySelectorAll('g[data-minute]').length,
      legend,
      columns,
    };
  });
}

async function signIn(page, user, scopes) {
  await page.evaluate(() => {
    document.getElementById('identity').open = true;
    document.getElementById('user-id').value = '';
    document.getElementById('scopes').value = '';
  });
  await page.type('#user-id', user);
  if (scopes) await page.type('#scopes', scopes);
  await page.click('#sign-in');
}

function same(actual, expected) {
  return JSON.stringify(actual) === JSON.stringify(expected);
}

async function lifecycle(title, description, finish) {
  const task = await api('POST', '/tasks', { title, description });
  const classified = await until(`task "${title}" classified`, async () => {
    const current = await api('GET', `/tasks/${task.id}`);
    return { ok: current.status === 'Classified', task: current };
  });
  return { ...classified.task, finish };
}

async function main() {
  const browser = await launch(puppeteer, CHROMIUM);
  const errors = [];
  try {
    const page = await browser.newPage();
    await page.setViewport({ width: 1280, height: 900 });
    page.on('pageerror', (err) => errors.push(`page error: ${err.message}`));
    page.on('console', (message) => {
      if (message.type() === 'error' && !message.text().includes('Failed to load resource')) {
        errors.push(`console: ${message.text()}`);
      }
    });
    let blockStats = false;
    await page.setRequestInterception(true);
    page.on('request', (request) => {
      if (blockStats && request.url().includes('/dashboard/stats')) {
        request.abort('connectionrefused');
      } else {
        request.continue();
      }
    });

    // The page and its policy.
    const response = await page.goto(`${BASE_URL}/dashboard`, { waitUntil: 'load', timeout: WAIT_MS });
    if (response.status() !== 200) throw new Error(`GET /dashboard answered ${response.status()}`);
    const policy = response.headers()['content-security-policy'] || '';
    for (const directive of ["default-src 'none'", "script-src 'self'", "connect-src 'self'"]) {
      if (!policy.includes(directive)) throw new Error(`CSP lacks ${directive}: ${policy}`);
    }
    if (policy.includes('unsafe')) throw new Error(`CSP allows unsafe sources: ${policy}`);
    log('page served with', policy);

    // The local server asks for a user id and scopes; nothing is shown before.
    await until('the page to ask who is asking', async () => {
      const state = await readPage(page);
      const asks = await page.$eval('#local-fields', (el) => !el.hidden);
      return { ok: asks && state.status.text.includes('Enter a user id') && state.total.value === null, state };
    });
    log('asks for a user id and scopes');

    // A caller without the operator scope is told plainly.
    if (STATS_NEED_OPERATOR) {
      await signIn(page, 'page-viewer', '');
      await until('a 403 to be explained', async () => {
        const state = await readPage(page);
        return { ok: state.status.text.includes('403') && state.status.text.includes(OPERATOR_SCOPE) && state.total.value === null, state };
      });
      log('a caller without the operator scope is refused (403)');
    }

    // An operator sees the statistics of a fresh environment.
    await signIn(page, 'page-operator', OPERATOR_SCOPE);
    const empty = await until('the empty statistics', async () => {
      const state = await readPage(page);
      return {
        ok: state.status.kind.includes('status-ok') && state.total.value === '0' && state.success.text === '–'
          && state.minutes === 60 && same(state.legend, { TaskCreated: 0, TaskStarted: 0, TaskCompleted: 0, TaskFailed: 0 }),
        state,
      };
    });
    log('empty statistics:', empty.state.status.text);
    const stored = await page.evaluate(() => ({ user: sessionStorage.getItem('dashboard.user'), local: localStorage.length }));
    if (stored.user !== 'page-operator' || stored.local !== 0) throw new Error(`identity kept wrongly: ${JSON.stringify(stored)}`);

    // The API cannot be reached: said plainly, the last figures kept; then it recovers.
    blockStats = true;
    await until('the outage to be reported', async () => {
      const state = await readPage(page);
      return { ok: state.status.text.includes('cannot be reached') && state.status.text.includes('Showing the statistics of') && state.total.value === '0', state };
    });
    log('an unreachable API is reported');
    blockStats = false;
    const recovered = await until('the page to recover', async () => {
      const state = await readPage(page);
      return { ok: state.status.kind.includes('status-ok'), state };
    });
    log('recovered:', recovered.state.status.text);

    // Three tasks are created: the page counts them as pending.
    const tasks = [
      await lifecycle('Fix crash on login', 'The app crashes when the password is empty', { action: 'complete', body: { tokens_used: 1200, cost_usd: 0.42 } }),
      await lifecycle('Add CSV export', 'Users want to export their reports as CSV', { action: 'complete', body: { tokens_used: 800, cost_usd: 0.08 } }),
      await lifecycle('Update README', 'Document the new flags', { action: 'fail', body: { error_message: 'the docs build fails', tokens_used: 300 } }),
    ];
    log('created and classified:', tasks.map((t) => `${t.task_type}/${t.complexity}`).join(', '));
    await until('three pending tasks', async () => {
      const state = await readPage(page);
      return { ok: state.total.value === '3' && state.byStatus.Pending === 3 && state.legend.TaskCreated === 3, state };
    });
    log('the page shows 3 pending tasks');

    // They start, and finish a moment later: two complete, one fails.
    for (const [i, task] of tasks.entries()) {
      await api('POST', `/tasks/${task.id}/start`, { strategy: 'SingleShot' });
      await sleep(300 + 400 * i);
      await api('POST', `/tasks/${task.id}/${task.finish.action}`, task.finish.body);
    }
    const finished = await Promise.all(tasks.map((task) => api('GET', `/tasks/${task.id}`)));
    const durations = finished.map((task) => Date.parse(task.completed_at) - Date.parse(task.started_at));
    const count = (key) => finished.reduce((counts, task) => ({ ...counts, [task[key]]: (counts[task[key]] || 0) + 1 }), {});
    const expected = {
      total: '3',
      success: { text: '66.7 %', value: String(2 / 3) },
      tokens: { text: '2,300', value: '2300' },
      cost: { text: '$0.50', value: '0.5' },
      byStatus: { Pending: 0, InProgress: 0, Completed: 2, Failed: 1 },
      byType: count('task_type'),
      byComplexity: count('complexity'),
      legend: { TaskCreated: 3, TaskStarted: 3, TaskCompleted: 2, TaskFailed: 1 },
      average: durations.reduce((a, b) => a + b, 0) / durations.length,
      p95: bucketUpper(Math.max(...durations)),
    };
    const nonZero = (bars) => Object.fromEntries(Object.entries(bars).filter(([, v]) => v > 0));
    const final = await until('the finished tasks on the page', async () => {
      const state = await readPage(page);
      const ok = state.total.value === expected.total
        && same(state.success, expected.success)
        && same(state.tokens, expected.tokens)
        && same(state.cost, expected.cost)
        && same(state.byStatus, expected.byStatus)
        && same(nonZero(state.byType), expected.byType)
        && same(nonZero(state.byComplexity), expected.byComplexity)
        && same(state.legend, expected.legend)
        && same(state.columns, expected.legend)
        && Math.abs(Number(state.average.value) - expected.average) < 1
        && Number(state.p95.value) === expected.p95;
      return { ok, state, expected };
    });
    log('final figures:', JSON.stringify({
      total: final.state.total.text,
      success: final.state.success.text,
      tokens: final.state.tokens.text,
      cost: final.state.cost.text,
      average: final.state.average.text,
      p95: final.state.p95.text,
      byStatus: final.state.byStatus,
      legend: final.state.legend,
    }));

    // An operator looks the failed task up: its three events, in order, with what changed.
    const failedTask = tasks[2];
    await page.evaluate(() => { document.getElementById('timeline-task').value = ''; });
    await page.type('#timeline-task', failedTask.id);
    const timeline = await until('the failed task\'s timeline', async () => {
      await page.click('#timeline-show');
      await sleep(300);
      const rows = await page.$$eval('#timeline-rows tr', (trs) => trs.map((tr) => [...tr.cells].map((td) => td.textContent)));
      const types = rows.map((row) => row[1]);
      return {
        ok: same(types, ['task.created.v1', 'task.started.v1', 'task.failed.v1'])
          && same(rows.map((row) => row[2]), ['1', '2', '3'])
          && rows[2][3].includes('the docs build fails')
          && rows[0][3].includes('Update README'),
        rows,
      };
    });
    log('timeline of the failed task:', JSON.stringify(timeline.rows.map((row) => `${row[1]}: ${row[3]}`)));

    await page.screenshot({ path: path.join(SCREENSHOT_DIR, 'dashboard.png'), fullPage: true });

    // A phone: one column, nothing wider than the screen.
    await page.setViewport({ width: 390, height: 844, deviceScaleFactor: 2, isMobile: true, hasTouch: true });
    const fits = await until('the phone layout', async () => {
      const widths = await page.evaluate(() => ({ page: document.documentElement.scrollWidth, screen: window.innerWidth }));
      return { ok: widths.page <= widths.screen, widths };
    }, 10000);
    log('phone layout fits:', JSON.stringify(fits.widths));
    await page.screenshot({ path: path.join(SCREENSHOT_DIR, 'dashboard-phone.png'), fullPage: true });
    log('screenshots in', SCREENSHOT_DIR);

    if (errors.length) throw new Error(`the page reported errors:\n${errors.join('\n')}`);
  } finally {
    await browser.close();
  }
}

main().then(
  () => {
    log('every check held');
    process.exit(0);
  },
  (err) => {
    console.error(`[browser] FAILED: ${err.stack || err}`);
    process.exit(1);
  },
);
