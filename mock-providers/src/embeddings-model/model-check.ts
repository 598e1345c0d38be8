import { createHash } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { stat } from 'node:fs/promises';
import path from 'node:path';
import { MODEL_FILES, type ModelFile } from './model-artifact.ts';

/** The SHA-256 (hex) of a file, read as a stream. */
export async function sha256Of(file: string): Promise<string> {
  const hash = createHash('sha256');
  for await (const chunk of createReadStream(file)) hash.update(chunk as Buffer);
  return hash.digest('hex');
}

/** Why one file is not the pinned one, or `undefined` when it is. */
export async function fileProblem(file: string, expected: ModelFile): Promise<string | undefined> {
  let bytes: number;
  try {
    bytes = (await stat(file)).size;
  } catch {
    return `${file} is missing`;
  }
  if (bytes !== expected.bytes) return `${file} has ${bytes} bytes, not the pinned ${expected.bytes}`;
  const sha256 = await sha256Of(file);
  if (sha256 !== expected.sha256) return `${file} has SHA-256 ${sha256}, not the pinned ${expected.sha256} (damaged or another file)`;
  return undefined;
}

/**
 * Why the model folder `dir` does not hold the pinned files (`model.onnx`, `tokenizer.json`), one
 * sentence per file; empty when it does.
 */
export async function modelFolderProblems(dir: string): Promise<string[]> {
  const problems = await Promise.all(Object.values(MODEL_FILES).map((file) => fileProblem(path.join(dir, file.name), file)));
  return problems.filter((problem): problem is string => problem !== undefined);
}
