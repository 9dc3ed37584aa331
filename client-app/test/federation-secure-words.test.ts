// What a person reads, before joining, about what the coordinator can see of their update: the
// same facts in `fedit client join` (formatInspection) and in the app's privacy list (summarize),
// from the federation's config. Without secure aggregation the coordinator reads each update; with
// it, only the sum of a round's updates and the total of their example counts, and only while
// more than the threshold of each participant's share holders remain.
import test from 'ava';
import type { FederationConfig } from '@fedit/shared';
import { formatInspection } from '../src/cli/client.ts';
import { summarize } from '../src/app/federation-summary.ts';
import { parseFederationSettings, type InviteInspection } from '../src/core/federation/index.ts';

const BASE: FederationConfig = {
  id: 'fed-secure-words',
  name: 'words',
  baseModel: { identity: `sha256:${'cd'.repeat(32)}`, name: 'tiny' },
  lora: { rank: 8, alpha: 16, dropout: 0, targets: ['q_proj', 'v_proj'] },
  training: {
    localSteps: 30,
    batchSize: 4,
    lr: 2e-3,
    cutoffLen: 64,
    template: 'alpaca',
    trainOnInputs: false,
  },
  rounds: 8,
  participantsPerRound: { fraction: 1, minimum: 3 },
  roundDeadlineSeconds: 600,
  minUpdates: 3,
  aggregation: { rule: 'fedit', weightCap: 120 },
  limits: { maxUpdateNorm: 1000, maxUploadBytes: 1 << 20, maxExampleCount: 1000 },
};

const SECURE = {
  graph: 'secagg+' as const,
  thresholdFraction: 0.7,
  clipRange: 0.5,
  scaleBits: 12,
  maxParticipants: 100,
  phaseSeconds: 60,
};

const settingsOf = (secure: boolean) =>
  parseFederationSettings(JSON.stringify({ ...BASE, ...(secure && { secureAggregation: SECURE }) }));

const inspect = (secure: boolean) =>
  formatInspection({
    federation: BASE.id,
    url: 'http://127.0.0.1:7150',
    coordinatorFingerprint: 'ab'.repeat(16),
    settings: settingsOf(secure),
  } as InviteInspection);

test('client join says the coordinator can read each update, unless the federation is secure', (t) => {
  const plain = inspect(false);
  t.regex(plain, /the coordinator can read it\./);
  t.notRegex(plain, /secure aggregation/);
  const secure = inspect(true).replace(/\n/g, ' ');
  t.notRegex(secure, /the coordinator can read it/);
  t.regex(secure, /masked here \(secure aggregation\)/);
  t.regex(
    secure,
    /sees only the sum of the round's updates and the total of their example counts, never yours alone/,
  );
  t.regex(
    secure,
    /more than 70% of the participants your update is masked with stay; below that the round stops/,
  );
});

test("the app's privacy list says the same, and drops what a secure round does not send", (t) => {
  const plain = summarize(settingsOf(false), 'http://127.0.0.1:7150', 'ab'.repeat(16)).privacy;
  t.true(plain.some((l) => /Your individual update is visible to the federation's organiser/.test(l)));
  t.true(plain.some((l) => /With each update goes the number of examples/.test(l)));
  const secure = summarize(settingsOf(true), 'http://127.0.0.1:7150', 'ab'.repeat(16)).privacy;
  t.false(secure.some((l) => /individual update is visible/.test(l)));
  t.false(
    secure.some((l) => /With each update goes/.test(l)),
    'no per-participant count or figures are sent',
  );
  t.true(
    secure.some((l) => /only the sum of a round's updates, never yours alone/.test(l) && /±0\.5/.test(l)),
  );
  t.true(secure.some((l) => /learns only the total of the round/.test(l)));
  t.true(secure.some((l) => /unless the organiser also controls enough of the other participants/.test(l)));
});
