// Webhook intake throughput: every request a distinct, HMAC-signed SePay payment, on disk before
// its 2xx (a group commit, then an fsync of the WAL shared with the commits around it); then the
// same listener fed duplicates only; the baseline is GET /healthz on the same listener (HTTP +
// express, no auth, no database), measured in the same run.
import autocannon from 'autocannon';
import { makeTransaction, sign } from '../sandbox/sepay/sender';
import { query } from '../test/helpers/db';
import { startHost } from '../test/helpers/host';

const SECRET = 'bench-hmac-' + Math.random().toString(36).slice(2);
const DURATION = Number(process.env.BENCH_DURATION ?? 10);
const CONNECTIONS = Number(process.env.BENCH_CONNECTIONS ?? 20);

interface Figures {
  name: string;
  rps: number;
  p50: number;
  p99: number;
  non2xx: number;
  errors: number;
}

async function fire(name: string, url: string, opts: Partial<autocannon.Options>): Promise<Figures> {
  const r = await autocannon({ url, connections: CONNECTIONS, duration: DURATION, ...opts });
  return { name, rps: Math.round(r.requests.average), p50: r.latency.p50, p99: r.latency.p99, non2xx: r.non2xx, errors: r.errors };
}

export async function run(): Promise<Figures[]> {
  const host = await startHost({ env: { SEPAY_HMAC_SECRET: SECRET, DRIVESHIP_WEBHOOK_RATE_LIMIT_PER_MIN: '1000000', DRIVESHIP_LOG_LEVEL: 'warn' } });
  try {
    const base = host.webhook!.replace('/webhooks/sepay', '');
    const baseline = await fire('baseline GET /healthz', base + '/healthz', {});

    const signed = () => {
      const body = JSON.stringify(makeTransaction({ content: 'bench payment', transferAmount: 10000 }));
      return { body, headers: { 'content-type': 'application/json', ...sign(body, { hmacSecret: SECRET }) } };
    };
    const distinct = await fire('distinct payments (durable)', host.webhook!, {
      method: 'POST',
      requests: [
        {
          setupRequest: (req: any) => {
            const s = signed();
            return { ...req, method: 'POST', body: s.body, headers: s.headers };
          },
        },
      ],
    });
    // Requests still in flight when the clock ran out commit a moment later.
    await new Promise((r) => setTimeout(r, 500));
    const stored = query(host.dataDir, 'SELECT count(*) AS n FROM payments')[0].n as number;

    const dup = signed();
    await fetch(host.webhook!, { method: 'POST', body: dup.body, headers: dup.headers });
    const withDup = query(host.dataDir, 'SELECT count(*) AS n FROM payments')[0].n as number;
    const duplicates = await fire('duplicates only', host.webhook!, { method: 'POST', body: dup.body, headers: dup.headers });
    await new Promise((r) => setTimeout(r, 500));
    const after = query(host.dataDir, 'SELECT count(*) AS n FROM payments')[0].n as number;

    const rows = [baseline, distinct, duplicates];
    console.log('\n| run | req/s | p50 ms | p99 ms | non-2xx | errors | ratio to baseline |');
    console.log('|---|---:|---:|---:|---:|---:|---:|');
    for (const r of rows) console.log(`| ${r.name} | ${r.rps} | ${r.p50} | ${r.p99} | ${r.non2xx} | ${r.errors} | ${(r.rps / baseline.rps).toFixed(2)} |`);
    const goal = distinct.rps >= 1000 && distinct.p99 < 50;
    console.log(`\npayments stored by the distinct run: ${stored}; added by the duplicate run: ${after - withDup}`);
    console.log(`goal (>= 1000 distinct payments/s, p99 < 50 ms): ${goal ? 'MET' : 'NOT MET'}`);
    console.log(JSON.stringify({ bench: 'webhook', connections: CONNECTIONS, durationSec: DURATION, baseline, distinct, duplicates, stored, duplicateAdded: after - withDup, goalMet: goal }));
    return rows;
  } finally {
    await host.stop();
  }
}
