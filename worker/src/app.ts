import type { Logger } from '@civildiy/common';
import { createServiceApp, type App, type ReadinessCheck } from '@civildiy/common/service';

/** The worker's small HTTP surface: `/health/*` and `/metrics` (no API, no auth). */
export async function buildApp(deps: { logger: Logger; readiness: Record<string, ReadinessCheck> }): Promise<App> {
  return createServiceApp({
    name: 'worker',
    logger: deps.logger,
    auth: false,
    readiness: deps.readiness,
    logRequests: false,
    docs: { title: 'CivilDIY worker', description: 'Health and metrics of the dedicated task worker.' },
  });
}
