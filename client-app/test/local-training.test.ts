// The participant's whole local path on a tiny model written in the test (Hugging Face format, a
// real tokenizer.json): data file -> train -> adapter folder -> eval -> generate, plus resume after
// an interruption and after kill -9.

import test from 'ava';
import { writeTinyChatModel } from '../../test/fixtures/tiny-federation.ts';
import {
  copyFileSync,
  existsSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  rmSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { assertCleanFailure, fedit as runFedit, startFedit } from '../../test/fixtures/fedit-cli.ts';
import { readAdapter, tensorToF32 } from '@fedit/shared';
import {
  evaluateDataset,
  openChatSession,
  runLocalTraining,
  type LocalTrainingOptions,
  type TrainingEvent,
} from '../src/core/index.ts';

const FACTS = [
  ['capital of France', 'Paris'],
  ['color of the sky', 'blue'],
  ['opposite of hot', 'cold'],
  ['first letter', 'A'],
  ['number after one', 'two'],
  ['animal that barks', 'dog'],
];

async function workspace() {
  const dir = mkdtempSync(join(tmpdir(), 'fedit-local-'));
  const modelDir = join(dir, 'model');
  await writeTinyChatModel(modelDir);
  const data = join(dir, 'facts.jsonl');
  const lines = FACTS.map(([q, a]) =>
    JSON.stringify({
      messages: [
        { role: 'user', content: `The ${q}?` },
        { role: 'assistant', content: a },
      ],
    }),
  );
  lines.splice(2, 0, '{"messages": [{"role": "user", "content": "no answer"}]}'); // bad row: no assistant turn
  writeFileSync(data, lines.join('\n') + '\n');
  return { dir, modelDir, data, cleanup: () => rmSync(dir, { recursive: true, force: true }) };
}

function options(
  w: { dir: string; modelDir: string; data: string },
  overrides: Partial<LocalTrainingOptions> = {},
): LocalTrainingOptions {
  return {
    modelDir: w.modelDir,
    dataFiles: [w.data],
    adapterOut: join(w.dir, 'adapter'),
    lora: {
      rank: 8,
      alpha: 16,
      dropout: 0,
      targets: ['q_proj', 'k_proj', 'v_proj', 'o_proj', 'gate_proj', 'up_proj', 'down_proj'],
    },
    template: 'chat',
    cutoffLen: 64,
    batchSize: 6,
    epochs: 60,
    lr: 1e-2,
    schedule: 'constant',
    seed: 1,
    threads: 1,
    ...overrides,
  };
}

test('data file -> train -> adapter -> eval -> generate: the adapter learned the answers', async (t) => {
  const w = await workspace();
  try {
    const events: TrainingEvent[] = [];
    const result = await runLocalTraining(options(w, { onEvent: (e) => events.push(e) }));
    t.true(result.completed);
    t.is(result.report.skipped.total, 1, 'the bad row is reported, not fatal');
    t.regex(result.report.skipped.rows[0].reason, /no response to learn/);
    t.is(result.report.skipped.rows[0].source.line, 3);
    t.true(
      result.losses[0] > 2 && result.losses.at(-1)! < 0.05,
      `loss ${result.losses[0]} -> ${result.losses.at(-1)}`,
    );
    t.truthy(events.find((e) => e.type === 'done'));
    t.false(
      existsSync(`${join(w.dir, 'adapter')}.checkpoint`),
      'the checkpoint is removed once the adapter is written',
    );

    const adapter = await readAdapter(join(w.dir, 'adapter'));
    t.is(adapter.config.rank, 8);
    t.is(adapter.metadata.extra?.template, 'chat');

    const base = await evaluateDataset({
      modelDir: w.modelDir,
      dataFiles: [w.data],
      template: 'chat',
      cutoffLen: 64,
      batchSize: 4,
      threads: 1,
    });
    const tuned = await evaluateDataset({
      modelDir: w.modelDir,
      adapterDir: join(w.dir, 'adapter'),
      dataFiles: [w.data],
      cutoffLen: 64,
      batchSize: 4,
      threads: 1,
    });
    t.is(tuned.template, 'chat', "eval takes the adapter's template");
    t.log(`eval loss: base ${base.loss.toFixed(3)}, with adapter ${tuned.loss.toFixed(4)}`);
    t.true(tuned.loss < 0.05 && base.loss > 2);

    const chat = await openChatSession({
      modelDir: w.modelDir,
      adapterDir: join(w.dir, 'adapter'),
      threads: 1,
    });
    for (const [q, a] of FACTS.slice(0, 3)) {
      let reply = '';
      for await (const piece of chat.reply(`The ${q}?`, { maxNewTokens: 20 })) reply += piece;
      t.is(reply, a);
    }
    await chat.close();
  } finally {
    w.cleanup();
  }
});

test('an interrupted run resumes from its checkpoint and ends exactly where an uninterrupted one does', async (t) => {
  const w = await workspace();
  try {
    const settings = {
      epochs: 4,
      lr: 5e-3,
      lora: { rank: 4, alpha: 8, dropout: 0.1, targets: ['q_proj', 'v_proj'] as ('q_proj' | 'v_proj')[] },
    };
    await runLocalTraining(options(w, { ...settings, adapterOut: join(w.dir, 'straight') }));

    const controller = new AbortController();
    const first = await runLocalTraining(
      options(w, {
        ...settings,
        adapterOut: join(w.dir, 'resumed'),
        signal: controller.signal,
        onEvent: (e) => e.type === 'step' && e.step === 2 && controller.abort(),
      }),
    );
    t.false(first.completed);
    t.is(first.steps, 2);
    t.true(existsSync(join(w.dir, 'resumed.checkpoint', 'progress.json')));

    const events: TrainingEvent[] = [];
    const second = await runLocalTraining(
      options(w, { ...settings, adapterOut: join(w.dir, 'resumed'), onEvent: (e) => events.push(e) }),
    );
    t.true(second.completed);
    t.deepEqual(
      events.find((e) => e.type === 'resumed'),
      { type: 'resumed', step: 2 },
    );

    const a = await readAdapter(join(w.dir, 'straight'));
    const b = await readAdapter(join(w.dir, 'resumed'));
    for (const [name, tensor] of a.tensors)
      t.deepEqual(Array.from(tensorToF32(tensor)), Array.from(tensorToF32(b.tensors.get(name)!)), name);

    // a checkpoint of another run is not silently continued
    await runLocalTraining(
      options(w, { ...settings, adapterOut: join(w.dir, 'other'), signal: AbortSignal.abort() }),
    );
    await t.throwsAsync(
      runLocalTraining(options(w, { ...settings, lr: 1e-3, adapterOut: join(w.dir, 'other') })),
      { message: /checkpoint of a different run/ },
    );
    t.true(
      (
        await runLocalTraining(
          options(w, { ...settings, lr: 1e-3, adapterOut: join(w.dir, 'other'), restart: true }),
        )
      ).completed,
    );
  } finally {
    w.cleanup();
  }
});

test('fedit train, eval and generate from the command line, with clear errors for bad input', async (t) => {
  const w = await workspace();
  try {
    const out = join(w.dir, 'cli-adapter');
    const train = await runFedit(
      ...[
        'train',
        '--model',
        w.modelDir,
        '--data',
        w.data,
        '--adapter-out',
        out,
        '--template',
        'chat',
        '--cutoff-len',
        '64',
        // The settings of the core test above, so that the adapter learns the answers.
        ...['--rank', '8', '--alpha', '16', '--dropout', '0'],
        ...['--targets', 'q_proj,k_proj,v_proj,o_proj,gate_proj,up_proj,down_proj'],
        ...['--batch-size', '6', '--epochs', '60', '--lr', '1e-2', '--schedule', 'constant'],
        '--eval-fraction',
        '0',
        '--threads',
        '1',
      ],
    );
    t.is(train.code, 0, train.stderr);
    t.regex(train.stderr, /facts\.jsonl:3: .*no response to learn/);
    t.regex(train.stderr, /adapter written to/);
    t.true(existsSync(join(out, 'adapter_model.safetensors')));

    const ev = await runFedit(
      ...['eval', '--model', w.modelDir, '--adapter', out, '--data', w.data, '--cutoff-len', '64', '--json'],
    );
    t.is(ev.code, 0, ev.stderr);
    const r = JSON.parse(ev.stdout) as { loss: number; examples: number; skipped: number };
    t.is(r.examples, FACTS.length);
    t.is(r.skipped, 1);
    t.true(Number.isFinite(r.loss));
    t.regex(ev.stderr, /facts\.jsonl:3: .*no response to learn/, 'eval says which rows it left out');

    // generate answers with the trained adapter (greedy, in the adapter's template) what it
    // learned; without the adapter the base model does not.
    for (const [q, a] of FACTS.slice(0, 3)) {
      const gen = await runFedit(
        ...['generate', '--model', w.modelDir, '--adapter', out, '--prompt', `The ${q}?`],
        ...['--max-new-tokens', '20', '--threads', '1'],
      );
      t.is(gen.code, 0, gen.stderr);
      t.is(gen.stdout, `${a}\n`, `fedit generate "The ${q}?"`);
    }
    const base = await runFedit(
      ...['generate', '--model', w.modelDir, '--prompt', `The ${FACTS[0][0]}?`, '--max-new-tokens', '5'],
    );
    t.is(base.code, 0, base.stderr);
    t.not(base.stdout, `${FACTS[0][1]}\n`, 'the base model alone does not know the answer');

    const badNumber = await runFedit(...['train', '--model', w.modelDir, '--data', w.data, '--lr', 'fast']);
    t.is(badNumber.code, 2); // exit-codes.ts: usage
    t.regex(badNumber.stderr, /--lr must be a number/);
    const missingData = await runFedit(
      ...['train', '--model', w.modelDir, '--data', join(w.dir, 'nope.jsonl')],
    );
    t.is(missingData.code, 65); // bad input
    t.regex(missingData.stderr, /nope\.jsonl/);
    t.notRegex(missingData.stderr, /\n\s+at /, 'no stack trace');
    const notAModel = await runFedit(...['eval', '--model', w.dir, '--data', w.data]);
    t.is(notAModel.code, 65);
    t.regex(notAModel.stderr, /has no config\.json: a model folder is a Hugging Face model/);
  } finally {
    w.cleanup();
  }
});

test('--adapter-out at a folder holding the data is refused before training and deletes nothing', async (t) => {
  const w = await workspace();
  try {
    const work = join(w.dir, 'work');
    mkdirSync(work);
    const data = join(work, 'data.jsonl');
    copyFileSync(w.data, data);
    const before = readFileSync(data, 'utf8');
    const r = await runFedit(
      ...['train', '--model', w.modelDir, '--data', data, '--adapter-out', work, '--template', 'chat'],
      ...['--cutoff-len', '64', '--max-steps', '1', '--threads', '1'],
    );
    assertCleanFailure(
      t,
      r,
      new RegExp(`^fedit: ${escapeRegExp(work)}: holds data\\.jsonl, which is not part of an adapter`),
      65,
    );
    t.notRegex(r.stderr, /no response to learn|step/, 'refused before the data report or any step');
    t.deepEqual(readdirSync(work), ['data.jsonl']);
    t.is(readFileSync(data, 'utf8'), before);
    t.false(existsSync(`${work}.checkpoint`));
  } finally {
    w.cleanup();
  }
});

test('a bad --adapter-out fails before any training; an earlier adapter there is replaced', async (t) => {
  const w = await workspace();
  try {
    const events: TrainingEvent[] = [];
    const onEvent = (e: TrainingEvent) => events.push(e);
    const file = join(w.dir, 'a-file');
    writeFileSync(file, 'not a folder');
    for (const adapterOut of [file, join(file, 'adapter')]) {
      await t.throwsAsync(runLocalTraining(options(w, { adapterOut, maxSteps: 1, onEvent })), {
        message: new RegExp(`^${escapeRegExp(adapterOut)}: `),
      });
    }
    t.deepEqual(events, [], 'nothing loaded, nothing trained');
    t.is(readFileSync(file, 'utf8'), 'not a folder');

    const adapterOut = join(w.dir, 'adapter');
    const first = await runLocalTraining(options(w, { adapterOut, maxSteps: 1 }));
    t.true(first.completed);
    writeFileSync(join(adapterOut, 'README.md'), '# model card\n');
    const firstHash = (await readAdapter(adapterOut)).hash;
    const second = await runLocalTraining(options(w, { adapterOut, maxSteps: 2 }));
    t.true(second.completed);
    t.deepEqual(readdirSync(adapterOut).sort(), [
      'adapter_config.json',
      'adapter_model.safetensors',
      'trainer_state.json',
    ]);
    t.not((await readAdapter(adapterOut)).hash, firstHash, "the second run's adapter replaced the first");
  } finally {
    w.cleanup();
  }
});

function escapeRegExp(text: string): string {
  return text.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
}

test('fedit train killed with SIGKILL mid-run resumes from its last checkpoint when run again', async (t) => {
  const w = await workspace();
  try {
    const out = join(w.dir, 'killed');
    const args = [
      'train',
      '--model',
      w.modelDir,
      '--data',
      w.data,
      '--adapter-out',
      out,
      '--template',
      'chat',
      '--cutoff-len',
      '64',
      '--max-steps',
      '1000',
      '--checkpoint-every',
      '5',
      '--eval-fraction',
      '0',
      '--threads',
      '1',
    ];
    const child = startFedit(...args);
    // Wait until a whole checkpoint exists, then kill without warning. progress.json is written
    // after the state file and is what names a complete checkpoint; waiting for the state file
    // alone raced with it (the kill could land between the two writes).
    const checkpointDir = `${out}.checkpoint`;
    const progressFile = join(checkpointDir, 'progress.json');
    for (let i = 0; i < 2400 && !existsSync(progressFile); i++) {
      await new Promise((r) => setTimeout(r, 50));
    }
    child.kill('SIGKILL');
    await new Promise((r) => child.once('exit', r));
    t.true(existsSync(progressFile), 'a checkpoint was written before the kill');
    const again = await runFedit(...args);
    t.is(again.code, 0, again.stderr);
    const resumedAt = /resumed from the checkpoint at step (\d+)/.exec(again.stderr);
    t.truthy(resumedAt, again.stderr);
    t.true(Number(resumedAt![1]) >= 5);
    const adapter = await readAdapter(out);
    t.is(adapter.metadata.extra?.steps, '1000');
  } finally {
    w.cleanup();
  }
});

test('Ctrl-C (SIGINT) stops fedit train after the current step with a checkpoint to resume from', async (t) => {
  const w = await workspace();
  try {
    const out = join(w.dir, 'interrupted');
    const args = [
      'train',
      '--model',
      w.modelDir,
      '--data',
      w.data,
      '--adapter-out',
      out,
      '--template',
      'chat',
      '--cutoff-len',
      '64',
      '--max-steps',
      '5000',
      '--eval-fraction',
      '0',
      '--threads',
      '1',
    ];
    const child = startFedit(...args);
    let stderr = '';
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    for (let i = 0; i < 2400 && !/step \d+\/5000/.test(stderr); i++)
      await new Promise((r) => setTimeout(r, 50));
    child.kill('SIGINT');
    const code = await new Promise((r) => child.once('exit', r));
    t.is(code, 130, stderr);
    const stopped = /stopped at step (\d+)/.exec(stderr);
    t.truthy(stopped, stderr);
    t.true(existsSync(join(`${out}.checkpoint`, 'progress.json')));
    t.false(existsSync(join(out, 'adapter_model.safetensors')), 'no adapter before training ends');
  } finally {
    w.cleanup();
  }
});
