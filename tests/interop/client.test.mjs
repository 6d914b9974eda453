// The published Node client, unchanged: `wrapFetch(fetch, {walletPrivateKey, accessPass})` from
// @dexterai/x402 2.0.0 against Envoy + the filter + the project's test facilitator and Solana RPC
// stand-in. Each scenario makes several calls, then checks, from the facilitator's record and the
// answers, what was paid, which pass each payment produced, and that nothing was charged twice.
//
// Topology and prices: run.py (the harness's plugin config: 5m/1h/24h at 0.05/0.50/2.00 USDC,
// ratePerHour 0.50, Solana devnet).

import { test } from 'node:test';
import assert from 'node:assert/strict';
import {
  PRICE, SECONDS, TIERS_IN_402, decodeB64Json, decodeJwt, dexterClient, env, messageHashOf, newBuyer,
  settlementsOf, upstreamGot,
} from './lib.mjs';

async function call(fetchWithPayment, path, init) {
  const res = await fetchWithPayment(env.api + path, init);
  const text = await res.text();
  let body = null;
  try {
    body = JSON.parse(text);
  } catch {
    // not JSON
  }
  return { status: res.status, headers: res.headers, body, text };
}

/** Every payment the client sent was settled exactly once, for the price of the pass it produced.
 *  Returns one entry per payment: the request that carried it, its settlement and the pass. */
async function paymentsAndPasses(buyer, calls) {
  const payments = calls.filter((c) => c.headers['payment-signature']);
  const settlements = await settlementsOf(buyer.address);
  assert.equal(settlements.length, payments.length,
    `one settlement per payment sent: ${JSON.stringify(settlements.map((s) => s.amount))}`);
  const hashes = new Set(settlements.map((s) => s.messageHash));
  assert.equal(hashes.size, settlements.length, 'no payment was settled twice');
  return payments.map((c) => {
    const sent = decodeB64Json(c.headers['payment-signature']);
    const hash = messageHashOf(c.headers['payment-signature']);
    const matching = settlements.filter((s) => s.messageHash === hash);
    assert.equal(matching.length, 1, `payment ${hash} settled once`);
    const settlement = matching[0];
    assert.equal(settlement.amount, sent.accepted.amount, 'settled the amount the client signed');
    assert.equal(settlement.payTo, env.payTo);
    assert.equal(settlement.asset, env.asset);
    assert.equal(settlement.network, env.network);
    assert.equal(c.status, 200, `purchase ${c.method} ${c.url} answered 200`);
    const receipt = decodeB64Json(c.paymentResponse);
    assert.deepEqual(receipt, { success: true, transaction: settlement.transaction, network: env.network,
      payer: buyer.address });
    const { header, claims } = decodeJwt(c.accessPass);
    assert.deepEqual(header, { alg: 'HS256', typ: 'JWT' });
    assert.equal(claims.payer, buyer.address);
    assert.equal(claims.network, env.network);
    assert.equal(claims.exp - claims.iat, claims.duration);
    // the pass is exactly what was paid for
    assert.equal(PRICE[claims.tier], settlement.amount, `a ${claims.tier} pass costs what was settled`);
    assert.equal(claims.duration, SECONDS[claims.tier]);
    return { call: c, settlement, claims, token: c.accessPass };
  });
}

/** The answer came from the upstream, for `claims`' pass (the filter set the claim headers and
 *  removed the token). */
function assertServedWithPass(answer, claims) {
  assert.equal(answer.status, 200, answer.text.slice(0, 300));
  const got = upstreamGot(answer.body);
  assert.equal(got['x-access-pass-tier'], claims.tier);
  assert.equal(got['x-access-pass-payer'], claims.payer);
  assert.equal(got['x-access-pass-expires'], String(claims.exp));
  assert.equal(got['x-access-pass-network'], env.network);
  assert.equal(got.authorization, undefined, 'the pass itself is not forwarded upstream');
  assert.equal(got['payment-signature'], undefined);
}

function wire(calls) {
  return calls.map((c) => [c.method, c.url.slice(env.api.length), c.status,
    c.headers['payment-signature'] ? 'PAYMENT-SIGNATURE' : c.headers.authorization ? 'Bearer' : '-']);
}

