import { once } from 'node:events';
import { createWriteStream } from 'node:fs';
import { finished } from 'node:stream/promises';
import path from 'node:path';
import { HUB_SOURCE, MODEL_FILES, type ModelFile } from './model-artifact.ts';

/** The hub's address; `EMBEDDINGS_MODEL_HUB_URL` replaces it (a mirror, or a test's local server). */
export const DEFAULT_HUB_URL = 'https://huggingface.co';

/** How long one file may take to download. */
const DOWNLOAD_TIMEOUT_MS = 600_000;

/** The address of one model file at the pinned revision. */
export function hubFileUrl(hubUrl: string, file: ModelFile): string {
  return `${hubUrl.replace(/\/+$/, '')}/${HUB_SOURCE.repository}/resolve/${HUB_SOURCE.revision}/${file.onHub}`;
}

/**
 * Downloads one file into `target`, stopping past its pinned size.
 * @throws Error naming the address when the hub refuses, is unreachable or sends too much.
 */
async function download(url: string, file: ModelFile, target: string, signal: AbortSignal): Promise<void> {
  let response: Response;
  try {
    response = await fetch(url, { signal, redirect: 'follow' });
  } catch (error) {
    const cause = (error as { cause?: { code?: string; message?: string } }).cause;
    throw new Error(`${url} could not be reached (${cause?.code ?? cause?.message ?? (error as Error).message})`, { cause: error });
  }
  if (!response.ok || !response.body) {
    await response.body?.cancel();
    throw new Error(`${url} answered ${response.status} ${response.statusText}`.trim());
  }
  const out = createWriteStream(target);
  let bytes = 0;
  try {
    for await (const chunk of response.body) {
      bytes += chunk.byteLength;
      if (bytes > file.bytes) throw new Error(`${url} sent more than the pinned ${file.bytes} bytes`);
      if (!out.write(chunk)) await once(out, 'drain');
    }
  } finally {
    out.end();
    await finished(out).catch(() => undefined);
  }
}

/**
 * Downloads the model's two files from the hub (at {@link HUB_SOURCE}'s revision) into `dir` under
 * their model-folder names. Does not check them beyond their size (the caller checks the SHA-256).
 * @throws Error naming the file and the reason (unreachable, a refusal, a timeout).
 */
export async function downloadModelFromHub(dir: string, options: { hubUrl: string; signal?: AbortSignal }): Promise<void> {
  for (const file of Object.values(MODEL_FILES)) {
    const signals = [AbortSignal.timeout(DOWNLOAD_TIMEOUT_MS), ...(options.signal ? [options.signal] : [])];
    await download(hubFileUrl(options.hubUrl, file), file, path.join(dir, file.name), AbortSignal.any(signals));
  }
}
