// The live status the Training section shows, as a pure reducer: (status, event) -> status.
//
// Its events are the participant's own (ParticipantEvent, forwarded unchanged by the worker and
// the backend) and the few the backend adds about the worker it supervises (AppStatusEvent:
// starting, paused, stopped, crashed, ...). The backend folds both to answer getState(); the page
// folds the participant's events it receives with this same function, so the two cannot disagree
// and progress crosses one vocabulary from the trainer to the page.
//
// The renderer imports it as a value (the one app module it does), so it stays pure: no Node, no
// DOM, and type-only imports (nothing it imports runs in the page).

import type { LiveStatus, ParticipantEvent, TrainingState } from './api.ts';

export type PausedBy = NonNullable<LiveStatus['pausedBy']>;

/** What the backend says about the worker, in the same fold as the participant's events. */
export type AppStatusEvent =
  /** The worker was asked to take part. */
  | { type: 'app:starting' }
  /** Training is held back: by the person, or by a limit from the settings. */
  | { type: 'app:paused'; by: PausedBy }
  /** Training is not running (idle, finished, an error, the worker crashed), with why. */
  | { type: 'app:stopped'; state: TrainingState; message?: string }
  /** This computer left its federation: no round, no losses. */
  | { type: 'app:left' }
  /** Where training runs, from the settings (before the trainer says where it started). */
  | { type: 'app:device'; device: LiveStatus['device'] };

export type LiveStatusEvent = ParticipantEvent | AppStatusEvent;

/** The status before anything happened. */
export function initialLiveStatus(device: LiveStatus['device'] = 'cpu'): LiveStatus {
  return { state: 'idle', device, losses: [] };
}

/** States from which 'app:starting' shows 'connecting' (after a crash the participant says it). */
const STARTS_FROM: ReadonlySet<TrainingState> = new Set(['paused', 'idle', 'error', 'finished']);

/** Which progress phase goes on while the participant is in a state: kept, not cleared, by it. */
const PHASE_OF_STATE: Partial<Record<TrainingState, NonNullable<LiveStatus['progress']>['phase']>> = {
  downloading: 'download',
  training: 'training',
  uploading: 'upload',
};

/**
 * The status after `event`. Returns `status` itself when the event changes nothing it shows (a
 * round record, a warning, a report), so callers can tell. Never changes `status`.
 */
export function reduceLiveStatus(status: LiveStatus, event: LiveStatusEvent): LiveStatus {
  // A worker being paused still sends what it did before it stopped: that must not bring back a
  // progress bar and its ETA, nor a working state, under "Paused" (only 'app:starting' ends it).
  if (status.state === 'paused' && (event.type === 'status' || event.type === 'progress')) return status;
  switch (event.type) {
    case 'round-open': {
      const { round, deadline } = event.data;
      return { ...status, round, roundClosesAt: deadline };
    }
    case 'round':
      // The round closed: no deadline to wait for until the next one opens.
      return event.data.round === status.round && status.roundClosesAt !== undefined
        ? { ...status, roundClosesAt: undefined }
        : status;
    case 'status': {
      const { status: state, round, message } = event.data;
      if (state === 'stopped') return status; // why it stopped comes from the backend ('app:stopped')
      const keepProgress = status.progress?.phase === PHASE_OF_STATE[state];
      const newRound = state === 'training' && round !== status.lossesRound;
      return {
        ...status,
        state,
        round: round ?? status.round,
        message,
        pausedBy: undefined,
        progress: keepProgress ? status.progress : undefined,
        ...(newRound && { losses: [], lossesRound: round }),
      };
    }
    case 'progress': {
      const { round, phase, done, total, loss, etaSeconds, tokensPerSecond } = event.data;
      const next: LiveStatus = {
        ...status,
        round,
        progress: { phase, done, total, etaSeconds, tokensPerSecond },
      };
      if (phase !== 'training') return next;
      const losses = round === status.lossesRound ? status.losses : [];
      return {
        ...next,
        lossesRound: round,
        losses: loss === undefined ? losses : lossAt(losses, done, loss),
      };
    }
    case 'device':
      return { ...status, device: event.data === 'webgpu' ? 'webgpu' : 'cpu' };
    case 'app:starting':
      if (!STARTS_FROM.has(status.state)) return status;
      return {
        ...status,
        state: 'connecting',
        message: 'starting',
        pausedBy: undefined,
        progress: undefined,
      };
    case 'app:paused':
      // No message of its own: `pausedBy` says why, and the page words it.
      return { ...status, state: 'paused', pausedBy: event.by, message: undefined, progress: undefined };
    case 'app:stopped':
      return {
        ...status,
        state: event.state,
        message: event.message,
        pausedBy: undefined,
        progress: undefined,
      };
    case 'app:left':
      return initialLiveStatus(status.device);
    case 'app:device':
      return status.device === event.device ? status : { ...status, device: event.device };
    default:
      // The rest of the participant's events (round records, reports, warnings, ...) are shown elsewhere.
      return status;
  }
}

/** `losses` with step `done`'s loss set (steps 1..done); steps never reported are NaN (the chart skips them). */
function lossAt(losses: readonly number[], done: number, loss: number): number[] {
  const next = losses.slice(0, done - 1);
  while (next.length < done - 1) next.push(Number.NaN);
  next.push(loss);
  return next;
}
