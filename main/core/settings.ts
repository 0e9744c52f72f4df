// The one registry of settings. Each setting is declared here once: its schema (what the admin API
// accepts and what the value is), its default, the environment variable that overrides it, whether
// it is a secret (write-only, encrypted at rest, redacted everywhere), whether the owner may change
// it through the admin API, and where the Settings page shows it. The config service, the API
// contract (SettingsUpdateSchema, SettingsDto), the Settings page and the README's table are all
// derived from this list; nothing else declares a setting.
import { z } from 'zod';
/** Order codes look like DS7KQ2MXPA; SePay's payment code prefix must match. */
export const DEFAULT_CODE_PREFIX = 'DS';

/** The Settings page's sections, in order. */
export const SETTING_GROUPS = ['shop', 'bank', 'sepay', 'google', 'email', 'alerts', 'tunnel', 'transfers', 'maintenance', 'host'] as const;
export type SettingGroup = (typeof SETTING_GROUPS)[number];

/** How the Settings page edits a value. */
export type SettingInput = 'text' | 'number' | 'toggle' | 'select' | 'secret' | 'list' | 'url' | 'email' | 'schedule';

interface Def<S extends z.ZodType> {
  /** The value's schema. A schema that accepts null has a "not set" state, cleared with '' or null. */
  schema: S;
  default: z.output<S>;
  /** Environment variable that overrides the stored value (and locks it in the UI). */
  env?: string;
  /** Write-only; stored encrypted; never logged, exported or sent to the renderer. */
  secret?: boolean;
  /** The owner may change it through the admin API (false: environment or command line only). */
  writable: boolean;
  /** Shown on the Settings page (non-secret values are also returned by GET /settings). */
  ui: boolean;
  group: SettingGroup;
  input: SettingInput;
  /** One line for the README's table (English; the UI has its own translated labels). */
  doc: string;
  /** Options of a select. */
  options?: readonly string[];
}

/** Keeps each flag's literal type (secret: true, writable: false, ...) so the derived key types below work. */
function def<S extends z.ZodType, const F extends { secret?: boolean; writable: boolean; ui: boolean }>(d: Def<S> & F): Def<S> & F {
  return d;
}

const int = (min: number, max: number) => z.number().int().min(min).max(max);
const text = (max: number) => z.string().trim().max(max);
const optionalText = (max: number) => text(max).min(1).nullable();
const secret = (max: number) => z.string().max(max).min(1).nullable();
const httpUrl = z.url({ protocol: /^https?$/ });
const HHMM = z.string().regex(/^([01]\d|2[0-3]):[0-5]\d$/, 'expected HH:mm');

export const BandwidthScheduleSchema = z
  .array(
    z.object({
      from: HHMM,
      to: HHMM,
      downloadKBps: int(0, 10_000_000).optional(),
      uploadKBps: int(0, 10_000_000).optional(),
    }),
  )
  .max(24);
export type BandwidthWindow = z.infer<typeof BandwidthScheduleSchema>[number];

