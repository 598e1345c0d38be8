import { createHash, timingSafeEqual } from 'node:crypto';
import { NotFoundError } from '@civildiy/common';
import { bearerToken, type App } from '@civildiy/common/service';
import type { FastifyError, FastifyReply, FastifyRequest } from 'fastify';
import { hasZodFastifySchemaValidationErrors } from 'fastify-type-provider-zod';
import { z } from 'zod';
import { DEFAULT_EMBEDDINGS_MODEL, EmbeddingsRequest, EmbeddingsResponse, type EmbeddingsModel } from './embeddings.ts';
import { ModelLoadError, ModelStoppedError, ModelTimeoutError, QueueFullError, RequestCancelledError } from './embeddings-model/model-errors.ts';
import type { LocalModel } from './embeddings-model/local-model.ts';
import { MODEL_DIMENSIONS, MODEL_ID } from './embeddings-model/model-artifact.ts';
import { chooseModel, dimensionsProblem, embedWithModel } from './embeddings-model/model-requests.ts';
import { FaultSettings } from './faults.ts';
import { DeclinedPayment, Payment, PaymentRequest, type PaymentLedger } from './payments.ts';
import { Message, MessageReceipt, MessageRequest, type MessageLog } from './messaging.ts';
import type { CallResult, ProviderCalls } from './provider-calls.ts';

/** Header marking an answer replayed from the idempotency store. */
export const REPLAYED_HEADER = 'idempotent-replayed';

const ErrorBody = z.object({ error: z.object({ code: z.string(), message: z.string(), details: z.unknown().optional() }) });
const errors = { 400: ErrorBody, 409: ErrorBody, 500: ErrorBody, 503: ErrorBody };
const IdempotencyHeaders = z.looseObject({
  'idempotency-key': z.string().optional().describe('Required. The same key with the same body replays the first answer; with another body → 409.'),
});
const Limit = z.coerce.number().int().min(1).max(500).default(50);

function sendCallResult(reply: FastifyReply, result: CallResult): FastifyReply {
  if (result.kind === 'injected_failure') {
    reply.log.warn({ status: result.status }, 'injected failure');
    return reply.status(result.status).send({
      error: {
        code: result.status === 503 ? 'provider_unavailable' : 'provider_error',
        message: 'Injected failure (fault injection is on)',
        details: { injected: true },
      },
    });
  }
  reply.header('idempotency-key', result.idempotencyKey);
  if (result.replayed) reply.header(REPLAYED_HEADER, 'true');
  return reply.status(result.answer.statusCode).send(result.answer.body);
}

/** `POST /v1/payments` (Stripe-like, idempotent) and the inspection reads. */
export function registerPaymentsRoutes(app: App, deps: { calls: ProviderCalls; ledger: PaymentLedger }): void {
  const { calls, ledger } = deps;

  app.post(
    '/v1/payments',
    {
      onRequest: calls.countReceived,
      schema: {
        tags: ['payments'],
        summary: 'Charge a customer',
        description:
          'Decline rule: amountCents > 200000 → 402 amount_over_limit; a customerId ending in "dead" → 402 card_declined; ' +
          'otherwise 200 succeeded. A decline is recorded and answered 402 { error: { code: payment_declined }, payment }.',
        headers: IdempotencyHeaders,
        body: PaymentRequest,
        response: { 200: Payment, 402: DeclinedPayment, ...errors },
      },
    },
    async (request, reply) => {
      const body = request.body;
      const result = await calls.handle(request.headers['idempotency-key'], body, (key) => ledger.charge(body, key));
      return sendCallResult(reply, result);
    },
  );

  app.get(
    '/v1/payments/:id',
    { schema: { tags: ['payments'], summary: 'One payment', params: z.object({ id: z.string() }), response: { 200: Payment, 404: ErrorBody } } },
    async (request) => {
      const payment = ledger.get(request.params.id);
      if (!payment) throw new NotFoundError(`No payment ${request.params.id}`, 'payment_not_found');
      return payment;
    },
  );

  app.get(
    '/v1/payments',
    {
      schema: {
        tags: ['payments'],
        summary: 'Payments, newest first (inspection)',
        querystring: z.object({ reference: z.string().optional(), customerId: z.uuid().optional(), limit: Limit }),
        response: { 200: z.object({ items: z.array(Payment) }) },
      },
    },
    async (request) => ({ items: ledger.list(request.query) }),
  );
}

