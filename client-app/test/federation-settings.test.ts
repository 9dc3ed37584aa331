// A participant trains under the settings the coordinator announces by hash: what 'federation:info'
// answers must hash to the configHash that comes with it, or the participant refuses it.
import test from 'ava';
import { configHash, type FederationConfig } from '@fedit/shared';
import { FederationError, parseFederationInfo } from '../src/core/federation/index.ts';

const CONFIG: FederationConfig = {
  id: 'fed-settings',
  name: 'settings by hash',
  baseModel: { identity: `sha256:${'cd'.repeat(32)}`, name: 'tiny' },
  lora: { rank: 4, alpha: 8, dropout: 0, targets: ['q_proj', 'v_proj'] },
  training: { localSteps: 3, batchSize: 2, lr: 2e-3, cutoffLen: 64, template: 'chat', trainOnInputs: false },
  rounds: 2,
  participantsPerRound: { fraction: 1, minimum: 1 },
  roundDeadlineSeconds: 60,
  minUpdates: 1,
  aggregation: { rule: 'fedit' },
  limits: { maxUpdateNorm: 1000, maxUploadBytes: 1 << 20, maxExampleCount: 1000 },
};

test('settings that hash to the announced config hash are taken, field for field', (t) => {
  const settings = parseFederationInfo(
    { config: JSON.stringify(CONFIG), configHash: configHash(CONFIG) },
    'the settings of federation fed-settings',
  );
  t.is(settings.training.lr, 2e-3);
  t.deepEqual(settings.lora.targets, ['q_proj', 'v_proj']);
});

test('settings altered on the way (a learning rate ten times higher) are refused, naming both hashes', (t) => {
  const announced = configHash(CONFIG);
  const altered = { ...CONFIG, training: { ...CONFIG.training, lr: 2e-2 } };
  const err = t.throws(
    () => parseFederationInfo({ config: JSON.stringify(altered), configHash: announced }, 'the settings'),
    { instanceOf: FederationError },
  );
  t.is(err.code, 'FEDERATION_CONFIG_HASH');
  t.true(err.message.includes(announced));
  t.true(err.message.includes(configHash(altered)));
});

test('a rule this fedit does not implement is no reason for a participant to refuse', (t) => {
  const newer = { ...CONFIG, aggregation: { rule: 'some-rule-from-a-later-fedit' } };
  const settings = parseFederationInfo(
    { config: JSON.stringify(newer), configHash: configHash(newer) },
    'the settings',
  );
  t.is(settings.aggregation.rule, 'some-rule-from-a-later-fedit');
});
