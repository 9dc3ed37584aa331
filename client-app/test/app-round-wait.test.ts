// Why the computer waits, in words (renderer/src/round-wait.ts, pure): when the open round closes
// and how many updates it needs, from the coordinator's deadline and the federation's settings;
// nothing while paused or not taking part.

import test from 'ava';
import type { AppState, FederationSummary, LiveStatus } from '../src/app/api.ts';
import { initialLiveStatus } from '../src/app/live-status.ts';
import { roundWaitSentence } from '../renderer/src/round-wait.ts';

const NOW = Date.UTC(2026, 0, 5, 9, 0, 0);

function app(status: Partial<LiveStatus>, round: FederationSummary['round'] = { minUpdates: 2 }): AppState {
  return {
    settings: {
      device: 'cpu',
      maxThreads: 0,
      onlyWhenPluggedIn: false,
      onlyWhenIdle: false,
      displayName: '',
    },
    federation: { rounds: 5, round } as FederationSummary,
    status: { ...initialLiveStatus(), ...status },
    history: [],
    logsDir: '/logs',
    gpuAvailable: false,
    homeDir: '/home',
    cpuThreads: 2,
  };
}

const clock = (ms: number) => new Date(ms).toLocaleTimeString([], { hour: '2-digit', minute: '2-digit' });

test('an open round says when it closes, how long that is, and what it needs to count', (t) => {
  const closesAt = NOW + 12 * 60_000;
  t.is(
    roundWaitSentence(app({ state: 'waiting', round: 3, roundClosesAt: closesAt }), NOW),
    `This round closes at ${clock(closesAt)} (in about 12 minutes); it counts once 2 updates arrive.`,
  );
  t.is(
    roundWaitSentence(
      app({ state: 'done-round', round: 3, roundClosesAt: NOW + 30_000 }, { minUpdates: 1 }),
      NOW,
    ),
    `This round closes at ${clock(NOW + 30_000)} (in less than a minute); it counts once 1 update arrives.`,
  );
  t.is(
    roundWaitSentence(app({ state: 'training', round: 3, roundClosesAt: closesAt }, {}), NOW),
    `This round closes at ${clock(closesAt)} (in about 12 minutes).`,
  );
});

test('between rounds it says what the next round needs; paused, stopped or finished it says nothing', (t) => {
  t.is(
    roundWaitSentence(app({ state: 'waiting' }), NOW),
    'When the coordinator opens the next round, it counts once 2 updates arrive.',
  );
  for (const state of ['paused', 'idle', 'finished', 'error', 'connecting'] as const) {
    t.is(roundWaitSentence(app({ state, round: 3, roundClosesAt: NOW + 60_000 }), NOW), '', state);
  }
  t.is(roundWaitSentence({ ...app({ state: 'waiting' }), federation: undefined }, NOW), '');
});
