// Run-time settings from the page's query string, so one static build serves any deployment:
//   ?api=<API origin>        the Envoy listener in front of the API (default http://127.0.0.1:10000)
//   &path=/api/metrics       the protected endpoint the dashboard polls
//   &rpc=<Solana RPC URL>    where the wallet gets the mint, token accounts and a blockhash
//   &key=<64 hex>            a test wallet seed (default: a new random key for this tab)
// A real app would take the wallet from a wallet adapter instead of a key in the URL.

export const DEVNET = 'solana:EtWTRABZaYq6iMfeYKouRu166VU2xqa1';

const params = new URLSearchParams(window.location.search);

export const config = {
  api: (params.get('api') || 'http://127.0.0.1:10000').replace(/\/$/, ''),
  path: params.get('path') || '/api/metrics',
  rpc: params.get('rpc') || 'https://api.devnet.solana.com',
  network: params.get('network') || DEVNET,
  key: params.get('key') || '',
  pollMs: Number(params.get('poll') || 1000),
};

export const resourceUrl = `${config.api}${config.path}`;
