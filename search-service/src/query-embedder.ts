import { ServiceUnavailableError } from '@civildiy/common';
import type { SearchMetrics } from './search-metrics.ts';
import type { EmbeddingSpace } from './search-state.ts';

/** What embeds texts: the `EmbeddingsClient` of `@civildiy/common/providers` for one model. */
export interface TextEmbedder {
  embed(texts: string[], options?: { signal?: AbortSignal }): Promise<{ model: string; dimensions: number; vectors: number[][] }>;
}

/** Options of {@link QueryEmbedder}. */
export interface QueryEmbedderOptions {
  /** The embedder of a space: a model asked for vectors of a dimension (created once per space and kept). */
  embedderFor: (space: EmbeddingSpace) => TextEmbedder;
  /** How long an embedded query is reused (`SEARCH_QUERY_CACHE_MS`); 0 = never. */
  cacheMs: number;
  /** How many embedded queries are kept (`SEARCH_QUERY_CACHE_SIZE`); the least recently used go first. */
  cacheSize: number;
  metrics?: SearchMetrics;
}

interface CacheEntry {
  expiresAt: number;
  vector: Promise<number[]>;
}

/**
 * Embeds search queries through the provider directly (a search cannot wait for the task queue),
 * in the space of the generation searched, with a small in-process LRU cache keyed by space and
 * text. Concurrent requests for the same query share one provider call.
 */
export class QueryEmbedder {
  private readonly options: QueryEmbedderOptions;
  private readonly embedders = new Map<string, TextEmbedder>();
  private readonly cache = new Map<string, CacheEntry>();

  constructor(options: QueryEmbedderOptions) {
    this.options = options;
  }

  /**
   * The query's vector in `space`.
   * @throws ServiceUnavailableError `search.embeddings_unavailable` (503) when the provider fails,
   *   times out, or answers with an unusable vector (another dimension than the space's included).
   */
  embed(text: string, space: EmbeddingSpace): Promise<number[]> {
    if (this.options.cacheMs <= 0) return this.fetch(text, space);
    const key = `${space.model}\u0000${space.dimensions}\u0000${text}`;
    const now = Date.now();
    const cached = this.cache.get(key);
    if (cached && cached.expiresAt > now) {
      this.cache.delete(key);
      this.cache.set(key, cached);
      this.options.metrics?.queryEmbeddingCache('hit');
      return cached.vector;
    }
    this.options.metrics?.queryEmbeddingCache('miss');
    const entry: CacheEntry = { expiresAt: now + this.options.cacheMs, vector: this.fetch(text, space) };
    this.cache.delete(key);
    this.cache.set(key, entry);
    entry.vector.catch(() => {
      if (this.cache.get(key) === entry) this.cache.delete(key);
    });
    while (this.cache.size > this.options.cacheSize) this.cache.delete(this.cache.keys().next().value!);
    return entry.vector;
  }

  private async fetch(text: string, space: EmbeddingSpace): Promise<number[]> {
    const key = `${space.model}\u0000${space.dimensions}`;
    let embedder = this.embedders.get(key);
    if (!embedder) {
      embedder = this.options.embedderFor(space);
      this.embedders.set(key, embedder);
    }
    let vector: number[] | undefined;
    try {
      vector = (await embedder.embed([text])).vectors[0];
    } catch (error) {
      throw new ServiceUnavailableError('The embeddings provider is unavailable; search cannot embed the query', 'search.embeddings_unavailable', { cause: error });
    }
    if (!vector || vector.length !== space.dimensions) {
      throw new ServiceUnavailableError(
        `The embeddings provider answered ${space.model} with a vector of ${vector?.length ?? 0} dimensions; the index holds ${space.dimensions}`,
        'search.embeddings_unavailable',
      );
    }
    return vector;
  }
}
