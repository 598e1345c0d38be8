import { createServer, type Server } from 'node:http';
import { once } from 'node:events';
import type { AddressInfo } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { UnauthorizedError } from '../src/errors/index.ts';
import { createTokenVerifier } from '../src/service/index.ts';
import { createTestTokens, type TestTokens } from '../src/testing/index.ts';

/** A real HTTP JWKS endpoint whose key set the test changes, counting fetches. */
let server: Server;
let served: { keys: unknown[] } = { keys: [] };
let fetches = 0;
let jwksUrl: string;
let first: TestTokens;
let second: TestTokens;

beforeAll(async () => {
  first = await createTestTokens('key-1');
  second = await createTestTokens('key-2');
  server = createServer((_request, response) => {
    fetches += 1;
    response.setHeader('content-type', 'application/json');
    response.end(JSON.stringify(served));
  });
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  jwksUrl = `http://127.0.0.1:${(server.address() as AddressInfo).port}/.well-known/jwks.json`;
});

afterAll(async () => {
  await new Promise((resolve) => server.close(resolve));
});

describe('token verification against a remote JWKS', () => {
  it('fetches the key set once and serves later verifications from the cache', async () => {
    served = first.jwks;
    fetches = 0;
    const verify = createTokenVerifier({ jwksUrl, refetchCooldownMs: 0 });
    for (let i = 0; i < 5; i += 1) expect((await verify(await first.token('0190a6f0-0000-7000-8000-000000000001'))).id).toBe('0190a6f0-0000-7000-8000-000000000001');
    expect(fetches).toBe(1);
  });

  it('refetches when a token names an unknown kid, so a rotated key is accepted at once', async () => {
    served = first.jwks;
    fetches = 0;
    const verify = createTokenVerifier({ jwksUrl, refetchCooldownMs: 0 });
    await verify(await first.token());
    served = { keys: [...first.jwks.keys, ...second.jwks.keys] };
    const user = await verify(await second.token('0190a6f0-0000-7000-8000-000000000002'));
    expect(user.id).toBe('0190a6f0-0000-7000-8000-000000000002');
    expect(fetches).toBe(2);
  });

  it('rejects a token whose kid is in no key set, after looking once more', async () => {
    served = first.jwks;
    fetches = 0;
    const verify = createTokenVerifier({ jwksUrl, refetchCooldownMs: 0 });
    await expect(verify(await second.token())).rejects.toMatchObject({ code: 'auth.invalid_token' });
    // The first fetch, then one more because the kid was unknown.
    expect(fetches).toBe(2);
  });

  it('answers 401 auth.keys_unavailable when the JWKS cannot be fetched', async () => {
    const verify = createTokenVerifier({ jwksUrl: 'http://127.0.0.1:9/.well-known/jwks.json' });
    const error = await verify(await first.token()).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(UnauthorizedError);
    expect((error as UnauthorizedError).code).toBe('auth.keys_unavailable');
  });
});
