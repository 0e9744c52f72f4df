// The one typed contract between the admin API, its clients (the renderer, scripts, tests).
// Request bodies are parsed with these schemas at the boundary; response types are declared here
// so that both sides compile against the same names. Names listed in DESIGN.md are stable.
import { z } from 'zod';
import { ORDER_STATUSES } from './order';

const vnd = z.number().int().min(0).max(1e13);
const text = (max: number) => z.string().trim().min(1).max(max);

export const SourceConfigSchema = z.discriminatedUnion('kind', [
  z.object({
    kind: z.literal('http-manifest'),
    manifestUrl: z.url({ protocol: /^https?$/ }),
    /** "The files are on my local network": private ranges (10/8, 192.168/16, ...) allowed for this product. */
    privateNetwork: z.boolean().optional(),
  }),
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

/** Orders that need the owner: a delivery failed, money to refund, money still missing. */
export const ORDER_ATTENTION = ['failed', 'overpaid', 'underpaid'] as const;
export type OrderAttention = (typeof ORDER_ATTENTION)[number];

export const OrderListQuerySchema = ListQuerySchema.extend({
  status: OrderStatusSchema.optional(),
  /** Found whatever the accents and case: "thi lan" finds "Thị Lan". */
  q: z.string().max(200).optional(),
  attention: z.enum(ORDER_ATTENTION).optional(),
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

/** A simulated bank transfer for an order (sandbox hosts only); any amount, to try under- and overpaying. */
export const SandboxPaySchema = z.object({ amountVnd: vnd.min(1).optional() }).strict();
export type SandboxPay = z.infer<typeof SandboxPaySchema>;

/** A source to look at before saving a product (nothing is stored). */
export const SourceCheckSchema = z.object({ source: SourceConfigSchema }).strict();
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

// Settings: declared once in the registry (./settings), from which the request schema and the
// response type are derived.
export { SettingsUpdateSchema, SECRET_SETTINGS, SETTINGS, SETTING_GROUPS } from './settings';
export type { SettingsUpdate, SecretSetting, SecretState, SettingsDto, SettingKey, SettingGroup, SettingInput } from './settings';

// ---- responses ----
/** One field at fault in a request body (dotted path, e.g. "source.manifestUrl"). */
export interface FieldIssue {
  field: string;
  code: string;
  message: string;
}

export interface ApiError {
  error: { code: string; message: string; field?: string; fields?: FieldIssue[] };
}

/** What looking at a product's source found: the files it would deliver, or what is wrong. */
export interface SourceCheckDto {
  at: number;
  ok: boolean;
  files: number;
  /** Sum of the sizes known (a manifest may leave sizes out). */
  bytes: number;
  /** Files whose size the source does not say. */
  unknownSizes: number;
  /** A few of the paths, for the owner to recognise the product. */
  sample: string[];
  problem: { code: string; message: string } | null;
  /** A manifest's files asked about one by one at the origin (checked of total, within a time budget). */
  probed?: { checked: number; total: number } | null;
  /** Files the origin says are not there. */
  missing?: { path: string; status: number }[];
  /** Files that could not be asked about, or whose size differs from the manifest's. */
  unreachable?: { path: string; message: string }[];
}

/** The last "Prepare now" of a product and how it ended. */
export interface PrepareOutcomeDto {
  at: number;
  state: 'running' | 'done' | 'failed';
  code: string | null;
  message: string | null;
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
  /** The last look at its source (at save, or "Check again"). */
  check?: SourceCheckDto | null;
  prepare?: PrepareOutcomeDto | null;
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
  /** Names of its products, in item order (lists). */
  productNames?: string[];
  /** Its deliveries by outcome (lists): what the status badge alone does not say. */
  deliveryCounts?: { total: number; delivered: number; failed: number };
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

export const CustomerListQuerySchema = ListQuerySchema.extend({ q: z.string().max(200).optional() });

/** One line of the customer list. */
export interface CustomerSummaryDto {
  email: string;
  name: string | null;
  orders: number;
  delivered: number;
  paidVnd: number;
  lastOrderAt: number;
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
// ---- engine, operations and live events: responses the renderer parses (not trusts), so that
// a change on either side shows up as a clear error ----
export const AlertSchema = z.object({
  code: z.string(),
  level: z.enum(['info', 'warning', 'error']).catch('warning'),
  message: z.string(),
  since: z.number().nullable().optional(),
  action: z.string().nullable().optional(),
});
export type Alert = z.infer<typeof AlertSchema>;

export const DashboardSchema = z.object({
  today: z.object({ orders: z.number(), revenueVnd: z.number(), paidOrders: z.number() }),
  deliveriesByState: z.record(z.string(), z.number()),
  speed: z.object({ downBps: z.number(), upBps: z.number() }),
  /** Connections to each origin host now (the adaptive window) and the owner's ceiling. */
  origins: z.array(z.object({ host: z.string(), connections: z.number(), inUse: z.number(), ceiling: z.number() })).optional(),
  throughput: z.array(z.object({ t: z.number(), downBytes: z.number(), upBytes: z.number() })),
  alerts: z.array(AlertSchema),
  paused: z.boolean().optional(),
  /** What needs the owner, always counted (not only once an alert fires). */
  attention: z
    .object({
      failedDeliveries: z.number(),
      unmatchedPayments: z.number(),
      overpaidOrders: z.number(),
      overpaidVnd: z.number(),
      underpaidOrders: z.number(),
      underpaidVnd: z.number(),
    })
    .optional(),
  recentOrders: z
    .array(
      z.object({
        id: z.string(),
        code: z.string(),
        customerName: z.string().nullable(),
        customerEmail: z.string(),
        amountVnd: z.number(),
        paidVnd: z.number(),
        status: z.string(),
        createdAt: z.number(),
        productNames: z.array(z.string()),
        deliveryCounts: z.object({ total: z.number(), delivered: z.number(), failed: z.number() }),
      }),
    )
    .optional(),
});
export type Dashboard = z.infer<typeof DashboardSchema>;

export const EngineSchema = z.object({
  paused: z.boolean(),
  active: z.number().optional(),
  transfers: z.object({ running: z.object({ download: z.number(), upload: z.number() }), queued: z.number(), bytesDown: z.number(), bytesUp: z.number() }).optional(),
});
export type EngineState = z.infer<typeof EngineSchema>;

/** GET /workers: the transfer workers of this shop (more machines over BullMQ). */
export const WorkerSchema = z.object({
  name: z.string(),
  /** The machine it runs on. */
  host: z.string(),
  version: z.string(),
  /** The host's own worker thread. */
  embedded: z.boolean(),
  alive: z.boolean(),
  /** When it last reported (ms since the epoch, Redis's clock). */
  lastSeenAt: z.number(),
  startedAt: z.number(),
  stoppedAt: z.number().nullable(),
  running: z.object({ download: z.number(), upload: z.number() }),
  slots: z.object({ download: z.number(), upload: z.number() }),
  done: z.number(),
  failed: z.number(),
  /** Jobs it refused because they need a newer driveship. */
  refused: z.number(),
  bytesDown: z.number(),
  bytesUp: z.number(),
  downBps: z.number(),
  upBps: z.number(),
});
export type WorkerDto = z.infer<typeof WorkerSchema>;
export const WorkersSchema = z.object({
  /** 'local': this computer alone (no Redis); 'bullmq': workers over Redis. */
  mode: z.enum(['local', 'bullmq']),
  /** The Redis address without credentials, and whether it answers now (bullmq only). */
  redis: z.object({ url: z.string(), connected: z.boolean() }).nullable(),
  items: z.array(WorkerSchema),
});
export type WorkersDto = z.infer<typeof WorkersSchema>;

export const GoogleSchema = z.object({
  connected: z.boolean(),
  account: z.string().nullable().optional(),
  mode: z.string().nullable().optional(),
  scopes: z.array(z.string()).nullable().optional(),
  /** Drive storage: bytes used and the limit (null: unlimited or not known). */
  quota: z.object({ usage: z.number(), limit: z.number().nullable() }).nullable().optional(),
  /** Why the account could not be read (connected, but Google refused or is unreachable). */
  error: z.object({ code: z.string(), message: z.string() }).nullable().optional(),
  /** The OAuth client id and secret are set (without them "Connect" cannot work). */
  clientConfigured: z.boolean().optional(),
});

/** Each connection and the evidence that it works (Settings, the getting-started checklist). */
export const ConnectionsSchema = z.object({
  webhook: z.object({
    /** The listener is up (it starts once SePay authentication is configured). */
    listening: z.boolean(),
    /** The address on this machine (what a tunnel points at). */
    localUrl: z.string().nullable(),
    /** The address to paste into SePay (through the tunnel or your own proxy); null until known. */
    publicUrl: z.string().nullable(),
    auth: z.enum(['hmac', 'apikey', 'both', 'none']),
  }),
  sepay: z.object({
    /** The last webhook that arrived, accepted or not. */
    lastAt: z.number().nullable(),
    lastStatus: z.number().nullable(),
    lastReason: z.string().nullable(),
    /** The last webhook that was accepted (the proof that SePay reaches this shop). */
    lastAcceptedAt: z.number().nullable(),
    accepted24h: z.number(),
    refused24h: z.number(),
  }),
  tunnel: z.object({
    provider: z.string(),
    state: z.string(),
    publicUrl: z.string().nullable(),
    error: z.string().nullable(),
    problems: z.array(z.string()),
    /** Whether /healthz answered through the public address at the last check. */
    reachable: z.boolean().nullable(),
    checkedAt: z.number().nullable(),
    checkError: z.string().nullable(),
  }),
  alerts: z.object({ email: z.boolean(), telegram: z.boolean(), smtp: z.boolean() }),
  /** The host runs against the local sandbox (simulated transfers allowed). */
  sandbox: z.boolean(),
});
export type Connections = z.infer<typeof ConnectionsSchema>;

export const AlertTestSchema = z.object({ email: z.string(), telegram: z.string() });
export type AlertTest = z.infer<typeof AlertTestSchema>;
export type GoogleState = z.infer<typeof GoogleSchema>;

export const JobsSchema = z.object({
  items: z.array(
    z.object({
      name: z.string(),
      lastRunAt: z.number().nullable().optional(),
      lastResult: z.string().nullable().optional(),
      nextRunAt: z.number().nullable().optional(),
    }),
  ),
});
export type Job = z.infer<typeof JobsSchema>['items'][number];

export const DeliveryEventSchema = z.object({
  at: z.number(),
  type: z.string(),
  from: z.string().nullable().optional(),
  to: z.string().nullable().optional(),
  detail: z.unknown().optional(),
});
export type DeliveryEvent = z.infer<typeof DeliveryEventSchema>;

export const TimelineSchema = z.object({
  items: z.array(z.object({ at: z.number(), kind: z.string(), text: z.string(), detail: z.unknown().optional() })),
});
export type TimelineEntry = z.infer<typeof TimelineSchema>['items'][number];

export const AuditEntrySchema = z.object({
  id: z.number(),
  at: z.number(),
  actor: z.string(),
  action: z.string(),
  target: z.string().nullable(),
  detail: z.unknown(),
});
export type AuditEntry = z.infer<typeof AuditEntrySchema>;

export const ApiErrorBodySchema = z.object({
  error: z.object({
    code: z.string(),
    message: z.string(),
    field: z.string().optional(),
    fields: z.array(z.object({ field: z.string(), code: z.string(), message: z.string() })).optional(),
  }),
});

// ---- live events (the bus payloads, see the admin API's /events) ----
export const LiveEventSchemas = {
  payment: z.object({ paymentId: z.string(), orderId: z.string().nullable(), match: z.string(), amountVnd: z.number() }),
  order: z.object({ orderId: z.string(), status: z.string() }),
  delivery: z.object({ deliveryId: z.string(), orderId: z.string(), state: z.string(), detail: z.record(z.string(), z.unknown()).optional() }),
  progress: z.object({
    deliveryId: z.string(),
    bytes: z.number(),
    total: z.number().nullable(),
    phase: z.string(),
    bytesPerSec: z.number(),
    etaSec: z.number().nullable().optional(),
  }),
  alert: z.object({ code: z.string(), level: z.enum(['info', 'warning', 'error']).catch('warning'), message: z.string(), raised: z.boolean() }),
  settings: z.object({ keys: z.array(z.string()) }),
  product: z.object({ productId: z.string(), state: z.string() }),
  update: z.object({ updateId: z.string(), productId: z.string(), state: z.string() }),
} as const;
export type LiveEventType = keyof typeof LiveEventSchemas;
export type LiveEvents = { [K in LiveEventType]: z.infer<(typeof LiveEventSchemas)[K]> };
export const LIVE_EVENT_TYPES = Object.keys(LiveEventSchemas) as LiveEventType[];
