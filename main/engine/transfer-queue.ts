// The seam between the engine and whatever moves the bytes. The engine (library, supervisor)
// talks only to this interface; today's implementation runs transfers in an in-process Piscina
// pool (./piscina-queue.ts), a later one hands them to BullMQ so `driveship worker` processes on
// other machines run them. Everything that crosses the seam is plain JSON:
//
// - Every transfer has a stable id chosen by the engine (e.g. `fetch:<product>:<version>:<path>`):
//   enqueueing an id that is already queued or running changes nothing, so a restart can enqueue
//   again what it does not know the fate of, and a queue that outlives the engine (Redis) can be
//   reconciled by id.
// - The task is a TransferTask from the core protocol; a Piscina queue adds its MessagePort.
// - What the task reports comes back as events, each carrying the transfer id, the run it belongs
//   to (`run`, counting enqueues of that id) and a sequence number within the run, so the engine
//   can apply each exactly once and ignore what a queue repeats or a stale run sends late.
// - Cancellation is cooperative: a queued transfer ends at once with CANCELLED; a running one is
//   asked to stop and ends with its own result.
import type { TaskControl, TaskEvent, TaskResult, TransferKind, TransferTask } from '../core/transfer-protocol';
import type { TransferLimits } from './transfer-policy';

export type { TransferKind, TransferLimits };

export interface TransferSpec {
  /** Stable id: enqueueing it twice is one transfer. */
  id: string;
  task: TransferTask;
  /** Larger runs first (VIP = 1). */
  priority: number;
  /** Earlier runs first within a priority (payment time). */
  since: number;
  /** Fairness group: the product version it belongs to. */
  group: string;
}

interface EventBase {
  id: string;
  /** Which enqueue of this id the event belongs to (1, 2, ...). */
  run: number;
  /** Order of the event within its run, from 1. */
  seq: number;
}

export type TransferEvent =
  | (EventBase & { type: 'started' })
  | (EventBase & TaskEvent)
  | (EventBase & { type: 'result'; result: TaskResult<unknown> });

export interface TransferStats {
  running: Record<TransferKind, number>;
  queued: number;
  /** Bytes moved since start, from progress events. */
  bytesDown: number;
  bytesUp: number;
  /** Each origin host's adaptive connection window (./host-window.ts) and the connections in use. */
  hosts: { host: string; window: number; ceiling: number; inUse: number; bytesPerSec: number }[];
}

export interface TransferQueue {
  /**
   * Whether an upload may follow a download that is still running (both run where the bytes are,
   * told of the durable prefix by `available` controls). When false, an upload starts once its
   * download has finished and the download hashes the file itself.
   */
  readonly overlaps: boolean;
  /** Queues a transfer; returns false when this id is already queued or running. */
  enqueue(spec: TransferSpec): boolean;
  /** Cancels a queued or running transfer (cooperatively); false when the id is unknown. */
  cancel(id: string): boolean;
  setPriority(id: string, priority: number): boolean;
  /** New limits apply at once: more may start, bandwidth shares of running transfers change. */
  setLimits(limits: TransferLimits): void;
  pauseKind(kind: TransferKind): void;
  resumeKind(kind: TransferKind): void;
  isPaused(kind: TransferKind): boolean;
  /** Hands a running upload a fresh access token; false when it is not running. */
  refreshToken(id: string, accessToken: string): boolean;
  /**
   * Sends a control to a transfer (an upload following its download gets `available`). A queued
   * transfer gets the latest control of each type when it starts; false when the id is unknown.
   */
  control(id: string, control: TaskControl): boolean;
  has(id: string): boolean;
  /** Every event of every transfer; returns the function that stops listening. */
  subscribe(listener: (e: TransferEvent) => void): () => void;
  stats(): TransferStats;
  /** The limits in force. */
  limits(): TransferLimits;
  /** Cancels everything (queued transfers end with CANCELLED) and releases the workers. */
  close(): Promise<void>;
}
