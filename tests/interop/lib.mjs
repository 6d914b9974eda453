// Shared helpers of the interop tests: the topology started by run.py (URLs in X402_* variables),
// buyer keys, the facilitator's record, and decoding of what went over the wire.

import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import { spawn } from 'node:child_process';
import { mkdirSync } from 'node:fs';
import path from 'node:path';
import { Keypair } from '@solana/web3.js';
import { wrapFetch } from '@dexterai/x402/client';
import { createKeyPairSignerFromBytes } from '@solana/kit';
import { wrapFetchWithPayment, x402Client } from '@x402/fetch';
import { ExactSvmScheme } from '@x402/svm/exact/client';
import { createSIWxClientExtension } from '@x402/extensions/sign-in-with-x';

function required(name) {
  const value = process.env[name];
  if (!value) throw new Error(`${name} is not set: run the interop tests through tests/interop/run.py (make interop)`);
  return value;
}

export const env = {
  api: required('X402_API'),
  apiOriginOnly: required('X402_API_ORIGIN_ONLY'),
  // settleDeadlineMs 8000: settlement outcomes worked out inside the buyer's request (faults.test.mjs)
  apiFaults: required('X402_API_FAULTS'),
  // siwx.origins = its own origin, a 1-minute default pass, its own facilitator (siwx.test.mjs)
  apiSiwx: required('X402_API_SIWX'),
  // Solana devnet + Base Sepolia (networks), SIWX on its own origin, its own facilitator (evm.test.mjs)
  apiEvm: required('X402_API_EVM'),
  controlEvm: required('X402_CONTROL_URL_EVM'),
  rpcEvm: required('X402_RPC_URL_EVM'),
  python: required('X402_PYTHON'),
  upstream: required('X402_UPSTREAM'),
  envoyAdmin: required('X402_ENVOY_ADMIN'),
  facilitator: required('X402_FACILITATOR_URL'),
  control: required('X402_CONTROL_URL'),
  rpc: required('X402_RPC_URL'),
  dashboard: required('X402_DASHBOARD_URL'),
  secret: required('X402_SECRET'),
  network: required('X402_NETWORK'),
  asset: required('X402_ASSET'),
  payTo: required('X402_PAY_TO'),
  feePayer: required('X402_FEE_PAYER'),
  out: required('X402_INTEROP_OUT'),
};

// The harness's plugin config: tiers and their atomic prices (USDC, 6 decimals).
export const PRICE = { '5m': '50000', '1h': '500000', '24h': '2000000' };
export const SECONDS = { '5m': 300, '1h': 3600, '24h': 86400 };
export const TIERS_IN_402 = [
  { id: '5m', label: '5 minutes', seconds: 300, price: '0.05', priceAtomic: '50000' },
  { id: '1h', label: '1 hour', seconds: 3600, price: '0.50', priceAtomic: '500000' },
  { id: '24h', label: '1 day', seconds: 86400, price: '2.00', priceAtomic: '2000000' },
];

const B58 = '123456789ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz';
export function base58(bytes) {
  let n = 0n;
  for (const b of bytes) n = n * 256n + BigInt(b);
  let out = '';
  while (n > 0n) {
    out = B58[Number(n % 58n)] + out;
    n /= 58n;
  }
  for (const b of bytes) {
    if (b !== 0) break;
    out = '1' + out;
  }
  return out;
}

// One per run (run.py sets it; a fresh one otherwise), so a re-run against the same facilitator
// never meets its earlier payments.
const RUN_ID = process.env.X402_INTEROP_RUN || randomBytes(6).toString('hex');

/** A buyer key of its own for every test (derived from a label), so purchases never collide. */
export function newBuyer(label) {
  const seed = createHash('sha256').update(`x402-access-pass interop buyer ${RUN_ID}: ${label}`).digest();
  const keypair = Keypair.fromSeed(seed);
  return {
    label,
    keypair,
    seedHex: seed.toString('hex'),
    address: keypair.publicKey.toBase58(),
    // the format a buyer keeps in WALLET_PRIVATE_KEY: base58 of the 64-byte secret key
    privateKey: base58(keypair.secretKey),
  };
}

/** A fetch that records what the client sends and what it gets (API traffic only: the Solana RPC
 *  calls go through the Solana libraries' own fetch). @dexterai/x402 calls it with (url, init),
 *  @x402/fetch with a Request. */
