// `npm run bench [-- name ...]`: runs the named benchmarks (all when none is named).
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

async function main(): Promise<void> {
  const asked = process.argv.slice(2).filter((a) => !a.startsWith('-'));
  const names = asked.length ? asked : Object.keys(BENCHES);
  for (const name of names) {
    const bench = BENCHES[name];
    if (!bench) {
      console.error(`unknown benchmark "${name}"; known: ${Object.keys(BENCHES).join(', ')}`);
      process.exitCode = 2;
      return;
    }
    console.log(`\n=== bench: ${name} ===`);
    await bench();
  }
}

main().catch((err) => {
  console.error(err);
  process.exitCode = 1;
});

export { BENCHES };
