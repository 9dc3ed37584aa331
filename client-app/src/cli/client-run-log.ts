// What `fedit client run` prints while it takes part: statuses and warnings once each, training
// progress (a redrawn bar on a terminal; lines, or JSON objects, in a log), and one line per
// round, each through the run's LineLog (./log-line.ts) so that a log gets times and levels.

import type { Participant, ParticipantStatus, RoundHistoryEntry } from '../core/federation/index.ts';
import type { LineLog } from './log-line.ts';
import { progressLine, type ProgressPrinter } from './progress.ts';

const STATUS_WORDS: Record<ParticipantStatus, string> = {
  connecting: 'connecting',
  waiting: 'waiting',
  downloading: 'downloading',
  training: 'training',
  uploading: 'uploading',
  'done-round': 'sent',
  stopped: 'stopped',
  error: 'error',
};

/** One line about a finished round, from this participant's side. */
export function formatRound(e: RoundHistoryEntry): string {
  const outcome =
    e.outcome === 'aggregated'
      ? `aggregated from ${e.updates} update${e.updates === 1 ? '' : 's'}`
      : e.outcome === 'aborted'
        ? 'aborted'
        : 'ended';
  let own: string;
  if (!e.selected) own = 'not selected';
  else if (e.uploaded) {
    own = `trained on ${e.examples} examples, loss ${e.trainLoss?.toFixed(4) ?? '?'}, update sent`;
  } else own = `no update sent${e.error ? ` (${e.error})` : ''}`;
  return `round ${e.round}: ${outcome}; this computer: ${own}${heldOutLine(e)}`;
}

/** The round's starting adapter on the held-out examples (held-out.ts), as a second line. */
function heldOutLine(e: RoundHistoryEntry): string {
  const share = (x: number | undefined) => (x === undefined ? '' : `, exact match ${(x * 100).toFixed(0)}%`);
  const parts = [
    e.heldOutLoss !== undefined && `yours loss ${e.heldOutLoss.toFixed(4)}${share(e.heldOutExactMatch)}`,
    e.federationHeldOutLoss !== undefined &&
      `federation mean loss ${e.federationHeldOutLoss.toFixed(4)}${share(e.federationHeldOutExactMatch)}`,
  ].filter(Boolean);
  return parts.length ? `\n  held-out examples, the adapter the round started from: ${parts.join('; ')}` : '';
}

/** Prints what the participant reports: statuses and warnings once each, training progress, rounds. */
export async function printParticipantEvents(
  participant: Participant,
  progress: ProgressPrinter,
  log: LineLog,
): Promise<void> {
  const { formatReport } = await import('../core/data/index.ts');
  let lastLine = '';
  const say = (event: string, line: string, level: 'info' | 'warn' = 'info') => {
    if (line === lastLine) return;
    lastLine = line;
    progress.done(log.format(level, event, line));
  };
  participant.on('status', (e) => {
    if (e.status === 'error' || e.status === 'stopped') return; // reported by the caller
    say('status', `[${STATUS_WORDS[e.status]}] ${e.message ?? ''}`.trimEnd());
  });
  participant.on('report', (r) =>
    process.stderr.write(log.format('info', 'data-report', formatReport(r)) + '\n\n'),
  );
  participant.on('warning', (m) => say('warning', `warning: ${m}`, 'warn'));
  participant.on('progress', (p) => {
    if (p.phase !== 'training') return;
    const snapshot = {
      step: p.done,
      totalSteps: p.total,
      loss: p.loss ?? NaN,
      tokensPerSecond: p.tokensPerSecond ?? 0,
      etaSeconds: p.etaSeconds ?? NaN,
      note: `round ${p.round}`,
    };
    // JSON lines are for machines: no redrawn bar, a line at the cadence a log gets (progress.ts).
    if (log.json) {
      if (p.done === 1 || p.done % 10 === 0 || p.done === p.total)
        process.stderr.write(
          log.format('info', 'training', progressLine(snapshot), {
            round: p.round,
            step: p.done,
            totalSteps: p.total,
            ...(p.loss !== undefined && { loss: p.loss }),
          }) + '\n',
        );
    } else progress.update(snapshot);
  });
  participant.on('round', (e) =>
    process.stdout.write(log.format('info', 'round', formatRound(e), { ...e }) + '\n'),
  );
}
