/**
 * Vitest global set-up of the projects whose tests run compiled code (the launcher, a built
 * service): compiles every workspace once per test run (`scripts/build.mjs`, incremental) before
 * any test file starts, so no two test files build at the same time.
 */
import { execFileSync } from 'node:child_process';
import path from 'node:path';
import { repositoryRoot } from './mock-providers.ts';

export default function setup(): void {
  execFileSync(process.execPath, [path.join(repositoryRoot, 'scripts', 'build.mjs'), '--quiet'], { stdio: 'inherit' });
}
