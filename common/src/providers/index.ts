/**
 * `@civildiy/common/providers`: typed HTTP clients of the external providers (payments, messaging, embeddings)
 * with timeouts, a circuit breaker and error classification the task runtime understands
 * (`PermanentError` fails at once, `ProviderUnavailableError` is retried).
 */
export { PaymentsClient, type ChargeRequest, type ChargeResult } from './payments-client.ts';
export { MessagingClient, type MessageReceipt, type SendMessageRequest } from './messaging-client.ts';
export { EmbeddingsClient, type EmbeddingsClientOptions, type EmbeddingsResult } from './embeddings-client.ts';
export { ProviderUnavailableError, isProviderUnavailableError, type ProviderUnavailableCode } from './provider-unavailable-error.ts';
export type { CircuitBreakerOptions, CircuitStateName, ProviderClientOptions } from './provider-http.ts';
