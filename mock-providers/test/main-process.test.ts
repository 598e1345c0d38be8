import { spawn, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { readFile } from 'node:fs/promises';
import { createServer } from 'node:net';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import { afterEach, describe, expect, it } from 'vitest';
import { TYPESCRIPT_NODE_ARGS } from '@civildiy/common/testing';
import { modelProcessesOf, runsTheModel, testModelFiles } from './model-for-tests.ts';

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

/** The value of metric `name` with `labels` (among others) on the embeddings provider's /metrics, or undefined. */
async function metricValue(port: number, name: string, labels: Record<string, string> = {}): Promise<string | undefined> {
  const text = await (await fetch(`http://127.0.0.1:${port}/metrics`)).text();
  const line = text.split('\n').find((sample) => sample.startsWith(`${name}{`) && Object.entries(labels).every(([key, value]) => sample.includes(`${key}="${value}"`)));
  return line?.slice(line.lastIndexOf(' ') + 1);
}

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

  it('with EMBEDDINGS_PROVIDER=auto, is ready once the model files are checked, loads the model in a process of its own at the first request, unloads it after the keep-alive and exits 0 on SIGTERM', async () => {
    const files = await testModelFiles();
    const running = await startMain({ EMBEDDINGS_PROVIDER: 'auto', EMBEDDINGS_MODEL_PATH: files.dir, EMBEDDINGS_MODEL_KEEP_ALIVE_MS: '1000' });
    const pid = running.child.pid!;
    await expect.poll(async () => (await fetch(`http://127.0.0.1:${running.embeddingsPort}/health/ready`)).status, { timeout: 20_000 }).toBe(200);
    // Nothing of ONNX Runtime in the service's process, and no model process yet.
    expect(await readFile(`/proc/${pid}/maps`, 'utf8')).not.toContain('onnxruntime');
    expect(modelProcessesOf(pid)).toEqual([]);

    const answer = await embed(running.embeddingsPort, { input: ['storage for my garage tools'] });
    expect(answer.status).toBe(200);
    const body = (await answer.json()) as { model: string; data: { embedding: number[] }[] };
    expect(body.model).toBe('all-minilm-l6-v2-q');
    expect(body.data[0]!.embedding).toHaveLength(384);
    const [modelPid] = modelProcessesOf(pid);
    expect(modelPid).toBeDefined();
    expect(await readFile(`/proc/${pid}/maps`, 'utf8')).not.toContain('onnxruntime');

    await expect.poll(() => metricValue(running.embeddingsPort, 'civildiy_embeddings_model_unloads_total', { reason: 'idle' }), { timeout: 20_000 }).toBe('1');
    expect(runsTheModel(modelPid!)).toBe(false);
    const messages = running.lines.map((line) => (JSON.parse(line) as { msg: string }).msg);
    expect(messages.some((msg) => /embeddings provider: the all-minilm-l6-v2-q model .*loads on the first such request/.test(msg))).toBe(true);
    expect(messages.some((msg) => /the all-minilm-l6-v2-q model is loaded/.test(msg))).toBe(true);

    running.child.kill('SIGTERM');
    const [code] = await running.exited;
    expect(code).toBe(0);
  });

  it('with EMBEDDINGS_MODEL_PRELOAD=true, is ready once the model is loaded; the model process ends with the service, even when it is killed', async () => {
    const files = await testModelFiles();
    const running = await startMain({ EMBEDDINGS_PROVIDER: 'model', EMBEDDINGS_MODEL_PATH: files.dir, EMBEDDINGS_MODEL_PRELOAD: 'true' });
    await expect.poll(async () => (await fetch(`http://127.0.0.1:${running.embeddingsPort}/health/ready`)).status, { timeout: 20_000 }).toBe(200);
    expect(await metricValue(running.embeddingsPort, 'civildiy_embeddings_model_loaded')).toBe('1');
    const [modelPid] = modelProcessesOf(running.child.pid!);
    expect(runsTheModel(modelPid!)).toBe(true);

    running.child.kill('SIGKILL');
    await running.exited;
    await expect.poll(() => runsTheModel(modelPid!), { timeout: 10_000 }).toBe(false);
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
