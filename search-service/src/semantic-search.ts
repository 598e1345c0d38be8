import { and, eq, sql } from 'drizzle-orm';
import { NotFoundError } from '@civildiy/common';
import { CoalescedNearest } from './coalesced-nearest.ts';
import { postVectors } from './db/schema.ts';
import { castEmbedding, hasDimensions } from './hnsw-index.ts';
import type { QueryEmbedder } from './query-embedder.ts';
import type { QueryLabels, SearchMetrics } from './search-metrics.ts';
import { activeGeneration, readGenerations, type EmbeddingSpace, type SearchDb, type SearchTx } from './search-state.ts';

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
  /**
   * The space queries are embedded in while the active generation has none (`EMBEDDINGS_MODEL` and
   * `EMBEDDINGS_DIMENSIONS`; search-service gives every generation one at start).
   */
  defaultSpace: EmbeddingSpace;
  /** pgvector `hnsw.ef_search` (`SEARCH_HNSW_EF_SEARCH`); raised to the limit when that is larger. */
  efSearch: number;
  /**
   * `pglite` (one connection): the HNSW settings are set once for the session, saving a
   * transaction per query. `postgres` (a pool): each query sets them in its own transaction, unless
   * the pool's connections start with them ({@link SemanticSearchOptions.settingsInConnections}).
   */
  databaseKind: 'pglite' | 'postgres';
  /**
   * `postgres` only: every connection of the pool starts with the HNSW settings for `efSearch` (its
   * URL made by {@link withHnswSettings}), so a query at that `ef` runs alone, without a transaction
   * that sets them (three round trips fewer). Default false.
   */
  settingsInConnections?: boolean;
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

/** The generation a search reads: its number and the space of its vectors. */
export interface SearchedGeneration {
  generation: number;
  space: EmbeddingSpace;
}

/** Which optional filters a nearest query has, and the dimension of the vectors it compares. */
export interface QueryShape {
  tag: boolean;
  exclude: boolean;
  dimensions: number;
}

/**
 * Nearest vectors of a generation to `$vector`, for a filter shape; the values are placeholders
 * (`vector`, `generation`, `limit`, `tag`, `exclude`), so the query is built once and run many times.
 * It orders by the column cast to the shape's dimension and keeps to vectors of that dimension, as
 * the dimension's partial HNSW index does (see hnsw-index.ts). Exported for EXPLAIN in the tests.
 */
export function nearestStatement(db: SearchDb | SearchTx, shape: QueryShape) {
  const distance = sql<number>`${castEmbedding(shape.dimensions)} <=> ${sql.placeholder('vector')}::vector`;
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
        hasDimensions(shape.dimensions),
        eq(postVectors.generation, sql.placeholder('generation')),
        shape.tag ? sql`${postVectors.tags} @> array[${sql.placeholder('tag')}]::text[]` : undefined,
        shape.exclude ? sql`${postVectors.postId} <> ${sql.placeholder('exclude')}::uuid` : undefined,
      ),
    )
    .orderBy(distance)
    .limit(sql.placeholder('limit'));
}

/** {@link nearestStatement} prepared (named per shape). */
function nearestQuery(db: SearchDb | SearchTx, shape: QueryShape) {
  return nearestStatement(db, shape).prepare(`search_nearest_${shape.dimensions}_${shape.tag ? 'tag' : 'all'}_${shape.exclude ? 'exclude' : 'any'}`);
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

/**
 * The server URL `url` with the HNSW settings of {@link hnswSettings} (at `ef`) in its startup
 * `options`, kept after any options it has: every connection opened with it starts with them (see
 * {@link SemanticSearchOptions.settingsInConnections}). pgvector takes the values when it loads.
 */
export function withHnswSettings(url: string, ef: number): string {
  const parsed = new URL(url);
  const options = [parsed.searchParams.get('options'), `-c hnsw.ef_search=${ef}`, '-c hnsw.iterative_scan=strict_order'].filter(Boolean).join(' ');
  parsed.searchParams.set('options', options);
  return parsed.toString();
}
/** How long the active generation read from the database is used before it is read again (ms). */
const GENERATION_CACHE_MS = 1_000;

/**
 * Nearest posts by cosine distance over the active generation's vectors. The query is embedded in
 * that generation's space (its model and dimension), so a search never compares two spaces: during
 * a reindex into another model the old generation keeps answering with its own model's queries.
 */
export class SemanticSearch {
  private readonly options: SemanticSearchOptions;
  private served: { value: SearchedGeneration; expiresAt: number } | undefined;
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
      const searched = await this.searchedGeneration();
      const hits = await this.nearest(await this.options.embedder.embed(q, searched.space), searched, options);
      if (hits.length > 0) return hits;
      // Nothing found: a switch may have dropped the generation read a moment ago. Once more on the new one.
      const now = await this.searchedGeneration({ fresh: true });
      if (now.generation === searched.generation) return hits;
      return this.nearest(await this.options.embedder.embed(q, now.space), now, options);
    });
  }

  /**
   * Posts nearest to the post `postId` (itself excluded).
   * @throws NotFoundError `search.not_found` when the post is not indexed.
   */
  async similar(postId: string, options: NearestOptions): Promise<SearchHit[]> {
    return this.timed({ endpoint: 'similar', mode: options.exact ? 'exact' : 'hnsw' }, async () => {
      const [row] = await this.options.db
        .select({ embedding: postVectors.embedding, generation: postVectors.generation, model: postVectors.model })
        .from(postVectors)
        .where(and(eq(postVectors.postId, postId), eq(postVectors.generation, activeGeneration)));
      if (!row) throw new NotFoundError('This post is not in the search index', 'search.not_found');
      const searched = { generation: row.generation, space: { model: row.model, dimensions: row.embedding.length } };
      return this.nearest(row.embedding, searched, { ...options, excludePostId: postId });
    });
  }

  private async nearest(embedding: number[], searched: SearchedGeneration, options: NearestOptions & { excludePostId?: string }): Promise<SearchHit[]> {
    const values = { vector: vectorLiteral(embedding), generation: searched.generation, limit: options.limit, tag: options.tag ?? '', exclude: options.excludePostId ?? '' };
    const shape: QueryShape = { tag: options.tag !== undefined, exclude: options.excludePostId !== undefined, dimensions: searched.space.dimensions };
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
      if (!shape.tag && !shape.exclude) return (await this.coalesced.nearest({ vector: values.vector, limit: options.limit, generation: searched.generation, dimensions: shape.dimensions })).map(toHit);
      rows = await this.prepared(shape).execute(values);
    } else if (this.options.settingsInConnections && ef === this.options.efSearch) {
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
    const key = `${shape.dimensions}:${shape.tag}:${shape.exclude}`;
    let query = this.preparedQueries.get(key);
    if (!query) {
      query = nearestQuery(this.options.db, shape);
      this.preparedQueries.set(key, query);
    }
    return query;
  }

  /** The generation searches read and its space, read again at most every {@link GENERATION_CACHE_MS} (or now when `fresh`). */
  private async searchedGeneration(options: { fresh?: boolean } = {}): Promise<SearchedGeneration> {
    const now = Date.now();
    if (!options.fresh && this.served && this.served.expiresAt > now) return this.served.value;
    const { active, activeSpace } = await readGenerations(this.options.db);
    const value = { generation: active, space: activeSpace ?? this.options.defaultSpace };
    this.served = { value, expiresAt: now + GENERATION_CACHE_MS };
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