test('no preference: the client buys the shortest tier once and every later call goes through with it', async () => {
  const buyer = newBuyer('client: no preference');
  const client = dexterClient(buyer, {});
  const answers = [];
  for (let i = 0; i < 4; i++) answers.push(await call(client.fetch, `/api/data/${i}`));

  assert.deepEqual(wire(client.calls), [
    ['GET', '/api/data/0', 402, '-'],
    ['POST', '/api/data/0?tier=5m', 200, 'PAYMENT-SIGNATURE'],
    ['GET', '/api/data/1', 200, 'Bearer'],
    ['GET', '/api/data/2', 200, 'Bearer'],
    ['GET', '/api/data/3', 200, 'Bearer'],
  ]);
  const [bought] = await paymentsAndPasses(buyer, client.calls);
  assert.equal(bought.settlement.amount, PRICE['5m']);
  assert.equal(bought.claims.tier, '5m');
  assert.equal(bought.claims.exp - bought.claims.iat, 300);

  // The first call returns the purchase answer as the client got it (the filter answers purchases
  // itself, SPEC §6.6): the pass, not the API's data.
  assert.equal(answers[0].status, 200);
  assert.equal(answers[0].headers.get('access-pass'), bought.token);
  assert.equal(answers[0].body.accessPass.token, bought.token);
  assert.equal(answers[0].body.accessPass.tier, '5m');
  assert.equal(answers[0].body.accessPass.durationSeconds, 300);
  assert.equal(answers[0].body.payer, buyer.address);
  for (const answer of answers.slice(1)) assertServedWithPass(answer, bought.claims);
});

test("preferTier '24h': the client pays the default (5-minute) price, so it gets a 5-minute pass", async () => {
  // SPEC §14: on a 402 with X-ACCESS-PASS-TIERS the client pays the amount of THAT 402 (the
  // unqualified request is priced at the default pass) and then posts `?tier=24h`. The filter binds
  // the pass to the amount paid: 0.05 USDC buys 5 minutes, whatever the query asks for.
  const buyer = newBuyer('client: preferTier 24h');
  const client = dexterClient(buyer, { preferTier: '24h' });
  const answers = [];
  for (let i = 0; i < 3; i++) answers.push(await call(client.fetch, `/api/data/${i}`));

  assert.deepEqual(wire(client.calls), [
    ['GET', '/api/data/0', 402, '-'],
    ['POST', '/api/data/0?tier=24h', 200, 'PAYMENT-SIGNATURE'],
    ['GET', '/api/data/1', 200, 'Bearer'],
    ['GET', '/api/data/2', 200, 'Bearer'],
  ]);
  const [bought] = await paymentsAndPasses(buyer, client.calls);
  assert.equal(bought.settlement.amount, PRICE['5m'], 'paid 0.05 USDC, not the 24h price');
  assert.equal(bought.claims.tier, '5m', 'and got what 0.05 buys: 5 minutes, not 24 hours');
  assert.equal(bought.claims.exp - bought.claims.iat, 300);
  assert.equal(answers[0].body.accessPass.tier, '5m');
  for (const answer of answers.slice(1)) assertServedWithPass(answer, bought.claims);
});

test('preferDuration 7200: the client pays the default price, so it gets a 5-minute pass, not 2 hours', async () => {
  const buyer = newBuyer('client: preferDuration 7200');
  const client = dexterClient(buyer, { preferDuration: 7200 });
  const answers = [];
  for (let i = 0; i < 3; i++) answers.push(await call(client.fetch, `/api/data/${i}`));

  assert.deepEqual(wire(client.calls), [
    ['GET', '/api/data/0', 402, '-'],
    ['POST', '/api/data/0?duration=7200', 200, 'PAYMENT-SIGNATURE'],
    ['GET', '/api/data/1', 200, 'Bearer'],
    ['GET', '/api/data/2', 200, 'Bearer'],
  ]);
  const [bought] = await paymentsAndPasses(buyer, client.calls);
  assert.equal(bought.settlement.amount, PRICE['5m'], 'paid 0.05 USDC (2 hours would be 1.00)');
  assert.equal(bought.claims.tier, '5m');
  assert.equal(bought.claims.exp - bought.claims.iat, 300);
  for (const answer of answers.slice(1)) assertServedWithPass(answer, bought.claims);
});

test('a longer pass with the Node client: ask for the tier in the URL of the first call', async () => {
  // The recipe docs/buyers.md gives: the 402 of `?tier=1h` is priced at 1 hour, the client pays that
  // amount and posts `?tier=1h&tier=5m` (it appends its own choice, the shortest tier); the filter
  // issues the first tier whose price was paid. The pass is cached per host, so later calls to any
  // path go through with it.
  const buyer = newBuyer('client: tier in the first URL');
  const client = dexterClient(buyer, {});
  const answers = [await call(client.fetch, '/api/data?tier=1h')];
  for (let i = 0; i < 3; i++) answers.push(await call(client.fetch, `/api/reports/${i}`));

  assert.deepEqual(wire(client.calls), [
    ['GET', '/api/data?tier=1h', 402, '-'],
    ['POST', '/api/data?tier=1h&tier=5m', 200, 'PAYMENT-SIGNATURE'],
    ['GET', '/api/reports/0', 200, 'Bearer'],
    ['GET', '/api/reports/1', 200, 'Bearer'],
    ['GET', '/api/reports/2', 200, 'Bearer'],
  ]);
  const [bought] = await paymentsAndPasses(buyer, client.calls);
  assert.equal(bought.settlement.amount, PRICE['1h']);
  assert.equal(bought.claims.tier, '1h');
  assert.equal(bought.claims.exp - bought.claims.iat, 3600);
  assert.equal(answers[0].body.accessPass.tier, '1h');
  for (const answer of answers.slice(1)) assertServedWithPass(answer, bought.claims);
});

