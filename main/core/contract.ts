// The one typed contract between the admin API, its clients (the renderer, scripts, tests).
// Request bodies are parsed with these schemas at the boundary; response types are declared here
// so that both sides compile against the same names. Names listed in DESIGN.md are stable.
import { z } from 'zod';
import { ORDER_STATUSES } from './order';

const vnd = z.number().int().min(0).max(1e13);
const text = (max: number) => z.string().trim().min(1).max(max);

export const SourceConfigSchema = z.discriminatedUnion('kind', [
  z.object({ kind: z.literal('http-manifest'), manifestUrl: z.url({ protocol: /^https?$/ }) }),
  z.object({ kind: z.literal('local-folder'), path: text(4096) }),
  z.object({ kind: z.literal('drive-folder'), folderId: z.string().regex(/^[A-Za-z0-9_-]{5,200}$/) }),
]);
export type SourceConfig = z.infer<typeof SourceConfigSchema>;

export const DeliveryModeSchema = z.enum(['private-copy', 'shared-library']);
export type DeliveryMode = z.infer<typeof DeliveryModeSchema>;

/** What a product update does for past buyers: bring them up to date, wait for the owner, or nothing. */
export const UpdateRuleSchema = z.enum(['automatic', 'ask', 'never']);
export type UpdateRule = z.infer<typeof UpdateRuleSchema>;
/** A private copy that would cross Drive's daily upload limit: wait for capacity, or share the library. */
export const QuotaFallbackSchema = z.enum(['wait', 'shared-library']);
export type QuotaFallback = z.infer<typeof QuotaFallbackSchema>;

export const ProductCreateSchema = z.object({
  name: text(200),
  priceVnd: vnd,
  source: SourceConfigSchema,
  delivery: DeliveryModeSchema.optional(),
  accessDays: z.number().int().min(1).max(3650).nullable().optional(),
  updates: UpdateRuleSchema.optional(),
  updateEmail: z.boolean().optional(),
  restrictDownloads: z.boolean().optional(),
  quotaFallback: QuotaFallbackSchema.optional(),
});
export type ProductCreate = z.infer<typeof ProductCreateSchema>;
export const ProductUpdateSchema = ProductCreateSchema.partial().extend({ archived: z.boolean().optional() });
export type ProductUpdate = z.infer<typeof ProductUpdateSchema>;

export const OrderCreateSchema = z.object({
  customerEmail: z.email().max(254),
  customerName: z.string().trim().max(200).optional(),
  items: z.array(z.object({ productId: z.string().min(1).max(100) })).min(1).max(50),
  vip: z.boolean().optional(),
  locale: z.enum(['vi', 'en']).optional(),
});
export type OrderCreate = z.infer<typeof OrderCreateSchema>;

export const OrderStatusSchema = z.enum(ORDER_STATUSES);

export const ListQuerySchema = z.object({
  limit: z.coerce.number().int().min(1).max(1000).default(100),
  offset: z.coerce.number().int().min(0).default(0),
});

export const OrderListQuerySchema = ListQuerySchema.extend({
  status: OrderStatusSchema.optional(),
  q: z.string().max(200).optional(),
});

export const PaymentListQuerySchema = ListQuerySchema.extend({
  unmatched: z.enum(['true', 'false', '1', '0']).optional(),
  orderId: z.string().max(100).optional(),
});

export const DeliveryListQuerySchema = ListQuerySchema.extend({
  state: z.string().regex(/^[a-z_]{1,30}$/).optional(),
});

export const DeliveryPrioritySchema = z.object({ priority: z.number().int().min(-10).max(10) });

export const PaymentAssignSchema = z.object({ orderId: z.string().min(1).max(100) });

