import { newId } from '../ids/index.ts';

/** Options of {@link httpCall}. */
export interface HttpCallOptions {
  /** Default: `POST` with a body, else `GET`. */
  method?: string;
  /** Sent as `Authorization: Bearer <token>`. */
  token?: string;
  /** Sent as JSON. */
  body?: unknown;
  headers?: Record<string, string>;
}

/**
 * JSON over HTTP for end-to-end tests and benchmarks: any status is returned (not thrown), with the
 * headers and the parsed body (`undefined` when empty). `T` types the body; untyped JSON by default.
 */
// eslint-disable-next-line @typescript-eslint/no-explicit-any -- untyped JSON by default, callers narrow with T
export async function httpCall<T = Record<string, any>>(url: string, options: HttpCallOptions = {}): Promise<{ status: number; headers: Headers; body: T }> {
  const response = await fetch(url, {
    method: options.method ?? (options.body === undefined ? 'GET' : 'POST'),
    headers: {
      ...(options.body === undefined ? {} : { 'content-type': 'application/json' }),
      ...(options.token ? { authorization: `Bearer ${options.token}` } : {}),
      ...options.headers,
    },
    ...(options.body === undefined ? {} : { body: JSON.stringify(options.body) }),
  });
  const text = await response.text();
  return { status: response.status, headers: response.headers, body: (text ? JSON.parse(text) : undefined) as T };
}

/** The password of every user {@link registerUser} creates. */
export const TEST_PASSWORD = 'correct horse battery';

/** A user {@link registerUser} created, with its first access token. */
export interface RegisteredUser {
  id: string;
  username: string;
  email: string;
  token: string;
}

/**
 * Registers a fresh user (a unique name starting with `namePrefix`) through `POST /auth/register`
 * at `baseUrl` (auth-service or the gateway).
 * @throws Error with the answer when registration is not a 201.
 */
export async function registerUser(baseUrl: string, namePrefix = 'maker'): Promise<RegisteredUser> {
  const username = `${namePrefix}${newId().slice(-10).replace(/-/g, '')}`;
  const email = `${username}@example.com`;
  const response = await httpCall(`${baseUrl}/auth/register`, { body: { email, username, password: TEST_PASSWORD } });
  if (response.status !== 201) throw new Error(`register ${username}: ${response.status} ${JSON.stringify(response.body)}`);
  return { id: response.body.user.id as string, username, email, token: response.body.accessToken as string };
}

/**
 * Signs `email` in through `POST /auth/login` at `baseUrl` (auth-service or the gateway) and returns
 * the access token (after a role was granted, the token that carries it).
 * @throws Error with the answer when the login is not a 200.
 */
export async function loginUser(baseUrl: string, email: string, password = TEST_PASSWORD): Promise<string> {
  const response = await httpCall(`${baseUrl}/auth/login`, { body: { login: email, password } });
  if (response.status !== 200) throw new Error(`login ${email}: ${response.status} ${JSON.stringify(response.body)}`);
  return response.body.accessToken as string;
}
