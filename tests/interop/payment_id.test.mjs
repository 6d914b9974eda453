// payment-identifier (docs/behaviour.md §17.5) with the official x402 v2 buyer for Node and the
// official helper: `@x402/fetch` + `@x402/svm` 2.27.0, and `appendPaymentIdentifierToExtensions`
// of `@x402/extensions/payment-identifier` 2.27.0 in a client extension registered on the
// `x402Client`. The package ships no ready-made client extension for it: its README and types show
// the helper adding the id to the `extensions` of a payment built from the server's 402, which is
// what the client's `enrichPaymentPayload` hook receives (the 402's declared extensions, merged in
// by `x402Client.createPaymentPayload`). The helper only adds the id when the 402 declares the
// extension, so the id reaching the filter also shows that the filter's declaration is read as the
// official server's.
//
// A buyer that keeps one id for one request, and sends a new payment for it (a retry after a lost
// answer), is served the first payment's outcome and charged once; the same id for another
// request is refused with 409 payment_identifier_conflict. Every test reads the money from the
// test facilitator's own ledger.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { decodePaymentResponseHeader } from '@x402/fetch';
import {
  PAYMENT_IDENTIFIER, appendPaymentIdentifierToExtensions, generatePaymentId, isValidPaymentId,
} from '@x402/extensions/payment-identifier';
import {
  PRICE, assertPaidOncePerDelivery, callApi, clearFaults, decodeB64Json, env, facilitatorState, faultsInForce,
  messageHashOf, newBuyer, officialClient, setFault, settlementsOf, upstreamGot, upstreamRequests, waitFor, wireOf,
} from './lib.mjs';

/** The client extension a buyer registers to name its payments: every payment this client makes
 *  carries `id` (appendPaymentIdentifierToExtensions leaves the extensions alone when the 402 did
 *  not declare payment-identifier). */
function paymentIdentifier(id) {
  return {
    key: PAYMENT_IDENTIFIER,
    enrichPaymentPayload: async (paymentPayload) => {
      if (paymentPayload.extensions) appendPaymentIdentifierToExtensions(paymentPayload.extensions, id);
      return paymentPayload;
    },
  };
}

/** The payment-identifier extension of the payment a recorded call carried. */
function sentIdentifier(call) {
  return decodeB64Json(call.headers['payment-signature']).extensions?.[PAYMENT_IDENTIFIER];
}

function paidCalls(calls) {
  return calls.filter((c) => c.headers['payment-signature']);
}