// ---- after the sale ----
export const OrderRevokeSchema = z.object({ reason: z.string().trim().max(500).optional() }).strict();
export type OrderRevoke = z.infer<typeof OrderRevokeSchema>;
/** Moves an order's access to a corrected address (the old one loses it, the new one gets it). */
export const OrderMoveSchema = z.object({ email: z.email().max(254), reason: z.string().trim().max(500).optional() }).strict();
export type OrderMove = z.infer<typeof OrderMoveSchema>;
export const CustomerEmailSchema = z.email().max(254);
/** The owner's answer to a product update that waits for them ("ask me"). */
export const UpdateDecisionSchema = z.object({ decision: z.enum(['apply', 'skip']) }).strict();
export type UpdateDecision = z.infer<typeof UpdateDecisionSchema>;

export const SettingsUpdateSchema = z
  .object({
    codePrefix: z.string().regex(/^[A-Za-z]{2,10}$/).transform((s) => s.toUpperCase()),
    receivingAccounts: z.array(z.string().regex(/^[0-9A-Za-z]{1,30}$/)).max(20),
    bankBin: z.string().regex(/^\d{6}$/),
    bankAccount: z.string().regex(/^[0-9A-Za-z]{1,19}$/),
    bankAccountName: z.string().max(100),
    orderExpiryHours: z.number().int().min(1).max(24 * 90),
    webhookRateLimitPerMin: z.number().int().min(1).max(1_000_000),
    language: z.enum(['vi', 'en']),
    sepayApiBase: z.url({ protocol: /^https?$/ }),
    shopName: z.string().trim().min(1).max(100),
    googleClientId: z.string().max(300),
    smtpHost: z.string().max(255),
    smtpPort: z.number().int().min(1).max(65535),
    smtpSecure: z.boolean(),
    smtpUser: z.string().max(255),
    smtpFrom: z.string().max(255),
    maxDownloads: z.number().int().min(1).max(64),
    maxUploads: z.number().int().min(1).max(32),
    maxPerHost: z.number().int().min(1).max(64),
    downloadKBps: z.number().int().min(0).max(10_000_000),
    uploadKBps: z.number().int().min(0).max(10_000_000),
    watchdogStallMinutes: z.number().int().min(1).max(1440),
    cacheRetentionDays: z.number().int().min(1).max(3650),
    backupKeep: z.number().int().min(1).max(365),
    bandwidthSchedule: z
      .array(
        z.object({
          from: z.string().regex(/^([01]\d|2[0-3]):[0-5]\d$/),
          to: z.string().regex(/^([01]\d|2[0-3]):[0-5]\d$/),
          downloadKBps: z.number().int().min(0).max(10_000_000).optional(),
          uploadKBps: z.number().int().min(0).max(10_000_000).optional(),
        }),
      )
      .max(24),
    tunnelProvider: z.enum(['none', 'ngrok', 'cloudflared']),
    publicUrl: z.union([z.url({ protocol: /^https?$/ }), z.literal('')]),
    ngrokDomain: z.string().max(253),
    cloudflaredPath: z.string().max(4096),
    driveDailyLimitMB: z.number().int().min(1).max(100_000_000),
    ownerAlertEmail: z.union([z.email(), z.literal('')]),
    telegramChatId: z.string().regex(/^-?\d{1,20}$|^$/),
    // Secrets: write-only. An empty string clears one.
    sepayApiKey: z.string().max(500),
    sepayHmacSecret: z.string().max(500),
    sepayApiToken: z.string().max(500),
    googleClientSecret: z.string().max(500),
    smtpPassword: z.string().max(500),
    ngrokAuthtoken: z.string().max(500),
    cloudflaredToken: z.string().max(2000),
    telegramBotToken: z.string().max(200),
  })
  .partial()
  .strict();
export type SettingsUpdate = z.infer<typeof SettingsUpdateSchema>;

export const SECRET_SETTINGS = ['sepayApiKey', 'sepayHmacSecret', 'sepayApiToken', 'googleClientSecret', 'smtpPassword', 'ngrokAuthtoken', 'cloudflaredToken', 'telegramBotToken'] as const;
export type SecretSetting = (typeof SECRET_SETTINGS)[number];

