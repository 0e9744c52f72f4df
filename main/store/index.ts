import { chmodSync, existsSync, mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { loadOrCreateSecretKey, readSecretKey, type KeyProtector, type SecretKeyResult } from '../platform/secret-key';
import { AccessRepo } from './access';
import { AccessActionsRepo } from './access-actions';
import { AlertsRepo } from './alerts';
import { AuditRepo } from './audit';
import { inTransaction, openDatabase, openReadOnly, type Db, type OpenOptions } from './db';
import { DeliveriesRepo } from './deliveries';
import { DriveUsageRepo } from './drive-usage';
import { DiagnosticsRepo } from './diagnostics';
import { JobRunsRepo } from './job-runs';
import { LibraryRepo } from './library';
import { OrdersRepo } from './orders';
import { PaymentsRepo } from './payments';
import { ProductsRepo } from './products';
import { SettingsRepo } from './settings';
import { ThroughputRepo } from './throughput';
import { UpdatesRepo } from './updates';
import { WebhookLogRepo } from './webhook-log';
import { WalCheckpointer } from './checkpointer';
import { GroupCommit } from './group-commit';
import { WalSync } from './wal-sync';
import { WriteBehind } from './write-behind';

export class Store {
  readonly settings: SettingsRepo;
  readonly products: ProductsRepo;
  readonly orders: OrdersRepo;
  readonly payments: PaymentsRepo;
  readonly webhookLog: WebhookLogRepo;
  readonly deliveries: DeliveriesRepo;
  readonly audit: AuditRepo;
  readonly library: LibraryRepo;
  readonly alerts: AlertsRepo;
  readonly jobRuns: JobRunsRepo;
  readonly throughput: ThroughputRepo;
  readonly access: AccessRepo;
  readonly accessActions: AccessActionsRepo;
  readonly updates: UpdatesRepo;
  readonly driveUsage: DriveUsageRepo;
  /** Checkpoint writes that may land a little late (see write-behind.ts for what qualifies). */
  readonly later: WriteBehind;
  /**
   * Writes that must be on disk before the caller goes on (a payment before its 2xx, an id before the
   * Drive call that uses it), committed with the others of the same turn: one fsync for all.
   */
  readonly commits: GroupCommit;
  /** Commits without an fsync on the main thread, and the fsync of the WAL that makes them durable. */
  readonly wal: WalSync;
  readonly diagnostics: DiagnosticsRepo;
  /** The WAL's checkpoints on a thread of their own (checkpointer.ts); openStore starts it. */
  checkpointer: WalCheckpointer | null = null;

  /** The data folder's secret key, once openStore has loaded it. */
  secretKey: SecretKeyResult | null = null;

  constructor(readonly db: Db, readonly path: string) {
    this.settings = new SettingsRepo(db);
    this.products = new ProductsRepo(db);
    this.orders = new OrdersRepo(db);
    this.payments = new PaymentsRepo(db);
    this.webhookLog = new WebhookLogRepo(db);
    this.deliveries = new DeliveriesRepo(db);
    this.audit = new AuditRepo(db);
    this.library = new LibraryRepo(db);
    this.alerts = new AlertsRepo(db);
    this.jobRuns = new JobRunsRepo(db);
    this.throughput = new ThroughputRepo(db);
    this.access = new AccessRepo(db);
    this.accessActions = new AccessActionsRepo(db);
    this.updates = new UpdatesRepo(db);
    this.driveUsage = new DriveUsageRepo(db);
    this.wal = new WalSync(db, path === ':memory:' || path === '' ? null : path);
    this.later = new WriteBehind(db, this.wal);
    this.commits = new GroupCommit(db, this.wal);
    this.diagnostics = new DiagnosticsRepo(db);
  }

  /** Runs `fn` in one transaction (a savepoint when already inside one). */
  tx<T>(fn: () => T): T {
    return inTransaction(this.db, fn);
  }

  close(): void {
    if (this.db.open) this.later.flush();
    this.checkpointer?.close();
    if (this.db.open) this.db.close();
    this.wal.close();
  }
}

export function ensureDataDir(dataDir: string): void {
  mkdirSync(dataDir, { recursive: true, mode: 0o700 });
  chmodSync(dataDir, 0o700);
}

export interface OpenStoreOptions extends OpenOptions {
  /** The OS keystore that seals the secret key file (the desktop's safeStorage). */
  keyProtector?: KeyProtector | null;
}

/** Opens (and migrates) the database, with secret settings sealed by the data folder's key. */
export function openStore(dataDir: string, opts?: OpenStoreOptions): Store {
  ensureDataDir(dataDir);
  const path = join(dataDir, 'driveship.db');
  const { db } = openDatabase(path, opts);
  const store = new Store(db, path);
  try {
    const checkpointer = new WalCheckpointer(db, path);
    store.checkpointer = checkpointer;
    store.wal.afterCommit = () => checkpointer.afterCommit();
    const key = loadOrCreateSecretKey(dataDir, opts?.keyProtector ?? null);
    store.settings.protect(key.sealer);
    store.secretKey = key;
  } catch (err) {
    store.close();
    throw err;
  }
  return store;
}

/**
 * Opens a data folder's database read-only (safe while the app runs: WAL readers never block it,
 * and nothing is migrated or written). The repositories prepare their statements but only reads run.
 */
export function openStoreReadOnly(dataDir: string): Store {
  const path = join(dataDir, 'driveship.db');
  if (!existsSync(path)) throw new Error(`no driveship database in ${dataDir}`);
  const db = openReadOnly(path);
  try {
    db.pragma('busy_timeout = 5000');
    const store = new Store(db, path);
    // Secrets are opened (never written) so that diagnostics can remove them; no key is made here.
    const sealer = readSecretKey(dataDir);
    if (sealer) store.settings.protect(sealer);
    return store;
  } catch (err) {
    db.close();
    throw err;
  }
}

export type { Db };
