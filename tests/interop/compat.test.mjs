// Token compatibility both ways with the Express reference middleware, `x402AccessPass(...)` from
// @dexterai/x402 2.0.0, run here under Node with the filter's HS256 secret and the same test
// facilitator. Passes are minted by real purchases made with the published client.

import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { once } from 'node:events';
import { createHmac } from 'node:crypto';
import express from 'express';
import { x402AccessPass } from '@dexterai/x402/server';
import { PRICE, decodeJwt, dexterClient, env, newBuyer, settlementsOf, upstreamGot } from './lib.mjs';

const CLAIM_ORDER = ['sub', 'tier', 'duration', 'iat', 'exp', 'payer', 'network', 'iss'];
const OTHER_SECRET = 'another-sellers-secret-0123456789abcdef0123';

async function startExpress(secret) {
  const app = express();
  app.use('/api', x402AccessPass({
    payTo: env.payTo,
    network: env.network,
    asset: { address: env.asset, decimals: 6 },
    facilitatorUrl: env.facilitator,
    tiers: { '5m': '0.05', '1h': '0.50', '24h': '2.00' },
    ratePerHour: '0.50',
    secret,
  }), (req, res) => res.json({ served: 'express', accessPass: req.accessPass }));
  const server = app.listen(0, '127.0.0.1');
  await once(server, 'listening');
  return { server, url: `http://127.0.0.1:${server.address().port}` };
}

let reference;
let otherSeller;
before(async () => {
  reference = await startExpress(env.secret);
  otherSeller = await startExpress(OTHER_SECRET);
});
after(async () => {
  for (const s of [reference, otherSeller]) {
    if (!s) continue;
    s.server.closeAllConnections();
    await new Promise((resolve) => s.server.close(resolve));
  }
});

function hs256Valid(token, secret) {
  const [h, p, sig] = token.split('.');
  return createHmac('sha256', secret).update(`${h}.${p}`).digest('base64url') === sig;
}

const bearer = (token) => ({ headers: { Authorization: `Bearer ${token}` } });

/** A plain x402 purchase with the published client: GET <url> → 402 priced for that URL → the same
 *  GET with PAYMENT-SIGNATURE → the pass. */
async function buyPlain(buyer, url) {
  const client = dexterClient(buyer, undefined);
  const res = await client.fetch(url);
  const body = await res.json();
  assert.equal(res.status, 200, JSON.stringify(body));
  const token = res.headers.get('access-pass');
  assert.ok(token, 'ACCESS-PASS header');
  assert.equal(body.accessPass.token, token);
  return { token, body, calls: client.calls };
}

test('a pass minted by the Express reference (same secret) is accepted by the filter', async () => {
  const buyer = newBuyer('compat: express-minted 1h');
  const { token, body } = await buyPlain(buyer, `${reference.url}/api/data?tier=1h`);
  assert.equal(body.accessPass.tier, '1h');
  const settled = await settlementsOf(buyer.address);
  assert.deepEqual(settled.map((s) => s.amount), [PRICE['1h']], 'the reference settled 0.50 USDC');

  const { header, claims } = decodeJwt(token);
  assert.deepEqual(header, { alg: 'HS256', typ: 'JWT' });
  assert.deepEqual(Object.keys(claims), CLAIM_ORDER);
  assert.ok(hs256Valid(token, env.secret));

  const res = await fetch(`${env.api}/api/data/from-express`, bearer(token));
  const echo = await res.json();
  assert.equal(res.status, 200, JSON.stringify(echo));
  const got = upstreamGot(echo);
  assert.equal(got['x-access-pass-tier'], '1h');
  assert.equal(got['x-access-pass-payer'], buyer.address);
  assert.equal(got['x-access-pass-expires'], String(claims.exp));
  assert.equal(got.authorization, undefined);
});

