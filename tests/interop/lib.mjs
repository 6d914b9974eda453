// Shared helpers of the interop tests: the topology started by run.py (URLs in X402_* variables),
// buyer keys, the facilitator's record, and decoding of what went over the wire.

import { createHash, randomBytes } from 'node:crypto';
import { mkdirSync } from 'node:fs';
import path from 'node:path';
import { Keypair } from '@solana/web3.js';
import { wrapFetch } from '@dexterai/x402/client';

function required(name) {
  const value = process.env[name];
  if (!value) throw new Error(`${name} is not set: run the interop tests through tests/interop/run.py (make interop)`);
  return value;
}

export const env = {
  api: required('X402_API'),
  apiOriginOnly: required('X402_API_ORIGIN_ONLY'),
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
 *  calls go through @solana/web3.js's own fetch). */
export function recordingFetch() {
  const calls = [];
  const fetchImpl = async (input, init = {}) => {
    const url = typeof input === 'string' ? input : input instanceof URL ? input.href : input.url;
    const headers = Object.fromEntries(Object.entries(init.headers || {}).map(([k, v]) => [k.toLowerCase(), v]));
    const response = await fetch(input, init);
    calls.push({
      method: (init.method || 'GET').toUpperCase(),
      url,
      headers,
      status: response.status,
      accessPass: response.headers.get('access-pass'),
      paymentResponse: response.headers.get('payment-response'),
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

export async function facilitatorState() {
  const res = await fetch(`${env.control}/state`, { signal: AbortSignal.timeout(5000) });
  if (!res.ok) throw new Error(`facilitator /state -> ${res.status}`);
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
