// The fulfilment engine, assembled: the transfer queue (Piscina today), product library, delivery
// steps, supervisor. The host creates one and stops it before closing the store.
import { join } from 'node:path';
import { DriveClient } from '../drive/client';
import type { GoogleConnection } from '../drive/auth';
import { Alerts } from '../platform/alerts';
import type { Bus } from '../platform/bus';
import type { ConfigService } from '../platform/config';
import type { Logger } from '../platform/log';
import { customerShopName, Mailer, smtpConfigOf } from '../platform/mail';
import type { SourceGuards } from '../sources';
import type { Store } from '../store';
import { AfterSale } from './after-sale';
import { Grants } from './grants';
import { Library } from './library';
import { Limiter } from '../core/limiter';
import { PiscinaTransferQueue } from './piscina-queue';
import { DriveQuota } from './quota';
import { ProductUpdates } from './updates';
import type { JobProgress } from './progress';
import { DeliverySteps } from './steps';
import { Supervisor } from './supervisor';
import type { TransferLimits } from './transfer-policy';
import type { TransferQueue } from './transfer-queue';
import { Transfers } from './transfers';

const kbps = (v: number | null | undefined) => (v && v > 0 ? v * 1024 : null);

/** A time-of-day bandwidth cap in force (KiB/s; 0 = unlimited; null = the configured value). */
export interface BandwidthOverride {
  downloadKBps: number | null;
  uploadKBps: number | null;
}

export interface EngineDeps {
  store: Store;
  config: ConfigService;
  bus: Bus;
  log: Logger;
  google: GoogleConnection;
  dataDir: string;
  threads?: number;
  /** Origin policy, folder guard and caps for product sources (the host builds them). */
  sourceGuards?: SourceGuards;
  /**
   * Another TransferQueue around the in-process pool (BullMQ: workers on other machines; the pool
   * keeps what only this host can run). Without it the pool is the queue.
   */
  wrapQueue?: (local: PiscinaTransferQueue, limits: TransferLimits) => TransferQueue;
}

export class Engine {
  /** The seam: everything above talks to it only through `transfers`. */
  readonly queue: TransferQueue;
  /** This host's own pool of worker threads (the whole queue without Redis). */
  readonly local: PiscinaTransferQueue;
  readonly transfers: Transfers;
  readonly library: Library;
  readonly supervisor: Supervisor;
  readonly alerts: Alerts;
  readonly mailer: Mailer;
  readonly quota: DriveQuota;
  readonly grants: Grants;
  readonly updates: ProductUpdates;
  readonly afterSale: AfterSale;
  private driveClient: DriveClient | null = null;
  private progressTimer: NodeJS.Timeout | null = null;
  private minuteTimer: NodeJS.Timeout | null = null;
  private readonly dirtyJobs = new Set<string>();
  private lastTotals = { bytesDown: 0, bytesUp: 0 };
  private recycledAt: number[] = [];
  /** A time-of-day bandwidth window in force (the bandwidth schedule job sets it). */
  private bandwidthOverride: BandwidthOverride | null = null;
  /** Settings the hot paths use, read once and again on every `settings` event (never per file). */
  private settings: { stallTimeoutMs: number; segmentThreshold: number; segments: number; maxLinking: number; maxActive: number };
  private readonly offSettings: () => void;

