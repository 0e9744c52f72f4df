// Transfer threads run below the main thread's priority. On a busy machine (a laptop's two cores,
// a catalogue of thousands of files) the bytes can wait a few milliseconds; the main thread cannot:
// it answers the webhook, the owner's window and the tray. Linux keeps a nice value per thread
// (setpriority with a thread id), so each transfer thread lowers only itself, once, when it
// starts. Elsewhere Node has no such call: there the threads keep the process's priority.
import { readlinkSync } from 'node:fs';
import { getPriority, setPriority } from 'node:os';

/** How far below the main thread (nice 1..19). DRIVESHIP_TRANSFER_NICE=0 turns it off. */
export const DEFAULT_TRANSFER_NICE = 10;

/** Lowers the calling thread's priority: the nice value set, or null where it cannot be. */
export function lowerThisThread(env: NodeJS.ProcessEnv = process.env): number | null {
  if (process.platform !== 'linux') return null;
  const raw = env.DRIVESHIP_TRANSFER_NICE;
  const nice = raw === undefined || raw === '' ? DEFAULT_TRANSFER_NICE : Number(raw);
  if (!Number.isInteger(nice) || nice <= 0 || nice > 19) return null;
  try {
    // "/proc/thread-self" links to "<pid>/task/<tid>".
    const tid = Number(readlinkSync('/proc/thread-self').split('/').pop());
    if (!Number.isSafeInteger(tid) || tid <= 0) return null;
    // Only ever lower: a process the owner started below normal stays where it is.
    const current = getPriority(tid);
    if (current >= nice) return current;
    setPriority(tid, nice);
    return nice;
  } catch {
    return null; // no /proc, or a policy that forbids it: the usual priority
  }
}
