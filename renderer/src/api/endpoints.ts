// One typed function per admin API route. Request bodies use the contract's types.
import type {
  AccessActionDto,
  CustomerDto,
  CustomerSummaryDto,
  DeliveryDto,
  DriveQuotaDto,
  OrderMove,
  OrderRevoke,
  ProductUpdateDto,
  ResendDto,
  UpdateDecision,
  ListDto,
  OrderCreate,
  OrderCreatedDto,
  OrderDetailDto,
  OrderDto,
  PaymentDto,
  ProductCreate,
  ProductDto,
  ProductUpdate,
  SettingsDto,
  SettingsUpdate,
} from '../../../main/core/contract';
import type { OrderStatus } from '../../../main/core/order';
import { call, parsed, query, send } from './client';
import { AlertTestSchema, AuditEntrySchema, ConnectionsSchema, DashboardSchema, DeliveryEventSchema, EngineSchema, GoogleSchema, JobsSchema, TimelineSchema, WorkersSchema } from '../../../main/core/contract';
import type { OrderAttention, SandboxPay, SourceCheckDto, SourceConfig } from '../../../main/core/contract';
import { z } from 'zod';

export type Delivery = DeliveryDto;
export type Product = ProductDto;

const enc = encodeURIComponent;

export const products = {
  list: async (archived = false) => (await call<{ items: ProductDto[] }>('GET', `/products${query({ archived: archived || undefined })}`)).items,
  get: (id: string) => call<ProductDto>('GET', `/products/${enc(id)}`),
  create: (body: ProductCreate) => call<ProductDto>('POST', '/products', body),
  update: (id: string, patch: ProductUpdate) => call<ProductDto>('PATCH', `/products/${enc(id)}`, patch),
  prepare: (id: string) => call<unknown>('POST', `/products/${enc(id)}/prepare`, {}),
  /** Looks at a source without saving anything (file count and size, or what is wrong). */
  checkSource: (source: SourceConfig) => call<SourceCheckDto>('POST', '/products/check', { source }),
  check: (id: string) => call<SourceCheckDto>('POST', `/products/${enc(id)}/check`, {}),
};

export const orders = {
  list: (f: { status?: OrderStatus | ''; q?: string; attention?: OrderAttention | ''; limit: number; offset: number }) =>
    call<ListDto<OrderDto>>('GET', `/orders${query(f)}`),
  /** With the QR of what is still due while the order waits for money. */
  get: (idOrCode: string) => call<OrderDetailDto & Partial<Pick<OrderCreatedDto, 'vietqr' | 'paymentText'>>>('GET', `/orders/${enc(idOrCode)}`),
  create: (body: OrderCreate) => call<OrderCreatedDto>('POST', '/orders', body),
  timeline: async (id: string) => (await parsed(TimelineSchema, 'GET', `/orders/${enc(id)}/timeline`)).items,
  /** Sandbox hosts only: a simulated bank transfer through the real webhook listener. */
  simulatePayment: (id: string, body: SandboxPay) => call<{ referenceCode: string; amountVnd: number; order: OrderDto }>('POST', `/sandbox/orders/${enc(id)}/pay`, body),
};

export const payments = {
  list: (f: { unmatched?: boolean; limit: number; offset: number }) =>
    call<ListDto<PaymentDto>>('GET', `/payments${query({ unmatched: f.unmatched ? 'true' : undefined, limit: f.limit, offset: f.offset })}`),
  assign: (id: string, orderId: string) =>
    call<{ payment: PaymentDto; orderStatus: string }>('POST', `/payments/${enc(id)}/assign`, { orderId }),
};

