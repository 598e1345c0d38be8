import { newId } from '@civildiy/common';
import { startSystem, type SystemUnderTest } from '@civildiy/common/testing';

export { repositoryRoot as root } from '@civildiy/common/testing';
export type System = SystemUnderTest;
export { startSystem };

/** JSON over HTTP with a bearer token. */
export async function call(url: string, options: { method?: string; token?: string; body?: unknown; headers?: Record<string, string> } = {}) {
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
  return { status: response.status, headers: response.headers, body: text ? JSON.parse(text) : undefined };
}

/** The test password of every registered user. */
export const PASSWORD = 'correct horse battery';

/** Registers a fresh user (unique name from `namePrefix`) at `baseUrl` (auth-service or the gateway). */
export async function registerUser(baseUrl: string, namePrefix = 'maker') {
  const username = `${namePrefix}${newId().slice(-10).replace(/-/g, '')}`;
  const email = `${username}@example.com`;
  const response = await call(`${baseUrl}/auth/register`, { body: { email, username, password: PASSWORD } });
  if (response.status !== 201) throw new Error(`register ${username}: ${response.status} ${JSON.stringify(response.body)}`);
  return { id: response.body.user.id as string, username, email, token: response.body.accessToken as string };
}

/** Gateway settings for flows that are not about rate limits (the gateway's own tests cover them). */
export const UNLIMITED_GATEWAY = {
  GATEWAY_RATE_LIMIT_IP_PER_MINUTE: '1000000',
  GATEWAY_RATE_LIMIT_USER_PER_MINUTE: '1000000',
  GATEWAY_RATE_LIMIT_ROUTE_FACTOR: '0',
};
