// What both browser scripts share: their settings from the environment, logging, and the
// bounded wait every check polls with.
'use strict';

function required(name) {
  const value = process.env[name];
  if (!value) {
    console.error(`${name} is not set (run the browser test through infra/local.sh test)`);
    process.exit(1);
  }
  return value;
}

// Generous: the machine may be busy with builds; every wait polls and gives up in time.
const WAIT_MS = Number(process.env.BROWSER_WAIT_MS || 90000);

function log(...parts) {
  console.log(`[browser ${new Date().toISOString().slice(11, 23)}]`, ...parts);
}

function sleep(ms) {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

// Polls `check` every 250 ms until it answers `{ ok: true, ... }`, for at most `limit`.
async function until(what, check, limit = WAIT_MS) {
  const deadline = Date.now() + limit;
  let last;
  for (;;) {
    try {
      last = await check();
      if (last && last.ok) return last;
    } catch (err) {
      last = { error: String(err) };
    }
    if (Date.now() > deadline) {
      throw new Error(`timed out after ${limit} ms waiting for ${what}; last seen: ${JSON.stringify(last)}`);
    }
    await sleep(250);
  }
}

// Headless Debian chromium, as root (as CI runs) without a sandbox; /dev/shm may be small.
function launch(puppeteer, chromium) {
  return puppeteer.launch({
    executablePath: chromium,
    headless: true,
    args: ['--no-sandbox', '--disable-dev-shm-usage', '--disable-gpu'],
    protocolTimeout: WAIT_MS,
  });
}

module.exports = { required, WAIT_MS, log, sleep, until, launch };