test('passes minted by the filter (a tier and a custom duration) are accepted by the Express reference', async () => {
  const buyer = newBuyer('compat: filter-minted');
  const hour = await buyPlain(buyer, `${env.api}/api/data?tier=1h`);
  const custom = await buyPlain(buyer, `${env.api}/api/data?duration=5400`);
  assert.deepEqual((await settlementsOf(buyer.address)).map((s) => s.amount).sort(),
    [PRICE['1h'], '750000'].sort(), '0.50 for the hour, 0.75 for 90 minutes at 0.50/h');

  for (const [pass, tier, seconds] of [[hour, '1h', 3600], [custom, 'custom', 5400]]) {
    const { header, claims } = decodeJwt(pass.token);
    assert.deepEqual(header, { alg: 'HS256', typ: 'JWT' }, 'the same header bytes as the reference');
    assert.deepEqual(Object.keys(claims), CLAIM_ORDER, 'the same claims, in the same order');
    assert.equal(claims.tier, tier);
    assert.equal(claims.exp - claims.iat, seconds);

    const res = await fetch(`${reference.url}/api/data`, bearer(pass.token));
    const served = await res.json();
    assert.equal(res.status, 200, JSON.stringify(served));
    assert.equal(served.served, 'express');
    assert.deepEqual(served.accessPass, {
      tier,
      duration: seconds,
      expiresAt: new Date(claims.exp * 1000).toISOString(),
      payer: buyer.address,
      network: env.network,
    });
  }
});

test("another secret's passes are refused both ways (402 challenge)", async () => {
  const buyer = newBuyer('compat: other secret');
  const foreign = await buyPlain(buyer, `${otherSeller.url}/api/data`);
  const atFilter = await fetch(`${env.api}/api/data`, bearer(foreign.token));
  assert.equal(atFilter.status, 402);
  assert.ok(atFilter.headers.get('payment-required'));

  // (named: a payment naming no pass is a paid request, answered by the upstream — docs/behaviour.md §15)
  const ours = await buyPlain(buyer, `${env.api}/api/data?tier=5m`);
  const atOther = await fetch(`${otherSeller.url}/api/data`, bearer(ours.token));
  assert.equal(atOther.status, 402);
  assert.ok(atOther.headers.get('payment-required'));
  assert.equal((await settlementsOf(buyer.address)).length, 2);
});

test('the same client and query against each: the reference sells 1 hour for the 5-minute price, the filter does not', async () => {
  // wrapFetch with preferTier '1h' pays the default 402 (0.05 USDC) and posts ?tier=1h (SPEC §14).
  // The reference issues the tier the query asks for; the filter issues what the amount paid buys.
  const buyerA = newBuyer('compat: preferTier 1h at the reference');
  const atReference = dexterClient(buyerA, { preferTier: '1h' });
  const refAnswer = await atReference.fetch(`${reference.url}/api/data`);
  assert.equal(refAnswer.status, 200);
  const refPass = decodeJwt(refAnswer.headers.get('access-pass')).claims;
  assert.deepEqual((await settlementsOf(buyerA.address)).map((s) => s.amount), [PRICE['5m']]);
  assert.equal(refPass.tier, '1h', 'the reference: 1 hour for 0.05 USDC');
  assert.equal(refPass.exp - refPass.iat, 3600);

  const buyerB = newBuyer('compat: preferTier 1h at the filter');
  const atFilter = dexterClient(buyerB, { preferTier: '1h' });
  const filterAnswer = await atFilter.fetch(`${env.api}/api/data`);
  assert.equal(filterAnswer.status, 200);
  const filterPass = decodeJwt(filterAnswer.headers.get('access-pass')).claims;
  assert.deepEqual((await settlementsOf(buyerB.address)).map((s) => s.amount), [PRICE['5m']]);
  assert.equal(filterPass.tier, '5m', 'the filter: 0.05 USDC buys 5 minutes');
  assert.equal(filterPass.exp - filterPass.iat, 300);
});
