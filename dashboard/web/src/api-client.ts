/**
 * JSON over `fetch` to the dashboard's API (same origin, under `/admin`). Every failure becomes an
 * {@link ApiError} carrying the HTTP status and the server's stable error code, so the page can tell
 * "not an operator" from "already redriven" without reading messages.
 */

/** Status 0: the server could not be reached (or answered something that is not HTTP). */
export class ApiError extends Error {
  constructor(
    readonly status: number,
    readonly code: string,
    message: string,
  ) {
    super(message);
    this.name = 'ApiError';
  }
}

export interface RequestOptions {
  method?: 'GET' | 'POST' | 'DELETE';
  body?: unknown;
  token?: string | null;
  signal?: AbortSignal;
}

/** `{ error: { code, message } }`, the shape of every error answer of our services. */
function errorFrom(status: number, body: unknown): ApiError {
  const error = typeof body === 'object' && body !== null ? (body as { error?: unknown }).error : undefined;
  if (typeof error === 'object' && error !== null) {
    const { code, message } = error as { code?: unknown; message?: unknown };
    return new ApiError(status, typeof code === 'string' ? code : `http.${status}`, typeof message === 'string' ? message : `HTTP ${status}`);
  }
  return new ApiError(status, `http.${status}`, `The server answered HTTP ${status}`);
}

export function authorization(token: string | null | undefined): Record<string, string> {
  return token ? { authorization: `Bearer ${token}` } : {};
}

/** Sends one request and parses the JSON answer (an empty answer is `null`). */
export async function requestJson<T>(path: string, options: RequestOptions = {}): Promise<T> {
  const headers: Record<string, string> = { accept: 'application/json', ...authorization(options.token) };
  if (options.body !== undefined) headers['content-type'] = 'application/json';
  let response: Response;
  try {
    response = await fetch(path, {
      method: options.method ?? (options.body === undefined ? 'GET' : 'POST'),
      headers,
      body: options.body === undefined ? null : JSON.stringify(options.body),
      signal: options.signal ?? null,
    });
  } catch (error) {
    if (error instanceof DOMException && error.name === 'AbortError') throw error;
    throw new ApiError(0, 'network', 'The dashboard server cannot be reached.');
  }
  const text = await response.text();
  let body: unknown = null;
  if (text.length > 0) {
    try {
      body = JSON.parse(text);
    } catch {
      if (response.ok) throw new ApiError(response.status, 'bad_response', 'The server answered something that is not JSON.');
    }
  }
  if (!response.ok) throw errorFrom(response.status, body);
  return body as T;
}

/** The message to show for a failure of any kind. */
export function describeError(error: unknown): string {
  if (error instanceof ApiError) return error.message;
  if (error instanceof Error) return error.message;
  return String(error);
}
