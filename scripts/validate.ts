/**
 * `npm run validate`: checks a running system (started with `npm start`) — every service's
 * readiness, then, through the gateway, one order through the whole order flow and one post into
 * the feeds and the search index — and prints what passed and what did not. Base URLs come from the same variables the
 * services use (defaults: the standard ports).
 */
import { existsSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { SERVICES } from '@civildiy/common/topology';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
if (existsSync(path.join(root, '.env'))) process.loadEnvFile(path.join(root, '.env'));
const port = (variable: string, fallback: number) => Number(process.env[variable] ?? fallback);
const url = (variable: string, fallback: number) => `http://127.0.0.1:${port(variable, fallback)}`;
// Every call of the flows goes through the gateway, as a client's would.
const gateway = url('GATEWAY_PORT', 8000);
const auth = gateway;
const orders = gateway;
const notifications = gateway;
const timeoutMs = Number(process.env.VALIDATE_TIMEOUT_MS ?? 30_000);

let failures = 0;
function report(ok: boolean, what: string, detail = '') {
  if (!ok) failures += 1;
  console.log(`${ok ? '  PASS' : '  FAIL'}  ${what}${detail ? `  (${detail})` : ''}`);
  return ok;
}

async function json(target: string, init: RequestInit = {}) {
  const response = await fetch(target, { ...init, signal: AbortSignal.timeout(5_000) });
  const text = await response.text();
  return { status: response.status, body: text ? JSON.parse(text) : undefined };
}

async function waitFor<T>(what: string, probe: () => Promise<T | undefined>): Promise<T | undefined> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    const value = await probe().catch(() => undefined);
    if (value !== undefined) return value;
    await new Promise((resolve) => setTimeout(resolve, 200));
  }
  report(false, what, `not within ${timeoutMs} ms`);
  return undefined;
}

console.log('Readiness');
for (const service of SERVICES) {
  for (const servicePort of service.ports) {
    const variablePort = servicePort === service.ports[0] ? port(service.portVariable, servicePort) : servicePort;
    try {
      const ready = await json(`http://127.0.0.1:${variablePort}/health/ready`);
      const down = Object.entries((ready.body?.checks ?? {}) as Record<string, { status: string; error?: string }>)
        .filter(([, check]) => check.status !== 'up')
        .map(([name, check]) => `${name}: ${check.error ?? check.status}`);
      report(ready.status === 200, `${service.name} :${variablePort} ready`, down.join(', '));
    } catch (error) {
      report(false, `${service.name} :${variablePort} ready`, error instanceof Error ? error.message : String(error));
    }
  }
}

const gatewayHealth = await json(`${gateway}/health`).catch((error: unknown) => ({ status: 0, body: String(error) }));
report(gatewayHealth.status === 200, 'gateway sees every upstream', gatewayHealth.status === 200 ? '' : JSON.stringify(gatewayHealth.body));

console.log('Order flow (through the gateway)');
const name = `validate${Date.now().toString(36)}`;
const headers = { 'content-type': 'application/json' };
let token: string | undefined;
let userId: string | undefined;
try {
  const registered = await json(`${auth}/auth/register`, {
    method: 'POST',
    headers,
    body: JSON.stringify({ email: `${name}@example.com`, username: name, password: 'validate-the-system' }),
  });
  if (report(registered.status === 201, 'register a user', registered.status === 201 ? registered.body.user.id : JSON.stringify(registered.body))) {
    token = registered.body.accessToken as string;
    userId = registered.body.user.id as string;
    const bearer = { ...headers, authorization: `Bearer ${registered.body.accessToken}` };
    const catalog = await json(`${orders}/catalog`);
    const sku = catalog.body?.items?.[0]?.sku as string | undefined;
    report(sku !== undefined, 'read the catalog', sku);
    const placed = await json(`${orders}/orders`, {
      method: 'POST',
      headers: { ...bearer, 'idempotency-key': `validate-${name}` },
      body: JSON.stringify({ lines: [{ sku, quantity: 1 }] }),
    });
    if (report(placed.status === 201, 'place an order', placed.status === 201 ? placed.body.id : JSON.stringify(placed.body))) {
      const status = await waitFor('order processed by the worker', async () => {
        const order = await json(`${orders}/orders/${placed.body.id}`, { headers: bearer });
        return order.body?.status === 'pending' ? undefined : (order.body?.status as string);
      });
      if (status) report(status === 'confirmed', 'order confirmed (payment taken)', status);
      const delivered = await waitFor('order notification delivered', async () => {
        const list = await json(`${notifications}/notifications`, { headers: bearer });
        return (list.body?.items as { template: string; status: string }[] | undefined)?.find((n) => n.template.startsWith('order_') && n.status === 'delivered');
      });
      if (delivered) report(true, 'order notification delivered', delivered.template);
      const welcome = await waitFor('welcome notification delivered', async () => {
        const list = await json(`${notifications}/notifications`, { headers: bearer });
        return (list.body?.items as { template: string; status: string }[] | undefined)?.find((n) => n.template === 'welcome' && n.status === 'delivered');
      });
      if (welcome) report(true, 'welcome notification delivered');
    }
  }
} catch (error) {
  report(false, 'order flow', error instanceof Error ? error.message : String(error));
}

console.log('Post → feed and search flows (through the gateway)');
if (token && userId) {
  try {
    const bearer = { ...headers, authorization: `Bearer ${token}` };
    const profile = await waitFor('profile created from user.registered', async () => {
      const response = await json(`${gateway}/profiles/me`, { headers: bearer });
      return response.status === 200 ? (response.body as { displayName: string }) : undefined;
    });
    if (profile) report(true, 'profile created from user.registered', profile.displayName);
    const posted = await json(`${gateway}/posts`, {
      method: 'POST',
      headers: bearer,
      body: JSON.stringify({ title: 'Validating the system', body: 'A post written by npm run validate.', tags: ['validate'] }),
    });
    if (report(posted.status === 201, 'publish a post', posted.status === 201 ? posted.body.postId : JSON.stringify(posted.body))) {
      const inFeed = await waitFor('post visible in the global feed', async () => {
        const feed = await json(`${gateway}/feed?limit=50`);
        return (feed.body?.items as { postId: string }[] | undefined)?.find((item) => item.postId === posted.body.postId);
      });
      if (inFeed) report(true, 'post visible in the global feed');
      const inUserFeed = await waitFor("post visible in the author's feed", async () => {
        const feed = await json(`${gateway}/feed/users/${userId}`);
        return (feed.body?.items as { postId: string }[] | undefined)?.find((item) => item.postId === posted.body.postId);
      });
      if (inUserFeed) report(true, "post visible in the author's feed");
      const found = await waitFor('post found by search (indexed through the worker)', async () => {
        const results = await json(`${gateway}/search?q=${encodeURIComponent('validating the system post')}&limit=10`);
        return (results.body?.items as { postId: string }[] | undefined)?.find((item) => item.postId === posted.body.postId);
      });
      if (found) report(true, 'post found by search (indexed through the worker)');
    }
  } catch (error) {
    report(false, 'post → feed flow', error instanceof Error ? error.message : String(error));
  }
} else {
  report(false, 'post → feed flow', 'no registered user');
}

console.log(failures === 0 ? '\nAll checks passed.' : `\n${failures} check(s) failed. Is the system running (npm start)?`);
process.exit(failures === 0 ? 0 : 1);
