// The federated part of `fedit demo`: the loopback federation (../simulate/federation.ts, which
// `fedit simulate` runs too) with the demo's settings and rule (DEMO_RULE, or DEMO_SECURE_RULE), each closed round evaluated (in order, while
// the next one trains) into a printed row of the table.

import { runLoopbackFederation, type ClosedRound } from '../simulate/federation.ts';
import { rulePreset, simulationSettings } from '../simulate/presets.ts';
import { roundTableHeader, roundTableRow, type DemoRound } from './demo-table.ts';
import { taskAccuracy } from './evaluate.ts';
import type { DemoSplit } from './tasks.ts';
import { DEMO_LORA } from './train.ts';

export interface DemoFederationOptions {
  /** The demo's folder: the participants' homes go under it. */
  root: string;
  /** The federation folder to create. */
  fedDir: string;
  modelDir: string;
  split: DemoSplit;
  rounds: number;
  threads: number;
  /** The rule preset (simulate/presets.ts) the federation runs: DEMO_RULE or DEMO_SECURE_RULE. */
  rule: string;
  print: (line: string) => void;
  /** Held-out loss of the base model with an adapter, on the evaluation tasks. */
  heldOutLoss: (tensors: ReadonlyMap<string, Float32Array>) => Promise<number>;
}

/** Runs the demo federation to its last round; the table's rows, one per aggregated round. */
export async function runDemoFederation(o: DemoFederationOptions): Promise<DemoRound[]> {
  const n = o.split.participants.length;
  return runLoopbackFederation({
    root: o.root,
    fedDir: o.fedDir,
    modelDir: o.modelDir,
    modelName: 'fedit demo base (built in)',
    members: o.split.participants,
    settings: simulationSettings(n, o.rounds, rulePreset(o.rule)),
    seed: 1,
    // The same participants' identities, hence data orders, every run: the demo repeats its numbers.
    seededIdentities: true,
    threads: o.threads,
    onListening: (url) => o.print(`3. coordinator listening on ${url} (federation folder ${o.fedDir})`),
    onJoined: () => {
      o.print(`   ${n} participants joined with one-time invites and are training\n`);
      o.print(roundTableHeader());
    },
    onAborted: (round, reason) => o.print(`round ${round} aborted: ${reason}`),
    onRound: async (closed) => {
      const row = await evaluateRound(o, closed);
      o.print(roundTableRow(row));
      return row;
    },
  });
}

async function evaluateRound(o: DemoFederationOptions, closed: ClosedRound): Promise<DemoRound> {
  const { modelDir, split, threads } = o;
  const adapter = { config: DEMO_LORA, tensors: closed.tensors };
  const accuracy = await taskAccuracy({ modelDir, adapter, examples: split.evaluation, threads });
  const heldOutLoss = await o.heldOutLoss(closed.tensors);
  return {
    round: closed.round,
    participants: closed.updates,
    took: closed.took.map((t) => t.name),
    trainLoss: mean(closed.took.map((t) => t.trainLoss)),
    heldOutLoss,
    accuracy,
  };
}

function mean(xs: number[]): number {
  return xs.length ? xs.reduce((a, b) => a + b, 0) / xs.length : NaN;
}
