/** Test support shared by every workspace's tests: tokens signed like auth-service's, real service processes. */
export { createTestTokens, type TestTokens } from './tokens.ts';
export { freePort, startServiceProcess, type ServiceProcess, type StartServiceOptions } from './processes.ts';
