import { PGlite, types, type Extensions, type QueryOptions, type Results, type Transaction } from '@electric-sql/pglite';
import { createFromTemplate } from './pglite-template.mjs';

/**
 * The types Drizzle reads as Postgres text (it passes identity `parsers` for exactly these with every
 * query): date, timestamp, timestamptz, interval, and the arrays of those and of numeric.
 */
const TEXT_TYPES: Readonly<Record<number, number | undefined>> = {
  1082: undefined, // date
  1114: undefined, // timestamp
  1184: undefined, // timestamptz
  1186: undefined, // interval
  1182: 1082, // date[]
  1115: 1114, // timestamp[]
  1185: 1184, // timestamptz[]
  1187: 1186, // interval[]
  1231: 1700, // numeric[]
};
/** The types whose columns an instance prepared by {@link keepTextTypesRaw} returns as the text Postgres sent. */
export const RAW_TEXT_TYPES: readonly number[] = Object.keys(TEXT_TYPES).map(Number);

/**
 * Makes an open PGlite return the {@link RAW_TEXT_TYPES} columns as text, instance-wide. (After
 * opening: PGlite builds its array parsers while opening, from the element parsers.)
 */
export function keepTextTypesRaw(pglite: PGlite): PGlite {
  for (const type of RAW_TEXT_TYPES) pglite.parsers[type] = (value: string) => value;
  return pglite;
}

type Parsers = NonNullable<QueryOptions['parsers']>;
type Parser = Parsers[number];

/**
 * True when a query's `parsers` name only text types: it can run without them (PGlite would copy
 * its whole parser table, ~300 entries, for every query given any) and be finished by {@link finishRows}.
 */
export function parsersAreTextTypes(parsers: Parsers | undefined): boolean {
  if (!parsers) return true;
  for (const key of Object.keys(parsers)) if (!(Number(key) in TEXT_TYPES)) return false;
  return true;
}

/** PGlite's own parsing of a text type, for a caller that did not ask for the text. */
function defaultParser(type: number): Parser | undefined {
  const element = TEXT_TYPES[type];
  if (element === undefined) return types.parsers[type];
  const parseElement = types.parsers[element];
  return (value: string) => types.arrayParser(value, parseElement ? (item: string) => parseElement(item, element) : (item: string) => item, type);
}

/**
 * Parses the text-type columns of `result` (returned as text by an instance opened with
 * {@link keepTextTypesRaw}) with the caller's `parsers`, or as PGlite would by default.
 * `parsedAlready`: PGlite was given `parsers` and applied them; only the other text types are left.
 */
export function finishRows<T>(result: Results<T>, parsers: Parsers | undefined, rowMode: QueryOptions['rowMode'], parsedAlready = false): Results<T> {
  const columns: { key: string | number; parser: Parser }[] = [];
  result.fields.forEach((field, index) => {
    if (!(field.dataTypeID in TEXT_TYPES)) return;
    if (parsedAlready && parsers?.[field.dataTypeID]) return;
    const parser = parsers?.[field.dataTypeID] ?? defaultParser(field.dataTypeID);
    if (parser) columns.push({ key: rowMode === 'array' ? index : field.name, parser });
  });
  if (columns.length === 0) return result;
  for (const row of result.rows as Record<string | number, unknown>[]) {
    for (const { key, parser } of columns) {
      const value = row[key];
      if (typeof value === 'string') row[key] = parser(value);
    }
  }
  return result;
}

/** What Drizzle's PGlite driver calls on a client and on a transaction. */
export interface PGliteQueryable {
  query<T>(sql: string, params?: unknown[], options?: QueryOptions): Promise<Results<T>>;
  exec(sql: string): Promise<Results[]>;
}

/** A transaction, as Drizzle's PGlite driver uses it. */
export interface PGliteClientTransaction extends PGliteQueryable {
  rollback(): Promise<void>;
  readonly closed: boolean;
}

