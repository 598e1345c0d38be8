import { NotFoundError } from '@civildiy/common';
import type { App } from '@civildiy/common/service';
import type { FastifyReply } from 'fastify';
import { z } from 'zod';
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
