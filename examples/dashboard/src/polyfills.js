// @dexterai/x402's Solana adapter serializes the signed transaction with the global `Buffer`
// (as in Node); browsers need the `buffer` package for it. Imported before anything else.
import { Buffer } from 'buffer';

if (!globalThis.Buffer) globalThis.Buffer = Buffer;
