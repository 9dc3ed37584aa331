// The federation as the app shows it: its settings, and what matters for privacy, in words.

import type { FederationSettings, Membership, RoundHistoryEntry } from '../core/federation/index.ts';
import { describeLearning } from '../core/federation/learning-words.ts';
import { updateCompanionWords, updateVisibilityWords } from '../core/federation/privacy-words.ts';
import type { FederationSummary } from './api.ts';
import { dpOf, privacyLine, type PrivacySeen } from '@fedit/shared';

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

/** Differential privacy's sentence of the privacy list (none without DP). */
function dpWords(s: FederationSettings, seen: PrivacySeen | undefined): string[] {
  const setting = dpOf(s);
  if (!setting) return [];
  const { dp, noise } = setting;
  const who =
    noise === 'central'
      ? 'the coordinator adds random noise'
      : 'each selected participant adds its share of random noise';
  const budget =
    dp.epsilonBudget === undefined
      ? 'The federation sets no budget: ε grows with every round.'
      : `The federation stops before ε would exceed ${dp.epsilonBudget}.`;
  return [
    `Differential privacy: the change your update makes is limited to a size of ${dp.clipNorm}, and ${who} (${dp.noiseMultiplier} times that size in all) to the average before it is shared, so the shared adapters reveal little about what your data contributed (the round log still names who took part). Its measure is ε (smaller is stronger): ${privacyLine(s, seen)}. ${budget}`,
  ];
}

/** The federation's settings as the app shows them, with what matters for privacy in words. */
export function summarize(
  s: FederationSettings,
  url: string,
  coordinatorFingerprint: string,
  membership?: Membership,
  privacySeen?: PrivacySeen,
): FederationSummary {
  const raw = s.raw as Record<string, unknown>;
  const record = (v: unknown) => (typeof v === 'object' && v !== null ? (v as Record<string, unknown>) : {});
  const limits = record(raw.limits);
  const perRound = record(raw.participantsPerRound);
  const privacy = [
    'Your data never leaves this computer as you wrote it: training happens here, and what is sent is the trained adapter, numbers that adjust the model (LoRA weights). Those numbers are computed from your examples and can reveal some of their text (a model can learn rare phrases word for word).',
    updateVisibilityWords(raw),
    ...dpWords(s, privacySeen),
    updateCompanionWords(raw),
  ];
  if (typeof raw.minUpdates === 'number') {
    privacy.push(
      `A round only counts when at least ${raw.minUpdates} ${raw.minUpdates === 1 ? 'update arrives' : 'updates arrive'}; otherwise it is dropped.`,
    );
  }
  if (typeof perRound.fraction === 'number') {
    privacy.push(
      perRound.fraction >= 1
        ? 'Every participant is asked to train in every round.'
        : `In each round the coordinator picks ${Math.round(perRound.fraction * 100)}% of the participants at random (at least ${perRound.minimum ?? 1}).`,
    );
  }
  if (typeof limits.maxUpdateNorm === 'number') {
    privacy.push(
      `Your update's size is capped: the coordinator refuses an update that changes the shared adapter by more than ${limits.maxUpdateNorm} in all.`,
    );
  }
  privacy.push(
    `The organiser sees your public key and the display name you choose${membership ? ` (${membership.displayName})` : ''}, and when you are online.`,
    'Every round is written to a signed record that anyone checking the federation can verify.',
  );
  return {
    id: s.id,
    name: s.name,
    coordinatorUrl: url,
    coordinatorFingerprint: groupFingerprint(coordinatorFingerprint),
    baseModel: {
      name: s.baseModel.name,
      identity: s.baseModel.identity,
      ...(s.baseModel.repo !== undefined && { repo: s.baseModel.repo }),
      ...(s.baseModel.revision !== undefined && { revision: s.baseModel.revision }),
    },
    lora: { rank: s.lora.rank, alpha: s.lora.alpha, dropout: s.lora.dropout, targets: [...s.lora.targets] },
    training: {
      localSteps: s.training.localSteps ?? 0,
      batchSize: s.training.batchSize ?? 0,
      lr: s.training.lr ?? 0,
      cutoffLen: s.training.cutoffLen,
      template: s.training.template,
    },
    rounds: s.rounds ?? 0,
    round: {
      ...(typeof raw.minUpdates === 'number' && { minUpdates: raw.minUpdates }),
      ...(typeof raw.roundDeadlineSeconds === 'number' && { deadlineSeconds: raw.roundDeadlineSeconds }),
    },
    privacy,
    learning: describeLearning(s),
    joinedAs: membership && {
      participantId: membership.participantId,
      displayName: membership.displayName,
      joinedAt: membership.joinedAt,
    },
  };
}
