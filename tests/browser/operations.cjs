// Drives the dashboard page's Operations section in headless Chromium: a consumer's queue
// and dead-letter queue filling, then draining and redriven from the page.
// Run by tests/tests/it/dashboard_page.rs, which answers each `STEP` line this prints on
// its standard output by changing the queues: `STEP watching` (the page shows empty
// queues; send messages), `STEP seen` (the page shows them; start the consumers).
// Exits 0 when every check held, 1 otherwise.
'use strict';

const path = require('path');
const readline = require('readline');

const { required, WAIT_MS, log, until, launch } = require('./common.cjs');

const BASE_URL = required('BASE_URL');
const CHROMIUM = required('CHROMIUM');
const SCREENSHOT_DIR = required('SCREENSHOT_DIR');
const puppeteer = require(path.join(required('BROWSER_TOOLS_DIR'), 'node_modules', 'puppeteer-core'));

const OPERATOR_SCOPE = 'orchestration/operator';
// What the test sends once told to: messages to the dashboard's queue, to its DLQ.
const SENT = Number(required('SENT_TO_QUEUE'));
const DEAD = Number(required('SENT_TO_DLQ'));

// Tells the test to act, and waits for its `DONE <step>` on standard input.
const input = readline.createInterface({ input: process.stdin });
const answers = [];
input.on('line', (line) => answers.push(line.trim()));
async function step(name) {
  console.log(`STEP ${name}`);
  await until(`the test to answer ${name}`, async () => ({ ok: answers.includes(`DONE ${name}`) }));
}

// The dashboard consumer's row, as the page shows it.
function dashboardRow(page) {
  return page.evaluate(() => {
    const row = document.querySelector('#ops-rows tr[data-consumer="dashboard"]');
    if (!row) return null;
    const field = (name) => {
      const td = row.querySelector(`td[data-field="${name}"]`);
      return td ? { text: td.textContent, value: td.getAttribute('data-value') } : null;
    };
    return {
      visible: Number(field('visible').value),
      inFlight: Number(field('in_flight').value),
      dead: Number(field('dead_letters').value),
      objective: field('objective').text,
      tasks: document.getElementById('tasks-total').getAttribute('data-value'),
    };
  });
}

async function main() {
  const browser = await launch(puppeteer, CHROMIUM);
  const errors = [];
  try {
    const page = await browser.newPage();
    await page.setViewport({ width: 1280, height: 1000 });
    page.on('pageerror', (err) => errors.push(`page error: ${err.message}`));
    page.on('console', (message) => {
      if (message.type() === 'error' && !message.text().includes('Failed to load resource')) {
        errors.push(`console: ${message.text()}`);
      }
    });
    const dialogs = [];
    page.on('dialog', async (dialog) => {
      dialogs.push(dialog.message());
      await dialog.accept();
    });

    const response = await page.goto(`${BASE_URL}/dashboard`, { waitUntil: 'load', timeout: WAIT_MS });
    if (response.status() !== 200) throw new Error(`GET /dashboard answered ${response.status()}`);

    // Without the operator scope the view is refused, and says so.
    await page.evaluate(() => { document.getElementById('identity').open = true; });
    await page.type('#user-id', 'ops-viewer');
    await page.click('#sign-in');
    await until('the view to need the operator scope', async () => {
      const text = await page.$eval('#ops-status', (el) => el.textContent);
      return { ok: text.includes('operator scope'), text };
    });
    log('without the scope: refused');

    // An operator sees every consumer, the dashboard's queues empty.
    await page.evaluate(() => {
      document.getElementById('identity').open = true;
      document.getElementById('user-id').value = '';
      document.getElementById('scopes').value = '';
    });
    await page.type('#user-id', 'ops-person');
    await page.type('#scopes', OPERATOR_SCOPE);
    await page.click('#sign-in');
    const empty = await until('empty queues in the view', async () => {
      const consumers = await page.$$eval('#ops-rows tr', (rows) => rows.map((r) => r.getAttribute('data-consumer')));
      const row = await dashboardRow(page);
      return { ok: consumers.length === 4 && row && row.visible === 0 && row.dead === 0, consumers, row };
    });
    log('the view:', JSON.stringify(empty.consumers), 'dashboard', JSON.stringify(empty.row));

    // Messages arrive: the queue's count and the DLQ's depth follow.
    await step('watching');
    const filled = await until(`${SENT} waiting and ${DEAD} dead letters`, async () => {
      const row = await dashboardRow(page);
      return { ok: row && row.visible + row.inFlight === SENT && row.dead === DEAD, row };
    });
    log('after the messages arrived:', JSON.stringify(filled.row));
    await page.screenshot({ path: path.join(SCREENSHOT_DIR, 'operations-filled.png'), fullPage: true });

    // The consumers start: the queue drains, the dead letters stay.
    await step('seen');
    const drained = await until('the queue to drain', async () => {
      const row = await dashboardRow(page);
      return { ok: row && row.visible === 0 && row.inFlight === 0 && row.dead === DEAD && Number(row.tasks) === SENT, row };
    });
    log('after the consumers ran:', JSON.stringify(drained.row));

    // A redrive from the page: counted first, then confirmed.
    await page.select('#redrive-consumer', 'dashboard');
    await page.type('#redrive-type', 'TaskCreated');
    await page.click('#redrive-count');
    const count = await until('the dry run\'s count', async () => {
      const status = await page.$eval('#redrive-status', (el) => ({ text: el.textContent, matched: el.getAttribute('data-matched') }));
      const confirm = await page.$eval('#redrive-confirm', (el) => ({ hidden: el.hidden, text: el.textContent }));
      return { ok: Number(status.matched) === DEAD && !confirm.hidden, status, confirm };
    });
    log('dry run:', count.status.text, '/', count.confirm.text);
    const stillDead = await dashboardRow(page);
    if (stillDead.dead !== DEAD) throw new Error(`a dry run moved dead letters: ${JSON.stringify(stillDead)}`);
    await page.click('#redrive-confirm');
    const moved = await until('the redrive', async () => {
      const status = await page.$eval('#redrive-status', (el) => ({ text: el.textContent, moved: el.getAttribute('data-moved') }));
      return { ok: Number(status.moved) === DEAD, status };
    });
    if (dialogs.length !== 1 || !dialogs[0].includes('dashboard')) {
      throw new Error(`expected one confirmation naming the consumer, got ${JSON.stringify(dialogs)}`);
    }
    log('confirmed:', JSON.stringify(dialogs[0]), '->', moved.status.text);
    const redriven = await until('the dead letters gone and applied', async () => {
      const row = await dashboardRow(page);
      return { ok: row && row.dead === 0 && Number(row.tasks) === SENT + DEAD, row };
    });
    log('after the redrive:', JSON.stringify(redriven.row));
    await page.screenshot({ path: path.join(SCREENSHOT_DIR, 'operations.png'), fullPage: true });

    if (errors.length) throw new Error(`the page reported errors:\n${errors.join('\n')}`);
  } finally {
    input.close();
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
