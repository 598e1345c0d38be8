import { createHash } from 'node:crypto';
import { sql, type SQL } from 'drizzle-orm';
import type { SearchDb } from './search-state.ts';

/**
 * `post_vectors.embedding` is a `vector` of any dimension: each generation's vectors have its
 * model's. An HNSW index needs one dimension, so each dimension gets a partial index of its own over
 * the column cast to it, holding that dimension's vectors only (pgvector's README, "Can I store
 * vectors with different dimensions in the same column?"):
 *
 * ```sql
 * CREATE INDEX post_vectors_embedding_hnsw_384 ON post_vectors
 *   USING hnsw ((embedding::vector(384)) vector_cosine_ops) WITH (m=16, ef_construction=200)
 *   WHERE vector_dims(embedding) = 384
 * ```
 *
 * A query uses it when it orders by the same cast and filters on the same predicate
 * ({@link castEmbedding}, {@link hasDimensions}); with a literal dimension only, since the planner
 * matches the predicate when it plans. Migration 0004 made the index of 256 dimensions; the others
 * are made at start ({@link ensureHnswIndexes}) and kept after a switch to another dimension (empty,
 * they cost nothing, and a switch back finds them).
 */

/**
 * The build settings of every dimension's index. ef_construction 200 (pgvector's default is 64): a
 * better graph, so ef_search 100 finds ~0.98 of the exact top 10 on 10k posts instead of ~0.93, for
 * about 1.5× the insert cost (bench/search.ts).
 */
export const HNSW_BUILD = Object.freeze({ m: 16, efConstruction: 200 });

/** The most dimensions pgvector's HNSW index takes for `vector`. */
export const MAX_INDEXED_DIMENSIONS = 2_000;

/** The advisory lock that serialises index creation among search-service processes on one database. */
const INDEX_LOCK_KEY = createHash('sha256').update('civildiy:search-service:hnsw-indexes').digest().readBigInt64BE(0).toString();

function checked(dimensions: number): number {
  if (!Number.isInteger(dimensions) || dimensions < 1 || dimensions > MAX_INDEXED_DIMENSIONS) {
    throw new RangeError(`An HNSW index takes 1 to ${MAX_INDEXED_DIMENSIONS} dimensions, not ${dimensions}`);
  }
  return dimensions;
}

/** The index of `dimensions`: `post_vectors_embedding_hnsw_<dimensions>`. */
export function hnswIndexName(dimensions: number): string {
  return `post_vectors_embedding_hnsw_${checked(dimensions)}`;
}

/** `post_vectors.embedding::vector(<dimensions>)`: the indexed expression, which a query orders by. */
export function castEmbedding(dimensions: number): SQL {
  return sql.raw(`"post_vectors"."embedding"::vector(${checked(dimensions)})`);
}

/** `vector_dims(post_vectors.embedding) = <dimensions>`: the index's predicate, which a query filters on. */
export function hasDimensions(dimensions: number): SQL {
  return sql.raw(`vector_dims("post_vectors"."embedding") = ${checked(dimensions)}`);
}

function createIndexStatement(dimensions: number): SQL {
  return sql.raw(
    `CREATE INDEX IF NOT EXISTS "${hnswIndexName(dimensions)}" ON "post_vectors" USING hnsw (("embedding"::vector(${dimensions})) vector_cosine_ops) ` +
      `WITH (m=${HNSW_BUILD.m},ef_construction=${HNSW_BUILD.efConstruction}) WHERE vector_dims("embedding") = ${dimensions}`,
  );
}

/**
 * Makes the HNSW index of each of `dimensions` that does not exist yet, and returns the dimensions
 * whose index it made. Processes starting together take turns under a transaction advisory lock:
 * the second finds the first's index. Building an index locks out writes to `post_vectors` while it
 * runs; the index of a new dimension holds no vector yet and is made in a scan of the table.
 * @throws RangeError for a dimension an HNSW index cannot take (see {@link MAX_INDEXED_DIMENSIONS}).
 */
export async function ensureHnswIndexes(db: SearchDb, dimensions: number[]): Promise<number[]> {
  const wanted = [...new Set(dimensions.map(checked))].sort((a, b) => a - b);
  return db.transaction(async (tx) => {
    await tx.execute(sql`select pg_advisory_xact_lock(${INDEX_LOCK_KEY}::bigint)`);
    const made: number[] = [];
    for (const each of wanted) {
      const found = await tx.execute<{ found: boolean }>(sql`select to_regclass(${hnswIndexName(each)}) is not null as found`);
      if (found.rows[0]?.found) continue;
      await tx.execute(createIndexStatement(each));
      made.push(each);
    }
    return made;
  });
}

/** The dimensions whose HNSW index exists. */
export async function indexedDimensions(db: SearchDb): Promise<number[]> {
  const result = await db.execute<{ name: string }>(
    sql`select indexname as name from pg_indexes where tablename = 'post_vectors' and indexname like 'post\\_vectors\\_embedding\\_hnsw\\_%'`,
  );
  return result.rows
    .map((row) => Number(/_(\d+)$/.exec(row.name)?.[1]))
    .filter(Number.isInteger)
    .sort((a, b) => a - b);
}
