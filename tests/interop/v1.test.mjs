// Legacy x402 v1 buyers (docs/behaviour.md §20), the published packages unchanged: `x402-fetch` 1.2.0
// (`wrapFetchWithPayment`) and `x402-axios` 0.7.2 (`withPaymentInterceptor`), each with its own
// `x402` v1 package, against Envoy + the filter + the project's test facilitator and its Solana
// RPC stand-in (the only thing pointed elsewhere: `svmConfig.rpcUrl`). They read the 402's JSON
// body, pay with `X-PAYMENT` and expect the resource. Each paid call is checked against the
// facilitator's own record: one settlement per payment sent, in v1, for the default pass's price,
// and the data delivered for it.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import axios from 'axios';
import { createSigner as createFetchSigner, decodeXPaymentResponse, wrapFetchWithPayment } from 'x402-fetch';
import { createSigner as createAxiosSigner, withPaymentInterceptor } from 'x402-axios';
import { PRICE, SECONDS, decodeB64Json, decodeJwt, env, newBuyer, settlementsOf, upstreamGot } from './lib.mjs';

const V1_NETWORK = 'solana-devnet'; // the v1 name of env.network
const SVM_CONFIG = { svmConfig: { rpcUrl: env.rpc } };

/** A fetch that records the X-PAYMENT each request carried and what came back. */
function recording() {
  const calls = [];
  const fetchImpl = async (input, init = {}) => {
    const headers = Object.fromEntries(Object.entries(init.headers || {}).map(([k, v]) => [k.toLowerCase(), v]));
    const response = await fetch(input, init);
    calls.push({ url: String(input), xPayment: headers['x-payment'], status: response.status });
    return response;
  };
  return { fetchImpl, calls };
}

/** The settlement of one v1 payment: settled once, in v1, for the 5-minute price, and the answer
 *  carries its receipt (read with the package's own decoder) and a pass for what was paid. */
async function assertPaidOnce(buyer, xPayment, xPaymentResponse, accessPass) {
  const sent = decodeB64Json(xPayment);
  assert.equal(sent.x402Version, 1);
  assert.equal(sent.scheme, 'exact');
  assert.equal(sent.network, V1_NETWORK);
  const receipt = decodeXPaymentResponse(xPaymentResponse);
  const settlements = (await settlementsOf(buyer.address)).filter((s) => s.transaction === receipt.transaction);
  assert.equal(settlements.length, 1, 'this payment was settled exactly once');
  const [settlement] = settlements;
  assert.equal(settlement.x402Version, 1, 'settled with x402Version 1 bodies');
  assert.equal(settlement.amount, PRICE['5m'], 'a request naming no pass pays the default pass');
  assert.equal(settlement.payTo, env.payTo);
  assert.deepEqual(receipt, { success: true, transaction: settlement.transaction, network: V1_NETWORK,
    payer: buyer.address });
  const { claims } = decodeJwt(accessPass);
  assert.equal(claims.payer, buyer.address);
  assert.equal(claims.tier, '5m');
  assert.equal(claims.duration, SECONDS['5m']);
  return settlement;
}

test('x402-fetch 1.2.0: every paid call gets the data, each settled once in v1', async () => {
  const buyer = newBuyer('x402-fetch v1');
  const signer = await createFetchSigner(V1_NETWORK, buyer.privateKey);
  assert.equal(signer.address, buyer.address);
  const { fetchImpl, calls } = recording();
  const fetchWithPayment = wrapFetchWithPayment(fetchImpl, signer, undefined, undefined, SVM_CONFIG);

  const paths = ['/api/data?city=Lisbon', '/api/data?city=Porto'];
  for (const p of paths) {
    const res = await fetchWithPayment(env.api + p);
    const body = await res.json();
    assert.equal(res.status, 200, JSON.stringify(body));
    assert.equal(body.path, p, 'the upstream answered this request');
    const got = upstreamGot(body);
    assert.equal(got['x-payment'], undefined, 'the upstream never sees X-PAYMENT');
    assert.equal(got['x-access-pass-payer'], buyer.address);
    assert.equal(res.headers.get('payment-response'), null, 'a v1 answer carries X-PAYMENT-RESPONSE only');
    const paid = calls.filter((c) => c.url === env.api + p && c.xPayment);
    assert.equal(paid.length, 1, 'one paid request per call');
    await assertPaidOnce(buyer, paid[0].xPayment, res.headers.get('x-payment-response'), res.headers.get('access-pass'));
  }
  // Each call: the 402 (read from the body), then the paid request. Nothing else was charged.
  assert.deepEqual(calls.map((c) => c.status), [402, 200, 402, 200]);
  assert.equal((await settlementsOf(buyer.address)).length, paths.length);
});

test('x402-fetch 1.2.0: a paid POST reaches the upstream with its body', async () => {
  const buyer = newBuyer('x402-fetch v1 post');
  const signer = await createFetchSigner(V1_NETWORK, buyer.privateKey);
  const { fetchImpl, calls } = recording();
  const fetchWithPayment = wrapFetchWithPayment(fetchImpl, signer, undefined, undefined, SVM_CONFIG);
  const res = await fetchWithPayment(`${env.api}/api/orders`, {
    method: 'POST', headers: { 'Content-Type': 'application/json' }, body: JSON.stringify({ item: 'v1' }),
  });
  const body = await res.json();
  assert.equal(res.status, 200, JSON.stringify(body));
  assert.equal(body.method, 'POST');
  assert.equal(body.path, '/api/orders');
  const paid = calls.filter((c) => c.xPayment);
  assert.equal(paid.length, 1);
  await assertPaidOnce(buyer, paid[0].xPayment, res.headers.get('x-payment-response'), res.headers.get('access-pass'));
});

test('x402-axios 0.7.2: the interceptor pays and the buyer gets the data, settled once in v1', async () => {
  const buyer = newBuyer('x402-axios v1');
  const signer = await createAxiosSigner(V1_NETWORK, buyer.privateKey);
  assert.equal(signer.address, buyer.address);
  const client = withPaymentInterceptor(axios.create({ baseURL: env.api }), signer, undefined, SVM_CONFIG);
  const sent = [];
  client.interceptors.request.use((config) => {
    if (config.headers?.['X-PAYMENT']) sent.push(config.headers['X-PAYMENT']);
    return config;
  });
  const res = await client.get('/api/data?city=Faro');
  assert.equal(res.status, 200);
  assert.equal(res.data.path, '/api/data?city=Faro');
  assert.equal(upstreamGot(res.data)['x-payment'], undefined);
  assert.equal(sent.length, 1, 'one payment sent');
  await assertPaidOnce(buyer, sent[0], res.headers['x-payment-response'], res.headers['access-pass']);
  assert.equal((await settlementsOf(buyer.address)).length, 1);
});