export function recordingFetch() {
  const calls = [];
  const fetchImpl = async (input, init = {}) => {
    let method;
    let url;
    let headers;
    if (input instanceof Request) {
      ({ method, url } = input);
      headers = Object.fromEntries(input.headers);
    } else {
      method = (init.method || 'GET').toUpperCase();
      url = typeof input === 'string' ? input : input.href;
      headers = Object.fromEntries(Object.entries(init.headers || {}).map(([k, v]) => [k.toLowerCase(), v]));
    }
    const response = await fetch(input, init);
    calls.push({
      method,
      url,
      headers,
      status: response.status,
      accessPass: response.headers.get('access-pass'),
      paymentResponse: response.headers.get('payment-response'),
      // what the buyer was handed: a copy, so the client still reads the body itself
      text: await response.clone().text(),
    });
    return response;
  };
  return { fetch: fetchImpl, calls };
}

/** The published client, exactly as a buyer sets it up; only the Solana RPC points at the stand-in. */
export function dexterClient(buyer, accessPass, extra = {}) {
  const rec = recordingFetch();
  const fetchWithPayment = wrapFetch(rec.fetch, {
    walletPrivateKey: buyer.privateKey,
    rpcUrls: { [env.network]: env.rpc },
    accessPass,
    ...extra,
  });
  return { fetch: fetchWithPayment, calls: rec.calls };
}

/** The official x402 v2 buyer (`@x402/fetch` + `@x402/svm` 2.27.0), set up as its README says: a
 *  `@solana/kit` key pair signer, the exact SVM scheme registered for `solana:*`; only the Solana
 *  RPC points at the stand-in. `siwx: true` also registers the Sign-In-With-X client extension
 *  (`@x402/extensions/sign-in-with-x`), which answers a 402 that declares it with a signed
 *  `SIGN-IN-WITH-X` before paying. `extensions`: more client extensions (`{key,
 *  enrichPaymentPayload}`) registered with `x402Client.registerExtension`. */
export async function officialClient(buyer, { siwx = false, extensions = [], rpcUrl = env.rpc } = {}) {
  const signer = await createKeyPairSignerFromBytes(buyer.keypair.secretKey);
  const client = new x402Client().register('solana:*', new ExactSvmScheme(signer, { rpcUrl }));
  if (siwx) client.registerExtension(createSIWxClientExtension({ signers: [signer] }));
  for (const extension of extensions) client.registerExtension(extension);
  const rec = recordingFetch();
  return { fetch: wrapFetchWithPayment(rec.fetch, client), calls: rec.calls, signer };
}

export async function facilitatorState() {
  const res = await fetch(`${env.control}/state`, { signal: AbortSignal.timeout(5000) });
  if (!res.ok) throw new Error(`facilitator /state -> ${res.status}`);
  return res.json();
}

async function control(method, path, body) {
  const res = await fetch(`${env.control}${path}`, {
    method,
    headers: body === undefined ? {} : { 'content-type': 'application/json' },
    body: body === undefined ? undefined : JSON.stringify(body),
    signal: AbortSignal.timeout(5000),
  });
  const text = await res.text();
  if (!res.ok) throw new Error(`facilitator ${method} ${path} -> ${res.status} ${text}`);
  return text ? JSON.parse(text) : null;
}

/** Makes the facilitator misbehave (POST /fault on its control port; tests/facilitator/src/faults.rs):
 *  `{endpoint, mode, delayMs?, status?, count?}`. */
export function setFault(fault) {
  return control('POST', '/fault', fault);
}

/** The faults still in force (a fault with a count disappears once used up). */
export function faultsInForce() {
  return control('GET', '/fault');
}

/** Clears every fault (the settlement records stay). */
export function clearFaults() {
  return control('POST', '/reset');
}

/** The requests the upstream answered (method, path, headers, body), from its own log. */
export async function upstreamRequests() {
  const res = await fetch(`${env.upstream}/__x402_upstream/requests`, { signal: AbortSignal.timeout(5000) });
  if (!res.ok) throw new Error(`upstream request log -> ${res.status}`);
  return res.json();
}

export async function settlementsOf(payer) {
  return (await facilitatorState()).settlements.filter((s) => s.payer === payer);
}

export function decodeB64Json(value) {
  return JSON.parse(Buffer.from(value, 'base64').toString('utf8'));
}

