// Golden vectors for Sign-In-With-X (docs/behaviour.md §16), produced by the published
// @x402/extensions 2.27.0 itself: its server extension's 402 declaration, its client's signed
// payloads and SIGN-IN-WITH-X headers, formatSIWSMessage's text, and what validateSIWxMessage,
// verifySIWxSignature and parseSIWxHeader say about each. Clock and randomness are fixed so the
// output is the same on every run:
//
//     npm ci && node gen.mjs > siwx.json
//
// Keys: the buyer's Ed25519 seed is 32 bytes of 0x01 (as in ../x402-svm-exact.json), another
// wallet's is 32 bytes of 0x04. `expect` is what this filter decides: "ok" or the reason it counts
// (siwx_rejected.<reason>); it differs from the package only where the filter is stricter on
// purpose (a chain that is not the configured network, a control character).

import nacl from "tweetnacl";
import {
  createSIWxPayload,
  createSIWxResourceServerExtension,
  declareSIWxExtension,
  encodeBase58,
  encodeSIWxHeader,
  formatSIWSMessage,
  InMemorySIWxStorage,
  parseSIWxHeader,
  SIGN_IN_WITH_X,
  validateSIWxMessage,
  verifySIWxSignature,
} from "@x402/extensions/sign-in-with-x";

const DEVNET = "solana:EtWTRABZaYq6iMfeYKouRu166VU2xqa1";
const MAINNET = "solana:5eykt4UsFv8P8NJdTREpY1vzqKqZKvdp";
const T0 = Date.parse("2026-03-01T12:00:00.000Z");
const STATEMENT = "Sign in to use the access pass you bought";

// --- a fixed clock and fixed randomness ------------------------------------------------------
let clock = T0;
const RealDate = Date;
class FixedDate extends RealDate {
  constructor(...args) {
    super(...(args.length ? args : [clock]));
  }
  static now() {
    return clock;
  }
}
globalThis.Date = FixedDate;
let randomByte = 0xa0;
globalThis.crypto.getRandomValues = array => {
  for (let i = 0; i < array.length; i++) array[i] = randomByte++ & 0xff;
  return array;
};

function wallet(byte) {
  const pair = nacl.sign.keyPair.fromSeed(new Uint8Array(32).fill(byte));
  const address = encodeBase58(pair.publicKey);
  return {
    seed: byte,
    address,
    signer: { publicKey: address, signMessage: async bytes => nacl.sign.detached(bytes, pair.secretKey) },
  };
}
const buyer = wallet(0x01);
const other = wallet(0x04);

// --- declarations: what the package's server puts in a 402 -----------------------------------
async function declaration(origin, resourceUrl, statement, network) {
  const ext = createSIWxResourceServerExtension({ storage: new InMemorySIWxStorage(), origin });
  const declared = declareSIWxExtension(statement ? { statement } : {})[SIGN_IN_WITH_X];
  const context = { resourceInfo: { url: resourceUrl }, requirements: [{ network }] };
  return ext.enrichPaymentRequiredResponse(declared, context);
}

const declarations = [];
for (const [name, origin, url, statement] of [
  ["https-with-statement", "https://api.example.com", "http://10.0.0.7:8080/api/data?tier=1h", STATEMENT],
  ["loopback-no-statement", "http://127.0.0.1:10000", "http://127.0.0.1:10000/api/data", undefined],
  ["default-port-dropped", "https://API.Example.com:443", "https://api.example.com/api/x?a=1&b=2", STATEMENT],
]) {
  clock = T0;
  const extension = await declaration(origin, url, statement, DEVNET);
  declarations.push({ name, origin, resourceUrl: url, statement: statement ?? null, network: DEVNET, now: T0,
    json: JSON.stringify(extension) });
}

// --- signed payloads and what the package says of them ---------------------------------------
async function signed(info, who, requestUrl, chainId = DEVNET) {
  const complete = { ...info, chainId, type: "ed25519" };
  const payload = await createSIWxPayload(complete, who.signer, requestUrl);
  return { payload, message: formatSIWSMessage(complete, who.address) };
}