  constructor(private readonly deps: EngineDeps) {
    const { store, config, bus, log } = deps;
    this.alerts = new Alerts(store.alerts, bus);
    this.settings = this.readSettings();
    this.local = new PiscinaTransferQueue(this.limits(), {
      threads: deps.threads,
      initialHostWindow: this.settings.segments,
      onRecycle: (reason) => {
        log.warn({ reason }, 'transfer worker threads replaced');
        this.recycledAt.push(Date.now());
        this.recycledAt = this.recycledAt.filter((t) => t > Date.now() - 3600_000);
        if (this.recycledAt.length >= 3) {
          this.alerts.raise('WORKERS_STUCK', 'warning', 'Transfer threads got stuck several times in the last hour and were restarted.', 'Transfers go on by themselves; if this keeps happening, send a diagnostics bundle to support.');
        }
      },
    });
    this.queue = deps.wrapQueue ? deps.wrapQueue(this.local, this.limits()) : this.local;
    this.transfers = new Transfers(this.queue);
    this.mailer = new Mailer(() => smtpConfigOf(config.current()));
    const drive = () => this.drive();
    // Customers never read "driveship": the shop's name, else the sender's display name, else none.
    const shopName = () => customerShopName(config.current());
    this.quota = new DriveQuota({ store, config, alerts: this.alerts, bus, log, drive });
    this.library = new Library({
      store,
      transfers: this.transfers,
      drive,
      cacheDir: join(deps.dataDir, 'cache'),
      log,
      onProgress: (key) => this.dirtyJobs.add(key),
      guards: deps.sourceGuards,
      onInDrive: (productId, version) => this.updates.versionReady(productId, version),
      onUploaded: (bytes, ref) => this.quota.record('upload', bytes, ref),
      downloadSettings: () => {
        const s = this.settings;
        return { stallTimeoutMs: s.stallTimeoutMs, segmentThreshold: s.segmentThreshold };
      },
    });
    this.grants = new Grants({ store, library: this.library, drive, mailer: this.mailer, quota: this.quota, bus });
    const linking = new Limiter(() => this.settings.maxLinking);
    const steps = new DeliverySteps({ store, library: this.library, drive, mailer: this.mailer, shopName, log, grants: this.grants, quota: this.quota, linking });
    this.supervisor = new Supervisor({ store, steps, queue: this.queue, library: this.library, alerts: this.alerts, bus, log, maxActive: () => this.settings.maxActive });
    this.updates = new ProductUpdates({ store, grants: this.grants, drive, mailer: this.mailer, bus, log, shopName });
    this.afterSale = new AfterSale({ store, grants: this.grants, drive, mailer: this.mailer, supervisor: this.supervisor, bus, log, shopName });
    this.offSettings = bus.on('settings', () => this.refreshLimits());
  }

  private readSettings() {
    const c = this.deps.config.current();
    return {
      stallTimeoutMs: c.stallTimeoutSec * 1000,
      segmentThreshold: c.segmentThresholdMiB * 1024 * 1024,
      segments: c.segments,
      maxLinking: c.maxLinking,
      maxActive: c.maxActiveDeliveries,
    };
  }

  /** The limits in force: the settings, with the bandwidth window's caps over them. */
  private limits(): TransferLimits {
    const c = this.deps.config.current();
    return {
      maxDownloads: c.maxDownloads,
      maxUploads: c.maxUploads,
      maxPerHost: c.maxPerHost,
      downloadBytesPerSec: kbps(this.bandwidthOverride?.downloadKBps ?? c.downloadKBps),
      uploadBytesPerSec: kbps(this.bandwidthOverride?.uploadKBps ?? c.uploadKBps),
    };
  }

  /**
   * Reads the settings again and hands the queue its new limits. Called on every `settings` event;
   * code that writes settings without one (tests, benchmarks) calls it itself.
   */
  refreshLimits(): void {
    this.settings = this.readSettings();
    this.queue.setLimits(this.limits());
  }

  setBandwidthOverride(o: BandwidthOverride | null): void {
    this.bandwidthOverride = o;
    this.queue.setLimits(this.limits());
  }

  /**
   * The Drive client, built once and again after Google is connected or disconnected
   * (`googleChanged`; where it points and whether it batches are set at start). Not checked per
   * call: that read (and, on a desktop, decrypted) the token file for every Drive call.
   */
  async drive(): Promise<DriveClient> {
    if (!this.driveClient) {
      const { google, config } = this.deps;
      const { googleRootUrl: rootUrl, driveBatch } = config.current();
      this.driveClient = new DriveClient({ auth: google.client(), rootUrl, batch: driveBatch });
    }
    return this.driveClient;
  }

