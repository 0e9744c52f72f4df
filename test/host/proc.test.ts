// Secrets never in a command line or an environment listing: a real `driveship serve` gets secrets
// through the settings API, runs orders to delivery (worker threads, SMTP with a password, Drive),
// and all the while /proc/<pid>/cmdline and /proc/<pid>/environ of the host, each of its threads
// (/proc/<pid>/task/<tid>/...) and every process it starts are sampled. No secret stored through
// the settings API may appear in any of them; the variables the test itself passed to the host
// are expected in the host's own environ (which proves the check reads it), and nowhere else.
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { after, before, describe, it } from 'node:test';
import { startSandbox, type Sandbox } from '../../sandbox/index';
import { makeTransaction, SePaySender } from '../../sandbox/sepay/sender';
import { startHost, type HostHandle } from '../helpers/host';
import { descendants, procInfo } from '../helpers/raw';

const r = () => randomBytes(12).toString('hex');
const FROM_SETTINGS = {
  sepayHmacSecret: `procHmac${r()}`,
  sepayApiToken: `procApiToken${r()}`,
  googleClientSecret: `procGoogle${r()}`,
  smtpPassword: `procSmtp${r()}`,
};
const ENV_KEY = `procEnvKey${r()}`;
const ACCOUNT = '0123456789';

interface Sample {
  pid: number;
  where: string;
  cmdline: string;
  environ: string;
}

describe('no secret in any process listing', { skip: process.platform !== 'linux' && 'needs /proc' }, () => {
  let sandbox: Sandbox;
  let host: HostHandle;
  const samples = new Map<string, Sample>();
  let sampler: NodeJS.Timeout | null = null;
  let maxThreads = 0;
  const seenChildren = new Set<number>();

  const sample = () => {
    const root = host.proc.pid!;
    for (const pid of [root, ...descendants(root)]) {
      if (pid !== root) seenChildren.add(pid);
      const info = procInfo(pid);
      if (pid === root) maxThreads = Math.max(maxThreads, info.tids.length);
      const add = (where: string, cmdline: string, environ: string) => {
        const key = `${where}\n${cmdline}\n${environ}`;
        if (!samples.has(key)) samples.set(key, { pid, where, cmdline, environ });
      };
      add(`pid ${pid}`, info.cmdline, info.environ);
      for (const t of info.threads) add(`pid ${pid} thread ${t.tid} (${t.comm})`, t.cmdline, t.environ);
    }
  };

  before(async () => {
    sandbox = await startSandbox({ sepayApiToken: FROM_SETTINGS.sepayApiToken });
    const { SEPAY_API_TOKEN: _notByEnv, ...env } = sandbox.env;
    host = await startHost({ env: { ...env, SEPAY_API_KEY: ENV_KEY, DRIVESHIP_RECEIVING_ACCOUNTS: ACCOUNT, DRIVESHIP_BANK_BIN: '970415', DRIVESHIP_BANK_ACCOUNT: ACCOUNT } });
    sample();
    sampler = setInterval(sample, 25);
  });
  after(async () => {
    if (sampler) clearInterval(sampler);
    await host?.stop();
    await sandbox?.close();
  });

  it('holds no settings secret in cmdline or environ of the host, its threads or its children', async () => {
    const put = await host.api('PUT', '/api/v1/settings', { ...FROM_SETTINGS, smtpUser: 'shop-owner' });
    assert.equal(put.status, 200, JSON.stringify(put.body));

    // Work that starts threads and connections: a product fetched and uploaded, mail with a password.
    const files = ['a.bin', 'b.bin'].map((p, i) => {
      const f = sandbox.origin.addFile(`proc/${p}`, { size: 2 * 1024 * 1024, seed: `proc-${i}` });
      return { path: p, url: f.url, size: f.size, sha256: f.sha256 };
    });
    const manifestUrl = sandbox.origin.addManifest('proc.json', files);
    const p = await host.api('POST', '/api/v1/products', { name: 'Proc course', priceVnd: 100000, source: { kind: 'http-manifest', manifestUrl }, delivery: 'private-copy' });
    assert.equal(p.status, 201, JSON.stringify(p.body));
    const sender = new SePaySender({ url: host.webhook!, hmacSecret: FROM_SETTINGS.sepayHmacSecret });
    const ids: string[] = [];
    try {
      for (let i = 0; i < 3; i++) {
        const o = await host.api('POST', '/api/v1/orders', { customerEmail: `proc${i}@example.com`, items: [{ productId: p.body.id }] });
        assert.equal(o.status, 201);
        ids.push(o.body.id);
        const res = await sender.send(makeTransaction({ accountNumber: ACCOUNT, content: `${o.body.code} ck`, transferAmount: o.body.amountVnd, code: null }));
        assert.equal(res.status, 200, res.body);
      }
    } finally {
      await sender.close();
    }
    const until = Date.now() + 60_000;
    for (;;) {
      const states = await Promise.all(ids.map(async (id) => (await host.api('GET', `/api/v1/orders/${id}`)).body.deliveries.map((d: { state: string }) => d.state)));
      if (states.flat().every((s: string) => s === 'delivered')) break;
      assert.ok(Date.now() < until, `deliveries did not finish: ${JSON.stringify(states)}\n${host.output().slice(-2000)}`);
      await new Promise((res) => setTimeout(res, 200));
    }
    assert.ok(sandbox.smtp.messages().length >= 3, 'mail went out (with the SMTP password)');
    assert.ok(sandbox.smtp.counters.authentications >= 1, 'SMTP authenticated with the stored password');
    sample();
    if (sampler) clearInterval(sampler);
    sampler = null;

    const all = [...samples.values()];
    const root = host.proc.pid!;
    assert.ok(maxThreads > 1, 'threads were sampled');
    assert.ok(all.some((s) => s.pid === root && s.environ.includes('DRIVESHIP_DATA_DIR=')), 'environ is readable (the check is real)');
    assert.ok(all.some((s) => s.pid === root && s.environ.includes(ENV_KEY)), "the host's own environ holds what the test passed");

    const leaks: string[] = [];
    for (const s of all) {
      for (const [name, secret] of Object.entries(FROM_SETTINGS)) {
        if (s.cmdline.includes(secret)) leaks.push(`${name} in cmdline of ${s.where}`);
        if (s.environ.includes(secret)) leaks.push(`${name} in environ of ${s.where}`);
      }
      if (s.cmdline.includes(ENV_KEY)) leaks.push(`SEPAY_API_KEY in cmdline of ${s.where}`);
      if (s.cmdline.includes(host.token) || s.environ.includes(host.token)) leaks.push(`admin token in ${s.where}`);
      // A child must not inherit the host's secrets (a tunnel child gets only its own token).
      if (s.pid !== root && s.environ.includes(ENV_KEY)) leaks.push(`SEPAY_API_KEY inherited by child ${s.where}: ${s.cmdline.split('\n')[0]}`);
    }
    assert.deepEqual(leaks, []);
    console.log(`sampled ${all.length} distinct listings; up to ${maxThreads} threads; children seen: ${seenChildren.size}`);
  });
});