// The package binds one origin; with several configured, a payload is valid when it is for one of them.
async function verdict(payload, origins, now, maxAgeSeconds) {
  clock = now;
  let validation;
  for (const origin of origins) {
    validation = await validateSIWxMessage(payload, new URL(origin), { maxAge: maxAgeSeconds * 1000 });
    if (validation.isValid) break;
  }
  let verification;
  try {
    verification = await verifySIWxSignature(payload);
  } catch (e) {
    verification = { isValid: false, invalidReason: `threw: ${e.message.split("\n")[0]}` };
  }
  clock = T0;
  return {
    validate: validation.isValid ? "valid" : validation.invalidReason,
    verify: verification.isValid ? "valid" : verification.invalidReason,
  };
}

function parsed(header) {
  try {
    parseSIWxHeader(header);
    return "parsed";
  } catch (e) {
    return e.message;
  }
}

const HERE = "https://api.example.com";
const ELSEWHERE = "https://shop.example.org";
clock = T0;
const hereInfo = (await declaration(HERE, `${HERE}/api/data`, STATEMENT, DEVNET)).info;
const elsewhereInfo = (await declaration(ELSEWHERE, `${ELSEWHERE}/api/data`, STATEMENT, DEVNET)).info;

const cases = [];
async function add(name, expect, payload, message, { now = T0 + 30_000, origins = [HERE], maxAgeSeconds = 300 } = {}) {
  const header = encodeSIWxHeader(payload);
  const pkg = await verdict(payload, origins, now, maxAgeSeconds);
  cases.push({ name, expect, origins, maxAgeSeconds, now, header, payload, message, package: { parse: parsed(header), ...pkg } });
}

{
  const { payload, message } = await signed(hereInfo, buyer, `${HERE}/api/data`);
  await add("valid", "ok", payload, message);
  await add("valid-at-the-max-age", "ok", payload, message, { now: T0 + 300_000 });
  await add("too-old", "issued_at", payload, message, { now: T0 + 300_001 });
  await add("issued-in-the-future", "issued_at", payload, message, { now: T0 - 1 });
  // the same signature, its text changed after signing
  await add("statement-changed", "signature", { ...payload, statement: "Sign in" }, message);
  const sig = [...payload.signature];
  sig[10] = sig[10] === "A" ? "B" : "A";
  await add("signature-changed", "signature", { ...payload, signature: sig.join("") }, message);
  await add("signature-not-base58", "signature", { ...payload, signature: "0OIl" + payload.signature.slice(4) }, message);
  await add("signature-short", "signature", { ...payload, signature: encodeBase58(new Uint8Array(63).fill(7)) }, message);
  await add("claims-another-address", "signature", { ...payload, address: other.address }, message);
}
{
  // a whole message signed for another site, replayed here
  const { payload, message } = await signed(elsewhereInfo, buyer, `${ELSEWHERE}/api/data`);
  await add("signed-for-another-site", "domain", payload, message);
  await add("valid-for-that-site", "ok", payload, message, { origins: [ELSEWHERE] });
  await add("valid-when-both-are-configured", "ok", payload, message, { origins: [HERE, ELSEWHERE] });
}
{
  // our domain, another site's uri (both signed by the buyer)
  const info = { ...hereInfo, uri: `${ELSEWHERE}/api/data`, resources: [`${ELSEWHERE}/api/data`] };
  const complete = { ...info, chainId: DEVNET, type: "ed25519" };
  const message = formatSIWSMessage(complete, buyer.address);
  const signature = encodeBase58(nacl.sign.detached(new TextEncoder().encode(message),
    nacl.sign.keyPair.fromSeed(new Uint8Array(32).fill(1)).secretKey));
  const payload = { domain: info.domain, address: buyer.address, statement: info.statement, uri: info.uri,
    version: info.version, chainId: DEVNET, type: "ed25519", nonce: info.nonce, issuedAt: info.issuedAt,
    resources: info.resources, signature };
  await add("uri-of-another-origin", "uri", payload, message);
  const http = { ...payload, uri: "http://api.example.com/api/data" };
  await add("uri-other-scheme", "uri", http, message);
}
{
  // optional fields: expirationTime, notBefore, requestId, several resources, no statement
  const info = { ...hereInfo, statement: undefined, expirationTime: "2026-03-01T12:05:00.000Z",
    notBefore: "2026-03-01T12:01:00.000Z", requestId: "req-42",
    resources: [`${HERE}/api/data`, "ipfs://bafybeigdyrzt5sfp7udm7hu76uh7y26nf3efuylqabf3oclgtqy55fbzdi"] };
  const { payload, message } = await signed(info, buyer, `${HERE}/api/data`);
  await add("all-optional-fields", "ok", payload, message, { now: T0 + 90_000 });
  await add("expired", "expired", payload, message, { now: T0 + 300_001, maxAgeSeconds: 3_600 });
  await add("not-yet-valid", "not_before", payload, message, { now: T0 + 59_999 });
}
{
  // another Solana chain: the package accepts it, this filter sells on devnet only
  const { payload, message } = await signed(hereInfo, buyer, `${HERE}/api/data`, MAINNET);
  await add("other-solana-chain", "chain", payload, message);
  await add("evm-chain", "chain", { ...payload, chainId: "eip155:8453", type: "eip191" }, message);
}
{
  // small-order key: the identity point with R = identity, S = 0 verifies any message under
  // classic Ed25519 (tweetnacl); the package and this filter refuse the key.
  const identity = new Uint8Array(32);
  identity[0] = 1;
  const forged = new Uint8Array(64);
  forged[0] = 1;
  const address = encodeBase58(identity);
  const complete = { ...hereInfo, chainId: DEVNET, type: "ed25519" };
  const message = formatSIWSMessage(complete, address);
  const payload = { domain: hereInfo.domain, address, statement: hereInfo.statement, uri: hereInfo.uri,
    version: "1", chainId: DEVNET, type: "ed25519", nonce: hereInfo.nonce, issuedAt: hereInfo.issuedAt,
    resources: hereInfo.resources, signature: encodeBase58(forged) };
  await add("small-order-key", "signature", payload, message);
  cases.at(-1).tweetnaclAlone = nacl.sign.detached.verify(new TextEncoder().encode(message), forged, identity);
}