  /** Google reconnected: forget the old client and resume what waited for it. */
  googleChanged(): void {
    this.driveClient = null;
    if (this.deps.google.state().connected && this.alerts.open().some((a) => a.code === 'GOOGLE_DISCONNECTED')) this.supervisor.resumeAll('system');
  }

  start(): void {
    this.supervisor.start();
    this.updates.start();
    this.afterSale.start();
    this.progressTimer = setInterval(() => this.flushProgress(), 250);
    this.progressTimer.unref();
    this.minuteTimer = setInterval(() => this.recordThroughput(), 60_000);
    this.minuteTimer.unref();
  }

  async stop(): Promise<void> {
    if (this.progressTimer) clearInterval(this.progressTimer);
    if (this.minuteTimer) clearInterval(this.minuteTimer);
    this.offSettings();
    this.recordThroughput();
    this.quota.dispose();
    await Promise.all([this.updates.close(), this.afterSale.close()]);
    await this.supervisor.stop();
    await this.transfers.close();
    await this.queue.close();
    this.deps.store.later.flush();
    this.mailer.close();
  }

  /** Progress of a delivery: the shared library job it is waiting on, if any. */
  progressOf(productId: string, version: number | null, state: string): JobProgress | null {
    if (version == null) return null;
    const phase = state === 'uploading' ? 'upload' : state === 'fetching' ? 'fetch' : null;
    if (!phase) return null;
    return this.library.trackers.get(`${phase}:${productId}:${version}`)?.snapshot() ?? null;
  }

  private flushProgress(): void {
    if (!this.dirtyJobs.size) return;
    const keys = [...this.dirtyJobs];
    this.dirtyJobs.clear();
    for (const key of keys) {
      const [phase, productId, version] = key.split(':');
      const snap = this.library.trackers.get(key)?.snapshot();
      if (!snap) continue;
      const state = phase === 'fetch' ? 'fetching' : 'uploading';
      for (const id of this.deps.store.deliveries.idsAt(productId!, Number(version), state)) this.deps.bus.emit('progress', { deliveryId: id, bytes: snap.bytesDone, total: snap.bytesTotal, phase: snap.phase, bytesPerSec: snap.bytesPerSec });
    }
  }

  private recordThroughput(): void {
    const t = this.queue.stats();
    const down = t.bytesDown - this.lastTotals.bytesDown;
    const up = t.bytesUp - this.lastTotals.bytesUp;
    this.lastTotals = { bytesDown: t.bytesDown, bytesUp: t.bytesUp };
    if (!down && !up) return;
    const minute = Math.floor(Date.now() / 60_000) * 60_000;
    this.deps.store.throughput.add(minute, down, up);
  }

  /** Current speeds from the running transfers. */
  speeds(): { downBps: number; upBps: number } {
    let downBps = 0;
    let upBps = 0;
    for (const [key, tracker] of this.library.trackers) {
      const s = tracker.snapshot();
      if (key.startsWith('fetch:')) downBps += s.bytesPerSec;
      else upBps += s.bytesPerSec;
    }
    return { downBps, upBps };
  }
}

/**
 * Fetches and uploads a product's files ahead of its first order (the owner's "prepare now"); a
 * changed source becomes a new version, which reaches past buyers by the product's rule.
 */
export async function prepareProduct(engine: Engine, productId: string): Promise<void> {
  const signal = new AbortController().signal;
  engine.library.forgetListing(productId);
  const version = await engine.library.resolveVersion(productId, signal);
  const ctx = { priority: 0, since: Date.now(), signal };
  await engine.library.ensureCached(productId, version, ctx);
  await engine.library.ensureInDrive(productId, version, ctx);
}
