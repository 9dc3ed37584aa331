// The live status as a pure fold (src/app/live-status.ts): sequences of the participant's events
// and the backend's own, and the status the backend and the page both show after them.

import test from 'ava';
import type { LiveStatus, ParticipantEvent } from '../src/app/api.ts';
import { initialLiveStatus, reduceLiveStatus, type LiveStatusEvent } from '../src/app/live-status.ts';

const fold = (events: LiveStatusEvent[], from: LiveStatus = initialLiveStatus()): LiveStatus =>
  events.reduce(reduceLiveStatus, from);

const status = (data: Extract<ParticipantEvent, { type: 'status' }>['data']): ParticipantEvent => ({
  type: 'status',
  data,
});
const trainingStep = (round: number, done: number, loss?: number): ParticipantEvent => ({
  type: 'progress',
  data: { round, phase: 'training', done, total: 3, loss, tokensPerSecond: 100, etaSeconds: 3 - done },
});

/** Freezes `value` and everything in it, so a fold that changed its input would throw. */
function deepFreeze<T>(value: T): T {
  if (typeof value === 'object' && value !== null) {
    for (const inner of Object.values(value)) deepFreeze(inner);
    Object.freeze(value);
  }
  return value;
}

test('a round of training shows its steps, one loss per step, and the next round starts a new chart', (t) => {
  const first = fold([
    { type: 'app:starting' },
    status({ status: 'connecting', message: 'connecting' }),
    status({ status: 'training', round: 1, message: 'training round 1' }),
    trainingStep(1, 1, 2.5),
    trainingStep(1, 2, 2.0),
    trainingStep(1, 3, 1.5),
  ]);
  t.is(first.state, 'training');
  t.is(first.round, 1);
  t.deepEqual(first.losses, [2.5, 2.0, 1.5]);
  t.is(first.lossesRound, 1);
  t.deepEqual(first.progress, { phase: 'training', done: 3, total: 3, etaSeconds: 0, tokensPerSecond: 100 });

  const second = fold(
    [
      status({ status: 'uploading', round: 1 }),
      status({ status: 'training', round: 2 }),
      trainingStep(2, 1, 1.2),
    ],
    first,
  );
  t.deepEqual(second.losses, [1.2]);
  t.is(second.lossesRound, 2);
  t.is(second.round, 2);
});

test('a step whose progress never came is a gap in the chart; a step told twice is counted once', (t) => {
  const s = fold([status({ status: 'training', round: 1 }), trainingStep(1, 1, 3), trainingStep(1, 3, 1)]);
  t.is(s.losses.length, 3);
  t.true(Number.isNaN(s.losses[1]));
  t.deepEqual(fold([trainingStep(1, 3, 1)], s).losses.length, 3);
  t.deepEqual(fold([trainingStep(1, 2, 2)], s).losses, [3, 2], 'a step told again replaces what followed it');
});

test('progress stays while the participant is in the phase it belongs to, and goes with the next state', (t) => {
  const downloading = fold([
    status({ status: 'downloading', round: 1 }),
    { type: 'progress', data: { round: 1, phase: 'download', done: 1, total: 4 } },
  ]);
  const again = fold([status({ status: 'downloading', round: 1, message: 'fetching again' })], downloading);
  t.deepEqual(again.progress, {
    phase: 'download',
    done: 1,
    total: 4,
    etaSeconds: undefined,
    tokensPerSecond: undefined,
  });
  t.is(again.message, 'fetching again');
  t.is(fold([status({ status: 'training', round: 1 })], downloading).progress, undefined);
});

test("the participant's 'stopped' changes nothing: the backend says why it stopped", (t) => {
  const training = fold([status({ status: 'training', round: 1 }), trainingStep(1, 1, 2)]);
  t.is(reduceLiveStatus(training, status({ status: 'stopped', message: 'stopped' })), training);
  const finished = fold(
    [{ type: 'app:stopped', state: 'finished', message: 'all 2 rounds are done' }],
    training,
  );
  t.is(finished.state, 'finished');
  t.is(finished.message, 'all 2 rounds are done');
  t.is(finished.progress, undefined);
  t.deepEqual(finished.losses, [2], 'the last round stays on the chart');
});