export const SETTINGS = {
  // ---- shop ----
  // No default: a customer must never get an email signed "driveship" (the program's name).
  shopName: def({ schema: optionalText(100), default: null, writable: true, ui: true, group: 'shop', input: 'text', doc: 'Shop name in customer emails and the window title' }),
  language: def({ schema: z.enum(['vi', 'en']), default: 'vi', writable: true, ui: true, group: 'shop', input: 'select', options: ['vi', 'en'], doc: 'Language of the window and of owner alerts' }),
  codePrefix: def({
    schema: z.string().regex(/^[A-Za-z]{2,10}$/, '2 to 10 letters').transform((s) => s.toUpperCase()),
    default: DEFAULT_CODE_PREFIX, env: 'DRIVESHIP_CODE_PREFIX', writable: true, ui: true, group: 'shop', input: 'text',
    doc: 'Prefix of order codes (must match SePay\'s payment code prefix)',
  }),
  orderExpiryHours: def({ schema: int(1, 24 * 90), default: 72, writable: true, ui: true, group: 'shop', input: 'number', doc: 'Hours an unpaid order waits before it expires' }),

  // ---- bank (VietQR) ----
  receivingAccounts: def({
    schema: z.array(z.string().regex(/^[0-9A-Za-z]{1,30}$/)).max(20), default: [] as string[], env: 'DRIVESHIP_RECEIVING_ACCOUNTS',
    writable: true, ui: true, group: 'bank', input: 'list', doc: 'Accounts whose incoming transfers count as payments (comma-separated in the environment)',
  }),
  bankBin: def({ schema: z.string().regex(/^\d{6}$/, '6 digits').nullable(), default: null, env: 'DRIVESHIP_BANK_BIN', writable: true, ui: true, group: 'bank', input: 'text', doc: 'Bank BIN for the VietQR code' }),
  bankAccount: def({ schema: z.string().regex(/^[0-9A-Za-z]{1,19}$/, 'letters and digits, at most 19').nullable(), default: null, env: 'DRIVESHIP_BANK_ACCOUNT', writable: true, ui: true, group: 'bank', input: 'text', doc: 'Receiving account number for the VietQR code' }),
  bankAccountName: def({ schema: optionalText(100), default: null, writable: true, ui: true, group: 'bank', input: 'text', doc: 'Account holder name shown with the QR code' }),

  // ---- SePay ----
  sepayApiKey: def({ schema: secret(500), default: null, env: 'SEPAY_API_KEY', secret: true, writable: true, ui: true, group: 'sepay', input: 'secret', doc: 'Webhook API key (header `Authorization: Apikey ...`)' }),
  sepayHmacSecret: def({ schema: secret(500), default: null, env: 'SEPAY_HMAC_SECRET', secret: true, writable: true, ui: true, group: 'sepay', input: 'secret', doc: 'Webhook HMAC-SHA256 secret (recommended)' }),
  sepayApiToken: def({ schema: secret(500), default: null, env: 'SEPAY_API_TOKEN', secret: true, writable: true, ui: true, group: 'sepay', input: 'secret', doc: 'SePay API token for reconciliation' }),
  sepayApiBase: def({ schema: httpUrl, default: 'https://userapi.sepay.vn', env: 'SEPAY_API_BASE', writable: true, ui: true, group: 'sepay', input: 'url', doc: 'SePay API address' }),
  webhookRateLimitPerMin: def({ schema: int(1, 1_000_000), default: 600, env: 'DRIVESHIP_WEBHOOK_RATE_LIMIT_PER_MIN', writable: true, ui: true, group: 'sepay', input: 'number', doc: 'Refused webhook requests allowed per minute per address' }),
  allowUnauthenticatedWebhook: def({ schema: z.boolean(), default: false, env: 'DRIVESHIP_ALLOW_UNAUTHENTICATED_WEBHOOK', writable: false, ui: false, group: 'sepay', input: 'toggle', doc: 'Accept webhooks without authentication (testing only)' }),

  // ---- Google ----
  googleClientId: def({ schema: optionalText(300), default: null, env: 'GOOGLE_CLIENT_ID', writable: true, ui: true, group: 'google', input: 'text', doc: 'OAuth client id (Desktop app)' }),
  googleClientSecret: def({ schema: secret(500), default: null, env: 'GOOGLE_CLIENT_SECRET', secret: true, writable: true, ui: true, group: 'google', input: 'secret', doc: 'OAuth client secret' }),
  driveBatch: def({ schema: z.boolean(), default: true, env: 'DRIVESHIP_DRIVE_BATCH', writable: false, ui: false, group: 'google', input: 'toggle', doc: "Send deliveries' copies, folder creates and shares through Drive's batch endpoint, up to 100 calls per request (false: one request each)" }),
  googleRootUrl: def({ schema: httpUrl.nullable(), default: null, env: 'DRIVESHIP_GOOGLE_ROOT_URL', writable: false, ui: false, group: 'google', input: 'url', doc: 'Points every Drive call, uploads included, at an emulator' }),

  // ---- email to customers ----
  smtpHost: def({ schema: optionalText(255), default: null, env: 'DRIVESHIP_SMTP_HOST', writable: true, ui: true, group: 'email', input: 'text', doc: 'SMTP server for driveship\'s own emails' }),
  smtpPort: def({ schema: int(1, 65535), default: 587, env: 'DRIVESHIP_SMTP_PORT', writable: true, ui: true, group: 'email', input: 'number', doc: 'SMTP port' }),
  smtpSecure: def({ schema: z.boolean(), default: false, env: 'DRIVESHIP_SMTP_SECURE', writable: true, ui: true, group: 'email', input: 'toggle', doc: 'TLS from the start (port 465)' }),
  smtpUser: def({ schema: optionalText(255), default: null, env: 'DRIVESHIP_SMTP_USER', writable: true, ui: true, group: 'email', input: 'text', doc: 'SMTP user' }),
  smtpPassword: def({ schema: secret(500), default: null, env: 'DRIVESHIP_SMTP_PASSWORD', secret: true, writable: true, ui: true, group: 'email', input: 'secret', doc: 'SMTP password' }),
  smtpFrom: def({ schema: optionalText(255), default: null, env: 'DRIVESHIP_SMTP_FROM', writable: true, ui: true, group: 'email', input: 'text', doc: 'From address of customer emails' }),

  // ---- owner alerts ----
  ownerAlertEmail: def({ schema: z.email().nullable(), default: null, env: 'DRIVESHIP_OWNER_ALERT_EMAIL', writable: true, ui: true, group: 'alerts', input: 'email', doc: 'Where alerts are emailed when nobody looks at the app' }),
  telegramBotToken: def({ schema: secret(200), default: null, env: 'DRIVESHIP_TELEGRAM_BOT_TOKEN', secret: true, writable: true, ui: true, group: 'alerts', input: 'secret', doc: 'Telegram bot token for alerts' }),
  telegramChatId: def({ schema: z.string().regex(/^-?\d{1,20}$/, 'a number').nullable(), default: null, env: 'DRIVESHIP_TELEGRAM_CHAT_ID', writable: true, ui: true, group: 'alerts', input: 'text', doc: 'Telegram chat that receives alerts' }),

  // ---- tunnel ----
  tunnelProvider: def({ schema: z.enum(['none', 'ngrok', 'cloudflared']), default: 'none', env: 'DRIVESHIP_TUNNEL', writable: true, ui: true, group: 'tunnel', input: 'select', options: ['none', 'ngrok', 'cloudflared'], doc: 'How SePay reaches the webhook listener' }),
  publicUrl: def({ schema: httpUrl.nullable(), default: null, env: 'DRIVESHIP_PUBLIC_URL', writable: true, ui: true, group: 'tunnel', input: 'url', doc: 'Public address of the webhook listener (your proxy or a fixed tunnel domain)' }),
  ngrokAuthtoken: def({ schema: secret(500), default: null, env: 'NGROK_AUTHTOKEN', secret: true, writable: true, ui: true, group: 'tunnel', input: 'secret', doc: 'ngrok authtoken' }),
  ngrokDomain: def({ schema: optionalText(253), default: null, env: 'DRIVESHIP_NGROK_DOMAIN', writable: true, ui: true, group: 'tunnel', input: 'text', doc: 'ngrok reserved domain' }),
  cloudflaredToken: def({ schema: secret(2000), default: null, env: 'DRIVESHIP_CLOUDFLARED_TOKEN', secret: true, writable: true, ui: true, group: 'tunnel', input: 'secret', doc: 'Cloudflare tunnel token' }),
  // A program driveship runs: only from the environment or `driveship serve --cloudflared-path`,
  // never through the admin API (whoever holds the token must not choose a binary to execute).
  cloudflaredPath: def({ schema: optionalText(4096), default: null, env: 'DRIVESHIP_CLOUDFLARED_PATH', writable: false, ui: false, group: 'tunnel', input: 'text', doc: 'Path of the cloudflared program (environment or `serve --cloudflared-path` only)' }),

  // ---- transfers ----
  maxDownloads: def({ schema: int(1, 256), default: 32, env: 'DRIVESHIP_MAX_DOWNLOADS', writable: true, ui: true, group: 'transfers', input: 'number', doc: 'Downloads at once' }),
  // As many as downloads: an upload follows each download from its first bytes and waits for bytes
  // most of the time, and one left without a slot uploads its whole file after its download
  // (transfer-distinct at 16: 20 files, the last upload 1.1 s after the last download; at 32, 0.6 s).
  // What is sent at once is bounded by the pool threads' chunk budget, not by this.
  maxUploads: def({ schema: int(1, 64), default: 32, env: 'DRIVESHIP_MAX_UPLOADS', writable: true, ui: true, group: 'transfers', input: 'number', doc: 'Uploads at once (an upload that follows its download waits for bytes most of the time)' }),
  maxPerHost: def({ schema: int(1, 256), default: 48, env: 'DRIVESHIP_MAX_PER_HOST', writable: true, ui: true, group: 'transfers', input: 'number', doc: 'Most connections to one origin host at once (below it, more open while they speed the host up; fewer when it refuses or slows)' }),
  downloadKBps: def({ schema: int(0, 10_000_000), default: 0, env: 'DRIVESHIP_DOWNLOAD_KBPS', writable: true, ui: true, group: 'transfers', input: 'number', doc: 'KiB/s for all downloads together (0 = unlimited)' }),
  uploadKBps: def({ schema: int(0, 10_000_000), default: 0, env: 'DRIVESHIP_UPLOAD_KBPS', writable: true, ui: true, group: 'transfers', input: 'number', doc: 'KiB/s for all uploads together (0 = unlimited)' }),
  bandwidthSchedule: def({ schema: BandwidthScheduleSchema, default: [] as BandwidthWindow[], env: 'DRIVESHIP_BANDWIDTH_SCHEDULE', writable: true, ui: true, group: 'transfers', input: 'schedule', doc: 'Other caps at times of day (JSON in the environment)' }),
  maxActiveDeliveries: def({ schema: int(1, 10_000), default: 200, env: 'DRIVESHIP_MAX_ACTIVE_DELIVERIES', writable: false, ui: false, group: 'transfers', input: 'number', doc: 'Deliveries whose steps run at once; the rest wait in the queue' }),
  // 4, not 8: with a Drive that answers fast, 8 deliveries' answers arrive together and the main
  // thread's loop p99 rose 5-10 ms (fan-out bench); the real Drive's latency, not this, bounds linking.
  maxLinking: def({ schema: int(1, 64), default: 4, env: 'DRIVESHIP_MAX_LINKING', writable: false, ui: false, group: 'transfers', input: 'number', doc: 'Deliveries making their copies and shares at once (their Drive calls run on the main thread)' }),
  segmentThresholdMiB: def({ schema: int(1, 1_000_000), default: 16, env: 'DRIVESHIP_SEGMENT_THRESHOLD_MIB', writable: false, ui: false, group: 'transfers', input: 'number', doc: 'Files at least this large are fetched in parallel Range segments' }),
  // 16, not 8: slow start doubles every half second, and the first second or two is where a batch
  // of orders loses to aria2c (which opens all its connections at once). transfer-distinct on one
  // build: 5 runs with 8 took 7.32-8.20 s (7.67 average), 6 with 16 took 6.85-7.40 s (7.08).
  segments: def({ schema: int(1, 256), default: 16, env: 'DRIVESHIP_SEGMENTS', writable: false, ui: false, group: 'transfers', input: 'number', doc: 'Connections a new origin host starts with (the window then adapts up to "most connections to one origin host")' }),
  maxProductFiles: def({ schema: int(1, 1_000_000), default: 10_000, env: 'DRIVESHIP_MAX_PRODUCT_FILES', writable: true, ui: true, group: 'transfers', input: 'number', doc: 'Files one product (a manifest, a folder) may list' }),
  maxProductGiB: def({ schema: int(0, 1_000_000), default: 0, env: 'DRIVESHIP_MAX_PRODUCT_GIB', writable: true, ui: true, group: 'transfers', input: 'number', doc: 'GiB of declared sizes one product may list (0 = no cap)' }),
  maxUnsizedFileGiB: def({ schema: int(1, 1_000_000), default: 100, env: 'DRIVESHIP_MAX_UNSIZED_FILE_GIB', writable: true, ui: true, group: 'transfers', input: 'number', doc: 'A file whose manifest gives no size is stopped past this many GiB' }),
  driveDailyLimitMB: def({
    schema: int(1, 100_000_000), default: 750_000, env: 'DRIVESHIP_DRIVE_DAILY_LIMIT_MB', writable: true, ui: true, group: 'transfers', input: 'number',
    doc: "Google Drive's daily upload limit in MB (uploads and copies per rolling 24 h; Google allows 750,000); private copies that would cross it wait",
  }),
  sharingBackoffSec: def({ schema: int(1, 86_400), default: 900, env: 'DRIVESHIP_SHARING_BACKOFF_SEC', writable: false, ui: false, group: 'transfers', input: 'number', doc: 'First pause of sharing after Google refuses a share for its sharing rate (doubles up to 8 hours)' }),
  dailyLimitRecheckSec: def({ schema: int(1, 86_400), default: 3600, env: 'DRIVESHIP_DAILY_LIMIT_RECHECK_SEC', writable: false, ui: false, group: 'transfers', input: 'number', doc: 'How long copies wait after Google itself refuses one for the daily upload limit' }),
  // ---- more machines (BullMQ) ----
  // The URL may carry a password, so it is kept like one; the password is better in redisPassword.
  redisUrl: def({
    schema: z.string().trim().max(2000).regex(/^rediss?:\/\/[^\s]+$/, 'redis://host:port or rediss://host:port (TLS)').nullable(), default: null, env: 'DRIVESHIP_REDIS_URL',
    secret: true, writable: true, ui: true, group: 'transfers', input: 'secret',
    doc: 'Redis for transfer workers on other machines (redis:// or rediss:// for TLS); empty = this computer alone. Read at start',
  }),
  redisPassword: def({ schema: secret(500), default: null, env: 'DRIVESHIP_REDIS_PASSWORD', secret: true, writable: true, ui: true, group: 'transfers', input: 'secret', doc: 'Password of that Redis (never on a command line)' }),
  embeddedWorker: def({ schema: z.boolean(), default: true, env: 'DRIVESHIP_EMBEDDED_WORKER', writable: true, ui: true, group: 'transfers', input: 'toggle', doc: 'With Redis: this computer runs transfers too, as one more worker (0 = only the other machines). Read at start' }),
  workerLockSec: def({ schema: int(2, 600), default: 30, env: 'DRIVESHIP_WORKER_LOCK_SEC', writable: false, ui: false, group: 'transfers', input: 'number', doc: 'A worker silent this long loses its jobs to another worker' }),
  transferNice: def({ schema: int(0, 19), default: 10, env: 'DRIVESHIP_TRANSFER_NICE', writable: false, ui: false, group: 'transfers', input: 'number', doc: 'On Linux, how far below the main thread the transfer threads run (nice), so the webhook and the window answer first on a busy machine; 0 = the same. The threads read it from the environment' }),
  stallTimeoutSec: def({ schema: int(1, 3600), default: 30, env: 'DRIVESHIP_STALL_TIMEOUT_SEC', writable: false, ui: false, group: 'transfers', input: 'number', doc: 'A download with no byte for this long is dropped and retried' }),

  // ---- maintenance ----
  watchdogStallMinutes: def({ schema: int(1, 1440), default: 5, env: 'DRIVESHIP_WATCHDOG_STALL_MINUTES', writable: true, ui: true, group: 'maintenance', input: 'number', doc: 'Minutes without progress before the watchdog restarts a transfer' }),
  cacheRetentionDays: def({ schema: int(1, 3650), default: 30, env: 'DRIVESHIP_CACHE_RETENTION_DAYS', writable: true, ui: true, group: 'maintenance', input: 'number', doc: 'Days old product versions stay in the local cache' }),
  backupKeep: def({ schema: int(1, 365), default: 7, env: 'DRIVESHIP_BACKUP_KEEP', writable: true, ui: true, group: 'maintenance', input: 'number', doc: 'Nightly backups kept' }),

  // ---- this host's listeners ----
  adminHost: def({ schema: z.string().min(1), default: '127.0.0.1', writable: false, ui: false, group: 'host', input: 'text', doc: 'Address of the admin listener (always loopback)' }),
  adminPort: def({ schema: int(0, 65535), default: 4710, env: 'DRIVESHIP_ADMIN_PORT', writable: false, ui: false, group: 'host', input: 'number', doc: 'Port of the admin window and API' }),
  webhookHost: def({ schema: z.string().min(1), default: '127.0.0.1', env: 'DRIVESHIP_WEBHOOK_HOST', writable: false, ui: false, group: 'host', input: 'text', doc: 'Address of the webhook listener' }),
  allowPrivateOrigins: def({ schema: z.boolean(), default: false, env: 'DRIVESHIP_ALLOW_PRIVATE_ORIGINS', writable: false, ui: false, group: 'host', input: 'toggle', doc: 'Fetch product data from loopback and private addresses too (sandbox, demo, tests); never the default' }),
  headersTimeoutSec: def({ schema: int(1, 600), default: 10, env: 'DRIVESHIP_HEADERS_TIMEOUT_SEC', writable: false, ui: false, group: 'host', input: 'number', doc: 'Both listeners: seconds a client has to send its request headers' }),
  requestTimeoutSec: def({ schema: int(1, 3600), default: 30, env: 'DRIVESHIP_REQUEST_TIMEOUT_SEC', writable: false, ui: false, group: 'host', input: 'number', doc: 'Both listeners: seconds a client has to send its whole request' }),
  keepAliveTimeoutSec: def({ schema: int(1, 600), default: 5, env: 'DRIVESHIP_KEEPALIVE_TIMEOUT_SEC', writable: false, ui: false, group: 'host', input: 'number', doc: 'Both listeners: an idle kept-alive connection is closed after this many seconds' }),
  maxConnections: def({ schema: int(1, 100_000), default: 1024, env: 'DRIVESHIP_MAX_CONNECTIONS', writable: false, ui: false, group: 'host', input: 'number', doc: 'Open connections each listener accepts; more are closed at once' }),
  webhookPort: def({ schema: int(0, 65535), default: 4711, env: 'DRIVESHIP_WEBHOOK_PORT', writable: false, ui: false, group: 'host', input: 'number', doc: 'Port of the webhook listener (the one a tunnel exposes)' }),
} as const;

