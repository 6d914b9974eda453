import { useCallback, useEffect, useMemo, useState } from 'react';
import { useAccessPass } from '@dexterai/x402/react';
import { config, resourceUrl } from './config.js';
import { keypairWallet, testKeypair } from './wallet.js';
import Chart from './Chart.jsx';

const keypair = testKeypair(config.key);
const wallet = keypairWallet(keypair);
// Stable objects: the hook rebuilds its payment client when these change.
const wallets = { solana: wallet };
const rpcUrls = { [config.network]: config.rpc };

function short(address) {
  return address ? `${address.slice(0, 4)}…${address.slice(-4)}` : '';
}

function clock(seconds) {
  const h = Math.floor(seconds / 3600);
  const m = Math.floor((seconds % 3600) / 60);
  const s = seconds % 60;
  const mm = String(m).padStart(2, '0');
  const ss = String(s).padStart(2, '0');
  return h ? `${h}:${mm}:${ss}` : `${mm}:${ss}`;
}

function TierPicker({ tiers, ratePerHour, loading, purchasing, onBuy }) {
  if (loading && !tiers) return <p className="muted">Reading the prices from the API's 402…</p>;
  if (!tiers) return <p className="error">The API did not offer access passes.</p>;
  return (
    <div>
      <div className="tiers" data-testid="tiers">
        {tiers.map((tier) => (
          <button
            key={tier.id}
            type="button"
            className="tier"
            data-testid={`tier-${tier.id}`}
            disabled={purchasing}
            onClick={() => onBuy(tier.id)}
          >
            <span className="tier-label">{tier.label}</span>
            <span className="tier-price">${tier.price} USDC</span>
          </button>
        ))}
      </div>
      {ratePerHour && <p className="muted">or any duration at ${ratePerHour} USDC per hour</p>}
    </div>
  );
}

function PassCard({ pass, label }) {
  return (
    <div className="pass" data-testid="pass" data-tier={pass.tier} data-expires={pass.expiresAt}>
      <div>
        <div className="muted">Access pass</div>
        <div className="pass-tier">{label}</div>
      </div>
      <div>
        <div className="muted">Expires</div>
        <div>{new Date(pass.expiresAt).toLocaleTimeString()}</div>
      </div>
      <div>
        <div className="muted">Remaining</div>
        <div className="remaining" data-testid="remaining">{clock(pass.remainingSeconds)}</div>
      </div>
    </div>
  );
}

function LatestTable({ series }) {
  const rows = series.slice(-5).reverse();
  return (
    <table data-testid="latest">
      <thead>
        <tr><th>Time</th><th>Requests / s</th><th>Latency (ms)</th></tr>
      </thead>
      <tbody>
        {rows.map((p) => (
          <tr key={p.t}>
            <td>{new Date(p.t * 1000).toLocaleTimeString()}</td>
            <td>{p.requests.toFixed(1)}</td>
            <td>{p.latencyMs.toFixed(2)}</td>
          </tr>
        ))}
      </tbody>
    </table>
  );
}

export default function App() {
  const {
    tiers, customRatePerHour, isLoadingTiers, pass, isPassValid, purchasePass, isPurchasing, purchaseError,
    fetch: fetchWithPass,
  } = useAccessPass({ wallets, resourceUrl, rpcUrls });

  const [data, setData] = useState(null);
  const [polls, setPolls] = useState(0);
  const [pollError, setPollError] = useState(null);

  const buy = useCallback(async (tierId) => {
    try {
      await purchasePass(tierId);
    } catch {
      // shown from purchaseError
    }
  }, [purchasePass]);

  useEffect(() => {
    if (!isPassValid) return undefined;
    let stopped = false;
    async function poll() {
      try {
        const res = await fetchWithPass('');
        if (!res.ok) throw new Error(`the API answered ${res.status}`);
        const json = await res.json();
        if (!stopped) {
          setData(json);
          setPolls((n) => n + 1);
          setPollError(null);
        }
      } catch (e) {
        if (!stopped) setPollError(e.message);
      }
    }
    poll();
    const id = setInterval(poll, config.pollMs);
    return () => {
      stopped = true;
      clearInterval(id);
    };
  }, [isPassValid, fetchWithPass]);

  const tierLabel = useMemo(() => {
    if (!pass) return '';
    return tiers?.find((t) => t.id === pass.tier)?.label || pass.tier;
  }, [pass, tiers]);

  return (
    <main>
      <header>
        <div>
          <h1>Premium market dashboard</h1>
          <p className="muted">
            Live API metrics, unlocked with an x402 access pass paid in USDC on Solana devnet.
          </p>
        </div>
        <div className="wallet" data-testid="wallet" title={keypair.publicKey.toBase58()}>
          <div className="muted">Test wallet</div>
          <code>{short(keypair.publicKey.toBase58())}</code>
        </div>
      </header>

      <section className="card">
        {isPassValid ? (
          <PassCard pass={pass} label={tierLabel} />
        ) : (
          <>
            <h2>Choose a pass</h2>
            <TierPicker
              tiers={tiers}
              ratePerHour={customRatePerHour}
              loading={isLoadingTiers}
              purchasing={isPurchasing}
              onBuy={buy}
            />
          </>
        )}
        {isPurchasing && <p className="muted" data-testid="paying">Signing and paying…</p>}
        {purchaseError && <p className="error" data-testid="purchase-error">Payment failed: {purchaseError.message}</p>}
      </section>

      {isPassValid && (
        <section className="card">
          <div className="row">
            <h2>Requests per second</h2>
            <span className="muted" data-testid="polls" data-count={polls}>
              {data ? `updated ${polls} time${polls === 1 ? '' : 's'} · ${new Date(data.generatedAt * 1000).toLocaleTimeString()}` : 'loading…'}
            </span>
          </div>
          {data && <Chart series={data.series} />}
          {data && <LatestTable series={data.series} />}
          {data && (
            <p className="muted served" data-testid="served-for" data-tier={data.servedFor.tier || ''}>
              Served by the upstream for a <strong>{data.servedFor.tier}</strong> pass of{' '}
              <code>{short(data.servedFor.payer)}</code>; the pass itself never reached it.
            </p>
          )}
          {pollError && <p className="error" data-testid="poll-error">{pollError}</p>}
        </section>
      )}

      <footer className="muted">
        API <code>{resourceUrl}</code> · page origin <code>{window.location.origin}</code>
      </footer>
    </main>
  );
}