test('pausing says who paused and drops the progress; starting again shows connecting', (t) => {
  const training = fold([status({ status: 'training', round: 1 }), trainingStep(1, 1, 2)]);
  const paused = fold([{ type: 'app:paused', by: 'power' }], training);
  t.like(paused, { state: 'paused', pausedBy: 'power', message: undefined, progress: undefined, round: 1 });
  const resumed = fold([{ type: 'app:starting' }], paused);
  t.like(resumed, { state: 'connecting', message: 'starting', pausedBy: undefined });
  const participantSaysSo = fold([status({ status: 'waiting', message: 'waiting for a round' })], resumed);
  t.like(participantSaysSo, { state: 'waiting', round: 1, pausedBy: undefined });
});

test('a paused computer shows no progress and no time left, even when the stopping worker still reports a step', (t) => {
  const training = fold([status({ status: 'training', round: 1 }), trainingStep(1, 1, 2)]);
  const paused = fold([{ type: 'app:paused', by: 'you' }], training);
  // What the worker sent before it stopped arrives after the pause.
  const late = fold([trainingStep(1, 2, 1.5), status({ status: 'uploading', round: 1 })], paused);
  t.is(late, paused, 'late events change nothing');
  t.like(late, { state: 'paused', pausedBy: 'you', progress: undefined });
  const resumed = fold([{ type: 'app:starting' }, trainingStep(1, 2, 1.5)], late);
  t.like(resumed, { state: 'connecting', progress: { done: 2, etaSeconds: 1 } });
});

test("a round's deadline comes with its opening and goes when it closes", (t) => {
  const open: ParticipantEvent = {
    type: 'round-open',
    data: { round: 4, selected: false, deadline: 1_700_000_000_000 },
  };
  const waiting = fold([status({ status: 'waiting' }), open]);
  t.like(waiting, { state: 'waiting', round: 4, roundClosesAt: 1_700_000_000_000 });
  const closed = fold(
    [
      {
        type: 'round',
        data: { round: 4, selected: false, uploaded: false, outcome: 'aggregated', updates: 2 },
      },
    ],
    waiting,
  );
  t.is(closed.roundClosesAt, undefined);
  const otherRound = fold([{ type: 'round', data: { round: 3, selected: false, uploaded: false } }], waiting);
  t.is(otherRound, waiting, "an older round's record leaves the open round's deadline");
});

test('after a crash, starting again leaves the crash shown until the participant says where it is', (t) => {
  const crashed = fold([
    status({ status: 'training', round: 1 }),
    { type: 'app:stopped', state: 'crashed', message: 'the training worker was killed by SIGKILL' },
  ]);
  t.is(reduceLiveStatus(crashed, { type: 'app:starting' }), crashed);
  t.is(fold([status({ status: 'connecting' })], crashed).state, 'connecting');
});

test('the device is where the trainer started, whatever the settings asked for', (t) => {
  const asked = fold([{ type: 'app:device', device: 'webgpu' }]);
  t.is(asked.device, 'webgpu');
  t.is(fold([{ type: 'device', data: 'cpu' }], asked).device, 'cpu');
  t.is(fold([{ type: 'device', data: 'cuda' }], asked).device, 'cpu', 'what the page cannot name is the CPU');
  t.is(
    reduceLiveStatus(asked, { type: 'app:device', device: 'webgpu' }),
    asked,
    'no change, the same status',
  );
});

test('leaving the federation forgets the round and the chart, not the device', (t) => {
  const training = fold([
    { type: 'app:device', device: 'webgpu' },
    status({ status: 'training', round: 2 }),
    trainingStep(2, 1, 2),
  ]);
  t.deepEqual(fold([{ type: 'app:left' }], training), { state: 'idle', device: 'webgpu', losses: [] });
});

test('events the status does not show leave it as it is, and no event changes the status it is given', (t) => {
  const before = deepFreeze(fold([status({ status: 'training', round: 1 }), trainingStep(1, 1, 2)]));
  const unshown: ParticipantEvent[] = [
    { type: 'round', data: { round: 1, selected: true, uploaded: true } },
    { type: 'warning', data: 'the coordinator is slow' },
    { type: 'connection', data: 'ready' },
  ];
  for (const event of unshown) t.is(reduceLiveStatus(before, event), before, event.type);
  // Every kind of event on a frozen status: a fold that wrote into it would throw.
  t.notThrows(() =>
    fold(
      [
        trainingStep(1, 2, 1),
        { type: 'round-open', data: { round: 2, selected: true, deadline: 0 } },
        status({ status: 'uploading', round: 1 }),
        { type: 'device', data: 'webgpu' },
        { type: 'app:paused', by: 'you' },
        { type: 'app:starting' },
        { type: 'app:stopped', state: 'error', message: 'x' },
        { type: 'app:left' },
      ],
      before,
    ),
  );
  t.deepEqual(before.losses, [2]);
});