export function decodeJwt(token) {
  const [h, p] = token.split('.');
  return { header: JSON.parse(Buffer.from(h, 'base64url')), claims: JSON.parse(Buffer.from(p, 'base64url')) };
}

/** SHA-256 (hex) of the Solana message inside a PAYMENT-SIGNATURE header: the key the facilitator
 *  and the filter record a payment under. */
export function messageHashOf(paymentSignatureHeader) {
  const tx = Buffer.from(decodeB64Json(paymentSignatureHeader).payload.transaction, 'base64');
  let count = 0;
  let shift = 0;
  let offset = 0;
  for (;;) {
    const byte = tx[offset++];
    count |= (byte & 0x7f) << shift;
    if (!(byte & 0x80)) break;
    shift += 7;
  }
  return createHash('sha256').update(tx.subarray(offset + 64 * count)).digest('hex');
}

/** The headers the demo upstream received, from its echo. */
export function upstreamGot(body) {
  assertUpstream(body);
  return Object.fromEntries(body.headers);
}

function assertUpstream(body) {
  if (!body || body.upstream !== 'demo') throw new Error(`not an upstream answer: ${JSON.stringify(body).slice(0, 300)}`);
}

export function outDir(...parts) {
  const dir = path.join(env.out, ...parts);
  mkdirSync(dir, { recursive: true });
  return dir;
}

