// Effective configuration: environment variables override stored settings, which override defaults.
// Read through `current()` on every use, so that a settings change applies while running.
import { homedir } from 'node:os';
import { join } from 'node:path';
import { SECRET_SETTINGS, type SecretSetting, type SecretState, type SettingsDto } from '../core/contract';
import { DEFAULT_CODE_PREFIX } from '../core/order-code';


export interface Config {
  adminHost: string;
  adminPort: number;
  webhookHost: string;
  webhookPort: number;
  codePrefix: string;
  receivingAccounts: string[];
  bankBin: string | null;
  bankAccount: string | null;
  bankAccountName: string | null;
  orderExpiryHours: number;
  webhookRateLimitPerMin: number;
  language: 'vi' | 'en';
  sepayApiBase: string;
  sepayApiKey: string | null;
  sepayHmacSecret: string | null;
  sepayApiToken: string | null;
  allowUnauthenticatedWebhook: boolean;
  googleRootUrl: string | null;
  googleClientId: string | null;
  googleClientSecret: string | null;
  shopName: string;
  smtpHost: string | null;
  smtpPort: number;
  smtpSecure: boolean;
  smtpUser: string | null;
  smtpPassword: string | null;
  smtpFrom: string | null;
  maxDownloads: number;
  maxUploads: number;
  maxPerHost: number;
  /** KiB/s for all downloads together; 0 = unlimited. */
  downloadKBps: number;
  uploadKBps: number;
  /** Deliveries whose steps run at once; the rest wait in `queued`. */
  maxActiveDeliveries: number;
  /** Files at least this large are fetched as parallel HTTP Range segments. */
  segmentThresholdMiB: number;
  segments: number;
  /** A download with no byte for this long is dropped and retried. */
  stallTimeoutSec: number;
  watchdogStallMinutes: number;
  cacheRetentionDays: number;
  backupKeep: number;
  /** Times of day (Asia/Ho_Chi_Minh) with other bandwidth caps, e.g. slower by day. */
  bandwidthSchedule: { from: string; to: string; downloadKBps?: number; uploadKBps?: number }[];
  tunnelProvider: 'none' | 'ngrok' | 'cloudflared';
  publicUrl: string | null;
  ngrokAuthtoken: string | null;
  ngrokDomain: string | null;
  cloudflaredToken: string | null;
  cloudflaredPath: string | null;
  /** Where alerts go when nobody is looking at the app (optional). */
  ownerAlertEmail: string | null;
  telegramBotToken: string | null;
  telegramChatId: string | null;
  /** Drive's daily upload limit (uploads and copies, rolling 24 h), in MB (10^6 bytes). */
  driveDailyLimitMB: number;
  /** First wait after Google refuses a share for the sharing rate; doubles up to 8 hours. */
  sharingBackoffSec: number;
  /** After Drive itself refuses for the daily upload limit, how long copies wait before trying again. */
  dailyLimitRecheckSec: number;
}

/** Where stored settings come from (the store's SettingsRepo; platform sits below the store). */
export interface StoredSettings {
  all(): Record<string, unknown>;
}

export function defaultDataDir(env: NodeJS.ProcessEnv = process.env): string {
  if (env.DRIVESHIP_DATA_DIR) return env.DRIVESHIP_DATA_DIR;
  if (process.platform === 'win32') return join(env.APPDATA ?? join(homedir(), 'AppData', 'Roaming'), 'driveship');
  if (process.platform === 'darwin') return join(homedir(), 'Library', 'Application Support', 'driveship');
  return join(env.XDG_DATA_HOME ?? join(homedir(), '.local', 'share'), 'driveship');
}

