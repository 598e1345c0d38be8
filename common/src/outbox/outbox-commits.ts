import { AsyncLocalStorage } from 'node:async_hooks';
import type { DbExecutor } from '../db/index.ts';

/** Listeners of a watched database, called after each commit that wrote to its outbox. */
const listeners = new WeakMap<object, () => void>();
/** The watched transaction the current code runs in, and whether it wrote to the outbox. */
const transactionScope = new AsyncLocalStorage<{ wroteOutbox: boolean }>();

/**
 * Calls `onCommit` after every commit that wrote to `db`'s outbox: after `db.transaction(…)`
 * resolves when the work wrote a row through `outbox.event` / `outbox.task` (in the transaction or
 * a savepoint of it), and right after such a write made on `db` itself outside any transaction
 * (which commits on its own). A rolled-back transaction calls nothing.
 *
 * The runtime wires this to the outbox relay's `wake()`, so an event or task written by a route, a
 * consumer or a job goes out at once, without domain code knowing the relay exists. Call it once
 * per database, before any transaction of it runs.
 */
export function watchOutboxCommits<TDb extends DbExecutor>(db: TDb, onCommit: () => void): TDb {
  listeners.set(db, onCommit);
  const transaction = db.transaction.bind(db);
  db.transaction = ((work, config) => {
    const scope = { wroteOutbox: false };
    return transactionScope.run(scope, async () => {
      const result = await transaction(work, config);
      if (scope.wroteOutbox) onCommit();
      return result;
    });
  }) as TDb['transaction'];
  return db;
}

/** Called by the outbox writer after it wrote a row through `executor` (a database or one of its transactions). */
export function outboxWritten(executor: DbExecutor): void {
  const scope = transactionScope.getStore();
  if (scope) {
    scope.wroteOutbox = true;
    return;
  }
  // Outside a watched transaction: a write on the database itself has committed already.
  listeners.get(executor)?.();
}