test('maxSpend below every price: the client falls back to a plain payment per call; each gets the data and a 5-minute pass it does not keep', async () => {
  // SPEC §14: when maxSpend is below the tier's price the client throws internally, catches it and
  // falls back to a plain x402 payment of the original 402 (the default price, 0.05 USDC: maxSpend
  // does not bound that), sent on the original request. A payment naming no pass is a paid request
  // (docs/behaviour.md §15): it buys the default pass and the request itself goes upstream, with the
  // pass in ACCESS-PASS, which the client returns but does not cache: the next call pays again.
  const buyer = newBuyer('client: maxSpend 0.01');
  const client = dexterClient(buyer, { maxSpend: '0.01' });
  const answers = [];
  for (let i = 0; i < 3; i++) answers.push(await call(client.fetch, `/api/data/${i}`));

  assert.deepEqual(wire(client.calls), [
    ['GET', '/api/data/0', 402, '-'],
    ['GET', '/api/data/0', 200, 'PAYMENT-SIGNATURE'],
    ['GET', '/api/data/1', 402, '-'],
    ['GET', '/api/data/1', 200, 'PAYMENT-SIGNATURE'],
    ['GET', '/api/data/2', 402, '-'],
    ['GET', '/api/data/2', 200, 'PAYMENT-SIGNATURE'],
  ]);
  const bought = await paymentsAndPasses(buyer, client.calls);
  assert.equal(bought.length, 3, 'three calls, three distinct payments');
  for (const [i, b] of bought.entries()) {
    assert.equal(b.settlement.amount, PRICE['5m']);
    assert.equal(b.claims.tier, '5m');
    assert.equal(b.claims.exp - b.claims.iat, 300);
    // what the buyer got back for each payment: the data it asked for, with the 5-minute pass it
    // paid for (the upstream saw the pass's claims, never the payment)
    assert.equal(answers[i].body.upstream, 'demo', 'a paid request is forwarded upstream');
    assert.equal(answers[i].body.path, `/api/data/${i}`);
    const got = upstreamGot(answers[i].body);
    assert.equal(got['x-access-pass-tier'], '5m');
    assert.equal(got['x-access-pass-payer'], buyer.address);
    assert.equal(got['payment-signature'], undefined);
  }
  // (Passes are deterministic: payments made within the same second get byte-identical passes, each
  // one the 5 minutes from its own purchase: the buyer pays for overlapping windows.)

  // Each of those passes is real: a buyer who keeps one gets the API with it.
  const used = await call(fetch, '/api/data/with-kept-pass', { headers: { Authorization: `Bearer ${bought[2].token}` } });
  assertServedWithPass(used, bought[2].claims);
});

test('maxSpend with maxAmountAtomic: the fallback payment is refused by the client itself and nothing is charged', async () => {
  // What a buyer who really wants a cap sets: maxAmountAtomic bounds the plain payment too.
  const buyer = newBuyer('client: maxSpend + maxAmountAtomic');
  const client = dexterClient(buyer, { maxSpend: '0.01' }, { maxAmountAtomic: '10000' });
  await assert.rejects(client.fetch(`${env.api}/api/data`), (err) => err.code === 'amount_exceeds_max');
  assert.deepEqual(wire(client.calls), [['GET', '/api/data', 402, '-']]);
  assert.deepEqual(await settlementsOf(buyer.address), []);
});

test('the 402 the client reads: default price, devnet USDC, the tiers header', async () => {
  const res = await fetch(`${env.api}/api/data`);
  assert.equal(res.status, 402);
  const required = decodeB64Json(res.headers.get('payment-required'));
  assert.equal(required.x402Version, 2);
  assert.equal(required.accepts.length, 1);
  const [accept] = required.accepts;
  assert.equal(accept.scheme, 'exact');
  assert.equal(accept.network, env.network);
  assert.equal(accept.asset, env.asset);
  assert.equal(accept.payTo, env.payTo);
  assert.equal(accept.amount, PRICE['5m']);
  assert.equal(accept.extra.feePayer, env.feePayer);
  assert.equal(accept.extra.decimals, 6);
  const info = decodeB64Json(res.headers.get('x-access-pass-tiers'));
  assert.deepEqual(info.tiers, TIERS_IN_402);
  assert.equal(info.ratePerHour, '0.50');
});
