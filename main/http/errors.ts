import type { ErrorRequestHandler, Response } from 'express';
import { ZodError } from 'zod';
import { AppError } from '../core/errors';
import type { Logger } from '../platform/log';

export function sendError(res: Response, status: number, code: string, message: string, field?: string): void {
  res.status(status).json({ error: field ? { code, message, field } : { code, message } });
}

export function zodToError(e: ZodError): { code: string; message: string; field?: string } {
  const issue = e.issues[0]!;
  const field = issue.path.length ? issue.path.join('.') : undefined;
  return { code: 'INVALID_INPUT', message: field ? `field "${field}": ${issue.message}` : issue.message, field };
}

/** The last middleware of both apps: everything leaves as `{ error: { code, message } }`. */
export function errorHandler(log: Logger): ErrorRequestHandler {
  return (err, _req, res, _next) => {
    if (res.headersSent) return;
    if (err instanceof ZodError) {
      const e = zodToError(err);
      return sendError(res, 400, e.code, e.message, e.field);
    }
    if (err instanceof AppError) {
      return sendError(res, err.status, err.code, err.message, typeof err.details?.field === 'string' ? err.details.field : undefined);
    }
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
