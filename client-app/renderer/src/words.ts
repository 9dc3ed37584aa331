// Numbers and states in plain words, the way a participant reads them.

import type { LiveStatus, TrainingState } from '../../src/app/api.ts';

export const num = (n: number): string => n.toLocaleString('en-US');

/** "1 record", "3 records". */
export const count = (n: number, one: string, many = `${one}s`): string =>
  `${num(n)} ${n === 1 ? one : many}`;

export function duration(seconds: number): string {
  if (seconds < 60) return 'less than a minute';
  const minutes = Math.round(seconds / 60);
  if (minutes < 60) return `about ${count(minutes, 'minute')}`;
  const hours = Math.floor(minutes / 60);
  const rest = minutes % 60;
  return `about ${count(hours, 'hour')}${rest ? ` ${count(rest, 'minute')}` : ''}`;
}

/** Long fingerprints and hashes in groups of four, easier to compare by eye. */
export function grouped(hex: string, groups = 8): string {
  // "sha256:" names the hash function, it is not part of what people compare
  const parts = hex.replace(/^sha256:/, '').match(/.{1,4}/g) ?? [];
  return parts.length > groups ? `${parts.slice(0, groups).join(' ')} …` : parts.join(' ');
}

export const STATE_WORDS: Record<TrainingState, string> = {
  idle: 'Not started',
  connecting: 'Connecting to the coordinator',
  waiting: 'Waiting for a round',
  downloading: 'Downloading the shared adapter',
  training: 'Training on your data',
  uploading: 'Sending your update',
  'done-round': 'Round done',
  stopped: 'Stopped',
  error: 'Something went wrong',
  paused: 'Paused',
  crashed: 'Training stopped unexpectedly, restarting',
  finished: "Finished: the federation's last round is done",
};

/** The tone of a state, for its colour: calm while working, green when done, red on trouble. */
export function stateTone(state: TrainingState): 'idle' | 'busy' | 'done' | 'paused' | 'problem' {
  switch (state) {
    case 'idle':
    case 'stopped':
      return 'idle';
    case 'done-round':
    case 'finished':
      return 'done';
    case 'paused':
      return 'paused';
    case 'error':
    case 'crashed':
      return 'problem';
    default:
      return 'busy';
  }
}

export const isRunning = (state: TrainingState): boolean =>
  !['idle', 'stopped', 'error', 'paused', 'finished'].includes(state);

/** Why training is paused, when the status does not say it in its own words. */
export const PAUSED_BY_WORDS: Record<NonNullable<LiveStatus['pausedBy']>, string> = {
  you: 'You paused training. It continues when you resume.',
  power: 'Waiting for the computer to be plugged in (see Settings).',
  idle: 'Waiting until the computer is not in use (see Settings).',
};

/** "Loading the base model": the core's status messages start in lower case. */
const sentence = (text: string): string => text.charAt(0).toUpperCase() + text.slice(1);

/**
 * The line under the state, in words. The core's status message is for the logs: while the
 * headline, the round and the progress bar already say everything it is left out (it would only
 * repeat them: "Round 1 of 2 · training round 1"), and a crash is told without the technical
 * details (signals, exit codes), which stay in the logs.
 */
export function statusSentence(status: LiveStatus): string {
  const { state, message } = status;
  switch (state) {
    case 'downloading':
    case 'training':
    case 'uploading':
    case 'idle':
      return '';
    case 'waiting':
      // The core says when this computer was not picked for a round; otherwise the headline says it.
      return message?.startsWith('not selected') && status.round !== undefined
        ? `This computer was not picked for round ${num(status.round)}. It waits for the next round.`
        : '';
    case 'done-round':
      return 'Your update for this round was sent. Waiting for the others to finish the round.';
    case 'paused':
      return status.pausedBy ? PAUSED_BY_WORDS[status.pausedBy] : message ? sentence(message) : '';
    case 'crashed':
      return (
        'The part of the app that trains stopped unexpectedly. It restarts by itself and carries on ' +
        'where it left off; nothing is lost. The logs have the details.'
      );
    case 'error':
      // The backend gives up restarting a worker that keeps crashing: say so without the details.
      if (message?.startsWith('the training worker keeps stopping')) {
        return (
          'The part of the app that trains keeps stopping unexpectedly, so it is not restarted again. ' +
          'The logs have the details. Start tries again.'
        );
      }
      return message ? sentence(message) : '';
    default:
      return message ? sentence(message) : '';
  }
}

export const DEVICE_WORDS: Record<LiveStatus['device'], string> = {
  cpu: 'CPU',
  webgpu: 'GPU (WebGPU)',
};

export function progressWords(progress: NonNullable<LiveStatus['progress']>): string {
  const { phase, done, total } = progress;
  switch (phase) {
    case 'download':
      return `Downloading the shared adapter: part ${num(done)} of ${num(total)}`;
    case 'training':
      return `Training: step ${num(done)} of ${num(total)}`;
    case 'upload':
      return `Sending your update: part ${num(done)} of ${num(total)}`;
  }
}
