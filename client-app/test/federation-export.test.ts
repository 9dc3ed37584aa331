// The federation's result as a person takes it away: after a real federation on loopback (a
// coordinator and two participants, one round), `fedit coordinator export` (from the federation
// folder) and `fedit client export` (from a participant's adapter cache) each write a PEFT adapter
// folder: adapter_config.json as PEFT writes it, PEFT's tensor names and shapes, the template and
// base-model identity in the safetensors metadata, and a model card whose audit command verifies
// when run. `fedit eval` on the folder, given no --template, scores with the federation's template.

import test, { type ExecutionContext } from 'ava';
import { readFile, readdir } from 'node:fs/promises';
import { join } from 'node:path';
import { federationPaths, hashTensors, readRoundLog, readSafetensorsFile } from '@fedit/shared';
import { fedit, type Run } from '../../test/fixtures/fedit-cli.ts';
import { listMemberships, recordRoundResult } from '../src/core/federation/index.ts';
import { aliceAndBob, tinyLoopbackFederation } from './fixtures/loopback.ts';

const ok = (t: ExecutionContext, r: Run) => t.is(r.code, 0, `stderr:\n${r.stderr}`);

/** A refusal as a person sees it: a failing exit code and one "fedit: ..." line that says why. */
function refused(t: ExecutionContext, r: Run, why: RegExp): void {
  t.not(r.code, 0, `should have failed; stdout:\n${r.stdout}`);
  t.regex(r.stderr.split('\n')[0], why);
  t.notRegex(r.stderr, /^\s+at /m, 'no stack trace');
}

/** The folder's files: its config, its tensors (names, shapes, metadata, hash) and its card. */
async function readExport(dir: string) {
  const config = JSON.parse(await readFile(join(dir, 'adapter_config.json'), 'utf8')) as Record<
    string,
    unknown
  >;
  const weights = await readSafetensorsFile(join(dir, 'adapter_model.safetensors'));
  const card = await readFile(join(dir, 'README.md'), 'utf8');
  return { files: (await readdir(dir)).sort(), config, weights, hash: hashTensors(weights.tensors), card };
}

