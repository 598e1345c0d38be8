/**
 * The signed-in operator: the access token lives in memory only, the refresh token in
 * `sessionStorage` (this tab, survives a reload, gone with the tab). The access token is refreshed
 * before it expires; a refused refresh signs the operator out with a notice.
 */
import { ApiError, authorization, requestJson } from './api-client.ts';
import type { OperatorSession, RefreshBody, SignInBody } from './api-types.ts';

const REFRESH_TOKEN_KEY = 'civildiy.dashboard.refreshToken';
/** auth-service's device token: kept on this browser (it eases auth-service's throttle of failed logins here). */
const DEVICE_TOKEN_KEY = 'civildiy.dashboard.deviceToken';
/** Retry a refresh that failed for a reason other than a refusal (the server restarting). */
const REFRESH_RETRY_MS = 5_000;

export type SessionState =
  | { status: 'restoring' }
  | { status: 'signed-out'; notice: string | null }
  | { status: 'signed-in'; user: OperatorSession['user'] };

/** What a refusal of the sign-in means, in words an operator acts on. */
export function signInErrorMessage(error: unknown): string {
  if (error instanceof ApiError) {
    if (error.code === 'dashboard.operator_required' || error.code === 'auth.role_required') return 'This account is not an operator.';
    if (error.status === 401) return 'Wrong email, username or password.';
    if (error.status === 429) return 'Too many attempts: wait a moment and try again.';
    if (error.status === 400) return 'Enter your email or username and your password.';
    return error.message;
  }
  return error instanceof Error ? error.message : String(error);
}

function storedDeviceToken(): string | undefined {
  try {
    return localStorage.getItem(DEVICE_TOKEN_KEY) ?? undefined;
  } catch {
    return undefined;
  }
}

function storeDeviceToken(token: string | undefined): void {
  if (!token) return;
  try {
    localStorage.setItem(DEVICE_TOKEN_KEY, token);
  } catch {
    // Storage disabled: auth-service sees a new device each time.
  }
}

function storedRefreshToken(): string | null {
  try {
    return sessionStorage.getItem(REFRESH_TOKEN_KEY);
  } catch {
    return null;
  }
}

function storeRefreshToken(token: string | null): void {
  try {
    if (token === null) sessionStorage.removeItem(REFRESH_TOKEN_KEY);
    else sessionStorage.setItem(REFRESH_TOKEN_KEY, token);
  } catch {
    // Storage disabled: the session then lasts as long as the page.
  }
}

/** Refresh this long before expiry: a fifth of the token's life, at most a minute. */
export function refreshDelayMs(expiresInSeconds: number): number {
  const lifeMs = Math.max(expiresInSeconds, 1) * 1000;
  return Math.max(lifeMs - Math.min(60_000, lifeMs / 5), 1_000);
}

export class OperatorSessionKeeper {
  #state: SessionState = storedRefreshToken() ? { status: 'restoring' } : { status: 'signed-out', notice: null };
  #accessToken: string | null = null;
  #refreshTimer: ReturnType<typeof setTimeout> | undefined;
  #refreshing: Promise<boolean> | null = null;
  readonly #listeners = new Set<(state: SessionState) => void>();

  get state(): SessionState {
    return this.#state;
  }

  /** The current access token, or null when signed out. */
  get accessToken(): string | null {
    return this.#accessToken;
  }

  subscribe(listener: (state: SessionState) => void): () => void {
    this.#listeners.add(listener);
    return () => this.#listeners.delete(listener);
  }

  /** On page load: exchanges a stored refresh token for a session, if there is one. */
  async restore(): Promise<void> {
    if (!storedRefreshToken()) {
      if (this.#state.status === 'restoring') this.#set({ status: 'signed-out', notice: null });
      return;
    }
    await this.refresh();
  }

  /** Rejects with an {@link ApiError} when refused (401 wrong password, 403 not an operator, 429 throttled). */
  async signIn(credentials: Omit<SignInBody, 'deviceToken'>): Promise<void> {
    const deviceToken = storedDeviceToken();
    const body: SignInBody = deviceToken ? { ...credentials, deviceToken } : credentials;
    const session = await requestJson<OperatorSession>('/admin/session', { body });
    storeDeviceToken(session.deviceToken);
    this.#accept(session);
  }

  /**
   * Exchanges the refresh token for a new session. Resolves false when signed out as a result
   * (refused, or nothing to refresh); concurrent calls share one request.
   */
  refresh(): Promise<boolean> {
    this.#refreshing ??= this.#refreshOnce().finally(() => {
      this.#refreshing = null;
    });
    return this.#refreshing;
  }

  signOut(notice: string | null = null): void {
    clearTimeout(this.#refreshTimer);
    this.#accessToken = null;
    storeRefreshToken(null);
    this.#set({ status: 'signed-out', notice });
  }

  /** Headers for a request made outside {@link requestJson} (the live stream). */
  authorizationHeader(): Record<string, string> {
    return authorization(this.#accessToken);
  }

  async #refreshOnce(): Promise<boolean> {
    const refreshToken = storedRefreshToken();
    if (!refreshToken) {
      this.signOut(this.#state.status === 'signed-in' ? 'Your session has ended: sign in again.' : null);
      return false;
    }
    try {
      const body: RefreshBody = { refreshToken };
      this.#accept(await requestJson<OperatorSession>('/admin/session/refresh', { body }));
      return true;
    } catch (error) {
      if (error instanceof ApiError && (error.status === 400 || error.status === 401 || error.status === 403)) {
        this.signOut(error.status === 403 ? signInErrorMessage(error) : 'Your session has expired: sign in again.');
        return false;
      }
      // The server is away for a moment: keep what we have and try again soon.
      if (this.#state.status === 'restoring') this.#set({ status: 'signed-out', notice: 'The dashboard server cannot be reached; sign in when it is back.' });
      else this.#schedule(REFRESH_RETRY_MS);
      return this.#state.status === 'signed-in';
    }
  }

  #accept(session: OperatorSession): void {
    this.#accessToken = session.accessToken;
    storeRefreshToken(session.refreshToken);
    this.#schedule(refreshDelayMs(session.expiresIn));
    this.#set({ status: 'signed-in', user: session.user });
  }

  #schedule(delayMs: number): void {
    clearTimeout(this.#refreshTimer);
    this.#refreshTimer = setTimeout(() => void this.refresh(), delayMs);
  }

  #set(state: SessionState): void {
    this.#state = state;
    for (const listener of this.#listeners) listener(state);
  }
}
