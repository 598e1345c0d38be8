import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { freePort, startServiceProcess, type ServiceProcess } from './processes.ts';

/** The repository root (the folder holding the workspaces): three levels above common/src/testing. */
export const repositoryRoot = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../..');

/** The real mock-providers process, on free ports. */
export interface MockProviders {
  process: ServiceProcess;
  paymentsUrl: string;
  messagingUrl: string;
  /** The OpenAI-compatible embeddings provider (`POST /v1/embeddings`), e.g. for `EMBEDDINGS_URL`. */
  embeddingsUrl: string;
  stop(): Promise<void>;
}

/** Options of {@link startMockProviders}. */
export interface StartMockProvidersOptions {
  /**
   * Environment on top of the defaults, e.g. `{ MOCK_EMBEDDINGS_DIMENSIONS: '64', MOCK_EMBEDDINGS_FIXED_DIMENSIONS: 'true' }`
   * or `{ MOCK_EMBEDDINGS_API_KEY: 'sk-test' }`. The ports are always free ones chosen here.
   */
  env?: Record<string, string>;
}

/** Starts mock-providers (`src/main.ts` as a child process) and waits until every provider is ready. */
export async function startMockProviders(options: StartMockProvidersOptions = {}): Promise<MockProviders> {
  const [paymentsPort, messagingPort, embeddingsPort] = await Promise.all([freePort(), freePort(), freePort()]);
  const service = await startServiceProcess({
    root: repositoryRoot,
    workspace: 'mock-providers',
    env: {
      LOG_LEVEL: 'warn',
      // The deterministic mock unless a test asks for the real model (loading it takes a second and ~100 MB).
      EMBEDDINGS_PROVIDER: 'mock',
      ...options.env,
      MOCK_PAYMENTS_PORT: String(paymentsPort),
      MOCK_MESSAGING_PORT: String(messagingPort),
      MOCK_EMBEDDINGS_PORT: String(embeddingsPort),
    },
    // The embeddings app listens after the other two: ready here means all are.
    readyUrl: `http://127.0.0.1:${embeddingsPort}/health/ready`,
  });
  return {
    process: service,
    paymentsUrl: `http://127.0.0.1:${paymentsPort}`,
    messagingUrl: `http://127.0.0.1:${messagingPort}`,
    embeddingsUrl: `http://127.0.0.1:${embeddingsPort}`,
    stop: async () => {
      await service.stop('SIGTERM');
    },
  };
}

/** JSON from a provider's inspection or admin API. */
export async function providerCall<T = unknown>(url: string, options: { method?: string; body?: unknown } = {}): Promise<T> {
  const response = await fetch(url, {
    method: options.method ?? 'GET',
    ...(options.body === undefined ? {} : { headers: { 'content-type': 'application/json' }, body: JSON.stringify(options.body) }),
  });
  if (!response.ok) throw new Error(`${options.method ?? 'GET'} ${url} answered ${response.status}: ${await response.text()}`);
  const text = await response.text();
  return (text ? JSON.parse(text) : undefined) as T;
}