test('a finished federation exports as PEFT folders on both sides, which fedit eval scores with its template', async (t) => {
  const fed = await tinyLoopbackFederation(t, { name: 'export test' });
  const { dir, modelDir, fedDir, coordinator } = fed;
  const { homes, data, run } = await aliceAndBob(fed);
  const results = await run();
  await coordinator.close();
  const { records } = await readRoundLog(federationPaths(fedDir).log);
  const closed = records.find((r) => r.kind === 'round-closed');
  if (closed?.kind !== 'round-closed') return t.fail(`no round closed: ${JSON.stringify(results)}`);
  const [{ federation }] = await listMemberships(homes[0]);
  const settings = JSON.parse(await readFile(join(fedDir, 'federation.json'), 'utf8')) as {
    baseModel: { identity: string };
  };

  // ---- the operator's export ---------------------------------------------------------------
  const operatorOut = join(dir, 'operator-adapter');
  ok(t, await fedit('coordinator', 'export', fedDir, '--out', operatorOut));
  const exported = await readExport(operatorOut);
  t.deepEqual(exported.files, ['README.md', 'adapter_config.json', 'adapter_model.safetensors']);
  t.like(exported.config, {
    peft_type: 'LORA',
    r: 4,
    lora_alpha: 8,
    lora_dropout: 0,
    target_modules: ['q_proj', 'v_proj'],
    task_type: 'CAUSAL_LM',
    base_model_name_or_path: 'tiny-test',
  });
  // PEFT's names and shapes: lora_A [r, in], lora_B [out, r] for each target in each layer.
  const names = [...exported.weights.tensors.keys()];
  t.true(names.length > 0 && names.length % 4 === 0, names.join(', '));
  for (const [name, tensor] of exported.weights.tensors) {
    t.regex(name, /^base_model\.model\.model\.layers\.\d+\.self_attn\.[qv]_proj\.lora_[AB]\.weight$/);
    t.is(tensor.dtype, 'F32');
    if (name.includes('lora_A')) t.is(tensor.shape[0], 4, name);
    else t.is(tensor.shape[1], 4, name);
  }
  // The tensors are the round's global adapter bit for bit: the log's hash names this folder.
  t.is(exported.hash, closed.body.globalAdapterOut);
  t.is(results[0].history.at(-1)?.adapterHash, exported.hash);
  t.like(exported.weights.metadata, {
    format: 'pt',
    'fedit.template': 'chat',
    'fedit.base_model_identity': settings.baseModel.identity,
    'fedit.federation': federation,
    'fedit.round': String(closed.round),
    'fedit.log_head': records.at(-1)!.hash,
  });
  // The card: federation, rounds, rule, contributions, log head, and an audit command that verifies.
  for (const part of [
    'export test',
    federation,
    `after round ${closed.round}`,
    `| rule | \`${closed.body.rule.name}\``,
    `| contributions | ${closed.body.updates.length} counted updates`,
    records.at(-1)!.hash,
    'prompt template | chat',
  ])
    t.true(exported.card.includes(part), `card lacks ${part}:\n${exported.card}`);
  const audit = /```sh\n(fedit audit [^\n]+)\n```/.exec(exported.card)?.[1];
  if (!audit) return t.fail(exported.card);
  const verified = await fedit(...audit.split(' ').slice(1));
  ok(t, verified);
  t.regex(verified.stdout, /OK|ok|verified/);

  // ---- a participant's export, from its adapter cache ----------------------------------------
  const participantOut = join(dir, 'alice-adapter');
  const clientRun = await fedit('client', 'export', '--home', homes[0], '--out', participantOut, '--json');
  ok(t, clientRun);
  t.like(JSON.parse(clientRun.stdout), {
    federation,
    round: closed.round,
    adapterHash: closed.body.globalAdapterOut,
    template: 'chat',
    roundsAggregated: 1,
    contributions: closed.body.updates.length,
    logHead: null,
  });
  const own = await readExport(participantOut);
  t.is(own.hash, exported.hash);
  t.deepEqual(own.config, exported.config);
  t.is(own.weights.metadata['fedit.template'], 'chat');
  t.true(own.card.includes(`fedit audit FOLDER --key ${audit.split('--key ')[1]}`), own.card);

  // ---- fedit eval uses the folder's template by itself; an explicit --template still wins -----
  const evalJson = async (...extra: string[]) => {
    const r = await fedit(
      'eval',
      '--model',
      modelDir,
      '--adapter',
      participantOut,
      '--data',
      data[0],
      '--threads',
      '1',
      '--json',
      ...extra,
    );
    ok(t, r);
    return JSON.parse(r.stdout) as { loss: number; template: string };
  };
  const [byItself, chat, alpaca] = [
    await evalJson(),
    await evalJson('--template', 'chat'),
    await evalJson('--template', 'alpaca'),
  ];
  t.is(byItself.template, 'chat');
  t.is(byItself.loss, chat.loss);
  t.is(alpaca.template, 'alpaca');
  t.not(alpaca.loss, chat.loss);

  // ---- fedit export --merge carries the template into the merged model and says it ------------
  const merged = await fedit(
    'export',
    '--model',
    modelDir,
    '--adapter',
    participantOut,
    '--out',
    join(dir, 'merged'),
    '--merge',
  );
  ok(t, merged);
  t.regex(merged.stdout, /prompt template chat/);
  const mergedWeights = await readSafetensorsFile(join(dir, 'merged', 'model.safetensors'));
  t.is(mergedWeights.metadata['fedit.template'], 'chat');

  // ---- refusals, named ------------------------------------------------------------------------
  refused(
    t,
    await fedit('coordinator', 'export', fedDir, '--round', '7', '--out', join(dir, 'r7')),
    /--round 7: that round has not aggregated/,
  );
  refused(t, await fedit('coordinator', 'export', fedDir, '--out', operatorOut), /already holds files/);
  refused(
    t,
    await fedit('client', 'export', '--home', homes[0], '--federation', 'nosuch', '--out', join(dir, 'n')),
    /has not joined federation "nosuch"/,
  );
  await recordRoundResult(homes[0], federation, {
    round: 2,
    outcome: 'aborted',
    adapterHash: exported.hash,
    updates: 0,
  });
  refused(
    t,
    await fedit('client', 'export', '--home', homes[0], '--round', '2', '--out', join(dir, 'r2')),
    /--round 2: that round was aborted/,
  );
});