// ---- responses ----
export interface ApiError {
  error: { code: string; message: string; field?: string };
}

export interface ProductDto {
  id: string;
  name: string;
  priceVnd: number;
  source: SourceConfig;
  delivery: DeliveryMode;
  accessDays: number | null;
  archived: boolean;
  updates: UpdateRule;
  updateEmail: boolean;
  restrictDownloads: boolean;
  quotaFallback: QuotaFallback;
  createdAt: number;
  updatedAt: number;
  library?: { state: 'none' | 'fetching' | 'cached' | 'uploading' | 'in_drive'; version: number; bytes: number };
}

export interface PaymentDto {
  id: string;
  sepayId: number | null;
  referenceCode: string;
  gateway: string;
  accountNumber: string;
  transactionDate: string;
  transferType: 'in' | 'out';
  amountVnd: number;
  content: string;
  orderId: string | null;
  orderCode: string | null;
  match: string;
  flags: string[];
  via: string;
  receivedAt: number;
  /** A share of one transfer that paid several orders: the transfer's own row. */
  parentId?: string | null;
}

export interface DeliveryProgressDto {
  phase: string;
  bytesDone: number;
  bytesTotal: number;
  bytesPerSec: number;
  etaSec: number | null;
  files: { path: string; state: string; bytesDone: number; bytesTotal: number | null }[];
}

export interface DeliveryDto {
  id: string;
  orderId: string;
  productId: string;
  productName?: string;
  state: string;
  priority: number;
  attempts: number;
  nextAttemptAt: number | null;
  errorCode: string | null;
  errorMessage: string | null;
  createdAt: number;
  updatedAt: number;
  deliveredAt: number | null;
  orderCode?: string;
  customerEmail?: string;
  vip?: boolean;
  folderId?: string | null;
  progress?: DeliveryProgressDto | null;
  /** How it reached the customer when not by the product's mode (quota fallback, repeat purchase). */
  deliveredVia?: 'shared-library' | 'existing' | null;
  /** The delivery whose access a repeat purchase points at. */
  reuses?: string | null;
  /** A step waiting for Drive capacity, and when it expects to go on. */
  waiting?: { code: 'DRIVE_DAILY_LIMIT' | 'SHARING_LIMIT'; until: number | null } | null;
  /** The address that holds the Drive permission. */
  shareEmail?: string | null;
}

export interface OrderDto {
  id: string;
  code: string;
  customerEmail: string;
  customerName: string | null;
  amountVnd: number;
  paidVnd: number;
  overpaidVnd: number;
  status: z.infer<typeof OrderStatusSchema>;
  vip: boolean;
  locale: 'vi' | 'en';
  items: { id: string; productId: string; priceVnd: number }[];
  createdAt: number;
  paidAt: number | null;
  expiresAt: number | null;
}

export interface OrderDetailDto extends OrderDto {
  deliveries: DeliveryDto[];
  payments: PaymentDto[];
  /** After-sale actions on the order (revoke, move), oldest first. */
  actions?: AccessActionDto[];
}

export interface OrderCreatedDto extends OrderDto {
  vietqr: { payload: string; png: string } | null;
  paymentText: { accountNumber: string | null; bankBin: string | null; amountVnd: number; content: string };
}

export type SecretState = { set: false } | { set: true; last4: string };

