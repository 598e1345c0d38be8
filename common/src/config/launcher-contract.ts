/**
 * Set to `1` by the launcher (`npm start`) in every service's environment: the service stops, as on
 * SIGTERM, when its standard input (a pipe from the launcher) ends, that is when the launcher exits
 * however it exits, even by SIGKILL (`Shutdown.stopWhenStdinEnds`).
 */
export const STOP_WITH_LAUNCHER_VARIABLE = 'CIVILDIY_STOP_WITH_LAUNCHER';
