/**
 * Set to `1` by the launcher (`npm start`) in every service's environment: the service stops, as on
 * SIGTERM, when its standard input (a pipe from the launcher) ends, that is when the launcher exits
 * however it exits, even by SIGKILL (`Shutdown.stopWhenStdinEnds`).
 */
export const STOP_WITH_LAUNCHER_VARIABLE = 'CIVILDIY_STOP_WITH_LAUNCHER';

/**
 * Node's options for a service's compiled `dist/main.js` (the launcher, the images, compiled test
 * systems). `--max-semi-space-size=2` caps V8's young generation at 2 × 2 MB: by default it grows to
 * 2 × 16 MB during start-up and keeps it, ~24 MB of an idle service's ~85 MB of private memory
 * (measured on the gateway: 84 → 60 MB anonymous). Short-lived garbage is collected more often, in
 * pauses of well under a millisecond at these heap sizes.
 */
export const SERVICE_NODE_ARGS: readonly string[] = ['--max-semi-space-size=2', '--enable-source-maps'];
