// The owner's after-sale actions on an order (revoke, move to a corrected address) and the
// checkpoints of their Drive effects, one row per delivery. The action is recorded before any
// Drive call, so a restart finishes what was begun.
import type { AccessActionDto, AccessActionStepDto } from '../core/contract';
import { newId } from '../core/ids';
import { prep, type Db } from './db';

export interface AccessActionRow {
  id: string;
  kind: 'revoke' | 'move';
  order_id: string;
  actor: string;
  reason: string | null;
  old_email: string;
  new_email: string | null;
  state: 'running' | 'done';
  attempts: number;
  next_at: number | null;
  error: string | null;
  created_at: number;
  finished_at: number | null;
}

export interface AccessStepRow {
  action_id: string;
  delivery_id: string;
  folder_id: string | null;
  permission_id: string | null;
  private_copy: number;
  new_permission_id: string | null;
  shared: number;
  unshared: number;
  trashed: number;
  notify_state: string | null;
  message_id: string | null;
  outcome: 'revoked' | 'kept' | 'none' | null;
}

const stepDto = (s: AccessStepRow): AccessActionStepDto => ({
  deliveryId: s.delivery_id,
  outcome: s.outcome,
  shared: s.shared === 1,
  unshared: s.unshared === 1,
  trashed: s.trashed === 1,
  notifyState: s.notify_state,
});

export class AccessActionsRepo {
  constructor(private readonly db: Db) {}

  /** Records the intent and a checkpoint row per delivery; the caller runs it inside a transaction. */
  create(a: { kind: 'revoke' | 'move'; orderId: string; actor: string; reason: string | null; oldEmail: string; newEmail: string | null }, steps: { deliveryId: string; folderId: string | null; permissionId: string | null; privateCopy: boolean }[]): string {
    const id = newId('act');
    prep(this.db, 'INSERT INTO access_actions (id, kind, order_id, actor, reason, old_email, new_email, created_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?)').run(
      id, a.kind, a.orderId, a.actor, a.reason, a.oldEmail, a.newEmail, Date.now(),
    );
    const ins = prep(this.db, 'INSERT INTO access_action_steps (action_id, delivery_id, folder_id, permission_id, private_copy) VALUES (?, ?, ?, ?, ?)');
    for (const s of steps) ins.run(id, s.deliveryId, s.folderId, s.permissionId, s.privateCopy ? 1 : 0);
    return id;
  }

  get(id: string): AccessActionRow | undefined {
    return prep<[string], AccessActionRow>(this.db, 'SELECT * FROM access_actions WHERE id = ?').get(id);
  }

  running(): AccessActionRow[] {
    return prep<[], AccessActionRow>(this.db, "SELECT * FROM access_actions WHERE state = 'running' ORDER BY created_at").all();
  }

  runningFor(orderId: string): AccessActionRow | undefined {
    return prep<[string], AccessActionRow>(this.db, "SELECT * FROM access_actions WHERE order_id = ? AND state = 'running' LIMIT 1").get(orderId);
  }

  steps(actionId: string): AccessStepRow[] {
    return prep<[string], AccessStepRow>(this.db, 'SELECT * FROM access_action_steps WHERE action_id = ? ORDER BY delivery_id').all(actionId);
  }

  step(actionId: string, deliveryId: string): AccessStepRow {
    return prep<[string, string], AccessStepRow>(this.db, 'SELECT * FROM access_action_steps WHERE action_id = ? AND delivery_id = ?').get(actionId, deliveryId)!;
  }

  /** Marks one checkpoint of a step (column names are fixed here, never from input). */
  mark(actionId: string, deliveryId: string, what: 'shared' | 'unshared' | 'trashed'): void {
    const sql = {
      shared: 'UPDATE access_action_steps SET shared = 1 WHERE action_id = ? AND delivery_id = ?',
      unshared: 'UPDATE access_action_steps SET unshared = 1 WHERE action_id = ? AND delivery_id = ?',
      trashed: 'UPDATE access_action_steps SET trashed = 1 WHERE action_id = ? AND delivery_id = ?',
    }[what];
    prep(this.db, sql).run(actionId, deliveryId);
  }

  setNewPermission(actionId: string, deliveryId: string, permissionId: string): void {
    prep(this.db, 'UPDATE access_action_steps SET new_permission_id = ? WHERE action_id = ? AND delivery_id = ?').run(permissionId, actionId, deliveryId);
  }

  setOutcome(actionId: string, deliveryId: string, outcome: 'revoked' | 'kept' | 'none'): void {
    prep(this.db, 'UPDATE access_action_steps SET outcome = ? WHERE action_id = ? AND delivery_id = ?').run(outcome, actionId, deliveryId);
  }

  setNotify(actionId: string, deliveryId: string, state: string, messageId: string | null): void {
    prep(this.db, 'UPDATE access_action_steps SET notify_state = ?, message_id = COALESCE(?, message_id) WHERE action_id = ? AND delivery_id = ?').run(state, messageId, actionId, deliveryId);
  }

  failed(id: string, error: string, nextAt: number): void {
    prep(this.db, 'UPDATE access_actions SET attempts = attempts + 1, error = ?, next_at = ? WHERE id = ?').run(error, nextAt, id);
  }

  finish(id: string): void {
    prep(this.db, "UPDATE access_actions SET state = 'done', error = NULL, next_at = NULL, finished_at = ? WHERE id = ?").run(Date.now(), id);
  }

  forOrder(orderId: string): AccessActionDto[] {
    return prep<[string], AccessActionRow>(this.db, 'SELECT * FROM access_actions WHERE order_id = ? ORDER BY created_at').all(orderId).map((r) => this.toDto(r));
  }

  forEmail(email: string): AccessActionDto[] {
    return prep<[string, string], AccessActionRow>(this.db, 'SELECT * FROM access_actions WHERE old_email = ? OR new_email = ? ORDER BY created_at').all(email, email).map((r) => this.toDto(r));
  }

  toDto(r: AccessActionRow): AccessActionDto {
    return {
      id: r.id,
      kind: r.kind,
      orderId: r.order_id,
      actor: r.actor,
      reason: r.reason,
      oldEmail: r.old_email,
      newEmail: r.new_email,
      state: r.state,
      attempts: r.attempts,
      nextAt: r.next_at,
      error: r.error,
      createdAt: r.created_at,
      finishedAt: r.finished_at,
      steps: this.steps(r.id).map(stepDto),
    };
  }
}
