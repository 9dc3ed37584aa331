// `npm run bench -- aggregation [--participants 3,10,50] [--shape demo|smollm] [--repeat 3]`: what
// each aggregation rule costs the coordinator at the end of a round. For every rule (and the
// default pipeline's clipping and weight cap, and a FedAdam server step), K synthetic updates of an
// adapter shape go through aggregateRound, the coordinator's own computation, exactly as a round
// close runs it (updates loaded one at a time from a function, canonical order). Reports CPU ms
// per round and per update (process.cpuUsage, the fastest of --repeat runs after one warm-up pass),
// the memory the rule's arithmetic holds (binary64 sums of one adapter for the streaming mean; every
// update widened to binary64 for the rules that need them all: median, trimmed mean, Krum,
// product-svd; plus the clipped copy when clipping), and the bytes a round moves (each participant
// downloads the global adapter and uploads one update of the same size; with SCAFFOLD it also
// downloads the server state holding c, of the same size).
//
// Prints one JSON line on stdout and a table on stderr.

import { parseArgs } from 'node:util';
import { aggregateRound, ruleRefFor, type AggregationConfig, type Contribution } from '@fedit/shared';

const SHAPES = {
  /** The demo model: hidden 128, intermediate 256, 2 layers, all seven targets, rank 8. */
  demo: { hidden: 128, intermediate: 256, layers: 2, targets: 7, rank: 8 },
  /** SmolLM2-135M-like: hidden 576, 30 layers, q_proj and v_proj (v 192 wide), rank 16. */
  smollm: { hidden: 576, intermediate: 1536, layers: 30, targets: 2, rank: 16 },
} as const;

type Shape = (typeof SHAPES)[keyof typeof SHAPES];

/** PEFT tensor names and shapes of an adapter of `shape`. */
function schemaOf(shape: Shape): Map<string, number[]> {
  const { hidden: h, intermediate: i, rank: r } = shape;
  const modules: [string, number, number][] = [
    ['self_attn.q_proj', h, h],
    ['self_attn.v_proj', h, shape.targets === 2 ? h / 3 : h],
    ['self_attn.k_proj', h, h],
    ['self_attn.o_proj', h, h],
    ['mlp.gate_proj', h, i],
    ['mlp.up_proj', h, i],
    ['mlp.down_proj', i, h],
  ].slice(0, shape.targets) as [string, number, number][];
  const schema = new Map<string, number[]>();
  for (let l = 0; l < shape.layers; l++) {
    for (const [m, inF, outF] of modules) {
      const base = `base_model.model.model.layers.${l}.${m}`;
      schema.set(`${base}.lora_A.weight`, [r, inF]);
      schema.set(`${base}.lora_B.weight`, [outF, r]);
    }
  }
  return new Map([...schema].sort(([a], [b]) => (a < b ? -1 : 1)));
}

/** A deterministic pseudo-random adapter: the global one, or an update near it. */
function values(schema: Map<string, number[]>, seed: number, around?: Map<string, Float32Array>) {
  let s = seed >>> 0 || 1;
  const next = () => ((s = Math.imul(s ^ (s >>> 15), 0x2c1b3c6d) + 0x6d2b79f5) >>> 0) / 2 ** 32 - 0.5;
  const out = new Map<string, Float32Array>();
  for (const [name, shape] of schema) {
    const n = shape[0] * shape[1];
    const base = around?.get(name);
    out.set(
      name,
      Float32Array.from({ length: n }, (_, k) => (base ? base[k] + 1e-3 * next() : 0.05 * next())),
    );
  }
  return out;
}

