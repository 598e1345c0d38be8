import { execFile } from 'node:child_process';
import { createHash, randomUUID } from 'node:crypto';
import { existsSync } from 'node:fs';
import { mkdir, readFile, rename, rm, writeFile } from 'node:fs/promises';
import { promisify } from 'node:util';

const run = promisify(execFile);

/** Whether `command args` runs and exits 0 (a tool is installed). */
export async function commandWorks(command: string, args: string[]): Promise<boolean> {
  try {
    await run(command, args, { timeout: 30_000 });
    return true;
  } catch {
    return false;
  }
}

/** What {@link fetchMavenClasspath} takes. */
export interface MavenClasspathOptions {
  /** The POM whose runtime dependencies make the classpath. */
  pom: string;
  /** The folder the jars go to (its parent is created). */
  lib: string;
  /** What is fetched, for the error message: `the Kafka broker`. */
  what: string;
  /** The error to throw when Java (`java -version`) or Maven (`mvn -v`) is missing: a message saying what to install or do instead. */
  missing: (tool: 'java' | 'mvn') => Error;
}

/**
 * Copies a POM's runtime classpath from Maven Central into `lib` (`mvn dependency:copy-dependencies`),
 * once per version of the POM (a hash of it is kept next to the jars), and returns the folder.
 * Maven's own cache (`~/.m2`) makes a second copy quick. Processes may call it together: each copies
 * into a folder of its own and the first to finish moves it into place.
 * @throws the `missing` error when Java or Maven is not installed.
 */
export async function fetchMavenClasspath(options: MavenClasspathOptions): Promise<string> {
  const { lib } = options;
  if (!(await commandWorks('java', ['-version']))) throw options.missing('java');
  const hash = createHash('sha256').update(await readFile(options.pom)).digest('hex');
  const stamp = (folder: string) => `${folder}/.pom-sha256`;
  const current = async (folder: string) => existsSync(stamp(folder)) && (await readFile(stamp(folder), 'utf8')) === hash;
  if (await current(lib)) return lib;
  if (!(await commandWorks('mvn', ['-v']))) throw options.missing('mvn');
  const staging = `${lib}.${process.pid}-${randomUUID().slice(0, 8)}`;
  await mkdir(staging, { recursive: true });
  try {
    await run('mvn', ['-q', '-B', '-f', options.pom, 'dependency:copy-dependencies', `-DoutputDirectory=${staging}`, '-DincludeScope=runtime'], {
      timeout: 600_000,
      maxBuffer: 16 * 1024 * 1024,
    });
    await writeFile(stamp(staging), hash);
    if (await current(lib)) return lib; // another process finished first
    if (existsSync(lib)) await rename(lib, `${staging}.stale`);
    await rename(staging, lib);
  } catch (error) {
    if (await current(lib)) return lib;
    const output = (error as { stdout?: string }).stdout ?? '';
    throw new Error(`Fetching ${options.what} from Maven Central failed:\n${output.slice(-4_000)}`, { cause: error });
  } finally {
    await rm(staging, { recursive: true, force: true });
    await rm(`${staging}.stale`, { recursive: true, force: true });
  }
  return lib;
}
