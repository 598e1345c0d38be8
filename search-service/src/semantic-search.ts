import { and, eq, sql } from 'drizzle-orm';
import { NotFoundError } from '@civildiy/common';
import { CoalescedNearest } from './coalesced-nearest.ts';
import { postVectors } from './db/schema.ts';
import type { QueryEmbedder } from './query-embedder.ts';
import type { QueryLabels, SearchMetrics } from './search-metrics.ts';
import { activeGeneration, readGenerations, type SearchDb, type SearchTx } from './search-state.ts';

/** One search result. */
export interface SearchHit {
  postId: string;
  title: string;
  excerpt: string;
  authorId: string;
  authorUsername: string | null;
  tags: string[];
  /** 1 − cosine distance: 1 for the same direction, 0 for unrelated. */
  score: number;
  /** The post version the vector was made from. */
  version: number;
  createdAt: string;
}

/** What a search asks for. */
export interface NearestOptions {
  limit: number;
  /** Only posts with this tag. */
  tag?: string;
  /**
   * Scan every vector instead of walking the HNSW index: the exact answer, slower. A diagnostic
   * (the benchmark measures HNSW recall against it).
   */
  exact?: boolean;
}

/** Options of {@link SemanticSearch}. */
export interface SemanticSearchOptions {
  db: SearchDb;
  embedder: QueryEmbedder;
  /** The model queries are embedded with until the index has vectors (`EMBEDDINGS_MODEL`). */
  defaultModel: string;
  /** pgvector `hnsw.ef_search` (`SEARCH_HNSW_EF_SEARCH`); raised to the limit when that is larger. */
  efSearch: number;
  /**
   * `pglite` (one connection): the HNSW settings are set once for the session, saving a
   * transaction per query. `postgres` (a pool): each query sets them in its own transaction.
   */
  databaseKind: 'pglite' | 'postgres';
  /**
   * PGlite: searches (without a tag) that arrive while one runs are sent together, at most this
   * many per statement (`SEARCH_QUERY_BATCH_MAX`; see {@link CoalescedNearest}). Default 16.
   */
  maxBatch?: number;
  metrics?: SearchMetrics;
}

/**
 * The pgvector text of a vector. Query vectors come from the embedding cache, the same array for
 * every search of a text, so the text is kept beside it rather than built per search.
 */
const literals = new WeakMap<number[], string>();
function vectorLiteral(embedding: number[]): string {
  let literal = literals.get(embedding);
  if (literal === undefined) {
    literal = `[${embedding.join(',')}]`;
    literals.set(embedding, literal);
  }
  return literal;
}

/** Which optional filters a nearest query has. */
interface QueryShape {
  tag: boolean;
  exclude: boolean;
}

/**
 * Nearest vectors of the active generation to `$vector`, for a filter shape; the values are
 * placeholders (`vector`, `limit`, `tag`, `exclude`), so the query is built once and run many times.
 */
function nearestQuery(db: SearchDb | SearchTx, shape: QueryShape) {
  const distance = sql<number>`${postVectors.embedding} <=> ${sql.placeholder('vector')}::vector`;
  return db
    .select({
      postId: postVectors.postId,
      title: postVectors.title,
      excerpt: postVectors.excerpt,
      authorId: postVectors.authorId,
      authorUsername: postVectors.authorUsername,
      tags: postVectors.tags,
      version: postVectors.version,
      createdAt: postVectors.createdAt,
      distance,
    })
    .from(postVectors)
    .where(
      and(
        eq(postVectors.generation, activeGeneration),
        shape.tag ? sql`${postVectors.tags} @> array[${sql.placeholder('tag')}]::text[]` : undefined,
        shape.exclude ? sql`${postVectors.postId} <> ${sql.placeholder('exclude')}::uuid` : undefined,
      ),
    )
    .orderBy(distance)
    .limit(sql.placeholder('limit'))
    .prepare(`search_nearest_${shape.tag ? 'tag' : 'all'}_${shape.exclude ? 'exclude' : 'any'}`);
}

type NearestRow = Awaited<ReturnType<ReturnType<typeof nearestQuery>['execute']>>[number];

/** A search hit from a row of either query (named fields: V8's object rest is a slow generic copy, paid per row). */
function toHit(row: Omit<NearestRow, 'createdAt'> & { createdAt: Date | string }): SearchHit {
  return {
    postId: row.postId,
    title: row.title,
    excerpt: row.excerpt,
    authorId: row.authorId,
    authorUsername: row.authorUsername,
    tags: row.tags,
    score: 1 - Number(row.distance),
    version: row.version,
    createdAt: new Date(row.createdAt).toISOString(),
  };
}

