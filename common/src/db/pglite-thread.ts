import { Worker } from 'node:worker_threads';
import type { QueryOptions, Results } from '@electric-sql/pglite';
import { finishRows, parsersAreTextTypes, PGLITE_SETTINGS, RAW_TEXT_TYPES, type PGliteClientTransaction, type PGliteDriverClient } from './pglite-client.ts';
import { DatabaseGoneError } from './database-unavailable.ts';

/** What the worker thread is started with. */
export interface ThreadWorkerData {
  dataDir: string;
  extensions: string[];
  /** PGlite's `postgresqlconf` ({@link PGLITE_SETTINGS}). */
  settings: string[];
  /** The types returned as text (`RAW_TEXT_TYPES` of `pglite-client.ts`). */
  textTypes: number[];
}

/** A request to the worker thread; `tx` runs it inside that open transaction. */
export type ThreadRequest =
  | { id: number; op: 'query'; sql: string; params: unknown[]; rowMode: 'object' | 'array'; tx?: number }
  | { id: number; op: 'exec'; sql: string; tx?: number }
  | { id: number; op: 'begin' }
  | { id: number; op: 'end'; tx: number; commit: boolean }
  | { id: number; op: 'close' };

/** An error as it crosses the thread boundary: the Postgres fields (`code`, `constraint`…) survive. */
export interface WireError {
  name: string;
  message: string;
  stack?: string;
  fields: Record<string, unknown>;
}

/** The worker's answer to request `id` (id 0: the database is open). */
export type ThreadReply = { id: number; ok: true; result: unknown } | { id: number; ok: false; error: WireError };

/** Raised on the main thread for a failure in the worker; carries the Postgres error fields. */
export class PGliteThreadError extends Error {
  [field: string]: unknown;

  constructor(wire: WireError) {
    super(wire.message);
    this.name = wire.name;
    Object.assign(this, wire.fields);
    if (wire.stack) this.stack = `${wire.name}: ${wire.message}\n    (in the database thread)\n${wire.stack.split('\n').slice(1).join('\n')}`;
  }
}

/** A request before it is numbered. */
type Unnumbered<T> = T extends unknown ? Omit<T, 'id'> : never;

interface Pending {
  resolve: (value: unknown) => void;
  reject: (error: Error) => void;
}

/**
 * An embedded PGlite database that runs on its own worker thread, so the Postgres work of a query
 * (an HNSW walk, a sort) runs beside the service's event loop instead of on it: HTTP parsing,
 * validation and JSON of other requests go on meanwhile, and a 2-core machine uses both cores.
 *
 * It offers what Drizzle's PGlite driver uses (`query`, `exec`, `transaction`), with PGlite's own
 * semantics: one session, statements and transactions one at a time in arrival order. Of the query
 * options only `rowMode` crosses the thread; `parsers` (functions) are applied here, so they may
 * only name the types Drizzle reads as text (dates, times, intervals), which the worker returns
 * as text (see `pglite-client.ts`); other parsers are refused.
 *
 * If the worker dies, every pending and later call rejects and `onExit` is called: the owner
 * should stop the process (its supervisor restarts it on the intact data folder).
 */
export class PGliteThread implements PGliteDriverClient {
  private readonly worker: Worker;
  private readonly pending = new Map<number, Pending>();
  private nextId = 1;
  private failure: Error | undefined;
  private closing: Promise<void> | undefined;

  private constructor(worker: Worker, onExit: (error: Error) => void) {
    this.worker = worker;
    worker.on('message', (reply: ThreadReply) => this.settle(reply));
    worker.on('error', (error) => this.fail(new DatabaseGoneError(`the database thread failed: ${error.message}`, { cause: error }), onExit));
    worker.on('exit', (code) => this.fail(new DatabaseGoneError(`the database thread exited (code ${code})`), this.closing ? () => undefined : onExit));
  }

