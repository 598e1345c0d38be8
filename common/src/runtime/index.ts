/**
 * `@civildiy/common/runtime`: what every service process runs on. A service declares itself once
 * (`defineService`) and its `main.ts` calls `runService`; `startRuntime` is the platform underneath,
 * for processes that are not services (scripts, tests).
 */
export { defineService, runService, type Closable, type ServiceDefinition, type ServiceParts, type ServicePlatform, type ServiceTasks } from './run-service.ts';
export { startRuntime, type DatabaseRuntime, type EventPorts, type Runtime, type RuntimeDatabase, type RuntimeOptions } from './start-runtime.ts';
export { createEventBus, describeEventBus, type CreateEventBusOptions, type EventBusEnv } from './event-bus-factory.ts';