/** Setting key → environment variable that overrides it. */
const ENV_OVERRIDES: Partial<Record<keyof Config, string>> = {
  adminPort: 'DRIVESHIP_ADMIN_PORT',
  webhookPort: 'DRIVESHIP_WEBHOOK_PORT',
  webhookHost: 'DRIVESHIP_WEBHOOK_HOST',
  codePrefix: 'DRIVESHIP_CODE_PREFIX',
  receivingAccounts: 'DRIVESHIP_RECEIVING_ACCOUNTS',
  bankBin: 'DRIVESHIP_BANK_BIN',
  bankAccount: 'DRIVESHIP_BANK_ACCOUNT',
  webhookRateLimitPerMin: 'DRIVESHIP_WEBHOOK_RATE_LIMIT_PER_MIN',
  sepayApiBase: 'SEPAY_API_BASE',
  sepayApiKey: 'SEPAY_API_KEY',
  sepayHmacSecret: 'SEPAY_HMAC_SECRET',
  sepayApiToken: 'SEPAY_API_TOKEN',
  allowUnauthenticatedWebhook: 'DRIVESHIP_ALLOW_UNAUTHENTICATED_WEBHOOK',
  googleRootUrl: 'DRIVESHIP_GOOGLE_ROOT_URL',
  googleClientId: 'GOOGLE_CLIENT_ID',
  googleClientSecret: 'GOOGLE_CLIENT_SECRET',
  smtpHost: 'DRIVESHIP_SMTP_HOST',
  smtpPort: 'DRIVESHIP_SMTP_PORT',
  smtpUser: 'DRIVESHIP_SMTP_USER',
  smtpPassword: 'DRIVESHIP_SMTP_PASSWORD',
  smtpFrom: 'DRIVESHIP_SMTP_FROM',
  maxDownloads: 'DRIVESHIP_MAX_DOWNLOADS',
  maxUploads: 'DRIVESHIP_MAX_UPLOADS',
  maxPerHost: 'DRIVESHIP_MAX_PER_HOST',
  segmentThresholdMiB: 'DRIVESHIP_SEGMENT_THRESHOLD_MIB',
  segments: 'DRIVESHIP_SEGMENTS',
  downloadKBps: 'DRIVESHIP_DOWNLOAD_KBPS',
  uploadKBps: 'DRIVESHIP_UPLOAD_KBPS',
  stallTimeoutSec: 'DRIVESHIP_STALL_TIMEOUT_SEC',
  watchdogStallMinutes: 'DRIVESHIP_WATCHDOG_STALL_MINUTES',
  cacheRetentionDays: 'DRIVESHIP_CACHE_RETENTION_DAYS',
  backupKeep: 'DRIVESHIP_BACKUP_KEEP',
  bandwidthSchedule: 'DRIVESHIP_BANDWIDTH_SCHEDULE',
  tunnelProvider: 'DRIVESHIP_TUNNEL',
  publicUrl: 'DRIVESHIP_PUBLIC_URL',
  ngrokAuthtoken: 'NGROK_AUTHTOKEN',
  ngrokDomain: 'DRIVESHIP_NGROK_DOMAIN',
  cloudflaredToken: 'DRIVESHIP_CLOUDFLARED_TOKEN',
  cloudflaredPath: 'DRIVESHIP_CLOUDFLARED_PATH',
  ownerAlertEmail: 'DRIVESHIP_OWNER_ALERT_EMAIL',
  telegramBotToken: 'DRIVESHIP_TELEGRAM_BOT_TOKEN',
  telegramChatId: 'DRIVESHIP_TELEGRAM_CHAT_ID',
  driveDailyLimitMB: 'DRIVESHIP_DRIVE_DAILY_LIMIT_MB',
  sharingBackoffSec: 'DRIVESHIP_SHARING_BACKOFF_SEC',
  dailyLimitRecheckSec: 'DRIVESHIP_DAILY_LIMIT_RECHECK_SEC',
};

const DEFAULTS: Config = {
  adminHost: '127.0.0.1',
  adminPort: 4710,
  webhookHost: '127.0.0.1',
  webhookPort: 4711,
  codePrefix: DEFAULT_CODE_PREFIX,
  receivingAccounts: [],
  bankBin: null,
  bankAccount: null,
  bankAccountName: null,
  orderExpiryHours: 72,
  webhookRateLimitPerMin: 600,
  language: 'vi',
  sepayApiBase: 'https://userapi.sepay.vn',
  sepayApiKey: null,
  sepayHmacSecret: null,
  sepayApiToken: null,
  allowUnauthenticatedWebhook: false,
  googleRootUrl: null,
  googleClientId: null,
  googleClientSecret: null,
  shopName: 'driveship',
  smtpHost: null,
  smtpPort: 587,
  smtpSecure: false,
  smtpUser: null,
  smtpPassword: null,
  smtpFrom: null,
  maxDownloads: 16,
  maxUploads: 4,
  maxPerHost: 16,
  downloadKBps: 0,
  uploadKBps: 0,
  maxActiveDeliveries: 200,
  segmentThresholdMiB: 16,
  segments: 8,
  stallTimeoutSec: 30,
  watchdogStallMinutes: 5,
  cacheRetentionDays: 30,
  backupKeep: 7,
  bandwidthSchedule: [],
  tunnelProvider: 'none',
  publicUrl: null,
  ngrokAuthtoken: null,
  ngrokDomain: null,
  cloudflaredToken: null,
  cloudflaredPath: null,
  ownerAlertEmail: null,
  telegramBotToken: null,
  telegramChatId: null,
  driveDailyLimitMB: 750_000,
  sharingBackoffSec: 900,
  dailyLimitRecheckSec: 3600,
};

