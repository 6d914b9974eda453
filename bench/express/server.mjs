// The Express reference middleware, `x402AccessPass(...)` from @dexterai/x402 2.0.0, in front of a
// handler that answers like the benchmark's Envoy route (200, the same small body): the context
// row of bench/results.md. The packages are tests/interop's (installed from its lockfile by
// `npm ci`, pinned to the same 2.0.0 the interop suite runs); nothing else is installed.
//
//   node bench/express/server.mjs <dir with node_modules> <ready file>
// Reads X402_BENCH_SECRET, X402_BENCH_BODY, X402_PAY_TO, X402_NETWORK, X402_ASSET from the
// environment; listens on 127.0.0.1, an ephemeral port, written to the ready file.

import { createRequire } from 'node:module';
import { existsSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { pathToFileURL } from 'node:url';

const [modulesDir, readyFile] = process.argv.slice(2);
if (!modulesDir || !readyFile) {
  console.error('usage: node bench/express/server.mjs <dir with node_modules> <ready file>');
  process.exit(2);
}
const env = (name) => {
  const value = process.env[name];
  if (!value) {
    console.error(`${name} is not set`);
    process.exit(2);
  }
  return value;
};

const require = createRequire(path.join(path.resolve(modulesDir), 'package.json'));
const express = require('express');
// The package's ESM build, as compat.test.mjs imports it (`import ... from '@dexterai/x402/server'`).
const cjsEntry = require.resolve('@dexterai/x402/server');
const esmEntry = cjsEntry.replace(/\.cjs$/, '.js');
const { x402AccessPass } = existsSync(esmEntry) ? await import(pathToFileURL(esmEntry).href) : require(cjsEntry);

const body = env('X402_BENCH_BODY');
const app = express();
app.use('/api', x402AccessPass({
  payTo: env('X402_PAY_TO'),
  network: env('X402_NETWORK'),
  asset: { address: env('X402_ASSET'), decimals: 6 },
  // Never called: a valid pass needs no facilitator.
  facilitatorUrl: 'http://127.0.0.1:9',
  tiers: { '5m': '0.05', '1h': '0.50', '24h': '2.00' },
  ratePerHour: '0.50',
  secret: env('X402_BENCH_SECRET'),
}), (req, res) => {
  res.type('text/plain').send(body);
});

const server = app.listen(0, '127.0.0.1', () => {
  const { port } = server.address();
  writeFileSync(readyFile, JSON.stringify({ port, pid: process.pid }));
});
for (const signal of ['SIGTERM', 'SIGINT']) {
  process.on(signal, () => {
    server.closeAllConnections();
    server.close(() => process.exit(0));
    setTimeout(() => process.exit(0), 2000).unref();
  });
}
