/**
 * `@civildiy/common`: the light, dependency-free parts. Heavier modules have their own entry points:
 * `@civildiy/common/service`, `/tasks`, `/events`, `/db`, `/outbox`, `/contracts`, `/redis`.
 */
export * from './context/index.ts';
export * from './logging/index.ts';
export * from './errors/index.ts';
export * from './ids/index.ts';
export * from './config/index.ts';