test('@x402/fetch with a payment id: a new payment under the same id for the same request gets the first one\'s pass and receipt, and is never settled', async () => {
  const buyer = newBuyer('payment-id: same request twice');
  const id = generatePaymentId();
  assert.ok(isValidPaymentId(id), id);
  const client = await officialClient(buyer, { extensions: [paymentIdentifier(id)] });
  const path = `/api/reports/${buyer.address}?day=2026-12-07`;

  const first = await callApi(client.fetch, env.api, path);
  // The same buyer asks again (its answer lost, say): the client has no pass, so it meets the 402
  // again and signs a NEW payment, still named `id`.
  const second = await callApi(client.fetch, env.api, path);

  assert.deepEqual(wireOf(client.calls, env.api), [
    ['GET', path, 402, '-'],
    ['GET', path, 200, 'PAYMENT-SIGNATURE'],
    ['GET', path, 402, '-'],
    ['GET', path, 200, 'PAYMENT-SIGNATURE'],
  ]);
  const [firstPaid, secondPaid] = paidCalls(client.calls);
  for (const c of [firstPaid, secondPaid]) {
    assert.deepEqual(sentIdentifier(c).info, { required: false, id }, 'the id where the helper puts it');
  }
  const firstHash = messageHashOf(firstPaid.headers['payment-signature']);
  const secondHash = messageHashOf(secondPaid.headers['payment-signature']);
  assert.notEqual(firstHash, secondHash, 'two different payments (two transactions)');

  // Money: the first payment settled once and delivered the data; the second was never settled.
  const { settled } = await assertPaidOncePerDelivery(buyer, client.calls.slice(0, 2));
  assert.equal(settled.length, 1);
  assert.equal(settled[0].hash, firstHash);
  assert.equal(settled[0].settlement.amount, PRICE['5m'], 'the default pass (§4)');
  assert.equal(settled[0].delivered, 'data');
  const settlements = await settlementsOf(buyer.address);
  assert.deepEqual(settlements.map((s) => s.messageHash), [firstHash], 'exactly one settlement for this buyer');
  const state = await facilitatorState();
  assert.equal(state.settlements.filter((s) => s.messageHash === secondHash).length, 0,
    'the second payment\'s transaction was never settled, for anyone');

  // Both answers are the upstream's data, the second with the first payment's outcome.
  for (const answer of [first, second]) {
    assert.equal(answer.status, 200);
    assert.equal(answer.body.path, path);
    const got = upstreamGot(answer.body);
    assert.equal(got['x-access-pass-payer'], buyer.address);
    assert.equal(got['payment-signature'], undefined);
  }
  assert.equal(second.headers.get('access-pass'), first.headers.get('access-pass'), 'the same pass');
  assert.equal(second.headers.get('payment-response'), first.headers.get('payment-response'), 'the same receipt');
  assert.deepEqual(decodePaymentResponseHeader(second.headers.get('payment-response')), {
    success: true, transaction: settlements[0].transaction, network: env.network, payer: buyer.address,
  });
  const forwarded = (await upstreamRequests()).filter((r) => r.path === path);
  assert.equal(forwarded.length, 2, 'both paid requests were forwarded upstream (never the 402 ones)');
});

test('@x402/fetch with a payment id: the same id on another path or method reaches the client as 409 payment_identifier_conflict, and nothing more is settled', async () => {
  const buyer = newBuyer('payment-id: another request');
  const id = generatePaymentId('order_');
  const client = await officialClient(buyer, { extensions: [paymentIdentifier(id)] });
  const path = `/api/orders/${buyer.address}?n=1`;
  const otherPath = `/api/orders/${buyer.address}?n=2`;

  const first = await callApi(client.fetch, env.api, path);
  assert.equal(first.status, 200);
  // @x402/fetch hands any answer to a paid request back as it is: a 409 is not retried.
  const otherQuery = await callApi(client.fetch, env.api, otherPath);
  const otherMethod = await callApi(client.fetch, env.api, path, {
    method: 'POST', headers: { 'content-type': 'application/json' }, body: '{"again":true}',
  });
  for (const answer of [otherQuery, otherMethod]) {
    assert.equal(answer.status, 409, answer.text);
    assert.equal(answer.body.reason, 'payment_identifier_conflict', answer.text);
    assert.equal(answer.headers.get('access-pass'), null);
    assert.equal(answer.headers.get('payment-response'), null);
  }
  assert.deepEqual(wireOf(client.calls, env.api), [
    ['GET', path, 402, '-'],
    ['GET', path, 200, 'PAYMENT-SIGNATURE'],
    ['GET', otherPath, 402, '-'],
    ['GET', otherPath, 409, 'PAYMENT-SIGNATURE'],
    ['POST', path, 402, '-'],
    ['POST', path, 409, 'PAYMENT-SIGNATURE'],
  ]);
  const paid = paidCalls(client.calls);
  for (const c of paid) assert.equal(sentIdentifier(c).info.id, id);

  // Money: one settlement, for the first call's payment; the two refused payments got nothing and
  // cost nothing.
  const { settled, unsettled } = await assertPaidOncePerDelivery(buyer, client.calls);
  assert.equal(settled.length, 1);
  assert.equal(settled[0].hash, messageHashOf(paid[0].headers['payment-signature']));
  assert.equal(settled[0].delivered, 'data');
  assert.equal(unsettled.length, 2);
  assert.equal((await settlementsOf(buyer.address)).length, 1);
  const received = (await upstreamRequests()).filter((r) => r.path === path || r.path === otherPath);
  assert.deepEqual(received.map((r) => [r.method, r.path]), [['GET', path]], 'the refused requests never went upstream');
});

