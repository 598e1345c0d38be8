export * from './users.ts';
export * from './orders.ts';
export * from './notifications.ts';
export * from './profiles.ts';
export * from './posts.ts';
export * from './search.ts';