function fromEnv(key: keyof Config, raw: string): Config[keyof Config] {
  const d = DEFAULTS[key];
  if (typeof d === 'number') {
    const n = Number(raw);
    if (!Number.isInteger(n) || n < 0) throw new Error(`${ENV_OVERRIDES[key]} must be a whole number, got "${raw}"`);
    return n;
  }
  if (typeof d === 'boolean') return raw === '1' || raw.toLowerCase() === 'true';
  if (key === 'bandwidthSchedule') {
    try {
      return JSON.parse(raw);
    } catch {
      throw new Error(`${ENV_OVERRIDES[key]} must be JSON, e.g. [{"from":"08:00","to":"22:00","downloadKBps":2048}]`);
    }
  }
  if (Array.isArray(d)) return raw.split(',').map((s) => s.trim()).filter(Boolean);
  if (key === 'codePrefix') return raw.toUpperCase();
  return raw;
}

export class ConfigService {
  constructor(
    private readonly settings: StoredSettings,
    private readonly env: NodeJS.ProcessEnv = process.env,
  ) {}

  current(): Config {
    const stored = this.settings.all();
    const out = { ...DEFAULTS } as Record<keyof Config, unknown>;
    for (const key of Object.keys(DEFAULTS) as (keyof Config)[]) {
      if (stored[key] !== undefined) out[key] = stored[key];
      const envName = ENV_OVERRIDES[key];
      const raw = envName ? this.env[envName] : undefined;
      if (raw !== undefined && raw !== '') out[key] = fromEnv(key, raw);
    }
    return out as unknown as Config;
  }

  overriddenByEnv(): string[] {
    return (Object.keys(ENV_OVERRIDES) as (keyof Config)[]).filter((k) => {
      const v = this.env[ENV_OVERRIDES[k]!];
      return v !== undefined && v !== '';
    });
  }

  /** Secret values never leave the process: only whether each is set and its last 4 characters. */
  view(): SettingsDto {
    const c = this.current();
    const secrets = {} as Record<SecretSetting, SecretState>;
    for (const k of SECRET_SETTINGS) {
      const v = c[k as keyof Config] as string | null;
      secrets[k] = v ? { set: true, last4: v.length > 8 ? v.slice(-4) : '' } : { set: false };
    }
    return {
      codePrefix: c.codePrefix,
      receivingAccounts: c.receivingAccounts,
      bankBin: c.bankBin,
      bankAccount: c.bankAccount,
      bankAccountName: c.bankAccountName,
      orderExpiryHours: c.orderExpiryHours,
      webhookRateLimitPerMin: c.webhookRateLimitPerMin,
      language: c.language,
      sepayApiBase: c.sepayApiBase,
      shopName: c.shopName,
      googleClientId: c.googleClientId,
      smtpHost: c.smtpHost,
      smtpPort: c.smtpPort,
      smtpSecure: c.smtpSecure,
      smtpUser: c.smtpUser,
      smtpFrom: c.smtpFrom,
      maxDownloads: c.maxDownloads,
      maxUploads: c.maxUploads,
      maxPerHost: c.maxPerHost,
      downloadKBps: c.downloadKBps,
      uploadKBps: c.uploadKBps,
      watchdogStallMinutes: c.watchdogStallMinutes,
      cacheRetentionDays: c.cacheRetentionDays,
      backupKeep: c.backupKeep,
      bandwidthSchedule: c.bandwidthSchedule,
      tunnelProvider: c.tunnelProvider,
      publicUrl: c.publicUrl,
      ngrokDomain: c.ngrokDomain,
      cloudflaredPath: c.cloudflaredPath,
      ownerAlertEmail: c.ownerAlertEmail,
      telegramChatId: c.telegramChatId,
      driveDailyLimitMB: c.driveDailyLimitMB,
      secrets,
      fromEnvironment: this.overriddenByEnv(),
    };
  }

  /** Every secret value currently in force, for redaction (logs, diagnostics). */
  secretValues(): string[] {
    const c = this.current();
    return SECRET_SETTINGS.map((k) => c[k as keyof Config]).filter((v): v is string => typeof v === 'string' && v.length >= 4);
  }
}