  /** Starts the worker and opens the database in `dataDir` (a folder or `memory://…`). */
  static async create(dataDir: string, options: { extensions?: string[]; onExit?: (error: Error) => void } = {}): Promise<PGliteThread> {
    const workerData: ThreadWorkerData = { dataDir, extensions: options.extensions ?? [], textTypes: [...RAW_TEXT_TYPES], settings: [...PGLITE_SETTINGS] };
    const worker = new Worker(new URL('./pglite-thread-worker.mjs', import.meta.url), { workerData });
    const opened = new Promise<void>((resolve, reject) => {
      const onMessage = (reply: ThreadReply) => {
        if (reply.id !== 0) return;
        worker.off('message', onMessage);
        worker.off('exit', onEarlyExit);
        if (reply.ok) resolve();
        else reject(new PGliteThreadError(reply.error));
      };
      const onEarlyExit = (code: number) => reject(new Error(`the database thread exited (code ${code}) while opening ${dataDir}`));
      worker.on('message', onMessage);
      worker.once('exit', onEarlyExit);
      worker.once('error', reject);
    });
    try {
      await opened;
    } catch (error) {
      await worker.terminate();
      throw error;
    }
    return new PGliteThread(worker, options.onExit ?? (() => undefined));
  }

  /** True once {@link close} was called or the worker died. */
  get closed(): boolean {
    return this.closing !== undefined || this.failure !== undefined;
  }

  query<T>(sql: string, params: unknown[] = [], options?: QueryOptions, tx?: number): Promise<Results<T>> {
    if (!parsersAreTextTypes(options?.parsers)) return Promise.reject(new TypeError('PGliteThread applies parsers for date, time and interval types only'));
    const rowMode = options?.rowMode ?? 'object';
    const request = { op: 'query', sql, params, rowMode, ...(tx === undefined ? {} : { tx }) } as const;
    return this.call<Results<T>>(request).then((result) => finishRows(result, options?.parsers, rowMode));
  }

  exec(sql: string, tx?: number): Promise<Results[]> {
    return this.call<Results[]>({ op: 'exec', sql, ...(tx === undefined ? {} : { tx }) }).then((results) => results.map((result) => finishRows(result, undefined, 'object')));
  }

  /** Runs `fn` in a transaction: committed when it resolves, rolled back when it throws or calls `rollback()`. */
  async transaction<T>(fn: (tx: PGliteClientTransaction) => Promise<T>): Promise<T> {
    const id = await this.call<number>({ op: 'begin' });
    let closed = false;
    const open = () => {
      if (closed) throw new Error('Transaction is closed');
    };
    const tx: PGliteClientTransaction = {
      query: async <R>(sql: string, params?: unknown[], options?: QueryOptions) => {
        open();
        return this.query<R>(sql, params, options, id);
      },
      exec: async (sql: string) => {
        open();
        return this.exec(sql, id);
      },
      rollback: async () => {
        open();
        closed = true;
        await this.call({ op: 'end', tx: id, commit: false });
      },
      get closed() {
        return closed;
      },
    };
    let result: T;
    try {
      result = await fn(tx);
    } catch (error) {
      if (!closed) {
        closed = true;
        await this.call({ op: 'end', tx: id, commit: false }).catch(() => undefined);
      }
      throw error;
    }
    if (!closed) {
      closed = true;
      await this.call({ op: 'end', tx: id, commit: true });
    }
    return result;
  }

  /** Closes the database and stops the thread. Safe to call twice. */
  close(): Promise<void> {
    this.closing ??= (async () => {
      if (!this.failure) await this.call({ op: 'close' }, true).catch(() => undefined);
      await this.worker.terminate();
    })();
    return this.closing;
  }

  private call<T>(request: Unnumbered<ThreadRequest>, closing = false): Promise<T> {
    if (this.failure) return Promise.reject(this.failure);
    if (this.closing && !closing) return Promise.reject(new DatabaseGoneError('the database is closed'));
    const id = this.nextId++;
    return new Promise<T>((resolve, reject) => {
      this.pending.set(id, { resolve: resolve as (value: unknown) => void, reject });
      this.worker.postMessage({ ...request, id });
    });
  }

  private settle(reply: ThreadReply): void {
    const pending = this.pending.get(reply.id);
    if (!pending) return;
    this.pending.delete(reply.id);
    if (reply.ok) pending.resolve(reply.result);
    else pending.reject(new PGliteThreadError(reply.error));
  }

  private fail(error: Error, onExit: (error: Error) => void): void {
    if (this.failure) return;
    this.failure = error;
    for (const pending of this.pending.values()) pending.reject(error);
    this.pending.clear();
    onExit(error);
  }
}
