// How a failed step is handled: retried later, paused until the owner (or the condition) clears,
// or failed for the owner to act on.
export type StepErrorKind = 'transient' | 'pause' | 'permanent';

export class StepError extends Error {
  constructor(
    readonly kind: StepErrorKind,
    readonly code: string,
    message: string,
    readonly retryAfterMs?: number,
  ) {
    super(message);
    this.name = 'StepError';
  }
}

export function asStepError(err: unknown): StepError {
  if (err instanceof StepError) return err;
  const e = err as { code?: string; message?: string; name?: string };
  if (e?.name === 'AbortError') return new StepError('transient', 'CANCELLED', 'stopped');
  if (e?.code === 'ENOSPC') return new StepError('pause', 'DISK_FULL', 'The disk is full: free some space, then resume');
  // Unknown errors are retried: a bug that always throws ends in `failed` after the retry budget.
  return new StepError('transient', e?.code ?? 'UNEXPECTED', e?.message ?? String(err));
}

/** Full-jitter exponential backoff (AWS style), at least what the server asked for. */
export function backoffMs(attempt: number, retryAfterMs = 0, baseMs = 2_000, capMs = 5 * 60_000, rand = Math.random): number {
  const ceiling = Math.min(capMs, baseMs * 2 ** Math.max(0, attempt - 1));
  return Math.max(retryAfterMs, Math.round(rand() * ceiling));
}
