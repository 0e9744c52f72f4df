// Shapes the renderer reads that the shared contract does not declare yet: the engine's routes
// (dashboard, engine, google, jobs, delivery progress, product library) and the event payloads.
// They are parsed, not trusted, so that a change on the other side shows up as a clear error.
// **Important**: move these into main/core/contract.ts once the engine lands, and import from there.
import { z } from 'zod';

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
  throughput: z.array(z.object({ t: z.number(), downBytes: z.number(), upBytes: z.number() })),
  alerts: z.array(AlertSchema),
  paused: z.boolean().optional(),
});
export type Dashboard = z.infer<typeof DashboardSchema>;

export const EngineSchema = z.object({ paused: z.boolean(), active: z.number().optional() });
export type EngineState = z.infer<typeof EngineSchema>;

export const GoogleSchema = z.object({
  connected: z.boolean(),
  account: z.string().nullable().optional(),
  mode: z.string().nullable().optional(),
  scopes: z.array(z.string()).nullable().optional(),
});
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
  error: z.object({ code: z.string(), message: z.string(), field: z.string().optional() }),
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
  update: z.object({ updateId: z.string(), productId: z.string(), state: z.string() }),
} as const;
export type LiveEventType = keyof typeof LiveEventSchemas;
export type LiveEvents = { [K in LiveEventType]: z.infer<(typeof LiveEventSchemas)[K]> };
export const LIVE_EVENT_TYPES = Object.keys(LiveEventSchemas) as LiveEventType[];