/** Polls `fn` until it returns a truthy value or `timeoutMs` passes. */
export async function waitFor(fn, timeoutMs, what) {
  const deadline = Date.now() + timeoutMs;
  let last;
  for (;;) {
    try {
      const value = await fn();
      if (value) return value;
    } catch (e) {
      last = e;
    }
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}${last ? `: ${last}` : ''}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

/** The money rule, read from the facilitator's own ledger for one buyer against what went over the
 *  wire (`calls` of a recording fetch): every settlement is of a payment this buyer sent, and is
 *  settled once; the answer the buyer finally got for each settled payment handed over what was
 *  paid for: a pass priced at the amount settled, and the upstream's data when the request was
 *  forwarded (pay-and-serve, docs/behaviour.md §15) rather than answered by the filter; a payment
 *  that was not settled got no pass. `prices`: tier id -> atomic price of the Envoy called.
 *  Returns one entry per settled payment ({hash, settlement, claims, token, delivered: 'data' |
 *  'pass', call}) in the order they were sent, and the calls of the payments not settled. */
export async function assertPaidOncePerDelivery(buyer, calls, prices = PRICE) {
  const byHash = new Map();
  for (const c of calls.filter((c) => c.headers['payment-signature'])) {
    const hash = messageHashOf(c.headers['payment-signature']);
    byHash.set(hash, c); // the last answer to the same payment is the one the buyer kept
  }
  const settlements = await settlementsOf(buyer.address);
  const settledHashes = settlements.map((s) => s.messageHash);
  assert.equal(new Set(settledHashes).size, settlements.length, 'no payment was settled twice');
  for (const s of settlements) {
    assert.ok(byHash.has(s.messageHash), `settlement ${s.transaction} is of a payment this buyer sent`);
  }
  const settled = [];
  const unsettled = [];
  for (const [hash, c] of byHash) {
    const settlement = settlements.find((s) => s.messageHash === hash);
    if (!settlement) {
      assert.equal(c.accessPass, null, `an unsettled payment got no pass (${c.method} ${c.url} -> ${c.status})`);
      assert.ok(c.status >= 400, `an unsettled payment got no data (${c.method} ${c.url} -> ${c.status})`);
      unsettled.push(c);
      continue;
    }
    const sent = decodeB64Json(c.headers['payment-signature']);
    assert.equal(settlement.amount, sent.accepted.amount, 'settled the amount the client signed');
    assert.equal(settlement.payTo, env.payTo);
    assert.equal(c.status, 200, `a settled payment was answered 200 (${c.method} ${c.url}): ${c.text.slice(0, 300)}`);
    assert.ok(c.accessPass, 'with the pass it paid for in ACCESS-PASS');
    const { claims } = decodeJwt(c.accessPass);
    assert.equal(claims.payer, buyer.address);
    assert.equal(prices[claims.tier], settlement.amount, `a ${claims.tier} pass costs what was settled`);
    assert.equal(claims.exp - claims.iat, claims.duration);
    const receipt = decodeB64Json(c.paymentResponse);
    assert.equal(receipt.success, true);
    assert.equal(receipt.payer, buyer.address);
    assert.equal(receipt.network, env.network);
    // '' when the filter learnt of the settlement from a duplicate_settlement answer (no id)
    assert.ok([settlement.transaction, ''].includes(receipt.transaction), `receipt ${JSON.stringify(receipt)}`);
    let body = null;
    try {
      body = JSON.parse(c.text);
    } catch {
      // not JSON
    }
    let delivered;
    if (body && body.upstream === 'demo') {
      delivered = 'data';
      const got = upstreamGot(body);
      assert.equal(got['x-access-pass-payer'], buyer.address);
      assert.equal(got['x-access-pass-tier'], claims.tier);
      assert.equal(got['x-access-pass-expires'], String(claims.exp));
      assert.equal(got['payment-signature'], undefined, 'the upstream never sees PAYMENT-SIGNATURE');
      assert.equal(got.authorization, undefined);
    } else {
      delivered = 'pass';
      assert.equal(body?.accessPass?.token, c.accessPass, `the filter's purchase answer: ${c.text.slice(0, 300)}`);
    }
    settled.push({ hash, settlement, claims, token: c.accessPass, delivered, call: c });
  }
  return { settled, unsettled };
}

/** [method, path, status, what the request carried] of each recorded call, for wire assertions. */
export function wireOf(calls, base) {
  return calls.map((c) => [c.method, c.url.startsWith(base) ? c.url.slice(base.length) : c.url, c.status,
    c.headers['payment-signature'] ? 'PAYMENT-SIGNATURE'
      : c.headers['sign-in-with-x'] ? 'SIGN-IN-WITH-X'
        : c.headers.authorization ? 'Bearer' : '-']);
}

/** The SIWX Envoy's tiers (run.py SIWX_TIERS): tier id -> atomic price. */
export const SIWX_PRICE = { '1m': '10000', '1h': '500000' };


/** Calls `path` of `base` with a paying fetch; the answer as the buyer's code sees it. */
export async function callApi(fetchWithPayment, base, path, init) {
  const res = await fetchWithPayment(base + path, init);
  const text = await res.text();
  let body = null;
  try {
    body = JSON.parse(text);
  } catch {
    // not JSON
  }
  return { status: res.status, headers: res.headers, body, text };
}

/** Waits until the pass (or entitlement) ending at `exp` (seconds) has run out, leeway 0. */
export async function sleepPast(exp) {
  const ms = (exp + 1) * 1000 - Date.now();
  if (ms > 0) await new Promise((r) => setTimeout(r, ms));
}

const BUYER_PY = path.join(path.dirname(new URL(import.meta.url).pathname), 'python', 'buyer.py');

/** Runs the official Python buyer (python/buyer.py, x402 2.25.0 in python/.venv) for `buyer`:
 *  GETs each URL in turn with the `httpx` or `requests` integration. Returns what it printed:
 *  {address, calls: [{status, accessPass, paymentResponse, body, text} | {error}], wire: [the
 *  requests that went out, in recordingFetch's shape]}. */
export function pythonBuyer(buyer, client, urls, { siwx = false, timeoutMs = 60000 } = {}) {
  const args = [BUYER_PY, '--client', client, '--seed-hex', buyer.seedHex, '--rpc', env.rpc,
    ...(siwx ? ['--siwx'] : []), ...urls];
  return new Promise((resolve, reject) => {
    const child = spawn(env.python, args, { stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    let err = '';
    child.stdout.on('data', (d) => { out += d; });
    child.stderr.on('data', (d) => { err += d; });
    const timer = setTimeout(() => child.kill('SIGKILL'), timeoutMs);
    child.on('error', reject);
    child.on('close', (code, signal) => {
      clearTimeout(timer);
      if (code !== 0) {
        reject(new Error(`buyer.py ${client} exited ${code ?? signal}: ${err.slice(-2000)}`));
        return;
      }
      try {
        const result = JSON.parse(out);
        if (result.address !== buyer.address) throw new Error(`buyer.py is ${result.address}, not ${buyer.address}`);
        resolve(result);
      } catch (e) {
        reject(new Error(`buyer.py ${client}: ${e.message}\n${out.slice(0, 2000)}\n${err.slice(-2000)}`));
      }
    });
  });
}
