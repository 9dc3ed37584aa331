// How many rounds the demo federation runs (and the learning bench and `fedit simulate` by
// default): 24 rounds of DEMO_TRAINING.steps (10) local steps. With the same compute, 24 x 10 learns
// far better than 8 x 30 (docs/learning.md). A file of its own so the CLI can show the default
// without loading the engine.
export const DEMO_ROUNDS = 24;
