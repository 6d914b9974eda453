// The same passes sold on Base (docs/behaviour.md §21): real EVM buyers against Envoy "evm" (run.py:
// `networks` = Solana devnet then Base Sepolia, siwx.origins = its own origin, tiers 1m / 1h at 0.01 /
// 0.50 USDC) and its own test facilitator, which serves both networks.
//
// - @x402/fetch + @x402/evm 2.27.0 (ExactEvmScheme, EIP-3009 signed with EIP-712) with a viem local
//   account (a fixed private key derived from the test's label) pays on Base Sepolia and gets the data;
//   the facilitator's own ledger shows exactly one settlement for that buyer.
// - A Solana buyer (@x402/svm) and an EVM buyer, side by side on the same Envoy.
// - With the Sign-In-With-X client extension and the same viem account (EIP-191), the buyer comes
//   back within its pass without paying again.
// - @dexterai/x402 2.0.0's client with an EVM key (wrapFetch `evmPrivateKey`) buys a pass and uses it.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { privateKeyToAccount } from 'viem/accounts';
import { wrapFetchWithPayment, x402Client, decodePaymentResponseHeader } from '@x402/fetch';
import { ExactEvmScheme } from '@x402/evm/exact/client';
import { createSIWxClientExtension } from '@x402/extensions/sign-in-with-x';
import { wrapFetch } from '@dexterai/x402/client';
import {
  SIWX_PRICE, callApi, decodeJwt, env, newBuyer, officialClient, recordingFetch, upstreamGot, wireOf,
} from './lib.mjs';

const BASE_SEPOLIA = 'eip155:84532';
const RUN_ID = process.env.X402_INTEROP_RUN || 'local';

/** A viem local account whose private key derives from `label` (and the run): fixed per test. */
function evmBuyer(label) {
  const key = `0x${createHash('sha256').update(`x402-access-pass interop EVM buyer ${RUN_ID}: ${label}`).digest('hex')}`;
  return { label, privateKey: key, account: privateKeyToAccount(key) };
}

/** The official buyer for Base: @x402/fetch with @x402/evm's exact scheme for every eip155 network. */
function evmClient(buyer, { siwx = false } = {}) {
  const client = new x402Client().register('eip155:*', new ExactEvmScheme(buyer.account));
  if (siwx) client.registerExtension(createSIWxClientExtension({ signers: [buyer.account] }));
  const rec = recordingFetch();
  return { fetch: wrapFetchWithPayment(rec.fetch, client), calls: rec.calls };
}

/** The settlements the EVM Envoy's own facilitator recorded for `address` (any letter case). */
async function settlementsOf(address) {
  const res = await fetch(`${env.controlEvm}/state`, { signal: AbortSignal.timeout(5000) });
  assert.ok(res.ok, `facilitator /state -> ${res.status}`);
  const state = await res.json();
  return state.settlements.filter((s) => s.payer.toLowerCase() === address.toLowerCase());
}

test('@x402/fetch + @x402/evm with a viem account pays on Base Sepolia and gets the data, settled once', async () => {
  const buyer = evmBuyer('official evm: pay and serve');
  const client = evmClient(buyer);
  const answer = await callApi(client.fetch, env.apiEvm, '/api/data/evm');
  assert.equal(answer.status, 200, (answer.text ?? '').slice(0, 300));
  assert.deepEqual(wireOf(client.calls, env.apiEvm), [
    ['GET', '/api/data/evm', 402, '-'],
    ['GET', '/api/data/evm', 200, 'PAYMENT-SIGNATURE'],
  ]);
  // The upstream's data, with the claims of a pass bought on Base Sepolia by this account.
  const got = upstreamGot(answer.body);
  assert.equal(got['x-access-pass-network'], BASE_SEPOLIA);
  assert.equal(got['x-access-pass-payer'].toLowerCase(), buyer.account.address.toLowerCase());
  assert.equal(got['x-access-pass-tier'], '1m');
  assert.equal(got['payment-signature'], undefined, 'the upstream never sees the payment');
  const { claims } = decodeJwt(answer.headers.get('access-pass'));
  assert.equal(claims.network, BASE_SEPOLIA);
  assert.equal(claims.payer, buyer.account.address, 'the payer as its authorization names it (EIP-55)');
  const receipt = decodePaymentResponseHeader(answer.headers.get('payment-response'));
  assert.equal(receipt.success, true);
  assert.equal(receipt.network, BASE_SEPOLIA);
  assert.match(receipt.transaction, /^0x[0-9a-f]{64}$/);
  // The facilitator's own ledger: exactly one settlement, of the default pass's price, to the seller.
  const settled = await settlementsOf(buyer.account.address);
  assert.equal(settled.length, 1, JSON.stringify(settled));
  assert.equal(settled[0].amount, SIWX_PRICE['1m']);
  assert.equal(settled[0].network, BASE_SEPOLIA);
  assert.equal(settled[0].transaction, receipt.transaction);
});

