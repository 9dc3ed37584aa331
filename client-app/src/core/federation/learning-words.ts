// How a federation learns, in sentences a person deciding whether to join can follow: the
// aggregation rule and every learning setting the operator chose (docs/learning.md has the
// arithmetic). One place, so `fedit client join` and the app say the same thing.

import type { FederationConfig } from '@fedit/shared';

type Aggregation = FederationConfig['aggregation'];

/** How many of something, in words: "1 update", "3 updates". */
const plural = (n: number, word: string) => `${n} ${word}${n === 1 ? '' : 's'}`;

/** "twice", "3 times", "1.5 times". */
const times = (m: number) => (m === 2 ? 'twice' : m === 1 ? 'once' : `${m} times`);

/** The rule, in words; a rule this version does not know is named as the coordinator sent it. */
function ruleSentence(a: Aggregation, rank: number): string {
  switch (a.rule) {
    case 'fedit':
      return "The coordinator averages everyone's updates, weighted by how many examples each trained on (FedIT).";
    case 'fedavg-uniform':
      return "The coordinator averages everyone's updates equally, whatever the number of examples each trained on.";
    case 'median':
      return 'For every number in the adapter, the coordinator takes the middle value of all updates (coordinate-wise median), so a few extreme updates cannot drag it.';
    case 'trimmed-mean':
      return `For every number in the adapter, the coordinator drops the highest and lowest ${Math.round((a.trimFraction ?? 0.2) * 100)}% of the updates' values (at least one each while one stays) and averages the rest (trimmed mean).`;
    case 'krum': {
      const select = a.krumSelect ?? 1;
      const tolerating = `tolerating ${plural(a.byzantine ?? 0, 'harmful update')} per round`;
      return select === 1
        ? `The coordinator keeps only the update most like the others (Krum), ${tolerating}.`
        : `The coordinator averages the ${select} updates most like the others (multi-Krum), ${tolerating}.`;
    }
    case 'product-svd':
      return `The coordinator averages what each update does to the model (the product of its LoRA factors, weighted by examples), then compresses the average back to rank ${rank}.`;
    default:
      return `The coordinator combines the updates with the "${a.rule}" method.`;
  }
}

const SERVER_OPTIMIZER_NAMES = {
  sgd: 'a server learning rate (FedAvg)',
  avgm: 'momentum (FedAvgM)',
  adam: 'the Adam optimiser (FedAdam)',
  yogi: 'the Yogi optimiser (FedYogi)',
  adagrad: 'the Adagrad optimiser (FedAdagrad)',
} as const;

/**
 * Rounds smaller than this may aggregate with the coordinate-wise median or trimmed mean and still
 * not hold against one harmful participant: measured in docs/learning.md ("One poisoned
 * participant"), one sign-flipping participant in 3 took the median from 87% to 47% exact match,
 * while one in 5 cost it 10 points (87% to 77%).
 */
export const COORDINATE_RULES_MIN_UPDATES = 5;

/**
 * What a coordinate-wise robust rule does not protect against when rounds may close with fewer
 * than COORDINATE_RULES_MIN_UPDATES updates (config.minUpdates); undefined otherwise. `coordinator
 * init` prints it, and participants read it with the rule's sentence.
 */
export function robustRuleCaveat(config: FederationConfig): string | undefined {
  const { rule } = config.aggregation;
  if ((rule !== 'median' && rule !== 'trimmed-mean') || config.minUpdates >= COORDINATE_RULES_MIN_UPDATES)
    return undefined;
  return `Rounds here may count as few as ${plural(config.minUpdates, 'update')}: with fewer than ${COORDINATE_RULES_MIN_UPDATES}, the ${rule === 'median' ? 'median' : 'trimmed mean'} does not hold against one harmful participant (one in 3 took accuracy from 87% to 47% in fedit's measurements, docs/learning.md); Krum does, or at least ${COORDINATE_RULES_MIN_UPDATES} updates a round (minUpdates).`;
}

/** One sentence per learning setting the federation uses, the rule first. */
export function describeLearning(config: FederationConfig): string[] {
  const { aggregation: a, training: t } = config;
  const lines = [ruleSentence(a, config.lora.rank)];
  if (a.clipping?.kind === 'adaptive') {
    lines.push(
      `Updates larger than ${times(a.clipping.multiplier)} the round's median update are scaled down to that size, so no single update can pull the shared adapter far.`,
    );
  } else if (a.clipping?.kind === 'fixed') {
    lines.push(
      `Updates that change the shared adapter by more than ${a.clipping.bound} (L2 norm) are scaled down to that size.`,
    );
  }
  if (a.weightCap !== undefined) {
    lines.push(
      `However many examples an update claims, it counts as at most ${a.weightCap} when updates are weighted by their examples.`,
    );
  }
  if (a.serverOptimizer) {
    const { kind, lr } = a.serverOptimizer;
    lines.push(
      `The coordinator moves the shared adapter toward the round's result with ${SERVER_OPTIMIZER_NAMES[kind]}, step size ${lr}${kind === 'sgd' ? '' : ', remembering earlier rounds'}.`,
    );
  }
  if (t.freezeLoraA) {
    lines.push(
      "Half of the adapter (LoRA's A matrices) stays at its starting values; this computer trains only the other half, which makes averaging the updates exact (FFA-LoRA).",
    );
  }
  if (t.proximalMu !== undefined && t.proximalMu > 0) {
    lines.push(
      `Training here is pulled back toward the shared adapter (FedProx, strength ${t.proximalMu}), so participants' adapters drift apart less.`,
    );
  }
  if (t.scaffold) {
    lines.push(
      "Training here is corrected by the difference between the federation's average direction and this computer's own (SCAFFOLD); this computer keeps its own part, and sends nothing extra.",
    );
  }
  if (t.lrSchedule && t.lrSchedule.kind !== 'constant') {
    lines.push(
      `The learning rate falls ${t.lrSchedule.kind === 'cosine' ? 'along a cosine curve' : 'in equal steps'} from ${t.lr} in the first round to ${Number((t.lr * t.lrSchedule.finalFraction).toPrecision(6))} in the last.`,
    );
  }
  const caveat = robustRuleCaveat(config);
  if (caveat) lines.push(caveat);
  return lines;
}
