// The money path under faults (docs/behaviour.md §17): the real @dexterai/x402 2.0.0 client and the
// official @x402/fetch 2.27.0 client buy from Envoy + the filter while the test facilitator's
// /settle misbehaves in each way it can (tests/facilitator/src/faults.rs). Whatever happens, the
// facilitator's own ledger must show that every buyer paid exactly once for each pass (or answer
// with the data) it got, and got one for every settlement.
//
// The Envoy here ("faults" in run.py) has the harness's plugin config with settleDeadlineMs 8000,
// as tests/integration/test_settle_outcomes.py: the filter works the outcome out inside the
// buyer's request. Its callout timeout is 2 s (facilitatorTimeoutMs).

import { afterEach, test } from 'node:test';
import assert from 'node:assert/strict';
import {
  PRICE, assertPaidOncePerDelivery, clearFaults, dexterClient, env, faultsInForce, newBuyer, officialClient,
  setFault, upstreamGot, wireOf,
} from './lib.mjs';

// Each fault is applied to the next /settle only (count 1), unless it says otherwise.
const RECOVERED = [
  // settled after the filter's callout timed out; the retry hears duplicate_settlement
  ['settle answered after the callout timeout', { mode: 'slow', delayMs: 2800 }],
  // settled, the answer cut half-way
  ['settle answer truncated', { mode: 'truncated' }],
  // nothing settled: an error, then no answer at all, then a body that is not JSON
  ['settle 502', { mode: 'status', status: 502 }],
  ['settle connection reset', { mode: 'reset' }],
  ['settle garbage JSON', { mode: 'garbage' }],
  // broadcast, not confirmed yet (x402 #3214); confirmed when asked again
  ['settlement_pending', { mode: 'settle_pending' }],
  // submitted, confirmation timed out; it landed
  ['confirmation timed out', { mode: 'confirmation_timeout' }],
  // the answer lost, then the retry hears "already processed" (x402 SVM facilitator's reason)
  ['already processed on the retry', { mode: 'truncated', count: 1, then: { mode: 'already_processed', count: 1 } }],
  // settled, but answered with a forged transaction id, another network, another payer
  ['malformed transaction id', { mode: 'bad_transaction' }],
  ['answer for another network', { mode: 'bad_network' }],
  ['answer for another payer', { mode: 'bad_payer' }],
];

// Refused before broadcast: nothing settled, 402.
const REFUSED = [
  ['refused with HTTP 400 (insufficient_funds)', { mode: 'refused_400' }, 'insufficient_funds'],
  ['refused (transaction_failed)', { mode: 'settle_failure' }, 'transaction_failed'],
];

afterEach(async () => {
  await clearFaults();
});

async function withSettleFault(fault, fn) {
  await setFault({ endpoint: 'settle', count: 1, ...fault });
  try {
    return await fn();
  } finally {
    await clearFaults();
  }
}

async function call(fetchWithPayment, path) {
  const res = await fetchWithPayment(env.apiFaults + path);
  const text = await res.text();
  let body = null;
  try {
    body = JSON.parse(text);
  } catch {
    // not JSON
  }
  return { status: res.status, headers: res.headers, body, text };
}

/** The fault was used up: the request under test met it (and its `then`). */
async function assertFaultUsed(name) {
  assert.deepEqual(await faultsInForce(), {}, `${name}: the fault was met by the purchase`);
}

for (const [name, fault] of RECOVERED) {
  test(`@dexterai/x402 under "${name}": one settlement, the pass it paid for, then Bearer calls`, async () => {
    const buyer = newBuyer(`faults dexter: ${name}`);
    const client = dexterClient(buyer, {});
    const first = await withSettleFault(fault, () => call(client.fetch, '/api/data/0'));
    await assertFaultUsed(name);
    const second = await call(client.fetch, '/api/data/1');

    assert.deepEqual(wireOf(client.calls, env.apiFaults), [
      ['GET', '/api/data/0', 402, '-'],
      ['POST', '/api/data/0?tier=5m', 200, 'PAYMENT-SIGNATURE'],
      ['GET', '/api/data/1', 200, 'Bearer'],
    ]);
    const { settled, unsettled } = await assertPaidOncePerDelivery(buyer, client.calls);
    assert.equal(settled.length, 1);
    assert.equal(unsettled.length, 0);
    const [bought] = settled;
    assert.equal(bought.settlement.amount, PRICE['5m']);
    assert.equal(bought.delivered, 'pass', 'a Part I purchase (?tier=) is answered by the filter');
    assert.equal(first.body.accessPass.token, bought.token);
    assert.equal(first.body.accessPass.durationSeconds, 300, 'a full 5-minute pass');
    const got = upstreamGot(second.body);
    assert.equal(got['x-access-pass-payer'], buyer.address);
    assert.equal(got['x-access-pass-expires'], String(bought.claims.exp));
  });

  test(`@x402/fetch under "${name}": each call pays once and gets the data`, async () => {
    const buyer = newBuyer(`faults official: ${name}`);
    const client = await officialClient(buyer);
    const first = await withSettleFault(fault, () => call(client.fetch, '/api/data/0'));
    await assertFaultUsed(name);
    const second = await call(client.fetch, '/api/data/1');

    assert.deepEqual(wireOf(client.calls, env.apiFaults), [
      ['GET', '/api/data/0', 402, '-'],
      ['GET', '/api/data/0', 200, 'PAYMENT-SIGNATURE'],
      ['GET', '/api/data/1', 402, '-'],
      ['GET', '/api/data/1', 200, 'PAYMENT-SIGNATURE'],
    ]);
    assert.equal(first.status, 200);
    assert.equal(second.status, 200);
    const { settled, unsettled } = await assertPaidOncePerDelivery(buyer, client.calls);
    assert.equal(settled.length, 2, 'this client never reuses a pass: two calls, two payments');
    assert.equal(unsettled.length, 0);
    for (const s of settled) {
      assert.equal(s.settlement.amount, PRICE['5m']);
      assert.equal(s.delivered, 'data', 'the paid request was forwarded (docs/behaviour.md §15)');
    }
  });
}

