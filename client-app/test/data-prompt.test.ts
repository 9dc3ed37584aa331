// Prompt templates and tokens: rows exactly as the trainer sees them, with the loss on response
// tokens only (or on everything with trainOnInputs), cut to cutoffLen as FedIT's Shepherd cuts them.

import test from 'ava';
import {
  IGNORE_INDEX,
  loadTokenizer,
  writeCharTokenizer,
  ASCII_ALPHABET,
  type Tokenizer,
  type TokenRow,
} from '@fedit/kernels';
import {
  buildExamples,
  DatasetError,
  formatReport,
  prepareDataset,
  previewExample,
  renderAlpacaPrompt,
  type Example,
  type TrainingExample,
} from '../src/core/data/index.ts';
import { charTokenizer, jsonl, tempDir, writeData } from './fixtures/data-helpers.ts';

const source = (line: number) => ({ file: 'mem.jsonl', line });

function example(line: number, fields: Omit<Example, 'source'>): Example {
  return { ...fields, source: source(line) };
}

const single = (instruction: string, response: string, input?: string): Example =>
  example(1, {
    turns: [
      input === undefined
        ? { role: 'user', content: instruction }
        : { role: 'user', content: instruction, input },
      { role: 'assistant', content: response },
    ],
  });

/** The decoded runs of consecutive tokens the loss sees. */
function trainedRuns(row: TokenRow, tokenizer: Tokenizer): string[] {
  const runs: string[] = [];
  let run: number[] = [];
  row.labels.forEach((label, t) => {
    if (label !== IGNORE_INDEX) {
      if (label !== row.inputIds[t]) throw new Error(`label ${t} is not the input token`);
      run.push(label);
    } else if (run.length) {
      runs.push(tokenizer.decode(run));
      run = [];
    }
  });
  if (run.length) runs.push(tokenizer.decode(run));
  return runs;
}

function built(examples: Example[], tokenizer: Tokenizer, options: Parameters<typeof buildExamples>[2]) {
  return buildExamples(examples, tokenizer, options);
}

function only(result: { examples: TrainingExample[] }): TrainingExample {
  if (result.examples.length !== 1) throw new Error(`expected one example, got ${result.examples.length}`);
  return result.examples[0];
}

