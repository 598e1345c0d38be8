import { sql, type SQL } from 'drizzle-orm';
import { castEmbedding, hasDimensions } from './hnsw-index.ts';
import type { SearchDb } from './search-state.ts';

/** One nearest-neighbour search. */
export interface NearestSearch {
  /** The query vector as pgvector text (`[0.1,-0.2,…]`: digits, signs, dots, exponents and commas only). */
  vector: string;
  limit: number;
  /** The generation searched, and the dimension of its vectors (and of `vector`). */
  generation: number;
  dimensions: number;
}

/** One search waiting for the database. */
interface Waiting extends NearestSearch {
  resolve: (rows: CoalescedRow[]) => void;
  reject: (error: unknown) => void;
}

/** A nearest post as the coalesced query returns it (Postgres text for the time). */
export interface CoalescedRow {
  postId: string;
  title: string;
  excerpt: string;
  authorId: string;
  authorUsername: string | null;
  tags: string[];
  version: number;
  createdAt: string;
  distance: number;
}

type RawRow = {
  i: number | string;
  post_id: string;
  title: string;
  excerpt: string;
  author_id: string;
  author_username: string | null;
  tags: string[];
  version: number;
  created_at: string;
  distance: number | string;
};

/**
 * The statement answering `batch`, searches of one generation and dimension: each vector gets its
 * own scan of the dimension's HNSW index through a lateral join. Exported for EXPLAIN in the tests.
 */
export function coalescedStatement(batch: readonly NearestSearch[]): SQL {
  const { generation, dimensions } = batch[0]!;
  // Array literals of values made here: vectors are pgvector text of finite numbers, limits integers.
  const vectors = `{${batch.map((search) => `"${search.vector}"`).join(',')}}`;
  // One limit for every scan, known when the statement is planned: with a per-row limit the planner
  // cannot tell the scans are short and may pick a full scan and sort over the HNSW index.
  const limit = Math.max(...batch.map((search) => search.limit));
  return sql`
    select q.i, r.* from unnest(${vectors}::vector[]) with ordinality as q(v, i)
    cross join lateral (
      select post_id, title, excerpt, author_id, author_username, tags, version, created_at, ${castEmbedding(dimensions)} <=> q.v as distance
      from post_vectors
      where ${hasDimensions(dimensions)} and generation = ${generation}
      order by ${castEmbedding(dimensions)} <=> q.v
      limit ${limit}
    ) r
    order by q.i, r.distance`;
}

/**
 * Runs the searches that arrive while the database is busy as one statement: each query vector
 * gets its own HNSW scan through a lateral join, so the answers are exactly those of separate
 * queries, but parsing, planning, the round trip and (with the database on its own thread) the
 * thread hop are paid once per batch instead of once per search. A search that finds the database
 * idle is sent at once, so nothing waits for a batch to fill; under load, the searches queued
 * behind the running statement form the next one (at most `maxBatch`).
 *
 * For PGlite, whose single session runs one statement at a time: with a server's connection pool
 * separate statements already run in parallel. The session's HNSW settings apply to every scan.
 */
export class CoalescedNearest {
  private readonly db: SearchDb;
  private readonly maxBatch: number;
  private readonly waiting: Waiting[] = [];
  private running = false;
  private readonly onBatch: (size: number) => void;

  /** `onBatch`: told the size of every statement sent (a metric). */
  constructor(options: { db: SearchDb; maxBatch: number; onBatch?: (size: number) => void }) {
    this.db = options.db;
    this.maxBatch = options.maxBatch;
    this.onBatch = options.onBatch ?? (() => undefined);
  }

  /** The `limit` nearest posts of the generation to `vector`, nearest first. */
  nearest(search: NearestSearch): Promise<CoalescedRow[]> {
    return new Promise((resolve, reject) => {
      this.waiting.push({ ...search, resolve, reject });
      if (!this.running) void this.drain();
    });
  }

  private async drain(): Promise<void> {
    this.running = true;
    try {
      while (this.waiting.length > 0) {
        const batch = this.nextBatch();
        this.onBatch(batch.length);
        try {
          const rows = await this.run(batch);
          batch.forEach((search, index) => search.resolve(rows[index] ?? []));
        } catch (error) {
          for (const search of batch) search.reject(error);
        }
      }
    } finally {
      this.running = false;
    }
  }

  /** The oldest waiting search and up to `maxBatch - 1` more of its generation and dimension (one statement reads one index). */
  private nextBatch(): Waiting[] {
    const { generation, dimensions } = this.waiting[0]!;
    const batch: Waiting[] = [];
    const rest: Waiting[] = [];
    for (const search of this.waiting) {
      if (batch.length < this.maxBatch && search.generation === generation && search.dimensions === dimensions) batch.push(search);
      else rest.push(search);
    }
    this.waiting.splice(0, this.waiting.length, ...rest);
    return batch;
  }

  private async run(batch: Waiting[]): Promise<CoalescedRow[][]> {
    const result = await this.db.execute<RawRow>(coalescedStatement(batch));
    const answers: CoalescedRow[][] = batch.map(() => []);
    for (const row of result.rows) {
      const index = Number(row.i) - 1;
      if (answers[index]!.length >= batch[index]!.limit) continue;
      answers[index]!.push({
        postId: row.post_id,
        title: row.title,
        excerpt: row.excerpt,
        authorId: row.author_id,
        authorUsername: row.author_username,
        tags: row.tags,
        version: row.version,
        createdAt: row.created_at,
        distance: Number(row.distance),
      });
    }
    return answers;
  }
}
