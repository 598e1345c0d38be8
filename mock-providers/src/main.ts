import { createLogger, loadConfigOrExit } from '@civildiy/common';
import { Shutdown, listen, type App } from '@civildiy/common/service';
import { buildMessagingApp, buildPaymentsApp, type ProviderAppOptions } from './app.ts';
import { messagingFaults, mockProvidersEnv, paymentsFaults } from './config.ts';

const config = loadConfigOrExit(mockProvidersEnv);
const logger = createLogger({ service: 'mock-providers', level: config.LOG_LEVEL });
const shutdown = new Shutdown(logger, config.SHUTDOWN_TIMEOUT_MS);

// One entry per provider; the embeddings provider (8001) joins this list.
const providers: { name: string; port: number; build: (options: ProviderAppOptions) => Promise<App>; options: ProviderAppOptions }[] = [
  { name: 'payments', port: config.MOCK_PAYMENTS_PORT, build: buildPaymentsApp, options: { logger: logger.child({ provider: 'payments' }), seed: config.MOCK_SEED, faults: paymentsFaults(config) } },
  { name: 'messaging', port: config.MOCK_MESSAGING_PORT, build: buildMessagingApp, options: { logger: logger.child({ provider: 'messaging' }), seed: config.MOCK_SEED, faults: messagingFaults(config) } },
];

const addresses: Record<string, string> = {};
for (const provider of providers) {
  const app = await provider.build(provider.options);
  addresses[provider.name] = await listen(app, { port: provider.port, host: config.HOST, shutdown });
}
logger.info({ ...addresses, seed: config.MOCK_SEED }, 'mock providers listening');
shutdown.installSignalHandlers();
