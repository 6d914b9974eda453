// Captures the EVM golden vectors (tests/vectors/evm/*.json) by running the official x402
// packages offline with fixed keys, clock and nonces:
//   - @x402/core + @x402/evm 2.27.0 client (ExactEvmScheme, EIP-3009) building PAYMENT-SIGNATURE
//     headers for Base Sepolia and Base mainnet USDC, and the EIP-712 hash viem computes for them;
//   - the official @x402/evm facilitator's /verify verdict on the valid payment and on broken
//     variants (a stand-in chain signer: the payer has no code, the token does, every call succeeds,
//     so only the off-chain checks decide);
//   - @x402/extensions 2.27.0 sign-in-with-x: formatSIWEMessage text and the EIP-191 signature
//     createSIWxPayload makes, with verifySIWxSignature's verdict.
// Run: npm ci && node capture.mjs   (writes exact.json and siwe.json next to this file)
import { writeFileSync } from "node:fs";
import { privateKeyToAccount } from "viem/accounts";
import { hashTypedData, hashDomain, recoverTypedDataAddress, keccak256, toHex, hashMessage } from "viem";
import { x402Client } from "@x402/core/client";
import { x402Facilitator } from "@x402/core/facilitator";
import { encodePaymentSignatureHeader } from "@x402/core/http";
import { ExactEvmScheme as ExactEvmClient } from "@x402/evm/exact/client";
import { ExactEvmScheme as ExactEvmFacilitator } from "@x402/evm/exact/facilitator";
import {
  createSIWxPayload,
  encodeSIWxHeader,
  formatSIWEMessage,
  verifySIWxSignature,
} from "@x402/extensions/sign-in-with-x";

const key = (byte) => `0x${byte.repeat(32)}`;
const payer = privateKeyToAccount(key("01"));
const other = privateKeyToAccount(key("02"));
const merchant = privateKeyToAccount(key("03"));
const facilitatorKey = privateKeyToAccount(key("04"));

// The clock: 2026-12-07T01:00:00Z.
const NOW = 1796605200;
const realNow = Date.now;
Date.now = () => NOW * 1000;

// Nonces: the client draws 32 random bytes; each capture fixes them.
const realGetRandomValues = crypto.getRandomValues.bind(crypto);
function withNonce(fill, fn) {
  crypto.getRandomValues = (array) => {
    array.fill(fill);
    return array;
  };
  return fn().finally(() => {
    crypto.getRandomValues = realGetRandomValues;
  });
}

const NETWORKS = {
  baseSepolia: {
    network: "eip155:84532",
    chainId: 84532,
    asset: "0x036CbD53842c5426634e7929541eC2318f3dCF7e",
    name: "USDC",
    version: "2",
    amount: "1000",
  },
  base: {
    network: "eip155:8453",
    chainId: 8453,
    asset: "0x833589fCD6eDb6E08f4c7C32D4f71b54bdA02913",
    name: "USD Coin",
    version: "2",
    amount: "10000",
  },
};

const RESOURCE = { url: "https://api.example.com/data", description: "data", mimeType: "application/json" };

function requirementsFor(net) {
  return {
    scheme: "exact",
    network: net.network,
    amount: net.amount,
    asset: net.asset,
    payTo: merchant.address,
    maxTimeoutSeconds: 300,
    extra: { name: net.name, version: net.version },
  };
}

async function pay(signer, net, nonceFill) {
  const client = new x402Client().register(net.network, new ExactEvmClient(signer));
  const paymentRequired = { x402Version: 2, resource: RESOURCE, accepts: [requirementsFor(net)] };
  return withNonce(nonceFill, () => client.createPaymentPayload(paymentRequired));
}