test("alpaca renders Shepherd's template, with and without input", (t) => {
  t.is(
    renderAlpacaPrompt('Translate to French.', 'cheese'),
    'Below is an instruction that describes a task, paired with an input that provides further context. ' +
      'Write a response that appropriately completes the request.\n\n' +
      '### Instruction:\nTranslate to French.\n\n### Input:\ncheese\n\n### Response:\n',
  );
  t.is(
    renderAlpacaPrompt('Add 2 and 3.'),
    'Below is an instruction that describes a task. Write a response that appropriately completes the request.\n\n' +
      '### Instruction:\nAdd 2 and 3.\n\n### Response:\n',
  );
  // '$' patterns in the data are text, not replacement patterns
  t.regex(renderAlpacaPrompt("costs $& and $'", '$1'), /costs \$& and \$'\n\n### Input:\n\$1\n/);
});

test('alpaca labels mask exactly the prompt: the trained tokens decode to the response and EOS', async (t) => {
  const tokenizer = await charTokenizer();
  for (const input of [undefined, 'cheese']) {
    const row = only(
      built([single('Translate to French.', 'fromage', input)], tokenizer, {
        template: 'alpaca',
        cutoffLen: 1024,
      }),
    );
    const prompt = renderAlpacaPrompt('Translate to French.', input);
    t.is(row.inputIds[0], tokenizer.bosTokenId!);
    t.is(row.inputIds.at(-1), tokenizer.eosTokenId!);
    t.deepEqual(row.inputIds, [
      tokenizer.bosTokenId!,
      ...tokenizer.encode(prompt + 'fromage'),
      tokenizer.eosTokenId!,
    ]);
    t.deepEqual(trainedRuns(row, tokenizer), ['fromage<|eos|>']);
    // every prompt token (BOS included) is masked, nothing else
    const masked = row.labels.filter((l) => l === IGNORE_INDEX).length;
    t.is(masked, 1 + tokenizer.encode(prompt).length);
    t.is(row.responseTokens, 'fromage'.length + 1);
    t.false(row.truncated);
    t.is(row.tokenization, 'joint');
    t.is(row.text, prompt + 'fromage<|eos|>');
    t.deepEqual(previewExample(row, tokenizer), [
      { text: `<|bos|>${prompt}`, trained: false },
      { text: 'fromage<|eos|>', trained: true },
    ]);
  }
});

test('previews are runs of trained and read text, so quote marks in the data stay plain text', async (t) => {
  // « and » were once the preview's own markers: French quotes in a prompt or a response broke it.
  const dir = await tempDir(t);
  await writeCharTokenizer(dir, { alphabet: ASCII_ALPHABET + '«»éç' });
  const tokenizer = await loadTokenizer(dir);
  const instruction = 'Traduis «cheese» en français.';
  const response = 'On dit «fromage».';
  const row = only(
    built([single(instruction, response)], tokenizer, { template: 'alpaca', cutoffLen: 1024 }),
  );
  const segments = previewExample(row, tokenizer);
  t.deepEqual(segments, [
    { text: `<|bos|>${renderAlpacaPrompt(instruction)}`, trained: false },
    { text: `${response}<|eos|>`, trained: true },
  ]);
  t.is(segments.map((s) => s.text).join(''), tokenizer.decode(row.inputIds), 'nothing added, nothing lost');

  // Training on the inputs too: one trained run, quotes and all.
  const all = only(
    built([single(instruction, response)], tokenizer, {
      template: 'alpaca',
      cutoffLen: 1024,
      trainOnInputs: true,
    }),
  );
  t.deepEqual(previewExample(all, tokenizer), [{ text: tokenizer.decode(all.inputIds), trained: true }]);
});

test('trainOnInputs trains on every token, as Shepherd train_on_inputs does', async (t) => {
  const tokenizer = await charTokenizer();
  const options = { template: 'alpaca', cutoffLen: 1024 } as const;
  const masked = only(built([single('Say hi.', 'hi')], tokenizer, options));
  const all = only(built([single('Say hi.', 'hi')], tokenizer, { ...options, trainOnInputs: true }));
  t.deepEqual(all.inputIds, masked.inputIds);
  t.deepEqual(all.labels, all.inputIds);
  t.is(all.responseTokens, masked.responseTokens);
});

test('cutoffLen truncates like Shepherd: EOS only when it fits, rows with no response left are skipped', async (t) => {
  const tokenizer = await charTokenizer();
  const ex = single('Say hi.', 'hello there');
  const full = only(built([ex], tokenizer, { template: 'alpaca', cutoffLen: 1024 }));
  const n = full.inputIds.length; // BOS + prompt + response + EOS

  // Room for everything: untouched.
  t.false(only(built([ex], tokenizer, { template: 'alpaca', cutoffLen: n })).truncated);
  // One short: the EOS goes (Shepherd adds EOS only when the text is shorter than cutoff_len).
  const noEos = only(built([ex], tokenizer, { template: 'alpaca', cutoffLen: n - 1 }));
  t.true(noEos.truncated);
  t.deepEqual(noEos.inputIds, full.inputIds.slice(0, n - 1));
  t.deepEqual(trainedRuns(noEos, tokenizer), ['hello there']);
  // Cut inside the response.
  const cut = only(built([ex], tokenizer, { template: 'alpaca', cutoffLen: n - 6 }));
  t.deepEqual(trainedRuns(cut, tokenizer), ['hello ']);
  t.is(cut.inputIds.length, n - 6);
  t.is(cut.fullLength, n);

  // The prompt fills the cutoff: nothing to learn, the row is skipped with a reason.
  const promptLength = n - 'hello there'.length - 1;
  const away = built([ex], tokenizer, { template: 'alpaca', cutoffLen: promptLength });
  t.deepEqual(away.examples, []);
  t.deepEqual(
    away.skipped.map((s) => [s.source.line, s.code, s.reason]),
    [
      [
        1,
        'truncated-away',
        `the prompt alone is ${promptLength} tokens: cutoffLen ${promptLength} leaves no response token to learn`,
      ],
    ],
  );
  // With trainOnInputs too: a row without its response teaches nothing about responses.
  t.is(
    built([ex], tokenizer, { template: 'alpaca', cutoffLen: promptLength, trainOnInputs: true }).examples
      .length,
    0,
  );
});

test('a multi-turn ShareGPT conversation under the chat template trains on assistant turns only', async (t) => {
  const tokenizer = await charTokenizer();
  const dir = await tempDir(t);
  const path = await writeData(
    dir,
    'chat.jsonl',
    jsonl([
      {
        conversations: [
          { from: 'system', value: 'Be brief.' },
          { from: 'human', value: 'Hi' },
          { from: 'gpt', value: 'Hello!' },
          { from: 'human', value: 'Bye' },
          { from: 'gpt', value: 'Goodbye.' },
        ],
      },
    ]),
  );
  const prepared = await prepareDataset([path], { tokens: { tokenizer, template: 'chat', cutoffLen: 512 } });
  const row = prepared.rows!.train[0];
  const text =
    '<|im_start|>system\nBe brief.<|im_end|>\n<|im_start|>user\nHi<|im_end|>\n' +
    '<|im_start|>assistant\nHello!<|im_end|>\n<|im_start|>user\nBye<|im_end|>\n' +
    '<|im_start|>assistant\nGoodbye.<|im_end|>\n';
  t.is(row.text, text);
  // exactly the tokens of the rendered conversation: no BOS added, no EOS appended
  t.deepEqual(row.inputIds, tokenizer.encode(text));
  // each reply and its end-of-turn token; never the system prompt, user turns or the template's frame
  t.deepEqual(trainedRuns(row, tokenizer), ['Hello!<|im_end|>', 'Goodbye.<|im_end|>']);
  t.is(row.tokenization, 'joint');
  t.false(row.lastTurnOnly);

  const all = buildExamples(prepared.conversations.train, tokenizer, {
    template: 'chat',
    cutoffLen: 512,
    trainOnInputs: true,
  });
  t.deepEqual(all.examples[0].labels, row.inputIds);

  // cut inside the second reply: the first is kept whole, the second in part
  // drop '\n', '<|im_end|>', '.' and 'bye' (one token each)
  const cutAt = tokenizer.encode(text).length - 6;
  const cut = buildExamples(prepared.conversations.train, tokenizer, { template: 'chat', cutoffLen: cutAt });
  t.deepEqual(trainedRuns(cut.examples[0], tokenizer), ['Hello!<|im_end|>', 'Good']);
  t.true(cut.examples[0].truncated);
});

test('the chat template appends an input to its instruction; alpaca shows earlier turns as context', async (t) => {
  const tokenizer = await charTokenizer();
  const dolly = single('Summarise.', 'Short.', 'A long text.');
  const chat = only(built([dolly], tokenizer, { template: 'chat', cutoffLen: 512 }));
  t.is(
    chat.text,
    '<|im_start|>user\nSummarise.\n\nA long text.<|im_end|>\n<|im_start|>assistant\nShort.<|im_end|>\n',
  );
  const multi = example(3, {
    system: 'Be brief.',
    turns: [
      { role: 'user', content: 'Hi' },
      { role: 'assistant', content: 'Hello!' },
      { role: 'user', content: 'Bye', input: 'said at the door' },
      { role: 'assistant', content: 'Goodbye.' },
    ],
  });
  const alpaca = only(built([multi], tokenizer, { template: 'alpaca', cutoffLen: 512 }));
  t.is(
    alpaca.text,
    renderAlpacaPrompt('Bye', 'System: Be brief.\n\nUser: Hi\n\nAssistant: Hello!\n\nsaid at the door') +
      'Goodbye.<|eos|>',
  );
  t.deepEqual(trainedRuns(alpaca, tokenizer), ['Goodbye.<|eos|>']);
});

test('a tokenizer that merges across the prompt/response boundary falls back to piecewise tokens', async (t) => {
  const dir = await tempDir(t);
  // A real tokenizer whose added token "\nSure" spans the end of the alpaca prompt and the response.
  await writeCharTokenizer(dir, {
    alphabet: ASCII_ALPHABET,
    additionalSpecialTokens: ['\nSure'],
    chatTemplate: null,
  });
  const tokenizer = await loadTokenizer(dir);
  const ex = single('Help me.', 'Sure, gladly.');
  const joint = tokenizer.encode(renderAlpacaPrompt('Help me.') + 'Sure, gladly.');
  t.true(joint.includes(tokenizer.tokenToId('\nSure')!), 'the fixture merges across the boundary');
  const result = built([ex], tokenizer, { template: 'alpaca', cutoffLen: 512 });
  const row = only(result);
  t.is(row.tokenization, 'piecewise');
  t.deepEqual(trainedRuns(row, tokenizer), ['Sure, gladly.<|eos|>']);
  t.false(row.inputIds.includes(tokenizer.tokenToId('\nSure')!));

  const prepared = await prepareDataset(
    [await writeData(dir, 'd.jsonl', jsonl([{ instruction: 'Help me.', output: 'Sure, gladly.' }]))],
    { tokens: { tokenizer, template: 'alpaca', cutoffLen: 512 } },
  );
  t.is(prepared.report.tokens?.piecewise, 1);
  t.regex(formatReport(prepared.report), /1 example tokenized piece by piece/);
});

test('a chat template that rewrites earlier turns trains the last turn only; one that raises skips the row', async (t) => {
  // Like templates that drop earlier reasoning: earlier assistant turns render differently once the
  // conversation goes on, so only the last one can be told apart.
  const rewriting =
    "{% for m in messages %}{% if m['role'] == 'assistant' and not loop.last %}[earlier reply]" +
    "{% else %}<|im_start|>{{ m['role'] }}\n{{ m['content'] }}<|im_end|>\n{% endif %}{% endfor %}" +
    '{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}';
  const tokenizer = await charTokenizer(rewriting);
  const conversation = example(7, {
    turns: [
      { role: 'user', content: 'Hi' },
      { role: 'assistant', content: 'Hello!' },
      { role: 'user', content: 'Bye' },
      { role: 'assistant', content: 'Goodbye.' },
    ],
  });
  const row = only(built([conversation], tokenizer, { template: 'chat', cutoffLen: 512 }));
  t.true(row.lastTurnOnly);
  t.deepEqual(trainedRuns(row, tokenizer), ['Goodbye.<|im_end|>']);

  const refusing =
    "{% for m in messages %}{% if m['role'] == 'system' %}{{ raise_exception('System role not supported') }}{% endif %}" +
    "<|im_start|>{{ m['role'] }}\n{{ m['content'] }}<|im_end|>\n{% endfor %}" +
    '{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}';
  const strict = await charTokenizer(refusing);
  const result = built(
    [
      { ...single('Hi', 'Hello'), source: source(1) },
      { ...single('Hi', 'Hello'), system: 'Be nice.', source: source(2) },
    ],
    strict,
    { template: 'chat', cutoffLen: 512 },
  );
  t.is(result.examples.length, 1);
  t.deepEqual(
    result.skipped.map((s) => [s.source.line, s.code]),
    [[2, 'template']],
  );
  t.regex(result.skipped[0].reason, /System role not supported/);
});

test('templates the tokenizer cannot serve, and bad cutoffLen, fail before any row', async (t) => {
  const base = await charTokenizer(null);
  const err = t.throws(() => built([single('a', 'b')], base, { template: 'chat', cutoffLen: 64 }), {
    instanceOf: DatasetError,
  });
  t.is(err?.code, 'DATASET_TOKENIZER');
  t.regex(err?.message ?? '', /no chat template/);
  const broken = await charTokenizer("{% for m in messages %}{{ m['content'] | nosuchfilter }}{% endfor %}");
  const brokenErr = t.throws(() => built([single('a', 'b')], broken, { template: 'chat', cutoffLen: 64 }), {
    instanceOf: DatasetError,
  });
  t.is(brokenErr?.code, 'DATASET_TOKENIZER');
  t.regex(brokenErr?.message ?? '', /cannot render a plain user\/assistant exchange/);
  const tokenizer = await charTokenizer();
  t.is(
    t.throws(() => built([], tokenizer, { template: 'alpaca', cutoffLen: 0 }), { instanceOf: DatasetError })
      ?.code,
    'DATASET_OPTIONS',
  );
  t.is(
    t.throws(() => built([], tokenizer, { template: 'vicuna' as 'chat', cutoffLen: 64 }), {
      instanceOf: DatasetError,
    })?.code,
    'DATASET_OPTIONS',
  );
});

test('prepareDataset: the report counts truncation, lengths, held-out rows and batches', async (t) => {
  const tokenizer = await charTokenizer();
  const dir = await tempDir(t);
  const records = [
    ...Array.from({ length: 40 }, (_, i) => ({
      instruction: `Repeat ${i}.`,
      input: '',
      output: 'x'.repeat(i * 5) || 'ok',
    })),
    { instruction: 'y'.repeat(400), output: 'too late' },
    { instruction: 'broken' },
  ];
  const path = await writeData(dir, 'train.jsonl', jsonl(records));
  const prepared = await prepareDataset([path], {
    heldOut: { fraction: 0.1, seed: 7 },
    tokens: { tokenizer, template: 'alpaca', cutoffLen: 256 },
    batching: { batchSize: 4, seed: 7 },
  });
  const report = prepared.report;
  t.is(report.records, 42);
  t.is(report.usable, 40);
  t.deepEqual(report.skipped.byCode, { 'missing-field': 1, 'truncated-away': 1 });
  t.is(report.usable + report.skipped.total, report.records);
  t.deepEqual(
    report.files.map((f) => [f.usable, f.skipped]),
    [[40, 2]],
  );
  const tokens = report.tokens!;
  t.is(tokens.examples, 40);
  t.is(tokens.truncatedAway, 1);
  t.true(tokens.truncated > 0);
  t.is(
    tokens.truncated,
    [...prepared.rows!.train, ...prepared.rows!.heldOut].filter((r) => r.fullLength > 256).length,
  );
  t.is(
    tokens.histogram.reduce((s, h) => s + h.count, 0),
    40,
  );
  t.is(tokens.histogram.at(-1)!.count, tokens.truncated);
  t.deepEqual(
    tokens.histogram.map((h) => h.upTo),
    [16, 32, 64, 128, 256, null],
  );
  t.is(report.heldOut!.heldOut + report.heldOut!.train, 40);
  t.is(report.batches!.examples, report.heldOut!.train);
  const text = formatReport(report);
  t.regex(text, /Tokens \(template alpaca, cutoffLen 256, loss on responses only\)/);
  t.regex(text, /\d+ examples? truncated at cutoffLen 256/);
  t.regex(text, /> 256 +\d+ +#+/);
  t.regex(text, /train\.jsonl:41: the prompt alone is \d+ tokens/);
  t.regex(text, /Held out for evaluation: 4, training: 36/);
  t.regex(text, /padding efficiency \d+\.\d%/);
});