export interface SettingsDto {
  codePrefix: string;
  receivingAccounts: string[];
  bankBin: string | null;
  bankAccount: string | null;
  bankAccountName: string | null;
  orderExpiryHours: number;
  webhookRateLimitPerMin: number;
  language: 'vi' | 'en';
  sepayApiBase: string;
  shopName: string;
  googleClientId: string | null;
  smtpHost: string | null;
  smtpPort: number;
  smtpSecure: boolean;
  smtpUser: string | null;
  smtpFrom: string | null;
  maxDownloads: number;
  maxUploads: number;
  maxPerHost: number;
  downloadKBps: number;
  uploadKBps: number;
  watchdogStallMinutes: number;
  cacheRetentionDays: number;
  backupKeep: number;
  bandwidthSchedule: { from: string; to: string; downloadKBps?: number; uploadKBps?: number }[];
  tunnelProvider: 'none' | 'ngrok' | 'cloudflared';
  publicUrl: string | null;
  ngrokDomain: string | null;
  cloudflaredPath: string | null;
  ownerAlertEmail: string | null;
  telegramChatId: string | null;
  driveDailyLimitMB: number;
  secrets: Record<SecretSetting, SecretState>;
  /** Which values the environment overrides (they cannot be changed here). */
  fromEnvironment: string[];
}

export interface ListDto<T> {
  items: T[];
  total: number;
}

export interface AccessActionStepDto {
  deliveryId: string;
  outcome: 'revoked' | 'kept' | 'none' | null;
  shared: boolean;
  unshared: boolean;
  trashed: boolean;
  notifyState: string | null;
}

/** An after-sale action on an order (revoke after a refund, or a move to a corrected address). */
export interface AccessActionDto {
  id: string;
  kind: 'revoke' | 'move';
  orderId: string;
  actor: string;
  reason: string | null;
  oldEmail: string;
  newEmail: string | null;
  state: 'running' | 'done';
  attempts: number;
  nextAt: number | null;
  error: string | null;
  createdAt: number;
  finishedAt: number | null;
  steps: AccessActionStepDto[];
}

export interface ResendDto {
  deliveryId: string;
  to: string;
  messageId: string;
}

export interface UpdateTargetDto {
  deliveryId: string;
  orderId: string;
  orderCode: string;
  customerEmail: string;
  mode: DeliveryMode;
  state: 'pending' | 'done' | 'failed' | 'skipped';
  attempts: number;
  nextAt: number | null;
  errorCode: string | null;
  error: string | null;
  notifyState: string | null;
  updatedAt: number;
}

/** A new version of a product reaching its past buyers. */
export interface ProductUpdateDto {
  id: string;
  productId: string;
  version: number;
  fromVersion: number | null;
  state: 'preparing' | 'waiting' | 'running' | 'done' | 'skipped';
  rule: UpdateRule;
  added: number;
  changed: number;
  removed: number;
  createdAt: number;
  startedAt: number | null;
  finishedAt: number | null;
  counts: { pending: number; done: number; failed: number; skipped: number };
  targets?: UpdateTargetDto[];
}

export interface PrepareResultDto {
  started: boolean;
}

/** Drive capacity: the last 24 h of uploads and copies against the daily limit, and storage. */
export interface DriveQuotaDto {
  windowMs: number;
  usedBytes: number;
  uploadBytes: number;
  copyBytes: number;
  limitBytes: number;
  /** When the bytes counted now will have aged out enough to free `freeAfterBytes` (null: nothing waits). */
  waiting: { deliveries: number; bytes: number; etaMs: number | null };
  storage: { usageBytes: number; limitBytes: number | null } | null;
  sharing: { pausedUntil: number | null; backoffMs: number };
}

export interface CustomerAccessDto {
  deliveryId: string;
  orderId: string;
  orderCode: string;
  productId: string;
  productName: string;
  mode: DeliveryMode | 'existing';
  folderId: string | null;
  /** live: the customer can open it; revoked / expired / none (never shared). */
  state: 'live' | 'revoked' | 'expired' | 'none';
  expiresAt: number | null;
}

export interface CustomerDto {
  email: string;
  name: string | null;
  orders: OrderDto[];
  deliveries: DeliveryDto[];
  payments: PaymentDto[];
  access: CustomerAccessDto[];
  actions: AccessActionDto[];
  totals: { orders: number; paidVnd: number };
}