/** `POST /v1/messages` (email and SMS, idempotent) and the inspection reads. */
export function registerMessagingRoutes(app: App, deps: { calls: ProviderCalls; log: MessageLog }): void {
  const { calls, log } = deps;

  app.post(
    '/v1/messages',
    {
      onRequest: calls.countReceived,
      schema: {
        tags: ['messages'],
        summary: 'Deliver an email or an SMS',
        description:
          'Recipient rule: email to @bounce.example or SMS to +999… → 422 recipient_rejected (permanent); otherwise 200 delivered.',
        headers: IdempotencyHeaders,
        body: MessageRequest,
        response: { 200: MessageReceipt, 422: ErrorBody, ...errors },
      },
    },
    async (request, reply) => {
      const body = request.body;
      const result = await calls.handle(request.headers['idempotency-key'], body, (key) => log.send(body, key));
      return sendCallResult(reply, result);
    },
  );

  app.get(
    '/v1/messages/:id',
    { schema: { tags: ['messages'], summary: 'One message', params: z.object({ id: z.string() }), response: { 200: Message, 404: ErrorBody } } },
    async (request) => {
      const message = log.get(request.params.id);
      if (!message) throw new NotFoundError(`No message ${request.params.id}`, 'message_not_found');
      return message;
    },
  );

  app.get(
    '/v1/messages',
    {
      schema: {
        tags: ['messages'],
        summary: 'Delivered messages, newest first (inspection)',
        querystring: z.object({ to: z.string().optional(), channel: z.enum(['email', 'sms']).optional(), limit: Limit }),
        response: { 200: z.object({ items: z.array(Message) }) },
      },
    },
    async (request) => ({ items: log.list(request.query) }),
  );
}

/** OpenAI's error body, which `/v1/embeddings` answers with (not the `{ error: { code, message, details } }` of the other providers). */
const OpenAiErrorBody = z.object({
  error: z.object({ message: z.string(), type: z.string(), param: z.string().nullable(), code: z.string().nullable() }),
});
type OpenAiError = z.infer<typeof OpenAiErrorBody>['error'];

function sendOpenAiError(reply: FastifyReply, status: number, error: Omit<OpenAiError, 'param'> & { param?: string | null }): FastifyReply {
  return reply.status(status).type('application/json; charset=utf-8').send({ error: { ...error, param: error.param ?? null } });
}

/** `/input/3` → `input[3]`, as OpenAI names parameters. */
function paramName(instancePath: string): string {
  return instancePath
    .split('/')
    .filter(Boolean)
    .map((part, i) => (/^\d+$/.test(part) ? `[${part}]` : i === 0 ? part : `.${part}`))
    .join('');
}

const FASTIFY_ERRORS: Record<string, { status: number; code: string; message: string }> = {
  FST_ERR_CTP_INVALID_JSON_BODY: { status: 400, code: 'invalid_json', message: 'We could not parse the JSON body of your request.' },
  FST_ERR_CTP_EMPTY_JSON_BODY: { status: 400, code: 'invalid_json', message: 'The body is empty but declared as JSON.' },
  FST_ERR_CTP_BODY_TOO_LARGE: { status: 413, code: 'request_too_large', message: 'The request body is too large.' },
  FST_ERR_CTP_INVALID_MEDIA_TYPE: { status: 415, code: 'unsupported_media_type', message: 'The body must be application/json.' },
};

/** Renders every error of `/v1/embeddings` in OpenAI's shape. */
function openAiErrorHandler(error: FastifyError, request: FastifyRequest, reply: FastifyReply): FastifyReply {
  if (hasZodFastifySchemaValidationErrors(error)) {
    const issue = error.validation[0]!;
    const param = paramName(issue.instancePath) || null;
    const custom = (issue.params as { params?: { code?: unknown } }).params?.code;
    return sendOpenAiError(reply, 400, {
      message: param ? `Invalid '${param}': ${issue.message}` : `Invalid request body: ${issue.message}`,
      type: 'invalid_request_error',
      param,
      code: typeof custom === 'string' ? custom : 'invalid_value',
    });
  }
  const known = error.code ? FASTIFY_ERRORS[error.code] : undefined;
  if (known) return sendOpenAiError(reply, known.status, { message: known.message, type: 'invalid_request_error', code: known.code });
  request.log.error({ err: error }, 'embeddings request failed');
  return sendOpenAiError(reply, 500, { message: 'The server had an error while processing your request.', type: 'server_error', code: 'internal' });
}

/** Whether `given` is `expected`, in time independent of where they differ. */
function sameSecret(given: string, expected: string): boolean {
  const digest = (value: string) => createHash('sha256').update(value).digest();
  return timingSafeEqual(digest(given), digest(expected));
}

/** Largest `/v1/embeddings` body: 2048 texts of 8192 tokens. */
const EMBEDDINGS_BODY_LIMIT_BYTES = 64 * 1024 * 1024;

