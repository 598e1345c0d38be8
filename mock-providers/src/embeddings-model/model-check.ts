import { createHash } from 'node:crypto';
import { open, stat } from 'node:fs/promises';
import path from 'node:path';
import { MODEL_FILES, type ModelFile } from './model-artifact.ts';

/** How much of a file {@link sha256Of} reads at a time. */
const READ_BYTES = 1024 * 1024;

/**
 * The SHA-256 (hex) of a file, read through one buffer. Not a read stream: its 64 KB chunks (360
 * for the model) stayed as garbage until a GC came, and left mock-providers ~20 MB larger for good
 * after its start-up check (70 against 48 MB anonymous memory idle).
 */
export async function sha256Of(file: string): Promise<string> {
  const hash = createHash('sha256');
  const handle = await open(file, 'r');
  try {
    const buffer = Buffer.allocUnsafe(READ_BYTES);
    for (;;) {
      const { bytesRead } = await handle.read(buffer, 0, READ_BYTES, null);
      if (bytesRead === 0) break;
      hash.update(buffer.subarray(0, bytesRead));
    }
  } finally {
    await handle.close();
  }
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
