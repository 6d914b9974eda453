// The React hook in a real browser (Debian's Chromium, driven by playwright-core): the dashboard
// example (examples/dashboard, built with Vite, served by run.py from its own origin) uses the
// published `useAccessPass` of @dexterai/x402 2.0.0 against the API behind Envoy + the filter.
// And the HTML paywall a person sees when opening a protected URL in the browser.

import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { chromium } from 'playwright-core';
import { PRICE, decodeB64Json, decodeJwt, env, messageHashOf, newBuyer, outDir, settlementsOf } from './lib.mjs';

const CHROMIUM = process.env.CHROMIUM_PATH || '/usr/bin/chromium';
const ARGS = ['--headless', '--no-sandbox', '--disable-gpu', '--disable-background-networking',
  '--disable-component-update', '--disable-sync', '--no-first-run', '--disable-quic', '--disable-dev-shm-usage'];
// What Chromium logs for every non-2xx fetch: the hook's tier discovery and its first purchase
// request are answered 402 by design (that is how x402 works). Nothing else may be logged as an error.
const EXPECTED_402 = 'Failed to load resource: the server responded with a status of 402 (Payment Required)';
const OUT = outDir('browser');

let userDataDir;
let context;

before(async () => {
  assert.ok(existsSync(CHROMIUM), `${CHROMIUM} is missing: make interop installs Debian's chromium`);
  userDataDir = mkdtempSync(path.join(tmpdir(), 'x402-interop-chromium-'));
  context = await chromium.launchPersistentContext(userDataDir, {
    executablePath: CHROMIUM,
    headless: true,
    args: ARGS,
    viewport: { width: 1100, height: 820 },
    timeout: 60_000,
  });
  context.setDefaultTimeout(20_000);
});

after(async () => {
  await context?.close();
  if (userDataDir) rmSync(userDataDir, { recursive: true, force: true });
});

/** A new tab that records console messages, page errors, and the API requests it makes. */
async function newTab() {
  const page = await context.newPage();
  const consoleErrors = [];
  const pageErrors = [];
  const requests = [];
  const responses = [];
  page.on('console', (msg) => {
    if (msg.type() === 'error') consoleErrors.push(msg.text());
  });
  page.on('pageerror', (err) => pageErrors.push(String(err)));
  page.on('request', (req) => requests.push({ method: req.method(), url: req.url(), headers: req.headers() }));
  page.on('response', (res) => responses.push({ url: res.url(), status: res.status(), headers: res.headers() }));
  return { page, consoleErrors, pageErrors, requests, responses };
}

async function adminStat(admin, name) {
  const res = await fetch(`${admin}/stats?filter=${encodeURIComponent(name)}`);
  const line = (await res.text()).split('\n').find((l) => l.startsWith(`${name}: `));
  return line ? Number(line.split(': ')[1]) : 0;
}