/** What the services' Drizzle database runs on: {@link PGliteClient} in-process, or `PGliteThread`. */
export interface PGliteDriverClient extends PGliteQueryable {
  transaction<T>(fn: (tx: PGliteClientTransaction) => Promise<T>): Promise<T>;
  close(): Promise<void>;
  readonly closed: boolean;
}

function fastQuery<T>(target: PGlite | Transaction, sql: string, params: unknown[] | undefined, options: QueryOptions | undefined): Promise<Results<T>> {
  if (!parsersAreTextTypes(options?.parsers)) {
    // Another parser set: PGlite applies it; only the text types it leaves out need their default.
    return target.query<T>(sql, params, options).then((result) => finishRows(result, options?.parsers, options?.rowMode, true));
  }
  const { parsers, ...rest } = options ?? {};
  return target.query<T>(sql, params, rest).then((result) => finishRows(result, parsers, options?.rowMode));
}

/**
 * A PGlite instance opened with {@link keepTextTypesRaw}, as Drizzle's PGlite driver uses it, with
 * PGlite's results. Drizzle passes parsers for the text types with every query; given any `parsers`
 * PGlite copies its table of ~300 parsers per query (about 0.2 ms, more than a simple indexed
 * query), so here the text types come back as text instance-wide and the caller's parsers are
 * applied to those columns afterwards.
 */
/**
 * Server settings of every embedded instance (`postgresqlconf`). PGlite's WASM memory never
 * shrinks, and Postgres's defaults (128 MB of shared buffers) are sized for a server: an idle
 * instance with pgvector measured 321 MB resident with the defaults and 161–175 MB with 16 MB of
 * buffers (Node 20, second open of the same folder). But search's vectors and HNSW index at 10,000
 * posts want them: exact scans ran 43 queries/s with 16 MB, 79 with 64 MB and 86 with 128 MB, HNSW
 * queries 915 with 64 MB and 1,000 with 128 MB. So the default's 128 MB stays; the other settings
 * are a server's defaults scaled down.
 */
export const PGLITE_SETTINGS: readonly string[] = ['shared_buffers=128MB', 'work_mem=2MB', 'maintenance_work_mem=16MB', 'temp_buffers=2MB'];

export class PGliteClient implements PGliteDriverClient {
  constructor(readonly pglite: PGlite) {}

  /** Opens PGlite in `dataDir` (a folder or `memory://…`) with the named extensions (`vector`), prepared by {@link keepTextTypesRaw}. */
  static async create(dataDir: string, options: { extensions?: readonly string[] } = {}): Promise<PGliteClient> {
    const extensions: Extensions = {};
    if (options.extensions?.includes('vector')) extensions.vector = (await import('@electric-sql/pglite-pgvector')).vector;
    const settings = { extensions, postgresqlconf: [...PGLITE_SETTINGS] };
    // A folder is created apart (by open-database's initdb child); memory:// is new every time.
    const pglite = dataDir.startsWith('memory://') ? await createFromTemplate(PGlite, dataDir, settings) : await PGlite.create(dataDir, settings);
    return new PGliteClient(keepTextTypesRaw(pglite));
  }

  get closed(): boolean {
    return this.pglite.closed;
  }

  query<T>(sql: string, params?: unknown[], options?: QueryOptions): Promise<Results<T>> {
    return fastQuery<T>(this.pglite, sql, params, options);
  }

  exec(sql: string): Promise<Results[]> {
    return this.pglite.exec(sql).then((results) => results.map((result) => finishRows(result, undefined, 'object')));
  }

  transaction<T>(fn: (tx: PGliteClientTransaction) => Promise<T>): Promise<T> {
    return this.pglite.transaction((tx) =>
      fn({
        query: <R>(sql: string, params?: unknown[], options?: QueryOptions) => fastQuery<R>(tx, sql, params, options),
        exec: (sql: string) => tx.exec(sql).then((results) => results.map((result) => finishRows(result, undefined, 'object'))),
        rollback: () => tx.rollback(),
        get closed() {
          return tx.closed;
        },
      }),
    );
  }

  close(): Promise<void> {
    return this.pglite.closed ? Promise.resolve() : this.pglite.close();
  }
}
