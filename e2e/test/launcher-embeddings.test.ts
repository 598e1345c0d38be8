import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ConfigError } from '@civildiy/common';
import { locateModelFiles, type ModelFiles } from 'mock-providers/model-files';
import { planEmbeddingsProvider, RequiredModelMissingError } from '../../scripts/launcher/embeddings-provider.ts';

/** The model the mock-providers tests keep (fetched from Maven Central on first use). */
const MODEL_DATA_DIR = path.join(tmpdir(), 'civildiy-embeddings-model-tests');

let files: ModelFiles;
let empty: string;
const lines: string[] = [];
const report = (line: string) => void lines.push(line);

beforeAll(async () => {
  files = await locateModelFiles({ dataDir: MODEL_DATA_DIR, download: true, hubUrl: 'https://huggingface.co' });
  empty = await mkdtemp(path.join(tmpdir(), 'civildiy-launcher-embeddings-'));
});

afterAll(async () => {
  await rm(empty, { recursive: true, force: true });
});

describe('the launcher embeddings provider decision', () => {
  it('names the model, where it is and what the services ask for, when it can be had', async () => {
    const plan = await planEmbeddingsProvider({ EMBEDDINGS_MODEL_PATH: files.dir }, empty, report);
    expect(plan).toMatchObject({ kind: 'model', short: 'all-minilm-l6-v2-q (384 dimensions)', env: {} });
    expect(plan.description).toContain(files.dir);
    expect(plan.description).toContain('the worker and search ask for all-minilm-l6-v2-q in 384 dimensions (EMBEDDINGS_MODEL and EMBEDDINGS_DIMENSIONS, set by npm start');
  });

  it('has the worker and search ask for the model when it runs, unless EMBEDDINGS_MODEL or EMBEDDINGS_DIMENSIONS says otherwise', async () => {
    expect((await planEmbeddingsProvider({ EMBEDDINGS_MODEL_PATH: files.dir }, empty, report)).clientEnv).toEqual({ EMBEDDINGS_MODEL: 'all-minilm-l6-v2-q', EMBEDDINGS_DIMENSIONS: '384' });
    expect((await planEmbeddingsProvider({ EMBEDDINGS_MODEL_PATH: files.dir, EMBEDDINGS_MODEL: 'all-minilm-l6-v2-q' }, empty, report)).clientEnv).toEqual({ EMBEDDINGS_DIMENSIONS: '384' });
    const chosen = await planEmbeddingsProvider({ EMBEDDINGS_MODEL_PATH: files.dir, EMBEDDINGS_MODEL: 'civildiy-hash-embed-1' }, empty, report);
    expect(chosen.clientEnv).toEqual({});
    expect(chosen.description).toContain('the worker and search ask for civildiy-hash-embed-1 in 256 dimensions (EMBEDDINGS_MODEL, EMBEDDINGS_DIMENSIONS)');
    expect((await planEmbeddingsProvider({ EMBEDDINGS_MODEL_PATH: files.dir, EMBEDDINGS_DIMENSIONS: '256' }, empty, report)).clientEnv).toEqual({});
    // The mock: the services' defaults.
    const mock = await planEmbeddingsProvider({ EMBEDDINGS_PROVIDER: 'mock' }, empty, report);
    expect(mock.clientEnv).toEqual({});
    expect(mock.description).toContain('the worker and search ask for civildiy-hash-embed-1 in 256 dimensions (EMBEDDINGS_MODEL, EMBEDDINGS_DIMENSIONS: the defaults)');
  });

  it('runs the mock, says why, and tells mock-providers not to try again, when auto finds no model', async () => {
    const plan = await planEmbeddingsProvider({ EMBEDDINGS_MODEL_DOWNLOAD: 'false' }, empty, report);
    expect(plan).toMatchObject({ kind: 'mock', env: { EMBEDDINGS_PROVIDER: 'mock' } });
    expect(plan.description).toMatch(/the deterministic mock, since .*EMBEDDINGS_MODEL_DOWNLOAD=false/);
  });

  it('runs the mock without looking for the model with EMBEDDINGS_PROVIDER=mock', async () => {
    expect(await planEmbeddingsProvider({ EMBEDDINGS_PROVIDER: 'mock', EMBEDDINGS_MODEL_PATH: '/nowhere' }, empty, report)).toMatchObject({ kind: 'mock', env: {} });
  });

  it('stops with what to do when EMBEDDINGS_PROVIDER=model has no model, and names a bad variable', async () => {
    await expect(planEmbeddingsProvider({ EMBEDDINGS_PROVIDER: 'model', EMBEDDINGS_MODEL_DOWNLOAD: 'false' }, empty, report)).rejects.toThrow(RequiredModelMissingError);
    await expect(planEmbeddingsProvider({ EMBEDDINGS_PROVIDER: 'always' }, empty, report)).rejects.toThrow(ConfigError);
  });
});