/** Opens the dashboard on `api`, checks the tiers, buys the 1-hour pass and waits for data. */
async function buyOneHourOnTheDashboard(api, label, screenshot) {
  const buyer = newBuyer(label);
  const resourceUrl = `${api}/api/metrics`;
  const tab = await newTab();
  const { page } = tab;
  const url = `${env.dashboard}/?api=${encodeURIComponent(api)}&rpc=${encodeURIComponent(env.rpc)}`
    + `&key=${buyer.seedHex}&poll=500`;
  assert.notEqual(new URL(env.dashboard).origin, new URL(api).origin, 'the page and the API are different origins');
  await page.goto(url);

  // The tiers, read by the hook from the X-ACCESS-PASS-TIERS header of a cross-origin 402.
  const buttons = page.locator('[data-testid=tiers] button');
  await buttons.first().waitFor();
  assert.deepEqual(await buttons.allInnerTexts(), ['5 minutes\n$0.05 USDC', '1 hour\n$0.50 USDC', '1 day\n$2.00 USDC']);
  await page.getByText('$0.50 USDC per hour').waitFor();
  assert.equal(await page.locator('[data-testid=wallet]').getAttribute('title'), buyer.address);

  if (screenshot) {
    await page.screenshot({ path: path.join(OUT, `tiers-${screenshot}`), clip: { x: 0, y: 0, width: 1100, height: 350 } });
  }
  await page.locator('[data-testid=tier-1h]').click();
  const passCard = page.locator('[data-testid=pass]');
  await passCard.waitFor();
  assert.equal(await passCard.getAttribute('data-tier'), '1h');
  await page.getByText('1 hour', { exact: true }).waitFor();

  // Data renders and keeps updating (polled every 500 ms with the pass).
  await page.waitForFunction(() => Number(document.querySelector('[data-testid=polls]')?.dataset.count) >= 2
    || document.querySelector('[data-testid=poll-error]'), null, { timeout: 15_000 });
  assert.equal(await page.locator('[data-testid=poll-error]').count(), 0,
    `polling the API with the pass failed: ${await page.locator('[data-testid=poll-error]').allInnerTexts()}`);
  const firstLast = Number(await page.locator('[data-testid=chart]').getAttribute('data-last'));
  await page.waitForFunction((before) => Number(document.querySelector('[data-testid=chart]')?.dataset.last) > before,
    firstLast, { timeout: 15_000 });
  assert.equal(await page.locator('[data-testid=chart]').getAttribute('data-points'), '30');
  assert.equal(await page.locator('[data-testid=latest] tbody tr').count(), 5);
  assert.equal(await page.locator('[data-testid=served-for]').getAttribute('data-tier'), '1h');
  assert.equal(await page.locator('[data-testid=poll-error]').count(), 0);

  // What the hook stored, and what went over the wire.
  const stored = JSON.parse(await page.evaluate((key) => sessionStorage.getItem(key), `x402-access-pass:${resourceUrl}`));
  const { claims } = decodeJwt(stored.jwt);
  if (screenshot) await page.screenshot({ path: path.join(OUT, screenshot), fullPage: true });
  return { buyer, tab, stored, claims, resourceUrl };
}

test('dashboard: the hook shows the tiers, "1 hour" pays the 1-hour price and gets a 1-hour pass, data renders', async () => {
  const preflightsBefore = await adminStat(env.envoyAdmin, 'wasmcustom.x402_access_pass.preflights_answered');
  const { buyer, tab, stored, claims, resourceUrl } = await buyOneHourOnTheDashboard(env.api, 'browser: dashboard 1h', 'dashboard.png');

  // One payment, settled once, at the 1-hour price; the pass is 1 hour.
  const settled = await settlementsOf(buyer.address);
  assert.equal(settled.length, 1, JSON.stringify(settled));
  assert.equal(settled[0].amount, PRICE['1h']);
  assert.equal(claims.tier, '1h');
  assert.equal(claims.exp - claims.iat, 3600);
  assert.equal(claims.payer, buyer.address);
  assert.equal(stored.tier, '1h');
  assert.equal(stored.expiresAt, new Date(claims.exp * 1000).toISOString());

  // The hook's wire: discovery GET (402), POST ?tier=1h (402 priced for 1 hour), then the payment
  // posted to ?tier=1h&tier=5m (it appends the shortest tier): the filter honours the first tier
  // whose price was paid. Then the polls carry the pass.
  const api = tab.requests.filter((r) => r.url.startsWith(resourceUrl));
  const purchase = api.filter((r) => r.headers['payment-signature']);
  assert.equal(purchase.length, 1);
  assert.equal(purchase[0].method, 'POST');
  assert.equal(purchase[0].url, `${resourceUrl}?tier=1h&tier=5m`);
  assert.equal(messageHashOf(purchase[0].headers['payment-signature']), settled[0].messageHash);
  assert.equal(decodeB64Json(purchase[0].headers['payment-signature']).accepted.amount, PRICE['1h']);
  assert.deepEqual(api.slice(0, 2).map((r) => [r.method, r.url]), [['GET', resourceUrl], ['POST', `${resourceUrl}?tier=1h`]]);
  const polls = api.filter((r) => r.headers.authorization);
  assert.ok(polls.length >= 3, `${polls.length} polls`);
  assert.ok(polls.every((r) => r.method === 'GET' && r.headers.authorization === `Bearer ${stored.jwt}`));
  const statuses = tab.responses.filter((r) => r.url.startsWith(resourceUrl)).map((r) => r.status);
  assert.deepEqual(statuses.slice(0, 3), [402, 402, 200]);
  assert.ok(statuses.slice(3).every((s) => s === 200), statuses.join(','));

  // The purchase and the polls (Authorization, PAYMENT-SIGNATURE) are preflighted; the filter answers.
  const preflights = await adminStat(env.envoyAdmin, 'wasmcustom.x402_access_pass.preflights_answered');
  assert.ok(preflights - preflightsBefore >= 2, `preflights answered: ${preflights - preflightsBefore}`);

  assert.deepEqual(tab.pageErrors, []);
  assert.deepEqual(tab.consoleErrors.filter((m) => m !== EXPECTED_402), []);
  await tab.page.close();
});

