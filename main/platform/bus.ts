// In-process notifications after a commit: the event stream, the tray, notifications and the
// engine listen here. Emitted only after the data is on disk, never inside a transaction.
import { EventEmitter } from 'node:events';

export interface BusEvents {
  payment: { paymentId: string; orderId: string | null; match: string; amountVnd: number };
  order: { orderId: string; status: string };
  delivery: { deliveryId: string; orderId: string; state: string; detail?: Record<string, unknown> };
  progress: { deliveryId: string; bytes: number; total: number | null; phase: string; bytesPerSec: number };
  alert: { code: string; level: 'info' | 'warning' | 'error'; message: string; raised: boolean };
  settings: { keys: string[] };
  /** A product's source was checked or its preparation moved on. */
  product: { productId: string; state: string };
  /** A product update reaching past buyers moved on (its state or one buyer's). */
  update: { updateId: string; productId: string; state: string };
}

export class Bus {
  private readonly ee = new EventEmitter();
  constructor() {
    this.ee.setMaxListeners(100);
  }
  emit<K extends keyof BusEvents>(type: K, payload: BusEvents[K]): void {
    this.ee.emit(type, payload);
  }
  on<K extends keyof BusEvents>(type: K, fn: (payload: BusEvents[K]) => void): () => void {
    this.ee.on(type, fn);
    return () => this.ee.off(type, fn);
  }
}
