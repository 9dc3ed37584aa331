export * from './commitments.ts';
export * from './plan.ts';
export * from './flatten.ts';
export * from './unmask.ts';
export * from './consistency.ts';
export * from './client.ts';
export * from './collector.ts';
