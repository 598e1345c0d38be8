import { ConflictError } from '@civildiy/common';

/** An answer as the provider first gave it, replayed verbatim for the same idempotency key. */
export interface StoredAnswer<Outcome extends string = string> {
  statusCode: number;
  body: unknown;
  /** What the call came to (`succeeded`, `declined`, `delivered`, `rejected`), for stats and metrics. */
  outcome: Outcome;
}

interface Entry {
  fingerprint: string;
  answer: Promise<StoredAnswer>;
}

/** JSON with object keys sorted, so two equal requests have the same fingerprint whatever their key order. */
export function fingerprint(value: unknown): string {
  return JSON.stringify(value, (_key, v: unknown) =>
    v && typeof v === 'object' && !Array.isArray(v)
      ? Object.fromEntries(Object.entries(v as Record<string, unknown>).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0)))
      : v,
  );
}

/**
 * Stripe-style idempotency: the first call with a key runs and its answer (success, decline or
 * rejection) is stored; a later call with the same key and the same request gets that answer back
 * without running; the same key with a different request is 409 `idempotency_key_reused`.
 * A call arriving while the first one with its key still runs waits for it and gets its answer
 * (Stripe answers 409 there; waiting lets a client's retry converge instead of failing).
 * Keys live until {@link clear} (reset) or the process ends.
 */
export class IdempotencyStore {
  private readonly entries = new Map<string, Entry>();

  /**
   * Runs `execute` unless `key` already has an answer.
   * @throws ConflictError `idempotency_key_reused` when `key` was used for a different request.
   */
  async run<O extends string>(key: string, request: unknown, execute: () => StoredAnswer<O>): Promise<{ answer: StoredAnswer<O>; replayed: boolean }> {
    const print = fingerprint(request);
    const existing = this.entries.get(key);
    if (existing) {
      if (existing.fingerprint !== print) {
        throw new ConflictError('This Idempotency-Key was already used with a different request', 'idempotency_key_reused');
      }
      return { answer: (await existing.answer) as StoredAnswer<O>, replayed: true };
    }
    // Registered before anything runs, so a concurrent call with the key finds it.
    const answer = Promise.resolve().then(execute);
    this.entries.set(key, { fingerprint: print, answer });
    try {
      return { answer: await answer, replayed: false };
    } catch (error) {
      // An unexpected failure has no answer to replay; the key may be used again.
      this.entries.delete(key);
      throw error;
    }
  }

  /** Forgets every key. */
  clear(): void {
    this.entries.clear();
  }
}
