import { createLogger } from '@civildiy/common';
import { Shutdown, listen, type App } from '@civildiy/common/service';
import { buildEmbeddingsApp, buildMessagingApp, buildPaymentsApp, type ProviderAppOptions } from './app.ts';
import { embeddingsFaults, localModelOptions, messagingFaults, paymentsFaults, type MockProvidersConfig } from './config.ts';
import { LocalModel } from './embeddings-model/local-model.ts';

/**
 * Runs the three providers in one process. Unlike the platform's services (`runService`), it needs
 * no Redis, event bus or database: it stands in for external APIs, which have none of ours.
 * Listens in this order (a test waiting for the last one waits for all); stops on SIGTERM/SIGINT.
 * The embeddings provider's real model (`EMBEDDINGS_PROVIDER`) has its files checked once everything
 * listens (readiness waits for that) and loads on the first request for it, in a process of its own
 * that ends when idle (`EMBEDDINGS_MODEL_KEEP_ALIVE_MS`). With `EMBEDDINGS_PROVIDER=model`, a model
 * whose files cannot be had stops the process (exit 1).
 */
export async function runMockProviders(config: MockProvidersConfig): Promise<void> {
  const logger = createLogger({ service: 'mock-providers', level: config.LOG_LEVEL });
  const shutdown = new Shutdown(logger, config.SHUTDOWN_TIMEOUT_MS);
  const embeddingsLogger = logger.child({ provider: 'embeddings' });
  const local = new LocalModel({
    ...localModelOptions(config),
    logger: embeddingsLogger,
    onRequiredModelFailed: () => void shutdown.run().then(() => process.exit(1)),
  });
  // Stopped after the HTTP servers (steps run in reverse), so requests under way still get their vectors.
  shutdown.add('embedding model', () => local.close());
  const providers: { name: string; port: number; build: (options: ProviderAppOptions) => Promise<App>; options: ProviderAppOptions }[] = [
    { name: 'payments', port: config.MOCK_PAYMENTS_PORT, build: buildPaymentsApp, options: { logger: logger.child({ provider: 'payments' }), seed: config.MOCK_SEED, faults: paymentsFaults(config) } },
    { name: 'messaging', port: config.MOCK_MESSAGING_PORT, build: buildMessagingApp, options: { logger: logger.child({ provider: 'messaging' }), seed: config.MOCK_SEED, faults: messagingFaults(config) } },
    {
      name: 'embeddings',
      port: config.MOCK_EMBEDDINGS_PORT,
      build: (options) =>
        buildEmbeddingsApp({
          ...options,
          dimensions: config.MOCK_EMBEDDINGS_DIMENSIONS,
          fixedDimensions: config.MOCK_EMBEDDINGS_FIXED_DIMENSIONS,
          ...(config.MOCK_EMBEDDINGS_API_KEY ? { apiKey: config.MOCK_EMBEDDINGS_API_KEY } : {}),
          local,
        }),
      options: { logger: embeddingsLogger, seed: config.MOCK_SEED, faults: embeddingsFaults(config) },
    },
  ];
  const addresses: Record<string, string> = {};
  for (const provider of providers) {
    const app = await provider.build(provider.options);
    addresses[provider.name] = await listen(app, { port: provider.port, host: config.HOST, shutdown });
  }
  // Checked once every provider listens: payments and messaging are not held up by a fetch.
  local.start();
  logger.info({ ...addresses, seed: config.MOCK_SEED, embeddingsDimensions: config.MOCK_EMBEDDINGS_DIMENSIONS, embeddingsProvider: config.EMBEDDINGS_PROVIDER }, 'mock providers listening');
  shutdown.installSignalHandlers();
}