export const deliveries = {
  list: (f: { state?: string; limit: number; offset: number }, signal?: AbortSignal) =>
    call<ListDto<DeliveryDto>>('GET', `/deliveries${query(f)}`, undefined, { signal }),
  get: async (id: string) => {
    const d = await call<DeliveryDto & { events?: unknown }>('GET', `/deliveries/${enc(id)}`);
    const events = z.array(DeliveryEventSchema).safeParse(d.events ?? []);
    return { ...d, events: events.success ? events.data : [] };
  },
  retry: (id: string) => call<unknown>('POST', `/deliveries/${enc(id)}/retry`, {}),
  cancel: (id: string) => call<unknown>('POST', `/deliveries/${enc(id)}/cancel`, {}),
  priority: (id: string, priority: number) => call<unknown>('POST', `/deliveries/${enc(id)}/priority`, { priority }),
  retryFailed: async () => {
    const r = await call<unknown>('POST', '/deliveries/retry-failed', {});
    const p = z.object({ count: z.number() }).safeParse(r);
    return p.success ? p.data.count : null;
  },
};

export const workers = {
  list: () => parsed(WorkersSchema, 'GET', '/workers'),
};

export const engine = {
  get: () => parsed(EngineSchema, 'GET', '/engine'),
  pause: () => call<unknown>('POST', '/engine/pause', {}),
  resume: () => call<unknown>('POST', '/engine/resume', {}),
};

export const dashboard = {
  get: () => parsed(DashboardSchema, 'GET', '/dashboard'),
};

export const settings = {
  get: () => call<SettingsDto>('GET', '/settings'),
  put: (patch: SettingsUpdate) => call<SettingsDto>('PUT', '/settings', patch),
};

export const google = {
  get: () => parsed(GoogleSchema, 'GET', '/google'),
  connect: () => parsed(z.object({ authUrl: z.string() }), 'POST', '/google/connect', {}),
  disconnect: () => call<unknown>('POST', '/google/disconnect', {}),
};

export const connections = {
  get: (check = false) => parsed(ConnectionsSchema, 'GET', `/connections${check ? '?check=1' : ''}`),
  checkTunnel: () => parsed(ConnectionsSchema, 'POST', '/tunnel/check', {}),
  testAlerts: () => parsed(AlertTestSchema, 'POST', '/alerts/test', {}),
};

export const jobs = {
  list: () => parsed(JobsSchema, 'GET', '/jobs'),
};

export const audit = {
  list: () => parsed(z.object({ items: z.array(AuditEntrySchema) }), 'GET', '/audit'),
};

export const diagnostics = {
  /** The diagnostics bundle as a file the owner can save and send. */
  download: async (): Promise<{ blob: Blob; filename: string }> => {
    const res = await send('POST', '/diagnostics', {});
    const cd = res.headers.get('Content-Disposition') ?? '';
    const m = /filename\*?=(?:UTF-8'')?"?([^";]+)"?/i.exec(cd);
    return { blob: await res.blob(), filename: m?.[1] ? decodeURIComponent(m[1]) : `driveship-diagnostics-${Date.now()}.zip` };
  },
};

// ---- after the sale ----
export const afterSale = {
  revoke: (orderId: string, body: OrderRevoke) => call<AccessActionDto>('POST', `/orders/${enc(orderId)}/revoke`, body),
  move: (orderId: string, body: OrderMove) => call<AccessActionDto>('POST', `/orders/${enc(orderId)}/move`, body),
  actions: async (orderId: string) => (await call<{ items: AccessActionDto[] }>('GET', `/orders/${enc(orderId)}/actions`)).items,
  resend: (deliveryId: string) => call<ResendDto>('POST', `/deliveries/${enc(deliveryId)}/resend`, {}),
  customers: (q: { q?: string; limit: number; offset: number }) => call<ListDto<CustomerSummaryDto>>('GET', `/customers${query(q)}`),
  customer: (email: string) => call<CustomerDto>('GET', `/customers/${enc(email)}`),
  quota: () => call<DriveQuotaDto>('GET', '/quota'),
};

export const productUpdates = {
  list: async (productId: string) => (await call<{ items: ProductUpdateDto[] }>('GET', `/products/${enc(productId)}/updates`)).items,
  get: (id: string) => call<ProductUpdateDto>('GET', `/updates/${enc(id)}`),
  decide: (id: string, body: UpdateDecision) => call<ProductUpdateDto>('POST', `/updates/${enc(id)}/decision`, body),
  retry: (id: string) => call<ProductUpdateDto>('POST', `/updates/${enc(id)}/retry`, {}),
};
