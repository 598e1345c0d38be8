import type { Logger } from '@civildiy/common';
import { createServiceApp, type App } from '@civildiy/common/service';
import type { Registry } from 'prom-client';
import { registerAdminRoutes, registerEmbeddingsRoutes, registerMessagingRoutes, registerPaymentsRoutes } from './api.ts';
import { EmbeddingsModel } from './embeddings.ts';
import type { LocalModel } from './embeddings-model/local-model.ts';
import type { FaultSettings } from './faults.ts';
import { MessageLog } from './messaging.ts';
import { PaymentLedger } from './payments.ts';
import { ProviderCalls } from './provider-calls.ts';

/** What one provider app is built from. */
export interface ProviderAppOptions {
  logger: Logger;
  /** Seed of the random failures. Default: 1. */
  seed?: number;
  /** Faults from the start. Default: none. */
  faults?: FaultSettings;
  /** Default: prom-client's global registry (both providers share the process's `/metrics`). */
  metricsRegistry?: Registry;
  /** Log each request (default: true). */
  logRequests?: boolean;
}

function kitOptions(options: ProviderAppOptions, title: string, description: string) {
  return {
    name: 'mock-providers',
    logger: options.logger,
    auth: false as const,
    docs: { title, description },
    ...(options.metricsRegistry ? { metricsRegistry: options.metricsRegistry } : {}),
    ...(options.logRequests === undefined ? {} : { logRequests: options.logRequests }),
  };
}

function callsOf(provider: string, options: ProviderAppOptions): ProviderCalls {
  return new ProviderCalls(provider, {
    seed: options.seed ?? 1,
    ...(options.faults ? { faults: options.faults } : {}),
    ...(options.metricsRegistry ? { metricsRegistry: options.metricsRegistry } : {}),
  });
}

/** The Stripe-like payments provider (port 8003). Does not listen. */
export async function buildPaymentsApp(options: ProviderAppOptions): Promise<App> {
  const app = await createServiceApp(kitOptions(options, 'Mock payments provider', 'Deterministic, idempotent stand-in for a card payments API'));
  const calls = callsOf('payments', options);
  const ledger = new PaymentLedger();
  registerPaymentsRoutes(app, { calls, ledger });
  registerAdminRoutes(app, { calls, counts: () => ledger.counts(), clear: () => ledger.clear() });
  return app;
}

/** The email/SMS messaging provider (port 8002). Does not listen. */
export async function buildMessagingApp(options: ProviderAppOptions): Promise<App> {
  const app = await createServiceApp(kitOptions(options, 'Mock messaging provider', 'Deterministic, idempotent stand-in for an email and SMS API'));
  const calls = callsOf('messaging', options);
  const log = new MessageLog();
  registerMessagingRoutes(app, { calls, log });
  registerAdminRoutes(app, { calls, counts: () => log.counts(), clear: () => log.clear() });
  return app;
}

/** How the embeddings provider answers (see {@link buildEmbeddingsApp}). */
export interface EmbeddingsAppOptions extends ProviderAppOptions {
  /** The vector length when a request asks for none. Default: 256. */
  dimensions?: number;
  /** Ignore a request's `dimensions` and always answer with {@link dimensions}, as a fixed-size model server does. Default: false. */
  fixedDimensions?: boolean;
  /** When set, `POST /v1/embeddings` requires `Authorization: Bearer <apiKey>` (else 401). Default: no key. */
  apiKey?: string;
  /**
   * The real embedding model (all-MiniLM-L6-v2), loaded on demand: it answers requests naming it
   * or no model, `/health/ready` waits for its files to be checked (see {@link LocalModel.ready}),
   * and the model's own bounded queue (429) replaces the service's admission control. Default:
   * none (the deterministic mock only).
   */
  local?: LocalModel;
}

/** The OpenAI-compatible embeddings provider (port 8001). Does not listen. */
export async function buildEmbeddingsApp(options: EmbeddingsAppOptions): Promise<App> {
  const { local } = options;
  const app = await createServiceApp({
    ...kitOptions(
      options,
      'Embeddings provider',
      'OpenAI-compatible embeddings: the all-MiniLM-L6-v2 model when it runs here, and a deterministic stand-in (hashed word and word-pair features) for every other model name',
    ),
    ...(local ? { readiness: { model: local.ready }, admission: false } : {}),
  });
  const calls = callsOf('embeddings', options);
  const model = new EmbeddingsModel({ dimensions: options.dimensions ?? 256, fixedDimensions: options.fixedDimensions ?? false });
  registerEmbeddingsRoutes(app, { calls, model, ...(local ? { local } : {}), ...(options.apiKey ? { apiKey: options.apiKey } : {}) });
  registerAdminRoutes(app, { calls, counts: () => model.counts(), clear: () => model.clear() });
  return app;
}
