import { spawn, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { createServer } from 'node:net';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import { afterEach, describe, expect, it } from 'vitest';
import { TYPESCRIPT_NODE_ARGS } from '@civildiy/common/testing';
import { testModelFiles } from './model-for-tests.ts';

const serviceDir = fileURLToPath(new URL('..', import.meta.url));
const CUSTOMER = '0190a6f0-0000-7000-8000-000000000001';

async function freePort(): Promise<number> {
  const server = createServer();
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  const { port } = server.address() as { port: number };
  server.close();
  await once(server, 'close');
  return port;
}

interface Running {
  child: ChildProcess;
  paymentsPort: number;
  messagingPort: number;
  embeddingsPort: number;
  /** Every stdout line so far. */
  lines: string[];
  exited: Promise<[number | null, NodeJS.Signals | null]>;
}

const started: ChildProcess[] = [];

/** Starts `src/main.ts` on three free ports and resolves once it logged that all providers listen. */
async function startMain(env: Record<string, string> = {}): Promise<Running> {
  const [paymentsPort, messagingPort, embeddingsPort] = [await freePort(), await freePort(), await freePort()];
  const child = spawn(process.execPath, [...TYPESCRIPT_NODE_ARGS, 'src/main.ts'], {
    cwd: serviceDir,
    env: {
      ...process.env,
      MOCK_PAYMENTS_PORT: String(paymentsPort),
      MOCK_MESSAGING_PORT: String(messagingPort),
      MOCK_EMBEDDINGS_PORT: String(embeddingsPort),
      LOG_FORMAT: 'json',
      LOG_LEVEL: 'info',
      EMBEDDINGS_PROVIDER: 'mock',
      ...env,
    },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  started.push(child);
  const exited = once(child, 'exit') as Promise<[number | null, NodeJS.Signals | null]>;
  const lines: string[] = [];
  await new Promise<void>((resolve, reject) => {
    createInterface({ input: child.stdout! }).on('line', (line) => {
      lines.push(line);
      if ((JSON.parse(line) as { msg?: string }).msg === 'mock providers listening') resolve();
    });
    child.once('exit', (code) => reject(new Error(`exited with ${code} before listening`)));
  });
  return { child, paymentsPort, messagingPort, embeddingsPort, lines, exited };
}

const embed = (port: number, body: Record<string, unknown>, headers: Record<string, string> = {}) =>
  fetch(`http://127.0.0.1:${port}/v1/embeddings`, { method: 'POST', headers: { 'content-type': 'application/json', ...headers }, body: JSON.stringify(body) });

const pay = (port: number, key: string) =>
  fetch(`http://127.0.0.1:${port}/v1/payments`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', 'idempotency-key': key },
    body: JSON.stringify({ amountCents: 100, currency: 'EUR', customerId: CUSTOMER, reference: key }),
  });

afterEach(() => {
  for (const child of started.splice(0)) if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
});

describe('src/main.ts as a real process', () => {
  it('serves every provider on the ports from the environment, applies env faults, logs only JSON and exits 0 on SIGTERM', async () => {
    const running = await startMain({ MOCK_PAYMENTS_FAIL_NEXT: '1' });
    const listening = JSON.parse(running.lines.at(-1)!);
    expect(listening).toMatchObject({
      payments: `http://127.0.0.1:${running.paymentsPort}`,
      messaging: `http://127.0.0.1:${running.messagingPort}`,
      embeddings: `http://127.0.0.1:${running.embeddingsPort}`,
    });

    expect((await pay(running.paymentsPort, 'process-test')).status).toBe(503); // MOCK_PAYMENTS_FAIL_NEXT=1
    expect((await pay(running.paymentsPort, 'process-test')).status).toBe(200);
    const message = await fetch(`http://127.0.0.1:${running.messagingPort}/v1/messages`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', 'idempotency-key': 'process-test' },
      body: JSON.stringify({ channel: 'email', to: 'ada@example.com', body: 'hello' }),
    });
    expect(message.status).toBe(200);
    expect((await fetch(`http://127.0.0.1:${running.messagingPort}/health/ready`)).status).toBe(200);
    const embedded = await embed(running.embeddingsPort, { model: 'civildiy-hash-embed-1', input: ['garden bed', 'ceiling lamp'] });
    expect(embedded.status).toBe(200);
    expect(((await embedded.json()) as { data: { embedding: number[] }[] }).data.map((item) => item.embedding.length)).toEqual([256, 256]);

    running.child.kill('SIGTERM');
    const [code] = await running.exited;
    expect(code).toBe(0);
    for (const line of running.lines) expect(() => JSON.parse(line)).not.toThrow();
    expect(running.lines.some((line) => JSON.parse(line).msg === 'stopped')).toBe(true);
  });

  it('configures the embeddings provider from the environment: dimensions, fixed dimensions, API key and faults', async () => {
    const running = await startMain({
      MOCK_EMBEDDINGS_DIMENSIONS: '48',
      MOCK_EMBEDDINGS_FIXED_DIMENSIONS: 'true',
      MOCK_EMBEDDINGS_API_KEY: 'sk-env',
      MOCK_EMBEDDINGS_FAIL_NEXT: '1',
      MOCK_EMBEDDINGS_FAILURE_STATUS: '500',
    });
    const key = { authorization: 'Bearer sk-env' };
    expect((await embed(running.embeddingsPort, { input: 'garden bed' })).status).toBe(401);
    expect((await embed(running.embeddingsPort, { input: 'garden bed' }, key)).status).toBe(500);
    const answer = await embed(running.embeddingsPort, { input: 'garden bed', dimensions: 256 }, key);
    expect(answer.status).toBe(200);
    expect(((await answer.json()) as { data: { embedding: number[] }[] }).data[0]!.embedding).toHaveLength(48);
  });

  it('with EMBEDDINGS_PROVIDER=auto, loads the real model once it listens, is ready after, answers with it and exits 0 on SIGTERM', async () => {
    const files = await testModelFiles();
    const running = await startMain({ EMBEDDINGS_PROVIDER: 'auto', EMBEDDINGS_MODEL_PATH: files.dir });
    await expect.poll(async () => (await fetch(`http://127.0.0.1:${running.embeddingsPort}/health/ready`)).status, { timeout: 20_000 }).toBe(200);
    const answer = await embed(running.embeddingsPort, { input: ['storage for my garage tools'] });
    expect(answer.status).toBe(200);
    const body = (await answer.json()) as { model: string; data: { embedding: number[] }[] };
    expect(body.model).toBe('all-minilm-l6-v2-q');
    expect(body.data[0]!.embedding).toHaveLength(384);
    expect(running.lines.some((line) => /embeddings provider: the all-minilm-l6-v2-q model/.test(JSON.parse(line).msg))).toBe(true);

    running.child.kill('SIGTERM');
    const [code] = await running.exited;
    expect(code).toBe(0);
  });

  it('with EMBEDDINGS_PROVIDER=model and no model, says why and how to get one, and exits 1', async () => {
    const running = await startMain({ EMBEDDINGS_PROVIDER: 'model', EMBEDDINGS_MODEL_PATH: '/nonexistent/model-folder' });
    const [code] = await running.exited;
    expect(code).toBe(1);
    const failure = running.lines.map((line) => JSON.parse(line) as { level: string; msg: string }).find((line) => line.level === 'error');
    expect(failure?.msg).toMatch(/EMBEDDINGS_MODEL_PATH=\/nonexistent\/model-folder.*missing.*EMBEDDINGS_PROVIDER=model requires it/);
  });

  it('answers a call in flight at SIGTERM and still exits 0 promptly, though the client keeps its connection alive', async () => {
    const running = await startMain({ MOCK_PAYMENTS_LATENCY_MS: '800' });
    const inFlight = pay(running.paymentsPort, 'in-flight');
    await new Promise((resolve) => setTimeout(resolve, 200)); // let the call reach the provider
    const signalled = performance.now();
    running.child.kill('SIGTERM');
    const response = await inFlight;
    expect(response.status).toBe(200);
    const [code] = await running.exited;
    expect(code).toBe(0);
    expect(performance.now() - signalled).toBeLessThan(5_000);
  });
});