function typedData(net, authorization) {
  return {
    domain: { name: net.name, version: net.version, chainId: net.chainId, verifyingContract: net.asset },
    types: {
      TransferWithAuthorization: [
        { name: "from", type: "address" },
        { name: "to", type: "address" },
        { name: "value", type: "uint256" },
        { name: "validAfter", type: "uint256" },
        { name: "validBefore", type: "uint256" },
        { name: "nonce", type: "bytes32" },
      ],
    },
    primaryType: "TransferWithAuthorization",
    message: {
      from: authorization.from,
      to: authorization.to,
      value: BigInt(authorization.value),
      validAfter: BigInt(authorization.validAfter),
      validBefore: BigInt(authorization.validBefore),
      nonce: authorization.nonce,
    },
  };
}

// A stand-in for the facilitator's chain access: no chain is reachable here.
const chain = {
  getAddresses: () => [facilitatorKey.address],
  getCode: async ({ address }) =>
    Object.values(NETWORKS).some((n) => n.asset.toLowerCase() === address.toLowerCase()) ? "0x6080" : "0x",
  readContract: async () => true,
  verifyTypedData: async () => true,
  getChainId: async () => 0,
};
const facilitator = new x402Facilitator().register(
  [NETWORKS.baseSepolia.network, NETWORKS.base.network],
  new ExactEvmFacilitator(chain),
);

const clone = (value) => JSON.parse(JSON.stringify(value));

async function verdict(paymentPayload, requirements) {
  const answer = await facilitator.verify(paymentPayload, requirements);
  return { isValid: answer.isValid, invalidReason: answer.invalidReason ?? null };
}

async function captureNetwork(label, net, nonceFill) {
  const payment = await pay(payer, net, nonceFill);
  const requirements = requirementsFor(net);
  const auth = payment.payload.authorization;
  const data = typedData(net, auth);
  const otherSigner = await pay(other, net, nonceFill + 1);

  const negatives = {};
  const variant = async (name, how, mutate) => {
    const p = clone(payment);
    const r = clone(requirements);
    mutate(p, r);
    negatives[name] = { how, paymentPayload: p, requirements: r, official: await verdict(p, r) };
  };
  await variant("tamperedValue", "payload.authorization.value = 2 x amount (requirements unchanged)", (p, r) => {
    p.payload.authorization.value = String(2 * Number(net.amount));
  });
  await variant("tamperedTo", "payload.authorization.to = the payer's address", (p) => {
    p.payload.authorization.to = payer.address;
  });
  await variant("otherFrom", "payload.authorization.from = another account (signature unchanged)", (p) => {
    p.payload.authorization.from = other.address;
  });
  await variant("wrongChainDomain", "requirements.network and accepted.network = the other Base chain", (p, r) => {
    const otherNet = net === NETWORKS.base ? NETWORKS.baseSepolia : NETWORKS.base;
    r.network = otherNet.network;
    p.accepted.network = otherNet.network;
  });
  await variant("wrongName", "requirements.extra.name = \"Other\"", (_p, r) => {
    r.extra.name = "Other";
  });
  await variant("amountRequired", "requirements.amount = amount + 1", (_p, r) => {
    r.amount = String(Number(net.amount) + 1);
  });
  Date.now = () => (Number(auth.validBefore) + 1) * 1000;
  negatives.expired = {
    how: "the valid payment verified at validBefore + 1",
    now: Number(auth.validBefore) + 1,
    official: await verdict(payment, requirements),
  };
  Date.now = () => NOW * 1000;

  return {
    network: net.network,
    chainId: net.chainId,
    asset: net.asset,
    name: net.name,
    version: net.version,
    now: NOW,
    requirements,
    paymentSignatureHeader: encodePaymentSignatureHeader(payment),
    paymentPayload: payment,
    domainSeparator: hashDomain({
      domain: data.domain,
      types: { EIP712Domain: [
        { name: "name", type: "string" },
        { name: "version", type: "string" },
        { name: "chainId", type: "uint256" },
        { name: "verifyingContract", type: "address" },
      ] },
    }),
    signingHash: hashTypedData(data),
    recoveredFrom: await recoverTypedDataAddress({ ...data, signature: payment.payload.signature }),
    official: await verdict(payment, requirements),
    otherSignerPayment: otherSigner,
    negatives,
  };
}

