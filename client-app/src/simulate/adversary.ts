// A poisoning participant for the simulation: a peer of its own (never a hook in the real
// Participant) that takes part as an honest one does (its own invite and identity, an authenticated
// connection, the global adapter downloaded and hash-checked, local training from it on its own
// data with the round's steps, learning rate and seed) and then tampers with what it sends, before
// signing and uploading it through the shared upload sequence (buildUpdate, sealedUpload,
// uploadPass). What the coordinator does with it is the rule under test's business.
//
//   scale     sends global + factor * (trained - global): a boosted update (factor 1000: the
//             issue's "update scaled x1000")
//   signflip  sends global - (trained - global): the update pointing the other way
//   examples  sends the honest update claiming `count` training examples (FedAvg's weight)
//
// Its local training is plain LoRA training (trainDemoAdapter): a rule that changes local training
// (FedProx's proximal term, SCAFFOLD's control variates) is not applied by the adversary.

import {
  sealedUpload,
  tensorFromF32,
  tensorToF32,
  uploadPass,
  type Identity,
  type RoundOpen,
} from '@fedit/shared';
import type { LoraConfig } from '@fedit/kernels';
import type { FederationConnection } from '../core/federation/index.ts';
import {
  FederationError,
  buildUpdate,
  connectionUploadRequest,
  downloadAdapter,
  membershipConnection,
  participantSeed,
  sayReady,
  type Membership,
} from '../core/federation/index.ts';
import { trainDemoAdapter } from '../demo/train.ts';
import type { InstructionRecord } from '../demo/tasks.ts';

export type Attack =
  { kind: 'scale'; factor: number } | { kind: 'signflip' } | { kind: 'examples'; count: number };

export interface AdversaryOptions {
  attack: Attack;
  identity: Identity;
  membership: Membership;
  modelDir: string;
  records: readonly InstructionRecord[];
  lora: LoraConfig;
  cutoffLen: number;
  threads: number;
  signal: AbortSignal;
  /** Each round its update was counted, with its (honest) training loss. */
  onUploaded: (round: number, trainLoss: number) => void;
  /** Each round the coordinator refused its update, with the coordinator's reason. */
  onRefused?: (round: number, reason: string) => void;
}

/** Takes part, poisoned, in every round it is selected for, until the last round closes. */
export function runAdversary(o: AdversaryOptions): Promise<void> {
  const { membership: m } = o;
  const connection = membershipConnection(m, o.identity);
  return new Promise<void>((resolve, reject) => {
    let work = Promise.resolve();
    const finish = (error?: Error) => {
      connection.close();
      if (error) reject(error);
      else resolve();
    };
    connection.on('round:open', (open) => {
      if (!open.selected.includes(connection.participantId)) return;
      work = work.then(() => takePart(o, connection, open)).catch((error: Error) => finish(error));
    });
    // The federation's end, not a round number: an aborted round is retried under the next number.
    connection.on('federation:finished', () => void work.then(() => finish()));
    connection.on('failed', (error) => finish(error));
    // Rounds select only participants who said they are ready (its model and data are in hand).
    connection.on('authenticated', () => void sayReady(connection).catch((error: Error) => finish(error)));
    o.signal.addEventListener('abort', () => finish(), { once: true });
    connection.open();
  });
}

async function takePart(
  o: AdversaryOptions,
  connection: FederationConnection,
  open: RoundOpen,
): Promise<void> {
  const request = connection.request.bind(connection);
  const { tensors: global } = await downloadAdapter(open.globalAdapterHash, (hash, index) =>
    request('adapter:get', { hash, index }),
  );
  const globalF32 = new Map([...global].map(([name, t]) => [name, tensorToF32(t)]));
  const trained = await trainDemoAdapter({
    modelDir: o.modelDir,
    records: o.records,
    initial: globalF32,
    settings: {
      lora: o.lora,
      steps: open.training.steps,
      batchSize: open.training.batchSize,
      lr: open.training.learningRate,
      cutoffLen: o.cutoffLen,
      schedule: 'constant',
    },
    seed: participantSeed(open.training.seed, connection.participantId),
    threads: o.threads,
  });
  const sent = tamper(o.attack, globalF32, trained.tensors);
  const pending = buildUpdate({
    identity: o.identity,
    federation: o.membership.federation,
    round: open.round,
    globalAdapterHash: open.globalAdapterHash,
    exampleCount: o.attack.kind === 'examples' ? o.attack.count : trained.examples,
    tensors: new Map(
      [...sent].map(([name, values]) => [name, tensorFromF32(global.get(name)!.shape, values)]),
    ),
    trainLoss: mean(trained.losses),
  });
  const upload = sealedUpload(
    pending.envelope,
    pending.payload,
    o.identity.box,
    o.membership.coordinator.box,
  );
  try {
    const outcome = await uploadPass(connectionUploadRequest(connection), upload);
    if (outcome.kind === 'committed') o.onUploaded(open.round, mean(trained.losses));
  } catch (error) {
    // A refusal from the coordinator (a bound, a cap, a rule) is the defence doing its job: the
    // adversary did not count this round and tries again in the next.
    if (!(error instanceof FederationError && error.remote)) throw error;
    o.onRefused?.(open.round, error.message);
  }
}

/** What the adversary sends in place of `trained`, started from `global`. */
export function tamper(
  attack: Attack,
  global: ReadonlyMap<string, Float32Array>,
  trained: ReadonlyMap<string, Float32Array>,
): Map<string, Float32Array> {
  if (attack.kind === 'examples') return new Map(trained);
  const factor = attack.kind === 'scale' ? attack.factor : -1;
  const out = new Map<string, Float32Array>();
  for (const [name, t] of trained) {
    const g = global.get(name)!;
    out.set(
      name,
      t.map((x, i) => g[i] + factor * (x - g[i])),
    );
  }
  return out;
}

function mean(xs: readonly number[]): number {
  return xs.length ? xs.reduce((a, b) => a + b, 0) / xs.length : NaN;
}