// --- headers that are not a payload ----------------------------------------------------------
const malformed = [];
for (const [name, header] of [
  ["not-base64", "not base64!"],
  ["base64url", Buffer.from(JSON.stringify({ a: "??>>" })).toString("base64url")],
  ["not-json", Buffer.from("{domain:").toString("base64")],
  ["json-array", Buffer.from("[]").toString("base64")],
  ["missing-signature", Buffer.from(JSON.stringify({ ...cases[0].payload, signature: undefined })).toString("base64")],
  ["type-unknown", Buffer.from(JSON.stringify({ ...cases[0].payload, type: "rsa" })).toString("base64")],
  ["number-for-string", Buffer.from(JSON.stringify({ ...cases[0].payload, nonce: 7 })).toString("base64")],
  ["empty", ""],
]) {
  malformed.push({ name, header, package: parsed(header) });
}

// --- message text alone: formatSIWSMessage over unusual but legal inputs ---------------------
const messages = [];
for (const [name, info] of [
  ["minimal", { domain: "a.example", uri: "https://a.example/", version: "1", chainId: DEVNET, nonce: "n",
    issuedAt: "2026-03-01T12:00:00.000Z" }],
  ["empty-statement-and-resources", { domain: "a.example", uri: "https://a.example/x", statement: "", version: "1",
    chainId: DEVNET, nonce: "n", issuedAt: "2026-03-01T12:00:00.000Z", resources: [] }],
  ["unicode", { domain: "bücher.example", uri: "https://xn--bcher-kva.example/p?q=ü", statement: "Zugang — 5 €",
    version: "1", chainId: "solana:abc:def", nonce: "ÿ", issuedAt: "2026-03-01T12:00:00Z", requestId: "r",
    resources: ["a", "b"] }],
]) {
  messages.push({ name, info, address: buyer.address, message: formatSIWSMessage(info, buyer.address) });
}

console.log(JSON.stringify({
  generator: "tests/vectors/siwx/gen.mjs with @x402/extensions 2.27.0",
  keys: { buyer: { seed: buyer.seed, address: buyer.address }, other: { seed: other.seed, address: other.address } },
  now: T0,
  declarations,
  cases,
  malformed,
  messages,
}, null, 1));