test('dashboard with cors.allowOrigins = [the dashboard origin]: the same purchase and data, CORS for that origin only', async () => {
  // (This configuration once took the filter's workers down on the first request with a pass:
  // it read the Origin request header in the response phase.)
  const { buyer, tab, claims, resourceUrl } = await buyOneHourOnTheDashboard(env.apiOriginOnly, 'browser: origin-only 1h', null);
  assert.equal(claims.tier, '1h');
  assert.deepEqual((await settlementsOf(buyer.address)).map((s) => s.amount), [PRICE['1h']]);
  for (const res of tab.responses.filter((r) => r.url.startsWith(resourceUrl))) {
    assert.equal(res.headers['access-control-allow-origin'], env.dashboard, `${res.status} ${res.url}`);
  }
  const later = await fetch(`${env.apiOriginOnly}/api/data`, { headers: { Origin: 'http://other.example' } });
  assert.equal(later.status, 402, 'the workers keep serving');
  assert.equal(later.headers.get('access-control-allow-origin'), null, 'and only the dashboard origin is allowed');
  assert.deepEqual(tab.pageErrors, []);
  assert.deepEqual(tab.consoleErrors.filter((m) => m !== EXPECTED_402), []);
  await tab.page.close();
});

test('HTML paywall: a browser opening a protected URL sees the tiers, prices and how to pay, with the x402 headers', async () => {
  const { page, consoleErrors, pageErrors } = await newTab();
  const response = await page.goto(`${env.api}/api/data`);
  assert.equal(response.status(), 402);
  const headers = response.headers();
  assert.match(headers['content-type'], /^text\/html/);
  const required = decodeB64Json(headers['payment-required']);
  assert.equal(required.accepts[0].amount, PRICE['5m']);
  assert.equal(required.accepts[0].payTo, env.payTo);
  assert.deepEqual(decodeB64Json(headers['x-access-pass-tiers']).tiers.map((t) => t.id), ['5m', '1h', '24h']);

  assert.match(await page.title(), /payment required/i);
  await page.getByRole('heading', { name: 'Access pass required' }).waitFor();
  const rows = await page.locator('table tbody tr').allInnerTexts();
  assert.deepEqual(rows.slice(0, 3).map((r) => r.split('\t').map((c) => c.trim())), [
    ['5 minutes', '$0.05 USDC', '?tier=5m'],
    ['1 hour', '$0.50 USDC', '?tier=1h'],
    ['1 day', '$2.00 USDC', '?tier=24h'],
  ]);
  assert.match(rows[3], /\$0\.50 USDC per hour/);
  assert.match(rows[3], /\?duration=<seconds>/);
  const text = await page.locator('body').innerText();
  assert.match(text, /How to pay/);
  for (const needle of ['PAYMENT-SIGNATURE', 'PAYMENT-REQUIRED', 'X-ACCESS-PASS-TIERS', 'ACCESS-PASS',
    'Authorization: Bearer', env.network, env.payTo]) {
    assert.ok(text.includes(needle), `the paywall mentions ${needle}`);
  }
  await page.screenshot({ path: path.join(OUT, 'paywall.png'), clip: { x: 0, y: 0, width: 1100, height: 580 } });
  assert.deepEqual(pageErrors, []);
  assert.deepEqual(consoleErrors.filter((m) => m !== EXPECTED_402), []);
  await page.close();
});
