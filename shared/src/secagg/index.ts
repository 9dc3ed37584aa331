export * from './secagg-error.ts';
export * from './prg.ts';
export * from './fixed-point.ts';
export * from './shamir.ts';
export * from './graph.ts';
export * from './masking.ts';
export * from './masked-input.ts';
export * from './round/index.ts';
