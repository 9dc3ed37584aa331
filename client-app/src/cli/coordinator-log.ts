// What `fedit coordinator start` writes for each coordinator event (log-line.ts gives the line its
// time, level and format): the sentence an operator reads, and, for --log-format json, the event's
// fields with every participant named by id and display name.

import type { CoordinatorEvent, ParticipantNames } from '@fedit/coordinator';
import { participantLabel, type LineLog, type LogFields, type LogLevel } from './log-line.ts';

interface Line {
  level: LogLevel;
  message: string;
}

/** Writes event `e` to `log`, naming participants as the round log does. */
export function logCoordinatorEvent(log: LineLog, e: CoordinatorEvent, names: ParticipantNames): void {
  const who = (id: string) => participantLabel(id, names(id));
  const { level, message } = describe(e, who);
  const { type, ...fields } = e as CoordinatorEvent & LogFields;
  if ('participant' in e) {
    const displayName = e.type === 'enrolled' || e.type === 'renamed' ? e.displayName : names(e.participant);
    if (displayName !== undefined) fields.displayName = displayName;
  }
  log.log(level, type, message, fields);
}

function describe(e: CoordinatorEvent, who: (id: string) => string): Line {
  const info = (message: string): Line => ({ level: 'info', message });
  const warn = (message: string): Line => ({ level: 'warn', message });
  switch (e.type) {
    case 'listening':
      return info(`listening on ${e.url}`);
    case 'enrolled':
      return info(`${participantLabel(e.participant, e.displayName)} enrolled`);
    case 'renamed':
      return info(
        `${e.participant.slice(0, 8)} is now shown as ${participantLabel(e.participant, e.displayName)}`,
      );
    case 'connected':
    case 'disconnected':
      return info(`${who(e.participant)} ${e.type}`);
    case 'readiness':
      return info(
        `${who(e.participant)} ${e.ready ? 'ready' : `not ready${e.reason ? ` (${e.reason})` : ''}`}`,
      );
    case 'round-open':
      return info(
        `round ${e.round} open: ${e.selected.length} selected of ${e.ready.length} ready, closes at ${e.quorum} updates`,
      );
    case 'update-counted':
      return info(
        `round ${e.round}: counted the update of ${who(e.participant)} (${e.exampleCount} examples)`,
      );
    case 'update-refused':
      return warn(`round ${e.round}: refused the update of ${who(e.participant)}: ${e.reason}`);
    case 'round-closed': {
      const dropped = e.dropped.map((d) => `${who(d.participant)} (${d.reason})`).join(', ');
      return info(
        `round ${e.round} closed: ${e.updates} updates -> ${e.adapter}${dropped ? `, dropped ${dropped}` : ''}`,
      );
    }
    case 'round-aborted':
      return warn(`round ${e.round} aborted: ${e.reason}`);
    case 'secagg-received':
      return info(
        `round ${e.round}: secure aggregation: ${e.phase === 'advertise' ? 'keys' : e.phase} of ${who(e.participant)}`,
      );
    case 'secagg-phase':
      return e.outcome === 'abort'
        ? warn(`round ${e.round}: secure aggregation stops in its ${e.phase} phase`)
        : info(
            `round ${e.round}: secure aggregation ${e.phase} phase done, ${e.participants} participants${e.seconds === undefined ? '' : ` (${e.seconds.toFixed(1)} s)`}`,
          );
    case 'paused':
      return warn(
        `${e.aborts} rounds aborted in a row: no round opens until a participant newly says it is ready`,
      );
    case 'finished':
      return info(
        e.earlier
          ? `the federation finished earlier (${e.rounds} rounds): serving its results read-only, final adapter ${e.adapter}; no round opens, updates are refused; Ctrl-C stops`
          : `all rounds done (${e.rounds}): serving the final adapter ${e.adapter} to participants until stopped (Ctrl-C)`,
      );
    case 'recovered':
      return warn(`round ${e.abortedRound} was open when the coordinator stopped; recorded as aborted`);
    case 'revoked':
      return warn(`${who(e.participant)} revoked: ${e.reason}`);
    case 'permissions-tightened':
      return warn(
        `made ${e.paths.length} path(s) of the folder owner-only (they held updates or keys others could read): ${e.paths.slice(0, 3).join(', ')}${e.paths.length > 3 ? ', ...' : ''}`,
      );
  }
}