export type SettingKey = keyof typeof SETTINGS;
export type Config = { -readonly [K in SettingKey]: z.output<(typeof SETTINGS)[K]['schema']> };

export const SETTING_KEYS = Object.keys(SETTINGS) as SettingKey[];
export const SECRET_SETTINGS = SETTING_KEYS.filter((k) => (SETTINGS[k] as Def<z.ZodType>).secret === true) as readonly SecretSetting[];
export type SecretSetting = {
  [K in SettingKey]: (typeof SETTINGS)[K] extends { secret: true } ? K : never;
}[SettingKey];
export type PublicSetting = {
  [K in SettingKey]: (typeof SETTINGS)[K] extends { secret: true } ? never : (typeof SETTINGS)[K] extends { ui: true } ? K : never;
}[SettingKey];
export type WritableSetting = {
  [K in SettingKey]: (typeof SETTINGS)[K] extends { writable: true } ? K : never;
}[SettingKey];

export const isSecretSetting = (key: string): key is SecretSetting => (SECRET_SETTINGS as readonly string[]).includes(key);
export const settingDef = (key: SettingKey): Def<z.ZodType> => SETTINGS[key] as Def<z.ZodType>;
export const isNullable = (key: SettingKey): boolean => settingDef(key).schema.safeParse(null).success;

