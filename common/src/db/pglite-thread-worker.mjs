/**
 * The worker-thread side of `PGliteThread` (`pglite-thread.ts`, which describes the protocol): owns
 * one PGlite instance and answers the main thread's requests. Plain JavaScript because a worker
 * thread does not inherit the service's TypeScript loader; the message types are
 * `ThreadRequest` and `ThreadReply` of `pglite-thread.ts`.
 */
import { parentPort, workerData } from 'node:worker_threads';
import { PGlite } from '@electric-sql/pglite';
import { createFromTemplate } from './pglite-template.mjs';

const port = parentPort;
if (!port) throw new Error('pglite-thread-worker.mjs runs in a worker thread only');

/** Field names that carry a Postgres error's meaning (`DatabaseError` of pg-protocol). */
const ERROR_FIELDS = ['code', 'severity', 'detail', 'hint', 'position', 'schema', 'table', 'column', 'dataType', 'constraint', 'routine'];

/** @param {unknown} error @returns {import('./pglite-thread.ts').WireError} */
function toWire(error) {
  if (!(error instanceof Error)) return { name: 'Error', message: String(error), fields: {} };
  /** @type {Record<string, unknown>} */
  const fields = {};
  for (const key of ERROR_FIELDS) {
    const value = /** @type {Record<string, unknown>} */ (/** @type {unknown} */ (error))[key];
    if (value !== undefined) fields[key] = value;
  }
  return { name: error.name, message: error.message, ...(error.stack ? { stack: error.stack } : {}), fields };
}

/** @type {PGlite} */
let db;
/** Open transactions by id: the PGlite transaction, how to end it, and its outcome. */
const transactions = new Map();
let nextTransaction = 1;

function executor(txId) {
  if (txId === undefined) return db;
  const open = transactions.get(txId);
  if (!open) throw new Error(`transaction ${txId} is not open`);
  return open.tx;
}

const plain = (result) => ({ rows: result.rows, fields: result.fields, affectedRows: result.affectedRows });

async function handle(request) {
  switch (request.op) {
    case 'query':
      return plain(await executor(request.tx).query(request.sql, request.params, { rowMode: request.rowMode }));
    case 'exec':
      return (await executor(request.tx).exec(request.sql)).map(plain);
    case 'begin': {
      const id = nextTransaction++;
      let opened;
      const open = new Promise((resolve) => (opened = resolve));
      let finish;
      const decided = new Promise((resolve) => (finish = resolve));
      const settled = db.transaction(async (tx) => {
        transactions.set(id, { tx, finish, settled });
        opened();
        if (!(await decided) && !tx.closed) await tx.rollback();
      });
      // Opening failed (the database closed): report that instead of waiting forever.
      await Promise.race([open, settled]);
      if (!transactions.has(id)) throw new Error('the transaction could not be opened');
      return id;
    }
    case 'end': {
      const open = transactions.get(request.tx);
      if (!open) throw new Error(`transaction ${request.tx} is not open`);
      open.finish(request.commit);
      try {
        await open.settled;
      } finally {
        transactions.delete(request.tx);
      }
      return undefined;
    }
    case 'close':
      await db.close();
      return undefined;
    default:
      throw new Error(`unknown request ${request.op}`);
  }
}

try {
  const extensions = {};
  if (workerData.extensions.includes('vector')) extensions.vector = (await import('@electric-sql/pglite-pgvector')).vector;
  const options = { extensions, postgresqlconf: workerData.settings };
  // A folder is created apart (by open-database's initdb child); memory:// is new every time.
  db = workerData.dataDir.startsWith('memory://') ? await createFromTemplate(PGlite, workerData.dataDir, options) : await PGlite.create(workerData.dataDir, options);
  // Date, time and interval types (and their arrays) come back as Postgres text; the main thread
  // parses them (`keepTextTypesRaw` of pglite-client.ts, which cannot be imported here).
  for (const type of workerData.textTypes) db.parsers[type] = (value) => value;
  port.postMessage({ id: 0, ok: true, result: undefined });
} catch (error) {
  port.postMessage({ id: 0, ok: false, error: toWire(error) });
}

port.on('message', (request) => {
  handle(request).then(
    (result) => port.postMessage({ id: request.id, ok: true, result }),
    (error) => port.postMessage({ id: request.id, ok: false, error: toWire(error) }),
  );
});
