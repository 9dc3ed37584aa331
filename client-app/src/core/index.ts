// The participant's headless core: everything the CLI and the desktop app share.

export * from './data/index.ts';
export * from './train/local-training.ts';
export * from './train/checkpoint.ts';
export * from './chat.ts';
export * from './evaluate.ts';
export * from './generation-eval.ts';
export * from './text-metrics.ts';
export * from './adapter.ts';
export * from './federation/index.ts';
