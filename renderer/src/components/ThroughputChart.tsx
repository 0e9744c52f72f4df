// The last hour of transfer volume as a small SVG: download filled, upload as a line.
import { useI18n } from '../i18n';

export interface ThroughputPoint {
  t: number;
  downBytes: number;
  upBytes: number;
}

const W = 900;
const H = 190;
const PAD = { left: 8, right: 8, top: 22, bottom: 22 };
const HOUR = 3600_000;

export function ThroughputChart({ points, now = Date.now() }: { points: ThroughputPoint[]; now?: number }) {
  const { t, fmt } = useI18n();
  const norm = points
    .map((p) => ({ ...p, t: p.t < 1e12 ? p.t * 1000 : p.t }))
    .filter((p) => p.t >= now - HOUR - 60_000)
    .sort((a, b) => a.t - b.t);
  const start = now - HOUR;
  const perSec = (bytesPerMinute: number) => bytesPerMinute / 60;
  const max = Math.max(1, ...norm.map((p) => Math.max(perSec(p.downBytes), perSec(p.upBytes))));
  const x = (ms: number) => PAD.left + ((Math.min(Math.max(ms, start), now) - start) / HOUR) * (W - PAD.left - PAD.right);
  const y = (v: number) => H - PAD.bottom - (v / max) * (H - PAD.top - PAD.bottom);
  const line = (sel: (p: ThroughputPoint) => number) => norm.map((p, i) => `${i ? 'L' : 'M'}${x(p.t).toFixed(1)},${y(perSec(sel(p))).toFixed(1)}`).join(' ');
  const down = line((p) => p.downBytes);
  const up = line((p) => p.upBytes);
  const area = norm.length ? `${down} L${x(norm[norm.length - 1]!.t).toFixed(1)},${y(0)} L${x(norm[0]!.t).toFixed(1)},${y(0)} Z` : '';
  const empty = norm.every((p) => p.downBytes === 0 && p.upBytes === 0);

  return (
    <figure className="chart">
      <svg viewBox={`0 0 ${W} ${H}`} role="img" aria-label={t('dashboard.throughput')}>
        {[0.25, 0.5, 0.75, 1].map((f) => (
          <line key={f} x1={PAD.left} x2={W - PAD.right} y1={y(max * f)} y2={y(max * f)} className="chart-grid" />
        ))}
        <line x1={PAD.left} x2={W - PAD.right} y1={y(0)} y2={y(0)} className="chart-axis" />
        {area ? <path d={area} className="chart-down-area" /> : null}
        {down ? <path d={down} className="chart-down" /> : null}
        {up ? <path d={up} className="chart-up" /> : null}
        <text x={PAD.left} y={14} className="chart-label">
          {empty ? '' : fmt.speed(max)}
        </text>
        <text x={PAD.left} y={H - 6} className="chart-label">
          {t('dashboard.chartStart')}
        </text>
        <text x={W - PAD.right} y={H - 6} className="chart-label" textAnchor="end">
          {t('dashboard.chartNow')}
        </text>
      </svg>
      <figcaption>
        <span className="legend legend-down" /> {t('dashboard.download')}
        <span className="legend legend-up" /> {t('dashboard.upload')}
        {empty ? <span className="muted"> · {t('dashboard.chartEmpty')}</span> : null}
      </figcaption>
    </figure>
  );
}