/** `ef` candidates per HNSW scan; iterative scans keep walking the graph when the tag or generation filter drops candidates. */
const hnswSettings = (ef: number, local: boolean) =>
  sql`select set_config('hnsw.ef_search', ${String(ef)}, ${local}), set_config('hnsw.iterative_scan', 'strict_order', ${local})`;
const MODEL_CACHE_MS = 1_000;

/**
 * Nearest posts by cosine distance over the active generation's vectors. The query is embedded
 * with the model those vectors were made with, so a search never compares two models' spaces.
 */
export class SemanticSearch {
  private readonly options: SemanticSearchOptions;
  private model: { value: string; expiresAt: number } | undefined;
  private sessionConfigured: Promise<unknown> | undefined;
  private readonly preparedQueries = new Map<string, ReturnType<typeof nearestQuery>>();
  private readonly coalesced: CoalescedNearest;

  constructor(options: SemanticSearchOptions) {
    this.options = options;
    this.coalesced = new CoalescedNearest({ db: options.db, maxBatch: options.maxBatch ?? 16, ...(options.metrics ? { onBatch: options.metrics.queryBatch } : {}) });
  }

  /**
   * Posts nearest to the text `q`.
   * @throws ServiceUnavailableError `search.embeddings_unavailable` when the query cannot be embedded.
   */
  async search(q: string, options: NearestOptions): Promise<SearchHit[]> {
    return this.timed({ endpoint: 'search', mode: options.exact ? 'exact' : 'hnsw' }, async () => {
      const embedding = await this.options.embedder.embed(q, await this.servingModel());
      return this.nearest(embedding, options);
    });
  }

  /**
   * Posts nearest to the post `postId` (itself excluded).
   * @throws NotFoundError `search.not_found` when the post is not indexed.
   */
  async similar(postId: string, options: NearestOptions): Promise<SearchHit[]> {
    return this.timed({ endpoint: 'similar', mode: options.exact ? 'exact' : 'hnsw' }, async () => {
      const [row] = await this.options.db
        .select({ embedding: postVectors.embedding })
        .from(postVectors)
        .where(and(eq(postVectors.postId, postId), eq(postVectors.generation, activeGeneration)));
      if (!row) throw new NotFoundError('This post is not in the search index', 'search.not_found');
      return this.nearest(row.embedding, { ...options, excludePostId: postId });
    });
  }

  private async nearest(embedding: number[], options: NearestOptions & { excludePostId?: string }): Promise<SearchHit[]> {
    const values = { vector: vectorLiteral(embedding), limit: options.limit, tag: options.tag ?? '', exclude: options.excludePostId ?? '' };
    const shape: QueryShape = { tag: options.tag !== undefined, exclude: options.excludePostId !== undefined };
    const ef = Math.max(this.options.efSearch, options.limit);
    let rows: NearestRow[];
    if (options.exact) {
      rows = await this.options.db.transaction(async (tx) => {
        await tx.execute(sql`select set_config('enable_indexscan', 'off', true)`);
        return nearestQuery(tx, shape).execute(values);
      });
    } else if (this.options.databaseKind === 'pglite' && ef === this.options.efSearch) {
      this.sessionConfigured ??= this.options.db.execute(hnswSettings(ef, false)).catch((error: unknown) => {
        this.sessionConfigured = undefined;
        throw error;
      });
      await this.sessionConfigured;
      if (!shape.tag && !shape.exclude) return (await this.coalesced.nearest(values.vector, options.limit)).map(toHit);
      rows = await this.prepared(shape).execute(values);
    } else {
      rows = await this.options.db.transaction(async (tx) => {
        await tx.execute(hnswSettings(ef, true));
        return nearestQuery(tx, shape).execute(values);
      });
    }
    return rows.map(toHit);
  }

  /** The query of a filter shape, built once (the SQL text never changes; only the values do). */
  private prepared(shape: QueryShape) {
    const key = `${shape.tag}:${shape.exclude}`;
    let query = this.preparedQueries.get(key);
    if (!query) {
      query = nearestQuery(this.options.db, shape);
      this.preparedQueries.set(key, query);
    }
    return query;
  }

  private async servingModel(): Promise<string> {
    const now = Date.now();
    if (this.model && this.model.expiresAt > now) return this.model.value;
    const { activeModel } = await readGenerations(this.options.db);
    const value = activeModel ?? this.options.defaultModel;
    this.model = { value, expiresAt: now + MODEL_CACHE_MS };
    return value;
  }

  private async timed<T>(labels: QueryLabels, run: () => Promise<T>): Promise<T> {
    const started = performance.now();
    try {
      return await run();
    } finally {
      this.options.metrics?.querySeconds(labels, (performance.now() - started) / 1000);
    }
  }
}
