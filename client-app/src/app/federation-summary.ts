// The federation as the app shows it: its settings, and what matters for privacy, in words.

import type { RoundHistoryEntry } from '../core/federation/participant.ts';
import type { FederationSettings } from '../core/federation/settings.ts';
import type { Membership } from '../core/federation/store.ts';
import type { FederationSummary } from './api.ts';

/** "sha256:0123456789ab…" */
export function shortHash(hash: string): string {
  return hash.length > 19 ? `${hash.slice(0, 19)}…` : hash;
}

/** A fingerprint in groups of four hex digits, as people read them aloud to compare. */
export function groupFingerprint(print: string): string {
  return print.match(/.{1,4}/g)?.join(' ') ?? print;
}

export function describeRound(e: RoundHistoryEntry): string {
  const outcome =
    e.outcome === 'aggregated' ? `aggregated from ${e.updates} update(s)` : (e.outcome ?? 'ended');
  const own = !e.selected
    ? 'not selected'
    : e.uploaded
      ? `trained on ${e.examples} examples, loss ${e.trainLoss?.toFixed(4)}, update sent`
      : `no update sent${e.error ? ` (${e.error})` : ''}`;
  return `${outcome}; this computer: ${own}`;
}

/** The federation's settings as the app shows them, with what matters for privacy in words. */
export function summarize(
  s: FederationSettings,
  url: string,
  coordinatorFingerprint: string,
  membership?: Membership,
): FederationSummary {
  const raw = s.raw as Record<string, unknown>;
  const record = (v: unknown) => (typeof v === 'object' && v !== null ? (v as Record<string, unknown>) : {});
  const aggregation = record(raw.aggregation);
  const limits = record(raw.limits);
  const perRound = record(raw.participantsPerRound);
  const privacy = [
    'Your data never leaves this computer. Training happens here; only the trained adapter is sent: the LoRA weights, numbers that adjust the model, not your text.',
    'Each update is signed with your key and encrypted to the coordinator. The coordinator can read your update: this federation does not hide it with secure aggregation or differential privacy.',
    'With each update goes the number of training examples it was made from (it weights your update in the average).',
  ];
  if (typeof aggregation.rule === 'string') {
    privacy.push(
      aggregation.rule === 'fedit'
        ? 'Updates are combined with the rule "fedit": the average of all updates, weighted by example counts (FedIT).'
        : `Updates are combined with the rule "${aggregation.rule}".`,
    );
  }
  if (typeof raw.minUpdates === 'number') {
    privacy.push(
      `A round is only combined when at least ${raw.minUpdates} ${raw.minUpdates === 1 ? 'update arrives' : 'updates arrive'}; otherwise it is dropped.`,
    );
  }
  if (typeof perRound.fraction === 'number') {
    privacy.push(
      `Each round uses ${Math.round(perRound.fraction * 100)}% of the participants (at least ${perRound.minimum ?? 1}), drawn at random.`,
    );
  }
  if (typeof limits.maxUpdateNorm === 'number') {
    privacy.push(
      `The coordinator refuses an update whose change is larger than ${limits.maxUpdateNorm} (L2 norm).`,
    );
  }
  privacy.push(
    `The operator sees your public key and the display name you choose${membership ? ` (${membership.displayName})` : ''}, and when you are online.`,
    'Every round is written to a signed log that auditors can check.',
  );
  return {
    id: s.id,
    name: s.name,
    coordinatorUrl: url,
    coordinatorFingerprint: groupFingerprint(coordinatorFingerprint),
    baseModel: { name: s.baseModel.name, identity: s.baseModel.identity },
    lora: { rank: s.lora.rank, alpha: s.lora.alpha, dropout: s.lora.dropout, targets: [...s.lora.targets] },
    training: {
      localSteps: s.training.localSteps ?? 0,
      batchSize: s.training.batchSize ?? 0,
      lr: s.training.lr ?? 0,
      cutoffLen: s.training.cutoffLen,
      template: s.training.template,
    },
    rounds: s.rounds ?? 0,
    privacy,
    joinedAs: membership && {
      participantId: membership.participantId,
      displayName: membership.displayName,
      joinedAt: membership.joinedAt,
    },
  };
}
