import { Registry } from 'prom-client';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { SentenceModel } from '../src/embeddings-model/sentence-model.ts';
import { HashEmbedder } from '../src/text-embedding.ts';
import { testModelFiles } from './model-for-tests.ts';
import { evaluateRelevance, loadRelevanceSet, sharedWords, type RelevanceReport } from './relevance.ts';

const set = loadRelevanceSet();
let model: SentenceModel;
let real: RelevanceReport;
let mock: RelevanceReport;

beforeAll(async () => {
  model = new SentenceModel(await testModelFiles(), { metricsRegistry: new Registry() });
  real = await evaluateRelevance(set, async (texts) => (await model.embed(texts)).vectors);
  const hash = new HashEmbedder('civildiy-hash-embed-1', 256);
  mock = await evaluateRelevance(set, async (texts) => hash.embedMany(texts));
});

afterAll(async () => {
  await model.close();
});

describe('the DIY relevance set (questions as a person asks them)', () => {
  it('has at least 40 posts and 30 questions, most sharing no word with the post that answers them', () => {
    expect(set.posts.length).toBeGreaterThanOrEqual(40);
    expect(set.queries.length).toBeGreaterThanOrEqual(30);
    const ids = new Set(set.posts.map((post) => post.id));
    for (const query of set.queries) expect(ids.has(query.relevant), query.relevant).toBe(true);
    const withoutSharedWord = set.queries.filter((query) => sharedWords(query.query, set.posts.find((post) => post.id === query.relevant)!).length === 0);
    expect(withoutSharedWord.length / set.queries.length).toBeGreaterThan(0.6);
  });

  it('the real model finds the right post among the first five for at least 80% of the questions', () => {
    expect(real.recallAt5).toBeGreaterThanOrEqual(0.8);
    expect(real.mrr).toBeGreaterThanOrEqual(0.6);
  });

  it('the deterministic mock, which only matches words, finds far fewer (the reason the model exists)', () => {
    expect(mock.recallAt5).toBeLessThan(real.recallAt5 - 0.4);
  });
});
