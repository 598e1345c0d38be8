export * from './users.ts';
export * from './orders.ts';
export * from './notifications.ts';
