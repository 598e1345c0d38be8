import { AppError, ForbiddenError, ServiceUnavailableError, TooManyRequestsError, type Logger } from '@civildiy/common';
import type { ServiceDiscovery } from '@civildiy/common/discovery';
import type { AuthenticatedUser } from '@civildiy/common/service';
import { z } from 'zod';
import type { ActivityLog } from './activity-log.ts';
import type { OperatorSession } from './contract.ts';

/** What auth-service answers to `/auth/login` and `/auth/refresh` (the fields used here). */
const IssuedTokens = z.object({ accessToken: z.string(), refreshToken: z.string(), expiresIn: z.number().int(), deviceToken: z.string().optional() });
const ErrorAnswer = z.object({ error: z.object({ code: z.string(), message: z.string(), details: z.unknown().optional() }) });

const AUTH_TIMEOUT_MS = 5_000;

/** Options of {@link OperatorSignIn}. */
export interface OperatorSignInOptions {
  /** Finds auth-service. */
  discovery: ServiceDiscovery;
  /** Verifies an access token against auth-service's JWKS (the same verifier as the API's). */
  verify: (token: string) => Promise<AuthenticatedUser>;
  activity: ActivityLog;
  logger: Logger;
}

/**
 * Signs operators in through auth-service: the credentials go to `POST /auth/login` (a refresh to
 * `POST /auth/refresh`), the access token that comes back is verified like any other, and the session
 * is handed out only when it carries the `operator` role (else 403 `dashboard.operator_required`, and
 * the session just opened is logged out again). Sign-ins are recorded in the activity log.
 */
export class OperatorSignIn {
  constructor(private readonly options: OperatorSignInOptions) {}

  /** Signs in with a login (email or username) and password; `clientIp` goes to auth-service's throttle. */
  async signIn(credentials: { login: string; password: string; deviceToken?: string | undefined }, clientIp: string): Promise<OperatorSession> {
    const issued = tokens(await this.post('/auth/login', credentials, clientIp));
    return this.session(issued, clientIp, 'sign_in');
  }

  /** Exchanges a refresh token for a new session (still only for an operator). */
  async refresh(refreshToken: string, clientIp: string): Promise<OperatorSession> {
    const issued = tokens(await this.post('/auth/refresh', { refreshToken }, clientIp));
    return this.session(issued, clientIp, 'refresh');
  }

  private async session(issued: z.infer<typeof IssuedTokens>, clientIp: string, how: 'sign_in' | 'refresh'): Promise<OperatorSession> {
    const user = await this.options.verify(issued.accessToken);
    const actor = { id: user.id, username: user.username ?? null, via: 'dashboard' as const };
    if (!user.roles.includes('operator')) {
      if (how === 'sign_in') await this.options.activity.record({ actor, action: 'sign_in', target: 'dashboard', outcome: 'failed' });
      // The account may not use the dashboard: do not leave its new session open.
      await this.post('/auth/logout', { refreshToken: issued.refreshToken }, clientIp).catch((error: unknown) =>
        this.options.logger.warn({ err: error }, 'could not log out the session of a user without the operator role'),
      );
      throw new ForbiddenError('This account does not hold the operator role', 'dashboard.operator_required');
    }
    if (how === 'sign_in') await this.options.activity.record({ actor, action: 'sign_in', target: 'dashboard', outcome: 'done' });
    return {
      accessToken: issued.accessToken,
      refreshToken: issued.refreshToken,
      expiresIn: issued.expiresIn,
      ...(issued.deviceToken ? { deviceToken: issued.deviceToken } : {}),
      user: { id: user.id, username: user.username ?? null, roles: user.roles },
    };
  }

  /** POSTs to auth-service and resolves with its JSON answer; its refusals come back with its status and code, its absence as 503. */
  private async post(path: string, body: unknown, clientIp: string): Promise<unknown> {
    let response: Response;
    try {
      const base = await this.options.discovery.resolve('auth-service');
      response = await fetch(`${base}${path}`, {
        method: 'POST',
        // auth-service throttles failed logins per client address: it believes the dashboard's X-Forwarded-For (a trusted proxy).
        headers: { 'content-type': 'application/json', 'x-forwarded-for': clientIp },
        body: JSON.stringify(body),
        signal: AbortSignal.timeout(AUTH_TIMEOUT_MS),
      });
    } catch (error) {
      throw new ServiceUnavailableError('auth-service does not answer; try again shortly', 'dashboard.auth_unavailable', { retryAfterSeconds: 1, cause: error });
    }
    const text = await response.text();
    let json: unknown;
    try {
      json = JSON.parse(text);
    } catch {
      json = undefined;
    }
    if (!response.ok) {
      const refused = ErrorAnswer.safeParse(json);
      const code = refused.success ? refused.data.error.code : 'dashboard.auth_failed';
      const message = refused.success ? refused.data.error.message : `auth-service answered ${response.status}`;
      if (response.status === 429) throw new TooManyRequestsError(Number(response.headers.get('retry-after') ?? 1), message, code);
      if (response.status >= 500) throw new ServiceUnavailableError(message, code, { retryAfterSeconds: Number(response.headers.get('retry-after') ?? 1) });
      const details = refused.success ? refused.data.error.details : undefined;
      throw new AppError(response.status, code, message, details === undefined ? {} : { details });
    }
    return json;
  }
}

function tokens(answer: unknown): z.infer<typeof IssuedTokens> {
  const issued = IssuedTokens.safeParse(answer);
  if (!issued.success) throw new ServiceUnavailableError('auth-service answered something unexpected', 'dashboard.auth_failed');
  return issued.data;
}
