// `npm run bench [-- name ...]`: runs the named benchmarks (all when none is named).
import { spawn } from 'node:child_process';

const BENCHES: Record<string, () => Promise<unknown>> = {
  webhook: () => import('./webhook.js').then((m) => m.run()),
  'transfer-distinct': () => import('./transfer-distinct.js').then((m) => m.run()),
  'transfer-fanout': () => import('./transfer-fanout.js').then((m) => m.run()),
  'transfer-catalogue': () => import('./transfer-catalogue.js').then((m) => m.run()),
  'transfer-rss': () => import('./transfer-rss.js').then((m) => m.run()),
  'transfer-latency': () => import('./transfer-latency.js').then((m) => m.run()),
  'catalogue-prepare': () => import('./catalogue-prepare.js').then((m) => m.run()),
  'ui-deliveries': () => import('./ui-deliveries.js').then((m) => m.run()),
  'scale-out': () => import('./scale-out.js').then((m) => m.run()),
};

/**
 * Several benchmarks run one after the other, each in a process of its own: a benchmark's figures
 * must not depend on which ran before it in the same process (its heap, the code V8 has compiled
 * by then, leftover handles).
 */
function runAlone(name: string): Promise<number> {
  return new Promise((resolve) => {
    const child = spawn(process.execPath, [...process.execArgv, __filename, name], { stdio: 'inherit' });
    child.on('exit', (code, signal) => resolve(code ?? (signal ? 1 : 0)));
  });
}

async function main(): Promise<void> {
  const asked = process.argv.slice(2).filter((a) => !a.startsWith('-'));
  const names = asked.length ? asked : Object.keys(BENCHES);
  const unknown = names.filter((n) => !BENCHES[n]);
  if (unknown.length) {
    console.error(`unknown benchmark "${unknown[0]}"; known: ${Object.keys(BENCHES).join(', ')}`);
    process.exitCode = 2;
    return;
  }
  if (names.length > 1) {
    for (const name of names) {
      const code = await runAlone(name);
      if (code !== 0) process.exitCode = code;
    }
    return;
  }
  console.log(`\n=== bench: ${names[0]} ===`);
  await BENCHES[names[0]!]!();
}

main().catch((err) => {
  console.error(err);
  process.exitCode = 1;
});

export { BENCHES };
