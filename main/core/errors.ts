// An error the owner can act on: `code` is stable (the UI translates it, scripts match on it),
// `message` is the English fallback, `status` is the HTTP answer when it crosses the admin API.
export class AppError extends Error {
  constructor(
    readonly code: string,
    message: string,
    readonly status = 400,
    readonly details?: Record<string, unknown>,
  ) {
    super(message);
    this.name = 'AppError';
  }
}

export const notFound = (what: string, id: string) =>
  new AppError(`${what.toUpperCase()}_NOT_FOUND`, `No ${what} with id ${id}`, 404);
