import type { ErrorRequestHandler, Response } from 'express';
import { ZodError } from 'zod';
import type { FieldIssue } from '../core/contract';
import { AppError } from '../core/errors';
import { StepError } from '../core/step-error';
import type { Logger } from '../platform/log';

export interface ErrorBody {
  code: string;
  message: string;
  /** The first field at fault (kept for older clients and scripts). */
  field?: string;
  /** Every field at fault, so that a form can mark all of them at once. */
  fields?: FieldIssue[];
}

export function sendError(res: Response, status: number, code: string, message: string, field?: string, fields?: FieldIssue[]): void {
  const error: ErrorBody = { code, message };
  if (field) error.field = field;
  if (fields?.length) error.fields = fields;
  res.status(status).json({ error });
}

/** Every issue of a failed parse, one per field (the first issue of each), in the order found. */
export function zodToError(e: ZodError): ErrorBody & { fields: FieldIssue[] } {
  const fields: FieldIssue[] = [];
  const seen = new Set<string>();
  for (const issue of e.issues) {
    // An unknown key in a strict object names the keys, not a path.
    const keys = issue.code === 'unrecognized_keys' ? issue.keys.map((k) => [...issue.path, k].join('.')) : [issue.path.join('.')];
    for (const field of keys) {
      if (!field || seen.has(field)) continue;
      seen.add(field);
      fields.push({ field, code: issue.code === 'unrecognized_keys' ? 'unknown_field' : issue.code, message: issue.code === 'unrecognized_keys' ? 'not a field that can be set' : issue.message });
    }
  }
  const first = fields[0];
  const message = first
    ? fields.length === 1
      ? `field "${first.field}": ${first.message}`
      : `${fields.length} fields are not valid: ${fields.map((f) => `"${f.field}" (${f.message})`).join(', ')}`
    : (e.issues[0]?.message ?? 'invalid input');
  return { code: 'INVALID_INPUT', message, field: first?.field, fields };
}

/** The last middleware of both apps: everything leaves as `{ error: { code, message, field?, fields? } }`. */
export function errorHandler(log: Logger): ErrorRequestHandler {
  return (err, _req, res, _next) => {
    if (res.headersSent) return;
    if (err instanceof ZodError) {
      const e = zodToError(err);
      return sendError(res, 400, e.code, e.message, e.field, e.fields);
    }
    if (err instanceof AppError) {
      const field = typeof err.details?.field === 'string' ? err.details.field : undefined;
      const fields = Array.isArray(err.details?.fields) ? (err.details.fields as FieldIssue[]) : undefined;
      return sendError(res, err.status, err.code, err.message, field, fields);
    }
    // An engine step refused (resend with email off, Google not connected, ...): its code says why.
    if (err instanceof StepError) return sendError(res, err.kind === 'transient' ? 502 : 409, err.code, err.message);
    const type = (err as { type?: string }).type;
    if (type === 'entity.too.large') return sendError(res, 413, 'BODY_TOO_LARGE', 'Request body is too large');
    if (type === 'entity.parse.failed') return sendError(res, 400, 'INVALID_JSON', 'Request body is not valid JSON');
    if (type === 'encoding.unsupported' || type === 'charset.unsupported') return sendError(res, 415, 'UNSUPPORTED_ENCODING', 'Unsupported body encoding');
    log.error({ err }, 'unhandled error in request');
    sendError(res, 500, 'INTERNAL', 'Something went wrong inside driveship; the details are in the log');
  };
}

export const securityHeaders = (_req: unknown, res: Response, next: () => void) => {
  res.setHeader('X-Content-Type-Options', 'nosniff');
  res.setHeader('X-Frame-Options', 'DENY');
  res.setHeader('Referrer-Policy', 'no-referrer');
  res.setHeader('Cross-Origin-Resource-Policy', 'same-origin');
  res.setHeader('Cache-Control', 'no-store');
  next();
};