/** An abort signal for when the client closes the connection before its answer is sent. */
function whenClientLeaves(reply: FastifyReply): { signal: AbortSignal; release: () => void } {
  const controller = new AbortController();
  const onClose = () => {
    if (!reply.raw.writableFinished) controller.abort();
  };
  reply.raw.once('close', onClose);
  return { signal: controller.signal, release: () => reply.raw.off('close', onClose) };
}

/** Answers what the real model refused: a full queue (429), a timeout, a failed load, a stopped model, a client that left (503). */
function sendModelRefusal(reply: FastifyReply, error: unknown): FastifyReply | undefined {
  if (error instanceof QueueFullError) {
    reply.header('retry-after', String(error.retryAfterSeconds));
    return sendOpenAiError(reply, 429, { message: error.message, type: 'requests', code: 'rate_limit_exceeded' });
  }
  if (error instanceof ModelTimeoutError) {
    reply.header('retry-after', String(error.retryAfterSeconds));
    return sendOpenAiError(reply, 503, { message: error.message, type: 'server_error', code: 'timeout' });
  }
  if (error instanceof ModelLoadError) {
    reply.header('retry-after', String(error.retryAfterSeconds));
    return sendOpenAiError(reply, 503, { message: error.message, type: 'server_error', code: 'model_load_failed' });
  }
  if (error instanceof ModelStoppedError) {
    reply.header('retry-after', '1');
    return sendOpenAiError(reply, 503, { message: error.message, type: 'server_error', code: 'model_unavailable' });
  }
  if (error instanceof RequestCancelledError) return sendOpenAiError(reply, 503, { message: error.message, type: 'server_error', code: 'cancelled' });
  return undefined;
}

/**
 * `POST /v1/embeddings` (OpenAI-compatible): the real model (`local`, when it is loaded) for requests
 * naming it or no model, the deterministic mock for every other model name; and `GET /v1/models`.
 */
export function registerEmbeddingsRoutes(app: App, deps: { calls: ProviderCalls; model: EmbeddingsModel; local?: LocalModel; apiKey?: string }): void {
  const { calls, model, local, apiKey } = deps;

  const checkApiKey = async (request: FastifyRequest, reply: FastifyReply) => {
    if (apiKey === undefined) return;
    const given = bearerToken(request);
    if (given !== undefined && sameSecret(given, apiKey)) return;
    calls.countRefused('unauthorized');
    return sendOpenAiError(reply, 401, {
      message: given === undefined ? "You didn't provide an API key. Send it as 'Authorization: Bearer <key>'." : 'Incorrect API key provided.',
      type: 'invalid_request_error',
      code: 'invalid_api_key',
    });
  };

  app.post(
    '/v1/embeddings',
    {
      onRequest: [calls.countReceived, checkApiKey],
      bodyLimit: EMBEDDINGS_BODY_LIMIT_BYTES,
      errorHandler: openAiErrorHandler,
      schema: {
        tags: ['embeddings'],
        summary: 'Embed texts (OpenAI-compatible)',
        description:
          `The model ${MODEL_ID} (all-MiniLM-L6-v2, ${MODEL_DIMENSIONS} dimensions, when this provider runs it: see GET /v1/models) answers requests ` +
          'naming it or no model: texts are cut to 256 tokens, batched, and a full queue answers 429 rate_limit_exceeded with Retry-After; ' +
          `"dimensions" other than ${MODEL_DIMENSIONS} is 400 unsupported_dimensions; it is loaded by the first request for it (which waits) and unloaded when idle; ` +
          'a failed load is 503 model_load_failed with Retry-After; while its files are checked at start, 503 model_loading; when it is not served, 404 model_not_found. ' +
          'Any other model name is the deterministic mock: the same model, dimensions and text always give the same unit vector; texts sharing words and word pairs are ' +
          'closer than unrelated ones (hashed word and word-pair features). Errors in OpenAI\'s shape { error: { message, type, param, code } }. ' +
          'When MOCK_EMBEDDINGS_API_KEY is set, requires Authorization: Bearer <key> (else 401 invalid_api_key).',
        headers: z.looseObject({ authorization: z.string().optional().describe('Bearer <key>, required when the provider has a key') }),
        body: EmbeddingsRequest,
        response: {
          200: EmbeddingsResponse,
          400: OpenAiErrorBody,
          401: OpenAiErrorBody,
          404: OpenAiErrorBody,
          413: OpenAiErrorBody,
          429: OpenAiErrorBody,
          500: OpenAiErrorBody,
          503: OpenAiErrorBody,
        },
      },
    },
    async (request, reply) => {
      const body = request.body;
      const choice = chooseModel(body.model, local);
      if (choice.kind === 'unavailable') {
        if (choice.retryAfterSeconds) reply.header('retry-after', String(choice.retryAfterSeconds));
        const type = choice.status === 404 ? 'invalid_request_error' : 'server_error';
        return sendOpenAiError(reply, choice.status, { message: choice.message, type, param: choice.status === 404 ? 'model' : null, code: choice.code });
      }
      if (choice.kind === 'model') {
        const problem = dimensionsProblem(body);
        if (problem) return sendOpenAiError(reply, 400, { message: problem, type: 'invalid_request_error', param: 'dimensions', code: 'unsupported_dimensions' });
      }
      const client = whenClientLeaves(reply);
      try {
        const result = await calls.run('embedded', () => (choice.kind === 'model' ? embedWithModel(choice.model, body, { signal: client.signal }) : model.embed(body)));
        if (result.kind === 'injected_failure') {
          reply.log.warn({ status: result.status }, 'injected failure');
          return sendOpenAiError(reply, result.status, {
            message: 'Injected failure (fault injection is on)',
            type: 'server_error',
            code: result.status === 503 ? 'provider_unavailable' : 'provider_error',
          });
        }
        if (choice.kind === 'model') model.record(result.value.data.length);
        return result.value;
      } catch (error) {
        const refused = sendModelRefusal(reply, error);
        if (refused) return refused;
        throw error;
      } finally {
        client.release();
      }
    },
  );

  app.get(
    '/v1/models',
    {
      schema: {
        tags: ['embeddings'],
        summary: 'The models this provider answers with (OpenAI-compatible)',
        description: `${MODEL_ID} when the real model is served (with its dimensions; loaded or not: it loads on demand), and the mock's default name (the mock answers any other name too).`,
        response: { 200: ModelList },
      },
    },
    async () => ({ object: 'list' as const, data: listModels(model, local) }),
  );
}

