// What a participant is told about differential privacy, before joining (fedit client join, the
// app's pre-join list) and as a member: what DP limits and what it does not hide, and "privacy
// spent so far" read from a round record the coordinator signed; a record not signed by the
// invite's coordinator, or of another kind, is refused rather than shown.

import test from 'ava';
import nacl from 'tweetnacl';
import {
  ZERO_HASH,
  generateIdentity,
  publicIdentity,
  signRoundRecord,
  type FederationConfig,
  type RoundClosedBody,
  type UnsignedRoundRecord,
} from '@fedit/shared';
import { formatInspection } from '../src/cli/client.ts';
import { summarize } from '../src/app/federation-summary.ts';
import { announcedLastClosed } from '../src/core/federation/announced.ts';
import { parseFederationSettings, type InviteInspection } from '../src/core/federation/index.ts';

const BASE: FederationConfig = {
  id: 'fed-dp-words',
  name: 'dp words',
  baseModel: { identity: `sha256:${'cd'.repeat(32)}`, name: 'tiny' },
  lora: { rank: 8, alpha: 16, dropout: 0, targets: ['q_proj'] },
  training: {
    localSteps: 30,
    batchSize: 4,
    lr: 2e-3,
    cutoffLen: 64,
    template: 'alpaca',
    trainOnInputs: false,
  },
  rounds: 8,
  participantsPerRound: { fraction: 0.5, minimum: 3 },
  roundDeadlineSeconds: 600,
  minUpdates: 3,
  aggregation: { rule: 'fedavg-uniform' },
  limits: { maxUpdateNorm: 1000, maxUploadBytes: 1 << 20, maxExampleCount: 1000 },
};
const DP = { clipNorm: 0.5, noiseMultiplier: 1.1, delta: 1e-5, epsilonBudget: 8 };
const dpSettings = parseFederationSettings(JSON.stringify({ ...BASE, differentialPrivacy: DP }));
const plainSettings = parseFederationSettings(JSON.stringify(BASE));

const inspection = (settings: typeof dpSettings, privacySeen?: InviteInspection['privacySeen']) =>
  ({
    invite: {} as InviteInspection['invite'],
    federation: BASE.id,
    url: 'https://coordinator.example',
    coordinatorFingerprint: 'ab'.repeat(16),
    settings,
    configText: '',
    configHash: `sha256:${'0'.repeat(64)}`,
    ...(privacySeen && { privacySeen }),
  }) as InviteInspection;

test('join shows what DP limits, that it does not hide the update from the coordinator, and the epsilon spent', (t) => {
  const text = formatInspection(inspection(dpSettings, { epsilon: '2.34561', round: 3 }));
  t.regex(
    text,
    /each update's change is clipped to 0\.5 and the coordinator adds Gaussian noise\n\(σ = 1\.1\) to their mean/,
  );
  t.regex(text, /It does not hide your update from the coordinator\./);
  // Rounded up, never down: the line must not say less than was spent.
  t.regex(
    text,
    /privacy spent so far: ε = 2\.346 at δ = 0\.00001 \(budget 8\), after round 3 \(from the last round record/,
  );
  t.regex(
    formatInspection(inspection(dpSettings)),
    /ε = 0 at δ = 0\.00001 \(budget 8\), the coordinator has shown no closed round yet/,
  );
  t.regex(
    formatInspection(inspection(plainSettings)),
    /no differential privacy: the shared adapters carry no noise\./,
  );
});

test("the app's privacy list says the same, and keeps saying updates are not hidden without DP", (t) => {
  const dp = summarize(dpSettings, 'https://c', 'ab'.repeat(16), undefined, {
    epsilon: '1',
    round: 2,
  }).privacy;
  t.true(
    dp.some((l) =>
      /it is not hidden by secure aggregation\. Differential privacy does not hide it from the organiser either\./.test(
        l,
      ),
    ),
  );
  const line = dp.find((l) => l.startsWith('Differential privacy:'))!;
  t.regex(
    line,
    /limited to a size of 0\.5, and the coordinator adds random noise \(1\.1 times that size in all\)/,
  );
  t.regex(
    line,
    /privacy spent so far: ε = 1 at δ = 0\.00001 \(budget 8\), after round 2\. The federation stops before ε would exceed 8\./,
  );
  const plain = summarize(plainSettings, 'https://c', 'ab'.repeat(16)).privacy;
  t.true(plain.some((l) => /not hidden by secure aggregation or differential privacy/.test(l)));
  t.false(plain.some((l) => l.startsWith('Differential privacy:')));
});

test('a last-closed record not signed by the invite’s coordinator, or of another kind, is refused', (t) => {
  const coordinator = generateIdentity();
  const trust = { federation: BASE.id, coordinator: publicIdentity(coordinator) };
  const body = {
    rule: { name: 'fedavg-uniform', config: {} },
    selection: { seed: 's', fraction: '0.5', minimum: 3, selected: ['a'] },
    updates: [],
    globalAdapterIn: `sha256:${'1'.repeat(64)}`,
    globalAdapterOut: `sha256:${'2'.repeat(64)}`,
    dropped: [],
    metrics: {},
    privacy: {
      noise: 'central',
      sampled: { selected: 1, eligible: 2 },
      noiseMultiplier: '1.1',
      clipNorm: '0.5',
      delta: '0.00001',
      epsilonRound: '0.5',
      epsilon: '0.5',
      history: [{ selected: 1, eligible: 2, noiseMultiplier: '1.1', rounds: 1 }],
    },
  } as RoundClosedBody;
  const record = (key: Uint8Array, kind = 'round-closed', content: object = body) =>
    signRoundRecord(
      {
        seq: 9,
        federation: BASE.id,
        round: 1,
        kind,
        prevHash: ZERO_HASH,
        time: '2026-05-01T08:00:00.000Z',
        body: content,
      } as UnsignedRoundRecord,
      key,
    );
  const aborted = record(coordinator.sign.secretKey, 'round-aborted', { reason: 'too few', dropped: [] });
  t.throws(() => announcedLastClosed(aborted, trust), {
    code: 'FEDERATION_FORGED',
    message: /is a round-aborted record, where round-closed belongs/,
  });
  t.deepEqual(announcedLastClosed(record(coordinator.sign.secretKey), trust).privacy, {
    epsilon: '0.5',
    delta: '0.00001',
  });
  const stranger = nacl.sign.keyPair();
  t.throws(() => announcedLastClosed(record(stranger.secretKey), trust), {
    code: 'FEDERATION_FORGED',
    message: /not signed by this federation's coordinator/,
  });
  t.throws(
    () =>
      announcedLastClosed(
        {
          ...record(coordinator.sign.secretKey),
          body: { ...body, privacy: { ...body.privacy!, epsilon: '0.01' } },
        },
        trust,
      ),
    { code: 'FEDERATION_FORGED', message: /was altered/ },
  );
});
