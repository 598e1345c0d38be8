import { readFileSync } from 'node:fs';

/** One post of the relevance set. */
export interface RelevancePost {
  id: string;
  title: string;
  tags: string[];
  body: string;
}

/** A question a person would ask, and the post that answers it. */
export interface RelevanceQuery {
  query: string;
  relevant: string;
}

/** The DIY relevance set (`fixtures/relevance/diy-relevance.json`). */
export interface RelevanceSet {
  posts: RelevancePost[];
  queries: RelevanceQuery[];
}

export function loadRelevanceSet(): RelevanceSet {
  return JSON.parse(readFileSync(new URL('./fixtures/relevance/diy-relevance.json', import.meta.url), 'utf8')) as RelevanceSet;
}

/** The text search-service embeds for a post (`indexText` of search-service/src/post-events.ts: title, tags, body). */
export function postText(post: RelevancePost): string {
  return [post.title, post.tags.join(' '), post.body].filter((part) => part.length > 0).join('\n\n');
}

const STOP_WORDS = new Set(
  'a an and are as at be by can do does for from get how i if in into is it its me my of off on or our so that the their them then this to up what when where why with you your'.split(' '),
);

/** The words of `text` that carry meaning (lower-cased, stop words dropped). */
export function contentWords(text: string): Set<string> {
  return new Set((text.toLowerCase().match(/[\p{L}\p{N}']+/gu) ?? []).map((word) => word.replace(/'s$/, '')).filter((word) => !STOP_WORDS.has(word)));
}

/** Words a query shares with its post (exact word forms: "tool" and "tools" differ). */
export function sharedWords(query: string, post: RelevancePost): string[] {
  const postWords = contentWords(postText(post));
  return [...contentWords(query)].filter((word) => postWords.has(word));
}

/** How one embedder ranks the set's posts for its queries. */
export interface RelevanceReport {
  /** Share of queries whose post is among the 5 closest. */
  recallAt5: number;
  /** Mean of 1 / (rank of the right post). */
  mrr: number;
  /** The right post's rank (1 = closest) per query, in the set's order. */
  ranks: number[];
}

const dot = (a: ArrayLike<number>, b: ArrayLike<number>) => {
  let sum = 0;
  for (let i = 0; i < a.length; i += 1) sum += a[i]! * b[i]!;
  return sum;
};

/**
 * Ranks every post for every query by cosine similarity (the vectors are unit length), exactly as
 * search-service's exact search does, and scores the ranking.
 */
export async function evaluateRelevance(set: RelevanceSet, embed: (texts: string[]) => Promise<ArrayLike<number>[]>): Promise<RelevanceReport> {
  const postVectors = await embed(set.posts.map(postText));
  const queryVectors = await embed(set.queries.map((query) => query.query));
  const ranks = set.queries.map((query, q) => {
    const scores = postVectors.map((vector, p) => ({ id: set.posts[p]!.id, score: dot(queryVectors[q]!, vector) }));
    scores.sort((a, b) => b.score - a.score);
    return scores.findIndex((score) => score.id === query.relevant) + 1;
  });
  return {
    recallAt5: ranks.filter((rank) => rank <= 5).length / ranks.length,
    mrr: ranks.reduce((sum, rank) => sum + 1 / rank, 0) / ranks.length,
    ranks,
  };
}