const ModelList = z.object({
  object: z.literal('list'),
  data: z.array(
    z.object({
      id: z.string(),
      object: z.literal('model'),
      created: z.number().int(),
      owned_by: z.string(),
      dimensions: z.number().int().optional().describe('the vector length (the mock: any, default MOCK_EMBEDDINGS_DIMENSIONS)'),
    }),
  ),
});

function listModels(mock: EmbeddingsModel, local: LocalModel | undefined): z.infer<typeof ModelList>['data'] {
  const state = local?.state;
  return [
    ...(state?.kind === 'available' ? [{ id: MODEL_ID, object: 'model' as const, created: 0, owned_by: 'sentence-transformers', dimensions: state.model.dimensions }] : []),
    { id: DEFAULT_EMBEDDINGS_MODEL, object: 'model' as const, created: 0, owned_by: 'civildiy-mock', dimensions: mock.settings.dimensions },
  ];
}

const Stats = z.object({
  provider: z.string(),
  callsReceived: z.number().int().describe('calls to the POST endpoint, valid or not'),
  failuresInjected: z.number().int(),
  idempotentReplays: z.number().int(),
  keyConflicts: z.number().int(),
  chargesCreated: z.number().int().optional().describe('payments: succeeded charges'),
  declines: z.number().int().optional().describe('payments: declined payments'),
  messagesCreated: z.number().int().optional().describe('messaging: delivered messages'),
  rejections: z.number().int().optional().describe('messaging: rejected recipients'),
  embeddingRequests: z.number().int().optional().describe('embeddings: requests answered with vectors'),
  embeddingsCreated: z.number().int().optional().describe('embeddings: vectors returned'),
});

/** `/_admin/faults`, `/_admin/reset` and `/_admin/stats` of one provider. */
export function registerAdminRoutes(app: App, deps: { calls: ProviderCalls; counts: () => Record<string, number>; clear: () => void }): void {
  const { calls } = deps;

  app.get('/_admin/faults', { schema: { tags: ['admin'], summary: 'The injected faults', response: { 200: FaultSettings } } }, async () =>
    calls.faults.current(),
  );

  app.put(
    '/_admin/faults',
    {
      schema: {
        tags: ['admin'],
        summary: 'Replace the injected faults (omitted fields take their defaults; restarts the seeded random sequence)',
        body: FaultSettings,
        response: { 200: FaultSettings },
      },
    },
    async (request) => {
      calls.faults.set(request.body);
      request.log.info({ faults: request.body }, 'faults set');
      return calls.faults.current();
    },
  );

  app.post(
    '/_admin/reset',
    { schema: { tags: ['admin'], summary: 'Forget every record, idempotency key, counter and fault; answers 204' } },
    async (request, reply) => {
      deps.clear();
      calls.reset();
      request.log.info('reset');
      return reply.status(204).send();
    },
  );

  app.get('/_admin/stats', { schema: { tags: ['admin'], summary: 'Calls received, failures injected, records created', response: { 200: Stats } } }, async () => ({
    provider: calls.provider,
    ...calls.stats(),
    ...deps.counts(),
  }));
}
