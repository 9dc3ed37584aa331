// `npm run bench -- <name> [options]`: the project's benchmarks. Each prints JSON with --json.
import { benchTrain } from '../../kernels/bench/train.ts';
import { benchTrainOptions } from '../../kernels/bench/train-options.ts';
import { benchAggregation } from './aggregation/aggregation.ts';
import { benchHostileFrames } from '../../coordinator/bench/hostile-frames.ts';
import { benchFederation } from './federation/federation.ts';
import { benchLearning } from './learning/learning.ts';
import { benchSecagg } from './secagg/secagg.ts';
import { benchSign } from './crypto/sign.ts';

const benches: Record<string, (argv: string[]) => Promise<void>> = {
  train: benchTrain,
  'train-options': benchTrainOptions,
  aggregation: benchAggregation,
  federation: benchFederation,
  learning: benchLearning,
  'hostile-frames': benchHostileFrames,
  secagg: benchSecagg,
  sign: benchSign,
};

const [name, ...rest] = process.argv.slice(2);
const bench = name ? benches[name] : undefined;
if (!bench) {
  process.stderr.write(`usage: npm run bench -- <${Object.keys(benches).join('|')}> [options] [--json]\n`);
  process.exit(2);
}
await bench(rest);
