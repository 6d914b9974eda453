// The official Python x402 buyer (`x402` 2.25.0 from PyPI, python/requirements.txt), unchanged, in
// both of its HTTP integrations: httpx (`x402_httpx_transport` around an async `x402Client`) and
// requests (`x402HTTPAdapter` with an `x402ClientSync`). python/buyer.py sets each up as the
// package's README does and reports what went over the wire; these tests check it against the
// facilitator's ledger. Envoy: the harness's plugin config (5m / 1h / 24h at 0.05 / 0.50 / 2.00).

import { test } from 'node:test';
import assert from 'node:assert/strict';
import {
  PRICE, assertPaidOncePerDelivery, env, newBuyer, pythonBuyer, upstreamGot, wireOf,
} from './lib.mjs';

const PATHS = ['/api/data/0', '/api/data/1?page=1'];

async function twoCalls(client, label) {
  const buyer = newBuyer(`python ${client}: ${label}`);
  const result = await pythonBuyer(buyer, client, PATHS.map((p) => env.api + p));
  assert.deepEqual(wireOf(result.wire, env.api), PATHS.map((p) => [
    ['GET', p, 402, '-'],
    ['GET', p, 200, 'PAYMENT-SIGNATURE'],
  ]).flat());
  for (const c of result.calls) assert.equal(c.error, undefined, c.error);
  return { buyer, result };
}

for (const client of ['httpx', 'requests']) {
  test(`Python x402 (${client}): each call pays exactly once and returns the upstream's data`, async () => {
    const { buyer, result } = await twoCalls(client, 'pay and serve');
    const { settled, unsettled } = await assertPaidOncePerDelivery(buyer, result.wire);
    assert.equal(settled.length, PATHS.length, 'one settlement per paid call');
    assert.equal(unsettled.length, 0);
    for (const [i, s] of settled.entries()) {
      assert.equal(s.settlement.amount, PRICE['5m']);
      assert.equal(s.delivered, 'data');
      const answer = result.calls[i];
      assert.equal(answer.status, 200);
      assert.equal(answer.accessPass, s.token);
      assert.equal(answer.body.path, PATHS[i], 'forwarded with its path and query');
      const got = upstreamGot(answer.body);
      assert.equal(got['x-access-pass-payer'], buyer.address);
      assert.equal(got['payment-signature'], undefined);
      const receipt = JSON.parse(Buffer.from(answer.paymentResponse, 'base64').toString());
      assert.deepEqual(receipt, { success: true, transaction: s.settlement.transaction, network: env.network,
        payer: buyer.address });
    }
  });
}
