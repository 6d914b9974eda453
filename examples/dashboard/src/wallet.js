import { Keypair } from '@solana/web3.js';

function hexToBytes(hex) {
  if (!/^[0-9a-fA-F]{64}$/.test(hex)) throw new Error('key must be 64 hex digits (a 32-byte seed)');
  return Uint8Array.from(hex.match(/../g).map((b) => parseInt(b, 16)));
}

/** A test keypair, from a seed or a new random one kept for this tab. */
export function testKeypair(seedHex) {
  if (seedHex) return Keypair.fromSeed(hexToBytes(seedHex));
  const stored = sessionStorage.getItem('dashboard-test-wallet-seed');
  if (stored) return Keypair.fromSeed(hexToBytes(stored));
  const seed = crypto.getRandomValues(new Uint8Array(32));
  sessionStorage.setItem('dashboard-test-wallet-seed', Array.from(seed, (b) => b.toString(16).padStart(2, '0')).join(''));
  return Keypair.fromSeed(seed);
}

/** The wallet interface useAccessPass expects (what a wallet adapter provides): a `publicKey` and
 *  `signTransaction(tx)` that returns the signed transaction. The hook hands it a
 *  VersionedTransaction whose fee payer is the facilitator: the buyer signs only its own slot. */
export function keypairWallet(keypair) {
  return {
    publicKey: keypair.publicKey,
    async signTransaction(tx) {
      tx.sign([keypair]);
      return tx;
    },
  };
}