const RULES: { label: string; aggregation: Record<string, unknown>; scaffold?: boolean }[] = [
  { label: 'fedit (no clipping, no cap: the old default)', aggregation: { rule: 'fedit' } },
  {
    label: 'fedit + adaptive clipping x2 + weight cap',
    aggregation: { rule: 'fedit', clipping: { kind: 'adaptive', multiplier: 2 }, weightCap: 80 },
  },
  {
    label: 'fedit + FedAdam',
    aggregation: { rule: 'fedit', serverOptimizer: { kind: 'adam', lr: 0.02 } },
  },
  {
    label: 'fedit + SCAFFOLD + clipping + cap (coordinator init)',
    aggregation: { rule: 'fedit', clipping: { kind: 'adaptive', multiplier: 2 }, weightCap: 40 },
    scaffold: true,
  },
  { label: 'median', aggregation: { rule: 'median' } },
  { label: 'trimmed-mean', aggregation: { rule: 'trimmed-mean', trimFraction: 0.2 } },
  { label: 'krum (f=1, m=2)', aggregation: { rule: 'krum', byzantine: 1, krumSelect: 2 } },
  { label: 'product-svd', aggregation: { rule: 'product-svd' } },
];

export async function benchAggregation(argv: string[]): Promise<void> {
  const { values: a } = parseArgs({
    args: argv,
    options: {
      participants: { type: 'string', default: '3,10,50' },
      shape: { type: 'string', default: 'demo' },
      repeat: { type: 'string', default: '3' },
      json: { type: 'boolean', default: false },
    },
  });
  const shape = SHAPES[a.shape as keyof typeof SHAPES];
  if (!shape) throw new Error(`--shape must be one of ${Object.keys(SHAPES).join(', ')}`);
  const ks = a.participants!.split(',').map(Number);
  const repeat = Number(a.repeat);
  const schema = schemaOf(shape);
  const global = values(schema, 1);
  const adapterBytes = [...schema.values()].reduce((s, [r, c]) => s + 4 * r * c, 0);
  const valuesPerAdapter = adapterBytes / 4;
  const rows = [];
  let warm = false;
  for (const k of ks) {
    const updates = Array.from({ length: k }, (_, i) => values(schema, 100 + i, global));
    for (const { label, aggregation, scaffold } of RULES) {
      const config: AggregationConfig = ruleRefFor({
        lora: { rank: shape.rank, alpha: 2 * shape.rank },
        training: scaffold ? { scaffold } : {},
        aggregation: aggregation as never,
      }).config;
      const contributions: Contribution[] = updates.map((u, i) => ({
        participant: `p${String(i).padStart(4, '0')}`,
        exampleCount: 100 + i,
        update: () => u,
      }));
      const run = () =>
        aggregateRound({
          rule: aggregation.rule as string,
          config,
          schema,
          global,
          contributions,
          // SCAFFOLD's step of c from zeros (the first round's state), K local steps at lr, N = K.
          ...(scaffold && { scaffold: { localSteps: 10, lr: 2e-3, participants: k } }),
        });
      if (!warm) run(); // the first round of each rule at the smallest K also compiles its code
      let best = Infinity;
      for (let r = 0; r < repeat; r++) {
        const cpu = process.cpuUsage();
        run();
        const used = process.cpuUsage(cpu);
        best = Math.min(best, (used.user + used.system) / 1000);
      }
      const clipped = 'clipping' in aggregation ? 1 : 0;
      // SCAFFOLD's step of c holds one more binary64 sum, and each participant also downloads c.
      const heldValues =
        (aggregation.rule === 'fedit' ? 1 + clipped + (scaffold ? 1 : 0) : k) * valuesPerAdapter;
      rows.push({
        rule: label,
        participants: k,
        cpuMsPerRound: Number(best.toFixed(2)),
        cpuMsPerUpdate: Number((best / k).toFixed(3)),
        heldMB: Number(((8 * heldValues) / 2 ** 20).toFixed(2)),
        bytesPerRound: (scaffold ? 3 : 2) * k * adapterBytes,
      });
    }
    warm = true;
  }
  process.stdout.write(JSON.stringify({ bench: 'aggregation', shape: a.shape, adapterBytes, rows }) + '\n');
  for (const r of rows) {
    process.stderr.write(
      `${String(r.participants).padStart(4)}  ${r.rule.padEnd(56)} ${String(r.cpuMsPerRound).padStart(9)} ms/round ${String(r.cpuMsPerUpdate).padStart(8)} ms/update ${String(r.heldMB).padStart(8)} MB held\n`,
    );
  }
}
