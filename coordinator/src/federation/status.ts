// `fedit coordinator status <dir>`: the federation's round timeline, read from its round log alone
// (a copy of log/ is enough; nothing is verified here, `fedit audit` does that). Per round: whom
// it selected, whose updates counted, who was dropped and why, and the held-out means the
// counted updates signed (shared/src/rounds/held-out.ts), for the global adapter the round
// trained from; and, for rounds opened since selection draws from the ready participants
// (docs/federation.md, "Rounds that do not stall"), who was ready and the quorum it closed at.

import {
  federationPaths,
  formatEpsilon,
  readRoundLog,
  type DroppedParticipant,
  type HeldOutMeans,
  type RoundRecord,
} from '@fedit/shared';

export type RoundOutcome = 'open' | 'aggregated' | 'aborted';

/** One round as the log tells it. */
export interface RoundTimelineEntry {
  round: number;
  outcome: RoundOutcome;
  openedAt: string;
  /** When it closed or was aborted (absent while open). */
  endedAt?: string;
  selected: string[];
  /** Who was ready when the round opened (the candidates its selection drew from; older logs: absent). */
  ready?: string[];
  /** The updates at which the round closes without waiting for the rest (older logs: absent). */
  quorum?: number;
  /** Participants whose updates counted, with their example counts. */
  counted: { participant: string; examples: number }[];
  dropped: DroppedParticipant[];
  /** Why the round was aborted. */
  reason?: string;
  /** The held-out means of the adapter the round trained from (absent when no update sent figures). */
  heldOut?: HeldOutMeans;
  /** The global adapter the round produced. */
  adapterOut?: string;
  /** With differential privacy: epsilon spent after the round, at delta (the record's strings). */
  privacy?: { epsilon: string; epsilonRound: string; delta: string };
}

export interface FederationStatus {
  federation: string;
  /** Participants enrolled and not revoked, by id, with their display names. */
  participants: { id: string; name: string }[];
  rounds: RoundTimelineEntry[];
  /** Hash of the log's last record. */
  head?: string;
  /** The finished record: the rounds aggregated, and why it finished early when it did. */
  finished?: { rounds: number; reason?: string };
}

/** The timeline of the federation in folder `dir`, from its round log. */
export async function federationStatus(dir: string): Promise<FederationStatus> {
  const { records } = await readRoundLog(federationPaths(dir).log);
  return statusOfRecords(records);
}

/** The timeline the records tell, in log order. */
export function statusOfRecords(records: readonly RoundRecord[]): FederationStatus {
  const participants = new Map<string, string>();
  const rounds = new Map<number, RoundTimelineEntry>();
  let finished: FederationStatus['finished'];
  for (const record of records) {
    switch (record.kind) {
      case 'enrol':
        participants.set(record.body.participant, record.body.displayName ?? '');
        break;
      case 'rename': // shown under the name it last chose
        if (participants.has(record.body.participant))
          participants.set(record.body.participant, record.body.displayName);
        break;
      case 'revoke':
        participants.delete(record.body.participant);
        break;
      case 'round-open':
        rounds.set(record.round, {
          round: record.round,
          outcome: 'open',
          openedAt: record.time,
          selected: [...record.body.selection.selected],
          ...(record.body.selection.ready && { ready: [...record.body.selection.ready] }),
          ...(record.body.quorum !== undefined && { quorum: record.body.quorum }),
          counted: [],
          dropped: [],
        });
        break;
      case 'round-closed': {
        const entry = rounds.get(record.round);
        if (!entry) break;
        Object.assign(entry, {
          outcome: 'aggregated',
          endedAt: record.time,
          counted: record.body.updates.map((u) => ({ participant: u.participant, examples: u.exampleCount })),
          dropped: record.body.dropped,
          adapterOut: record.body.globalAdapterOut,
          ...(record.body.heldOut && { heldOut: record.body.heldOut }),
          ...(record.body.privacy && {
            privacy: {
              epsilon: record.body.privacy.epsilon,
              epsilonRound: record.body.privacy.epsilonRound,
              delta: record.body.privacy.delta,
            },
          }),
        });
        break;
      }
      case 'round-aborted': {
        const entry = rounds.get(record.round);
        if (!entry) break;
        Object.assign(entry, {
          outcome: 'aborted',
          endedAt: record.time,
          dropped: record.body.dropped,
          reason: record.body.reason,
        });
        break;
      }
      case 'finished':
        finished = { rounds: record.body.rounds, ...(record.body.reason && { reason: record.body.reason }) };
        break;
    }
  }
  return {
    federation: records[0]?.federation ?? '',
    participants: [...participants].map(([id, name]) => ({ id, name })),
    rounds: [...rounds.values()],
    head: records.at(-1)?.hash,
    ...(finished && { finished }),
  };
}

/** The timeline as text: one block per round, a participant by its short id and name. */
export function formatFederationStatus(status: FederationStatus): string {
  const names = new Map(status.participants.map((p) => [p.id, p.name]));
  const who = (id: string) => `${id.slice(0, 8)}${names.get(id) ? ` (${names.get(id)})` : ''}`;
  const lines = [
    `federation ${status.federation}: ${status.participants.length} participant(s), ${status.rounds.length} round(s)`,
  ];
  for (const r of status.rounds) {
    const ended = r.endedAt ? ` -> ${r.endedAt}` : '';
    lines.push('', `round ${r.round}  ${r.outcome}  ${r.openedAt}${ended}`);
    lines.push(`  selected  ${r.selected.length}: ${r.selected.map(who).join(', ')}`);
    if (r.ready) lines.push(`  ready     ${r.ready.length}: ${r.ready.map(who).join(', ')}`);
    if (r.quorum !== undefined) lines.push(`  quorum    ${r.quorum} updates`);
    if (r.outcome !== 'open')
      lines.push(
        `  counted   ${r.counted.length}: ${r.counted.map((c) => `${who(c.participant)} ${c.examples} examples`).join(', ') || '-'}`,
      );
    for (const d of r.dropped) lines.push(`  dropped   ${who(d.participant)}: ${d.reason}`);
    if (r.reason) lines.push(`  aborted   ${r.reason}`);
    if (r.heldOut) lines.push(`  held-out  ${heldOutText(r.heldOut)}`);
    if (r.privacy)
      lines.push(
        `  privacy   ε = ${formatEpsilon(Number(r.privacy.epsilon))} spent so far at δ = ${r.privacy.delta} (this round: ${formatEpsilon(Number(r.privacy.epsilonRound))})`,
      );
  }
  const done = status.finished;
  if (done)
    lines.push(
      '',
      `finished after ${done.rounds} aggregated round(s)${done.reason ? `: ${done.reason}` : ''}`,
    );
  return lines.join('\n') + '\n';
}

/** "loss 1.234567 over 8 examples from 2 participants, exact match 0.625000 (8 examples)". */
export function heldOutText(h: HeldOutMeans): string {
  const match =
    h.exactMatch !== undefined ? `, exact match ${h.exactMatch} (${h.exactMatchExamples} examples)` : '';
  return `loss ${h.meanLoss} over ${h.examples} examples from ${h.reports} participant(s)${match} (the adapter the round trained from)`;
}
