// Child-process entry for the machine-stop probe (see ./machine-stops.ts). The parent starts one per
// core through `chrt -f` and `taskset`, so this loop runs pinned, at a real-time priority that
// preempts every ordinary thread of the guest at once. Then a timer that fires late can only
// mean that the core itself did not run: the hypervisor held the virtual CPU, not our scheduler.
// It prints "ready", then, when its stdin closes, one JSON line of [wall ms when due, ms late].
// A 4 ms period costs about 2% of a core here (1 ms cost 3.6%), and a stop of 10 ms still shows.

const PERIOD_MS = 4;
const late: [number, number][] = [];
let last = performance.now();
let timer: NodeJS.Timeout | null = null;

function tick(): void {
  const t = performance.now();
  const behind = t - last - PERIOD_MS;
  if (behind >= 4) late.push([Math.round((performance.timeOrigin + last + PERIOD_MS) * 10) / 10, Math.round(behind * 10) / 10]);
  last = t;
  timer = setTimeout(tick, PERIOD_MS);
}

process.stdin.on('data', () => undefined);
process.stdin.on('end', () => {
  if (timer) clearTimeout(timer);
  process.stdout.write(`${JSON.stringify(late)}\n`, () => process.exit(0));
});
process.stdout.write('ready\n');
timer = setTimeout(tick, PERIOD_MS);
