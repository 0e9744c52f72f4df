// Alerts: raised once (not once per failing delivery), shown until cleared.
import type { Bus } from './bus';

export interface Alert {
  code: string;
  level: 'info' | 'warning' | 'error';
  message: string;
  action: string | null;
  since: number;
}

/** Where alerts are kept (the store's AlertsRepo); platform sits below the store, hence the interface. */
export interface AlertStore {
  isOpen(code: string): boolean;
  open(code: string, level: Alert['level'], message: string, action: string | null, at: number): void;
  clear(code: string, at: number): boolean;
  listOpen(): { code: string; level: Alert['level']; message: string; action: string | null; raised_at: number }[];
}

export class Alerts {
  constructor(private readonly repo: AlertStore, private readonly bus: Bus) {}

  raise(code: string, level: Alert['level'], message: string, action: string | null = null): void {
    if (this.repo.isOpen(code)) return;
    this.repo.open(code, level, message, action, Date.now());
    this.bus.emit('alert', { code, level, message, raised: true });
  }

  /** A read, not a write: callers clear on every matching event, and almost always nothing is open. */
  clear(code: string): void {
    if (!this.repo.isOpen(code)) return;
    if (this.repo.clear(code, Date.now())) this.bus.emit('alert', { code, level: 'info', message: '', raised: false });
  }

  isOpen(code: string): boolean {
    return this.repo.isOpen(code);
  }

  open(): Alert[] {
    return this.repo.listOpen().map((r) => ({ code: r.code, level: r.level, message: r.message, action: r.action, since: r.raised_at }));
  }
}
