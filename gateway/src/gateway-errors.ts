import { AppError, TooManyRequestsError } from '@civildiy/common';

/** 502 `gateway.upstream_unavailable`: the service could not be reached (down, refused, reset, not configured). */
export function upstreamUnavailable(service: string, cause?: unknown): AppError {
  return new AppError(502, 'gateway.upstream_unavailable', `${service} is unavailable`, cause === undefined ? {} : { cause });
}

/** 504 `gateway.upstream_timeout`: the service did not answer in time. */
export function upstreamTimeout(service: string, cause?: unknown): AppError {
  return new AppError(504, 'gateway.upstream_timeout', `${service} did not answer in time`, cause === undefined ? {} : { cause });
}

/** 429 `gateway.rate_limited` with `Retry-After`. */
export function rateLimited(retryAfterSeconds: number): TooManyRequestsError {
  return new TooManyRequestsError(retryAfterSeconds, 'Too many requests; retry later', 'gateway.rate_limited');
}

/** 405 `gateway.method_not_allowed`: the path exists, not with this method. */
export function methodNotAllowed(method: string): AppError {
  return new AppError(405, 'gateway.method_not_allowed', `${method} is not allowed here`);
}

/** 413 `payload_too_large` (the code every service's body limit answers with). */
export function payloadTooLarge(limitBytes: number): AppError {
  return new AppError(413, 'payload_too_large', `The body is larger than ${limitBytes} bytes`);
}

/** 400 `bad_request`: a URL the gateway will not forward (malformed escapes, `..` segments). */
export function unforwardableUrl(): AppError {
  return new AppError(400, 'bad_request', 'The request URL cannot be forwarded');
}
