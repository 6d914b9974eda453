// The official x402 v2 buyer for Node, unchanged: `wrapFetchWithPayment(fetch, x402Client)` from
// @x402/fetch 2.27.0 with the exact SVM scheme of @x402/svm 2.27.0 and a @solana/kit key pair
// signer (lib.mjs officialClient), against Envoy + the filter (the harness's plugin config: 5m /
// 1h / 24h at 0.05 / 0.50 / 2.00 USDC). This client pays per request: it sends the request again,
// unchanged, with PAYMENT-SIGNATURE, expects the resource in the answer, and never keeps a pass.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { decodePaymentResponseHeader } from '@x402/fetch';
import {
  PRICE, assertPaidOncePerDelivery, callApi, env, newBuyer, officialClient, upstreamGot, upstreamRequests, wireOf,
} from './lib.mjs';

const CALLS = 3;

async function threeCalls(label) {
  const buyer = newBuyer(label);
  const client = await officialClient(buyer);
  const answers = [];
  for (let i = 0; i < CALLS; i++) answers.push(await callApi(client.fetch, env.api, `/api/data/${i}?page=${i}`));
  assert.deepEqual(wireOf(client.calls, env.api), Array.from({ length: CALLS }, (_, i) => [
    ['GET', `/api/data/${i}?page=${i}`, 402, '-'],
    ['GET', `/api/data/${i}?page=${i}`, 200, 'PAYMENT-SIGNATURE'],
  ]).flat());
  return { buyer, client, answers };
}

test('@x402/fetch: each call pays exactly once, at the default price, and returns the upstream\'s data with PAYMENT-RESPONSE and ACCESS-PASS', async () => {
  // docs/behaviour.md §15: a payment on a request without tier/duration buys the default pass and
  // the request itself is forwarded; the upstream sees the pass's claims, never the payment.
  const { buyer, client, answers } = await threeCalls('official: pay and serve');
  const { settled, unsettled } = await assertPaidOncePerDelivery(buyer, client.calls);
  assert.equal(settled.length, CALLS, 'one settlement per call: this client never reuses a pass');
  assert.equal(unsettled.length, 0);
  for (const [i, s] of settled.entries()) {
    assert.equal(s.settlement.amount, PRICE['5m'], 'the default pass (§4): tiers[0]');
    assert.equal(s.claims.tier, '5m');
    assert.equal(s.delivered, 'data', `call ${i} got the upstream's answer`);
    const answer = answers[i];
    assert.equal(answer.status, 200);
    assert.equal(answer.body.path, `/api/data/${i}?page=${i}`, 'forwarded with its path and query');
    assert.equal(answer.body.method, 'GET');
    const got = upstreamGot(answer.body);
    assert.equal(got['x-access-pass-tier'], '5m');
    assert.equal(got['x-access-pass-payer'], buyer.address);
    assert.equal(got['x-access-pass-network'], env.network);
    assert.equal(got['payment-signature'], undefined, 'the upstream never sees PAYMENT-SIGNATURE');
    assert.equal(answer.headers.get('access-pass'), s.token);
    assert.deepEqual(decodePaymentResponseHeader(answer.headers.get('payment-response')), {
      success: true, transaction: s.settlement.transaction, network: env.network, payer: buyer.address,
    });
  }
});

test('@x402/fetch: a POST with a JSON body is paid once and reaches the upstream with its method and body', async () => {
  // §15.2: the original request is forwarded, body included (Envoy holds it while the callouts run).
  const buyer = newBuyer('official: POST body');
  const client = await officialClient(buyer);
  const path = `/api/orders/${buyer.address}`;
  const order = JSON.stringify({ item: 'report', quantity: 3, note: 'paid with @x402/fetch' });
  const answer = await callApi(client.fetch, env.api, path, {
    method: 'POST', headers: { 'content-type': 'application/json' }, body: order,
  });
  assert.deepEqual(wireOf(client.calls, env.api), [
    ['POST', path, 402, '-'],
    ['POST', path, 200, 'PAYMENT-SIGNATURE'],
  ]);
  const { settled } = await assertPaidOncePerDelivery(buyer, client.calls);
  assert.equal(settled.length, 1);
  assert.equal(settled[0].delivered, 'data');
  assert.equal(answer.body.method, 'POST');
  const received = (await upstreamRequests()).filter((r) => r.path === path);
  assert.equal(received.length, 1, 'the upstream saw the paid request once (never the 402 one)');
  assert.equal(received[0].method, 'POST');
  assert.equal(received[0].body, order);
  const headers = Object.fromEntries(received[0].headers);
  assert.equal(headers['content-type'], 'application/json');
  assert.equal(headers['payment-signature'], undefined);
  assert.equal(headers['x-access-pass-payer'], buyer.address);
});
