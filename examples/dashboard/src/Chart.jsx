// A dependency-free SVG line chart of the `requests` series.

const W = 720;
const H = 220;
const PAD = { left: 44, right: 12, top: 12, bottom: 26 };

export default function Chart({ series }) {
  if (!series?.length) return null;
  const values = series.map((p) => p.requests);
  const lo = Math.floor(Math.min(...values) / 10) * 10;
  const hi = Math.ceil(Math.max(...values) / 10) * 10 || lo + 10;
  const x = (i) => PAD.left + (i * (W - PAD.left - PAD.right)) / Math.max(1, series.length - 1);
  const y = (v) => PAD.top + ((hi - v) * (H - PAD.top - PAD.bottom)) / Math.max(1, hi - lo);
  const line = series.map((p, i) => `${x(i).toFixed(1)},${y(p.requests).toFixed(1)}`).join(' ');
  const area = `${x(0)},${H - PAD.bottom} ${line} ${x(series.length - 1)},${H - PAD.bottom}`;
  const ticks = [lo, (lo + hi) / 2, hi];
  const last = series[series.length - 1];
  return (
    <svg
      viewBox={`0 0 ${W} ${H}`}
      className="chart"
      role="img"
      aria-label="requests per second, last 30 seconds"
      data-testid="chart"
      data-points={series.length}
      data-last={last.t}
    >
      {ticks.map((v) => (
        <g key={v}>
          <line x1={PAD.left} x2={W - PAD.right} y1={y(v)} y2={y(v)} className="grid" />
          <text x={PAD.left - 6} y={y(v) + 4} textAnchor="end" className="axis">{Math.round(v)}</text>
        </g>
      ))}
      <polygon points={area} className="area" />
      <polyline points={line} className="line" />
      <circle cx={x(series.length - 1)} cy={y(last.requests)} r="4" className="dot" />
      <text x={PAD.left} y={H - 6} className="axis">−30 s</text>
      <text x={W - PAD.right} y={H - 6} textAnchor="end" className="axis">now</text>
    </svg>
  );
}
