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
  stop(): Promise<void>;
}

/** Starts mock-providers (`src/main.ts` as a child process) and waits until both providers are ready. */
export async function startMockProviders(): Promise<MockProviders> {
  const [paymentsPort, messagingPort] = await Promise.all([freePort(), freePort()]);
  const service = await startServiceProcess({
    root: repositoryRoot,
    workspace: 'mock-providers',
    env: { MOCK_PAYMENTS_PORT: String(paymentsPort), MOCK_MESSAGING_PORT: String(messagingPort), LOG_LEVEL: 'warn' },
    // The messaging app listens after the payments app: ready here means both are.
    readyUrl: `http://127.0.0.1:${messagingPort}/health/ready`,
  });
  return {
    process: service,
    paymentsUrl: `http://127.0.0.1:${paymentsPort}`,
    messagingUrl: `http://127.0.0.1:${messagingPort}`,
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