test('a Solana buyer and an EVM buyer are served side by side by one two-network seller', async () => {
  const solana = newBuyer('mixed: solana buyer');
  const solanaClient = await officialClient(solana, { rpcUrl: env.rpcEvm });
  const evm = evmBuyer('mixed: evm buyer');
  const evmFetch = evmClient(evm);
  const [a, b] = await Promise.all([
    callApi(solanaClient.fetch, env.apiEvm, '/api/data/mixed-solana'),
    callApi(evmFetch.fetch, env.apiEvm, '/api/data/mixed-evm'),
  ]);
  assert.equal(a.status, 200, (a.text ?? '').slice(0, 300));
  assert.equal(b.status, 200, (b.text ?? '').slice(0, 300));
  assert.equal(upstreamGot(a.body)['x-access-pass-network'], env.network);
  assert.equal(upstreamGot(b.body)['x-access-pass-network'], BASE_SEPOLIA);
  const [paidSolana, paidEvm] = await Promise.all([settlementsOf(solana.address), settlementsOf(evm.account.address)]);
  assert.deepEqual(paidSolana.map((s) => [s.network, s.amount]), [[env.network, SIWX_PRICE['1m']]]);
  assert.deepEqual(paidEvm.map((s) => [s.network, s.amount]), [[BASE_SEPOLIA, SIWX_PRICE['1m']]]);
});

test('Sign-In-With-X with an EVM account (EIP-191): pay once, then come back free within the pass', async () => {
  const buyer = evmBuyer('siwx: official evm');
  const client = evmClient(buyer, { siwx: true });
  const first = await callApi(client.fetch, env.apiEvm, '/api/data/siwe/0');
  const later = [];
  for (let i = 1; i <= 2; i++) later.push(await callApi(client.fetch, env.apiEvm, `/api/data/siwe/${i}`));
  assert.equal(first.status, 200, (first.text ?? '').slice(0, 300));
  assert.deepEqual(wireOf(client.calls, env.apiEvm), [
    ['GET', '/api/data/siwe/0', 402, '-'],
    ['GET', '/api/data/siwe/0', 402, 'SIGN-IN-WITH-X'], // signed in, but this account holds nothing yet
    ['GET', '/api/data/siwe/0', 200, 'PAYMENT-SIGNATURE'],
    ['GET', '/api/data/siwe/1', 402, '-'],
    ['GET', '/api/data/siwe/1', 200, 'SIGN-IN-WITH-X'],
    ['GET', '/api/data/siwe/2', 402, '-'],
    ['GET', '/api/data/siwe/2', 200, 'SIGN-IN-WITH-X'],
  ]);
  // The 402 declared both chains, each with its signature type.
  const fresh = await fetch(`${env.apiEvm}/api/data/siwe/x`);
  const required = JSON.parse(Buffer.from(fresh.headers.get('payment-required'), 'base64').toString());
  assert.deepEqual(required.extensions['sign-in-with-x'].supportedChains, [
    { chainId: env.network, type: 'ed25519' }, { chainId: BASE_SEPOLIA, type: 'eip191' },
  ]);
  for (const answer of later) {
    assert.equal(answer.status, 200);
    const got = upstreamGot(answer.body);
    assert.equal(got['x-access-pass-network'], BASE_SEPOLIA);
    assert.equal(got['sign-in-with-x'], undefined, 'the proof is not forwarded');
  }
  const settled = await settlementsOf(buyer.account.address);
  assert.equal(settled.length, 1, 'paid once');
});

test('@dexterai/x402 2.0.0 client with an EVM key buys a pass on Base Sepolia and uses it', async () => {
  const buyer = evmBuyer('dexter evm');
  const rec = recordingFetch();
  const fetchWithPayment = wrapFetch(rec.fetch, {
    evmPrivateKey: buyer.privateKey,
    // Loopback only: the client's balance check (eth_call) goes to the Solana RPC stand-in, fails,
    // and is skipped, as the client does when its RPC fails.
    rpcUrls: { [BASE_SEPOLIA]: env.rpcEvm },
    accessPass: { preferTier: '1h' },
  });
  const first = await fetchWithPayment(`${env.apiEvm}/api/data/dexter/0`);
  assert.equal(first.status, 200, (await first.clone().text()).slice(0, 300));
  const second = await fetchWithPayment(`${env.apiEvm}/api/data/dexter/1`);
  assert.equal(second.status, 200);
  const paid = rec.calls.filter((c) => c.headers['payment-signature']);
  assert.equal(paid.length, 1, 'one payment, then the pass');
  const settled = await settlementsOf(buyer.account.address);
  const pass = rec.calls.find((c) => c.accessPass)?.accessPass;
  const { claims } = decodeJwt(pass);
  assert.equal(claims.network, BASE_SEPOLIA);
  // What the buyer paid is the price of the pass it holds, once.
  assert.deepEqual(settled.map((s) => [s.network, s.amount]), [[BASE_SEPOLIA, SIWX_PRICE[claims.tier]]]);
  // The second call went with the pass, not a payment.
  const last = rec.calls.at(-1);
  assert.equal(last.headers['payment-signature'], undefined);
  assert.match(last.headers.authorization ?? '', /^Bearer /);
});