const exact = {
  generator:
    "tests/vectors/evm/capture.mjs: @x402/core, @x402/evm, @x402/extensions 2.27.0, viem 2.48.11 (package-lock.json)",
  keys: {
    payer: { privateKey: key("01"), address: payer.address },
    other: { privateKey: key("02"), address: other.address },
    merchant: { privateKey: key("03"), address: merchant.address },
    facilitator: { privateKey: key("04"), address: facilitatorKey.address },
  },
  supported: facilitator.getSupported(),
  baseSepolia: await captureNetwork("baseSepolia", NETWORKS.baseSepolia, 0x11),
  base: await captureNetwork("base", NETWORKS.base, 0x21),
};

// Sign-In-With-Ethereum: what a standard client sends in SIGN-IN-WITH-X.
async function siwe(label, info, signer) {
  const payload = await createSIWxPayload(info, signer, info.uri);
  const verified = await verifySIWxSignature(payload);
  return {
    label,
    info,
    payload,
    header: encodeSIWxHeader(payload),
    message: formatSIWEMessage(info, payload.address),
    personalSignHash: hashMessage(formatSIWEMessage(info, payload.address)),
    official: { isValid: verified.isValid, payer: verified.payer ?? null },
  };
}
const issuedAt = new Date(NOW * 1000).toISOString();
const siweCases = [
  await siwe(
    "base, statement and resources",
    {
      domain: "api.example.com",
      uri: "https://api.example.com/data",
      statement: "Sign in to use your access pass",
      version: "1",
      chainId: "eip155:8453",
      type: "eip191",
      nonce: "a1b2c3d4e5f60718293a4b5c6d7e8f90",
      issuedAt,
      resources: ["https://api.example.com/data"],
    },
    payer,
  ),
  await siwe(
    "base sepolia, no statement, expiration, not-before, request id, a port",
    {
      domain: "localhost:8080",
      uri: "http://localhost:8080/data?tier=1h",
      version: "1",
      chainId: "eip155:84532",
      type: "eip191",
      nonce: "0f1e2d3c4b5a69788796a5b4c3d2e1f0",
      issuedAt,
      expirationTime: new Date((NOW + 300) * 1000).toISOString(),
      notBefore: new Date((NOW - 60) * 1000).toISOString(),
      requestId: "req-42",
      resources: ["http://localhost:8080/data?tier=1h", "http://localhost:8080/other"],
    },
    other,
  ),
  await siwe(
    "base, empty statement, no resources",
    {
      domain: "api.example.com",
      uri: "https://api.example.com/",
      statement: "",
      version: "1",
      chainId: "eip155:8453",
      type: "eip191",
      nonce: "ABCDEFGH12345678",
      issuedAt,
    },
    merchant,
  ),
  await siwe(
    "base, empty expiration/not-before (omitted) and empty request id (written)",
    {
      domain: "api.example.com",
      uri: "https://api.example.com/data",
      statement: "Sign in",
      version: "1",
      chainId: "eip155:8453",
      type: "eip191",
      nonce: "00112233445566778899aabbccddeeff",
      issuedAt,
      expirationTime: "",
      notBefore: "",
      requestId: "",
    },
    payer,
  ),
];
const siweVectors = {
  generator: exact.generator,
  keys: exact.keys,
  cases: siweCases,
};

Date.now = realNow;
const here = new URL(".", import.meta.url);
writeFileSync(new URL("exact.json", here), JSON.stringify(exact, null, 2) + "\n");
writeFileSync(new URL("siwe.json", here), JSON.stringify(siweVectors, null, 2) + "\n");
console.log("wrote exact.json and siwe.json");