test('@x402/fetch with a payment id: while the first payment is in flight another under the same id gets 409 payment_in_progress with Retry-After, then the first one\'s outcome', async () => {
  const buyer = newBuyer('payment-id: in flight');
  const id = generatePaymentId();
  const client = await officialClient(buyer, { extensions: [paymentIdentifier(id)] });
  const path = `/api/reports/${buyer.address}?day=2026-12-09`;
  // The first payment's /verify answers after 1.5 s (the callout allows 2 s): it is in flight
  // from the moment the facilitator took the fault until then.
  await setFault({ endpoint: 'verify', mode: 'slow', delayMs: 1500, count: 1 });
  let first;
  let busy;
  try {
    const firstCall = callApi(client.fetch, env.api, path);
    await waitFor(async () => Object.keys(await faultsInForce()).length === 0, 10000, 'the first payment at /verify');
    busy = await callApi(client.fetch, env.api, path);
    first = await firstCall;
  } finally {
    await clearFaults();
  }
  assert.equal(busy.status, 409, busy.text);
  assert.equal(busy.body.reason, 'payment_in_progress', busy.text);
  assert.ok(Number(busy.headers.get('retry-after')) >= 1, 'Retry-After');
  assert.equal(busy.headers.get('access-pass'), null);
  assert.equal(first.status, 200, first.text);
  // The buyer tries again once the first is done: a third payment, same id, the first's outcome.
  const again = await callApi(client.fetch, env.api, path);
  assert.equal(again.status, 200, again.text);
  assert.equal(again.headers.get('access-pass'), first.headers.get('access-pass'));
  assert.equal(again.headers.get('payment-response'), first.headers.get('payment-response'));
  assert.equal(again.body.path, path);

  const paid = paidCalls(client.calls);
  assert.equal(paid.length, 3, 'three payments were signed');
  assert.equal(new Set(paid.map((c) => messageHashOf(c.headers['payment-signature']))).size, 3);
  for (const c of paid) assert.equal(sentIdentifier(c).info.id, id);
  // Money, over every call but the last (the third payment, answered with the first's pass):
  // the first payment settled once and delivered the data, the one refused in flight got nothing.
  const { settled, unsettled } = await assertPaidOncePerDelivery(buyer, client.calls.slice(0, -2));
  assert.equal(settled.length, 1);
  assert.deepEqual(unsettled.map((c) => c.status), [409]);
  assert.equal(settled[0].delivered, 'data');
  assert.deepEqual((await settlementsOf(buyer.address)).map((s) => s.messageHash), [settled[0].hash],
    'one settlement: the in-flight and the later payment were never settled');
});

test('@x402/fetch without the extension: its payments carry no id, and each call to the same path settles once', async () => {
  const buyer = newBuyer('payment-id: none');
  const client = await officialClient(buyer);
  const path = `/api/reports/${buyer.address}?day=2026-12-08`;
  const answers = [await callApi(client.fetch, env.api, path), await callApi(client.fetch, env.api, path)];
  for (const c of paidCalls(client.calls)) {
    // The client echoes the 402's declaration (x402Client merges the declared extensions into every
    // payment) but names nothing.
    assert.equal(sentIdentifier(c)?.info?.id, undefined);
  }
  const { settled } = await assertPaidOncePerDelivery(buyer, client.calls);
  assert.equal(settled.length, 2, 'two payments, two settlements');
  assert.ok(settled.every((s) => s.delivered === 'data'));
  // Each answer's receipt is its own settlement. (The two passes may be byte-identical: same
  // claims, issued within the same second.)
  assert.deepEqual(answers.map((a) => decodePaymentResponseHeader(a.headers.get('payment-response')).transaction),
    settled.map((s) => s.settlement.transaction));
  assert.notEqual(settled[0].settlement.transaction, settled[1].settlement.transaction);
  assert.equal((await settlementsOf(buyer.address)).length, 2);
});
