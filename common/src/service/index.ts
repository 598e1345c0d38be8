export { DEFAULT_HTTP_SETTINGS, createServiceApp, httpSettings, listen, type App, type HttpSettings, type ServiceAppOptions } from './create-service.ts';
export { AdmissionControl, installAdmission, overloaded, type AdmissionOptions, type ShedReason, type SlotOutcome } from './admission.ts';
export { AdaptiveLimit, type AdaptiveLimitOptions } from './adaptive-limit.ts';
export { JsonDepthScanner, MAX_JSON_DEPTH, jsonTooDeep } from './json-depth.ts';
export {
  ACCESS_TOKEN_ALGORITHMS,
  ACCESS_TOKEN_AUDIENCE,
  ACCESS_TOKEN_ISSUER,
  assertRole,
  bearerToken,
  createTokenVerifier,
  requireUser,
  rolesOf,
  type AuthenticatedUser,
  type KeySource,
} from './auth.ts';
export { answerClientError, installErrorHandling, sendFrameworkError, type ErrorBody } from './error-handler.ts';
export { checkReadiness, type ReadinessCheck, type Readiness } from './health.ts';
export { reuseMetric } from './metrics.ts';
export { REQUEST_ID_HEADER, requestIdFrom } from './request-context.ts';
export { Shutdown, type ShutdownStep } from './shutdown.ts';
export type { FastifyPluginAsyncZod } from 'fastify-type-provider-zod';