export const DEFAULTS: Config = Object.fromEntries(SETTING_KEYS.map((k) => [k, settingDef(k).default])) as Config;

/**
 * What PUT /settings accepts: the writable settings, each optional; '' or null clears one that
 * can be unset (a secret, an optional text), which falls back to its default.
 */
export const SettingsUpdateSchema = z
  .object(
    Object.fromEntries(
      SETTING_KEYS.filter((k) => settingDef(k).writable).map((k) => {
        const s = settingDef(k).schema;
        return [k, isNullable(k) ? z.union([s, z.literal('')]) : s];
      }),
    ) as { [K in WritableSetting]: z.ZodType<z.output<(typeof SETTINGS)[K]['schema']> | ''> },
  )
  .partial()
  .strict();
export type SettingsUpdate = Partial<{ [K in WritableSetting]: Config[K] | '' }>;

export type SecretState = { set: false } | { set: true; last4: string };

/** What GET /settings answers: public values, secrets only as set/unset, and which the environment locks. */
export type SettingsDto = { [K in PublicSetting]: Config[K] } & {
  secrets: Record<SecretSetting, SecretState>;
  /** Settings the environment overrides (they cannot be changed here). */
  fromEnvironment: SettingKey[];
};

/** Parses an environment variable's text into a setting's value, or says what is wrong with it. */
export function parseEnvSetting(key: SettingKey, raw: string): { ok: true; value: unknown } | { ok: false; message: string } {
  const d = settingDef(key);
  const name = d.env ?? key;
  let value: unknown = raw;
  const sample = d.default;
  if (typeof sample === 'number') value = raw.trim() === '' ? NaN : Number(raw);
  else if (typeof sample === 'boolean') value = raw === '1' || raw.toLowerCase() === 'true' || raw.toLowerCase() === 'yes';
  else if (Array.isArray(sample) && d.input === 'list') value = raw.split(',').map((s) => s.trim()).filter(Boolean);
  else if (Array.isArray(sample) || (sample !== null && typeof sample === 'object')) {
    try {
      value = JSON.parse(raw);
    } catch {
      return { ok: false, message: `${name} must be JSON` };
    }
  }
  const r = d.schema.safeParse(value);
  if (!r.success) {
    const i = r.error.issues[0]!;
    return { ok: false, message: `${name}${i.path.length ? '.' + i.path.join('.') : ''}: ${i.message} (got "${raw.length > 40 ? raw.slice(0, 40) + '…' : raw}")` };
  }
  return { ok: true, value: r.data };
}

/** The README's settings table (`npm run docs:settings` writes it; a test checks it is current). */
export function settingsMarkdownTable(): string {
  const rows = SETTING_KEYS.map((k) => {
    const d = settingDef(k);
    const dflt = d.secret ? '' : d.default === null ? '' : JSON.stringify(d.default);
    const where = d.writable ? (d.ui ? 'Settings' : 'API') : 'environment';
    return `| \`${k}\` | ${d.env ? `\`${d.env}\`` : ''} | ${dflt ? `\`${dflt}\`` : ''} | ${d.secret ? 'secret, ' : ''}${where} | ${d.doc} |`;
  });
  return ['| setting | environment variable | default | set in | what it does |', '|---|---|---|---|---|', ...rows].join('\n');
}
