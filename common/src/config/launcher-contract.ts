/**
 * Set to `1` by the launcher (`npm start`) in every service's environment: the service stops, as on
 * SIGTERM, when its standard input (a pipe from the launcher) ends, that is when the launcher exits
 * however it exits, even by SIGKILL (`Shutdown.stopWhenStdinEnds`).
 */
export const STOP_WITH_LAUNCHER_VARIABLE = 'CIVILDIY_STOP_WITH_LAUNCHER';

/**
 * Node's options for a service's compiled `dist/main.js` (the launcher, the images, compiled test
 * systems). `--max-semi-space-size=8` caps V8's young generation at 2 × 8 MB instead of 2 × 16 MB,
 * ~12 MB less per idle service. A tighter cap costs throughput: on the feed-read benchmark (64
 * connections, direct) feed-service's CPU per request was 68–75 µs by default, 75–96 µs at 8 MB,
 * 99–115 µs at 4 MB and 147–169 µs at 2 MB (more scavenges of short-lived request garbage).
 */
export const SERVICE_NODE_ARGS: readonly string[] = ['--max-semi-space-size=8', '--enable-source-maps'];

/**
 * Environment for a service process (the launcher, the images): `MALLOC_ARENA_MAX=2` keeps glibc
 * from giving each thread (libuv's pool, V8's workers, PGlite's database thread) an arena of its own
 * that keeps freed memory. Measured on search-service after a first start: 429 → 324 MiB PSS (its
 * first PGlite instance, closed after initdb and the migrations, had left its memory in a thread
 * arena); the gateway 113 → 110 MiB.
 */
export const SERVICE_ENV: Readonly<Record<string, string>> = { MALLOC_ARENA_MAX: '2' };
