// Coming back without paying again: the official clients' Sign-In-With-X extension (CAIP-122,
// docs/behaviour.md §16) against Envoy "siwx" (run.py: siwx.origins = its own origin, tiers 1m /
// 1h at 0.01 / 0.50, so the default pass lasts one minute).
//
// A client with the extension registered answers a 402 that declares `sign-in-with-x` by signing
// the challenge and sending the request again with SIGN-IN-WITH-X; only if that is refused does it
// pay. So: the first call pays once; the next calls, while the pass the wallet bought lasts, are
// served for nothing; once it has run out, the next call pays exactly once more.
//
// The expiry tests wait about a minute each, so they run side by side.

import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import {
  SIWX_PRICE, assertPaidOncePerDelivery, callApi, decodeB64Json, env, newBuyer,
  officialClient, pythonBuyer, sleepPast, upstreamGot, wireOf,
} from './lib.mjs';

const PAID = (path) => [
  ['GET', path, 402, '-'],
  ['GET', path, 402, 'SIGN-IN-WITH-X'], // signed in, but this wallet holds nothing yet
  ['GET', path, 200, 'PAYMENT-SIGNATURE'],
];
const FREE = (path) => [
  ['GET', path, 402, '-'],
  ['GET', path, 200, 'SIGN-IN-WITH-X'],
];

/** An answer served on the strength of a SIWX sign-in: the upstream's data, with the claims of
 *  the pass this wallet bought, and neither the proof nor a payment forwarded. */
function assertServedBySignIn(answer, buyer, bought) {
  assert.equal(answer.status, 200, (answer.text ?? '').slice(0, 300));
  const got = upstreamGot(answer.body);
  assert.equal(got['x-access-pass-payer'], buyer.address);
  assert.equal(got['x-access-pass-tier'], bought.claims.tier);
  assert.equal(got['x-access-pass-expires'], String(bought.claims.exp));
  assert.equal(got['sign-in-with-x'], undefined, 'the proof is not forwarded');
  assert.equal(got['payment-signature'], undefined);
}

describe('Sign-In-With-X: pay once, come back for free until the pass runs out', { concurrency: true }, () => {
  test('@x402/fetch with createSIWxClientExtension', async () => {
    const buyer = newBuyer('siwx: official node');
    const client = await officialClient(buyer, { siwx: true });
    const first = await callApi(client.fetch, env.apiSiwx, '/api/data/0');
    const later = [];
    for (let i = 1; i <= 2; i++) later.push(await callApi(client.fetch, env.apiSiwx, `/api/data/${i}`));
    assert.deepEqual(wireOf(client.calls, env.apiSiwx), [
      ...PAID('/api/data/0'), ...FREE('/api/data/1'), ...FREE('/api/data/2'),
    ]);
    const { settled } = await assertPaidOncePerDelivery(buyer, client.calls, SIWX_PRICE);
    assert.equal(settled.length, 1, 'paid once');
    const [bought] = settled;
    assert.equal(bought.settlement.amount, SIWX_PRICE['1m']);
    assert.equal(bought.delivered, 'data');
    assert.equal(first.status, 200);
    for (const answer of later) assertServedBySignIn(answer, buyer, bought);

    await sleepPast(bought.claims.exp);
    const after = await callApi(client.fetch, env.apiSiwx, '/api/data/3');
    assert.equal(after.status, 200);
    assert.deepEqual(wireOf(client.calls.slice(7), env.apiSiwx), PAID('/api/data/3'));
    const again = await assertPaidOncePerDelivery(buyer, client.calls, SIWX_PRICE);
    assert.equal(again.settled.length, 2, 'exactly one more payment once the pass ran out');
  });

  test('Python x402 (httpx) with create_siwx_client_extension', async () => {
    const buyer = newBuyer('siwx: python httpx');
    const url = (i) => `${env.apiSiwx}/api/data/${i}`;
    const run1 = await pythonBuyer(buyer, 'httpx', [url(0), url(1), url(2)], { siwx: true });
    assert.deepEqual(wireOf(run1.wire, env.apiSiwx), [
      ...PAID('/api/data/0'), ...FREE('/api/data/1'), ...FREE('/api/data/2'),
    ]);
    const { settled } = await assertPaidOncePerDelivery(buyer, run1.wire, SIWX_PRICE);
    assert.equal(settled.length, 1, 'paid once');
    const [bought] = settled;
    assert.equal(bought.delivered, 'data');
    for (const answer of run1.calls.slice(1)) assertServedBySignIn(answer, buyer, bought);

    await sleepPast(bought.claims.exp);
    const run2 = await pythonBuyer(buyer, 'httpx', [url(3)], { siwx: true });
    assert.deepEqual(wireOf(run2.wire, env.apiSiwx), PAID('/api/data/3'));
    const again = await assertPaidOncePerDelivery(buyer, [...run1.wire, ...run2.wire], SIWX_PRICE);
    assert.equal(again.settled.length, 2, 'exactly one more payment once the pass ran out');
  });
});

test('the 402 declares sign-in-with-x the way the official client reads it', async () => {
  const res = await fetch(`${env.apiSiwx}/api/data`);
  assert.equal(res.status, 402);
  const required = decodeB64Json(res.headers.get('payment-required'));
  const siwx = required.extensions['sign-in-with-x'];
  assert.equal(siwx.info.domain, new URL(env.apiSiwx).host);
  assert.equal(siwx.info.uri, `${env.apiSiwx}/api/data`);
  assert.deepEqual(siwx.supportedChains, [{ chainId: env.network, type: 'ed25519' }]);
});

test('Python x402 (requests) with the SIWX extension: the sync client cannot run its async hook, so the call fails before paying', async () => {
  // x402 2.25.0: x402HTTPClientSync.handle_payment_required raises TypeError ("Async hooks are not
  // supported in x402HTTPClientSync") for the extension's async on_payment_required, and the
  // requests adapter turns it into PaymentError. A requests buyer that registers the extension
  // gets an exception on every 402 that declares SIWX, and is charged nothing.
  const buyer = newBuyer('siwx: python requests');
  const run = await pythonBuyer(buyer, 'requests', [`${env.apiSiwx}/api/data/0`], { siwx: true });
  assert.match(run.calls[0].error, /PaymentError: .*Async hooks are not supported/);
  assert.deepEqual(wireOf(run.wire, env.apiSiwx), [['GET', '/api/data/0', 402, '-']]);
  const { settled } = await assertPaidOncePerDelivery(buyer, run.wire, SIWX_PRICE);
  assert.equal(settled.length, 0);
});