for (const [name, fault, reason] of REFUSED) {
  test(`@dexterai/x402 when the purchase is ${name}: nothing charged for it; its fallback payment is settled once and gets the data`, async () => {
    // SPEC §14: a purchase answered non-2xx makes the client fall back to a plain x402 payment of
    // the original 402, sent on the original request (a second, different payment). The fault has
    // been used by then, so that one settles.
    const buyer = newBuyer(`faults dexter: ${name}`);
    const client = dexterClient(buyer, {});
    const first = await withSettleFault(fault, () => call(client.fetch, '/api/data/0'));
    await assertFaultUsed(name);
    const second = await call(client.fetch, '/api/data/1');

    assert.deepEqual(wireOf(client.calls, env.apiFaults), [
      ['GET', '/api/data/0', 402, '-'],
      ['POST', '/api/data/0?tier=5m', 402, 'PAYMENT-SIGNATURE'],
      ['GET', '/api/data/0', 200, 'PAYMENT-SIGNATURE'],
      ['GET', '/api/data/1', 402, '-'],
      ['POST', '/api/data/1?tier=5m', 200, 'PAYMENT-SIGNATURE'],
    ]);
    const refusal = JSON.parse(client.calls[1].text);
    assert.equal(refusal.reason, reason);
    const { settled, unsettled } = await assertPaidOncePerDelivery(buyer, client.calls);
    assert.equal(unsettled.length, 1, 'the refused purchase');
    assert.equal(unsettled[0], client.calls[1]);
    assert.equal(settled.length, 2, 'the fallback payment and the next purchase');
    assert.equal(settled[0].call, client.calls[2]);
    assert.equal(settled[0].delivered, 'data', 'the fallback names no pass: forwarded (docs/behaviour.md §15)');
    assert.equal(first.status, 200);
    assert.equal(first.headers.get('access-pass'), settled[0].token);
    // the next call bought a pass of its own: the fallback's is not kept by this client
    assert.equal(second.body.accessPass.token, settled[1].token);
  });

  test(`@x402/fetch when the payment is ${name}: the buyer gets the 402, is charged nothing, and the next call pays once`, async () => {
    const buyer = newBuyer(`faults official: ${name}`);
    const client = await officialClient(buyer);
    const first = await withSettleFault(fault, () => call(client.fetch, '/api/data/0'));
    await assertFaultUsed(name);
    const second = await call(client.fetch, '/api/data/1');

    assert.deepEqual(wireOf(client.calls, env.apiFaults), [
      ['GET', '/api/data/0', 402, '-'],
      ['GET', '/api/data/0', 402, 'PAYMENT-SIGNATURE'],
      ['GET', '/api/data/1', 402, '-'],
      ['GET', '/api/data/1', 200, 'PAYMENT-SIGNATURE'],
    ]);
    assert.equal(first.status, 402);
    assert.equal(first.body.reason, reason);
    assert.equal(second.status, 200);
    const { settled, unsettled } = await assertPaidOncePerDelivery(buyer, client.calls);
    assert.equal(unsettled.length, 1);
    assert.equal(settled.length, 1);
    assert.equal(settled[0].call, client.calls[3]);
    assert.equal(settled[0].delivered, 'data');
  });
}

test('@dexterai/x402: the fallback payment after a refused purchase returns the upstream\'s data', async () => {
  // With pay-and-serve (docs/behaviour.md §15) the client's fallback, a plain payment on the
  // original request (no tier), is forwarded: the buyer gets what it asked for, not only a pass.
  const buyer = newBuyer('faults dexter: fallback gets data');
  const client = dexterClient(buyer, {});
  const first = await withSettleFault({ mode: 'refused_400' }, () => call(client.fetch, '/api/data/0?page=0'));
  await assertFaultUsed('refused_400');
  assert.deepEqual(wireOf(client.calls, env.apiFaults), [
    ['GET', '/api/data/0?page=0', 402, '-'],
    ['POST', '/api/data/0?page=0&tier=5m', 402, 'PAYMENT-SIGNATURE'],
    ['GET', '/api/data/0?page=0', 200, 'PAYMENT-SIGNATURE'],
  ]);
  const { settled, unsettled } = await assertPaidOncePerDelivery(buyer, client.calls);
  assert.equal(unsettled.length, 1);
  assert.equal(settled.length, 1);
  assert.equal(settled[0].delivered, 'data');
  assert.equal(first.status, 200);
  assert.equal(first.body.path, '/api/data/0?page=0');
  assert.equal(upstreamGot(first.body)['x-access-pass-payer'], buyer.address);
});
