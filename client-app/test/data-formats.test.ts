// Dataset formats: each one recognised in JSON and JSON Lines and normalised to one conversation
// shape; bad rows skipped and reported with file:line and a reason while good rows survive; the
// report counts duplicates, empty fields and categories.

import test from 'ava';
import { readFile } from 'node:fs/promises';
import {
  createReport,
  DatasetError,
  formatReport,
  loadDataset,
  type Conversation,
  type DatasetFormat,
} from '../src/core/data/index.ts';
import { arrayLines, jsonArray, jsonl, tempDir, writeData } from './fixtures/data-helpers.ts';

const conversation = (c: { source?: unknown } & Conversation): Conversation => {
  const { source: _source, ...rest } = c;
  return rest;
};

const samples: Record<DatasetFormat, { records: unknown[]; expected: Conversation[] }> = {
  alpaca: {
    records: [
      { instruction: 'Add 2 and 3.', input: '', output: '5' },
      { instruction: 'Translate to French.', input: 'cheese', output: 'fromage' },
    ],
    expected: [
      {
        turns: [
          { role: 'user', content: 'Add 2 and 3.' },
          { role: 'assistant', content: '5' },
        ],
      },
      {
        turns: [
          { role: 'user', content: 'Translate to French.', input: 'cheese' },
          { role: 'assistant', content: 'fromage' },
        ],
      },
    ],
  },
  dolly: {
    records: [
      { instruction: 'Who wrote Emma?', context: '', response: 'Jane Austen.', category: 'open_qa' },
      {
        instruction: 'Summarise.',
        context: 'A long text.',
        response: 'Short.',
        category: 'summarization',
      },
    ],
    expected: [
      {
        turns: [
          { role: 'user', content: 'Who wrote Emma?' },
          { role: 'assistant', content: 'Jane Austen.' },
        ],
        category: 'open_qa',
      },
      {
        turns: [
          { role: 'user', content: 'Summarise.', input: 'A long text.' },
          { role: 'assistant', content: 'Short.' },
        ],
        category: 'summarization',
      },
    ],
  },
  sharegpt: {
    records: [
      {
        conversations: [
          { from: 'system', value: 'Be brief.' },
          { from: 'human', value: 'Hi' },
          { from: 'gpt', value: 'Hello!' },
          { from: 'human', value: 'Bye' },
          { from: 'gpt', value: 'Goodbye.' },
        ],
      },
      {
        conversations: [
          { from: 'human', value: 'Q' },
          { from: 'gpt', value: 'A' },
        ],
      },
    ],
    expected: [
      {
        system: 'Be brief.',
        turns: [
          { role: 'user', content: 'Hi' },
          { role: 'assistant', content: 'Hello!' },
          { role: 'user', content: 'Bye' },
          { role: 'assistant', content: 'Goodbye.' },
        ],
      },
      {
        turns: [
          { role: 'user', content: 'Q' },
          { role: 'assistant', content: 'A' },
        ],
      },
    ],
  },
  messages: {
    records: [
      {
        messages: [
          { role: 'system', content: 'You are terse.' },
          { role: 'user', content: 'Capital of France?' },
          { role: 'assistant', content: 'Paris.' },
        ],
      },
      {
        messages: [
          {
            role: 'user',
            content: [
              { type: 'text', text: 'Two ' },
              { type: 'text', text: 'parts' },
            ],
          },
          { role: 'assistant', content: 'ok' },
        ],
      },
    ],
    expected: [
      {
        system: 'You are terse.',
        turns: [
          { role: 'user', content: 'Capital of France?' },
          { role: 'assistant', content: 'Paris.' },
        ],
      },
      {
        turns: [
          { role: 'user', content: 'Two parts' },
          { role: 'assistant', content: 'ok' },
        ],
      },
    ],
  },
};

for (const [format, { records, expected }] of Object.entries(samples) as [
  DatasetFormat,
  (typeof samples)[DatasetFormat],
][]) {
  test(`detects ${format} in a JSON array and in JSON Lines and normalises it`, async (t) => {
    const dir = await tempDir(t);
    // the extension says nothing: detection is by content
    const array = await writeData(dir, `${format}-array.txt`, jsonArray(records));
    const lines = await writeData(dir, `${format}-lines.txt`, jsonl(records));
    const loaded = await loadDataset([array, lines]);
    t.deepEqual(
      loaded.files.map((f) => [f.container, f.format, f.formatDetected, f.records, f.usable, f.skipped]),
      [
        ['json', format, true, 2, 2, 0],
        ['jsonl', format, true, 2, 2, 0],
      ],
    );
    t.deepEqual(loaded.examples.slice(0, 2).map(conversation), expected);
    t.deepEqual(loaded.examples.slice(2).map(conversation), expected);
    t.deepEqual(
      loaded.examples.map((e) => e.source),
      [
        ...arrayLines(records).map((line) => ({ file: array, line })),
        { file: lines, line: 1 },
        { file: lines, line: 2 },
      ],
    );
    t.deepEqual(loaded.skipped, []);
  });
}

test('a given format overrides detection, for all files or per file', async (t) => {
  const dir = await tempDir(t);
  // Both 'output' and 'response': detection prefers dolly's 'response'.
  const both = [{ instruction: 'i', output: 'from output', response: 'from response' }];
  const path = await writeData(dir, 'both.jsonl', jsonl(both));
  const detected = await loadDataset([path]);
  t.is(detected.files[0].format, 'dolly');
  t.is(detected.examples[0].turns[1].content, 'from response');

  const given = await loadDataset([path], { format: 'alpaca' });
  t.deepEqual([given.files[0].format, given.files[0].formatDetected], ['alpaca', false]);
  t.is(given.examples[0].turns[1].content, 'from output');

  const perFile = await loadDataset([{ path, format: 'alpaca' }], { format: 'dolly' });
  t.is(perFile.examples[0].turns[1].content, 'from output');

  // Overriding with a format the records are not in: every row is reported, none crashes.
  const wrong = await loadDataset([path], { format: 'sharegpt' });
  t.deepEqual(
    wrong.skipped.map((s) => [s.source.line, s.code, s.reason]),
    [[1, 'missing-field', "missing field 'conversations'"]],
  );

  const err = await t.throwsAsync(loadDataset([path], { format: 'csv' as DatasetFormat }), {
    instanceOf: DatasetError,
  });
  t.is(err?.code, 'DATASET_FORMAT');
});

test('bad rows in a JSON array are skipped with file:line and a reason, good rows survive', async (t) => {
  const dir = await tempDir(t);
  const records: unknown[] = [
    { instruction: 'good 1', input: '', output: 'fine' },
    { instruction: 'no output here' },
    { instruction: '   ', output: 'x' },
    { instruction: 'numbers', output: 42 },
    'a string, not an object',
    { instruction: 'good 2', input: null, output: 'fine too', category: 'misc' },
    { instruction: 'null output', output: null },
    { instruction: 'bad history', output: 'x', history: [['only one']] },
    { instruction: 'good 3', output: 'with history', history: [['earlier q', 'earlier a']] },
  ];
  const path = await writeData(dir, 'mixed.json', jsonArray(records));
  const lines = arrayLines(records);
  const loaded = await loadDataset([path]);
  t.is(loaded.files[0].format, 'alpaca');
  t.deepEqual(
    loaded.examples.map((e) => [e.source.line, e.turns.at(-1)!.content]),
    [
      [lines[0], 'fine'],
      [lines[5], 'fine too'],
      [lines[8], 'with history'],
    ],
  );
  t.deepEqual(loaded.examples[2].turns.length, 4);
  t.deepEqual(
    loaded.skipped.map((s) => [s.source.file, s.source.line, s.code, s.reason]),
    [
      [path, lines[1], 'missing-field', "missing field 'output'"],
      [path, lines[2], 'empty-field', "'instruction' is empty"],
      [path, lines[3], 'wrong-type', "'output' is a number, expected a string"],
      [path, lines[4], 'not-an-object', 'the record is a string, expected an object'],
      [path, lines[6], 'missing-field', "missing field 'output'"],
      [path, lines[7], 'wrong-type', 'history[0] is not an [instruction, response] pair'],
    ],
  );
  // Independently of arrayLines: the bad element "numbers" opens with '{' on the line before its
  // "instruction" line.
  const text = await readFile(path, 'utf8');
  t.is(
    text.split('\n').findIndex((l) => l.includes('"numbers"')),
    lines[3],
  );
});

test('bad conversations are reported with a reason: roles, order, no response, empty turns', async (t) => {
  const dir = await tempDir(t);
  const turn = (from: string, value: unknown) => ({ from, value });
  const records = [
    { conversations: [turn('human', 'ok'), turn('gpt', 'ok')] },
    { conversations: [turn('human', 'hi'), turn('bing', 'hello')] },
    { conversations: [turn('human', 'hi'), turn('gpt', 'hello'), turn('human', 'and?')] },
    { conversations: [turn('gpt', 'I start'), turn('human', 'odd')] },
    { conversations: [turn('human', 'a'), turn('human', 'b'), turn('gpt', 'c')] },
    {
      conversations: [
        turn('human', 'a'),
        turn('gpt', 'b'),
        turn('system', 'late'),
        turn('human', 'c'),
        turn('gpt', 'd'),
      ],
    },
    { conversations: [turn('human', 'a'), turn('gpt', '  ')] },
    { conversations: [] },
    { conversations: 'hello' },
    { conversations: [turn('human', 3), turn('gpt', 'x')] },
    { conversations: [turn('system', 'only a system prompt')] },
  ];
  const path = await writeData(dir, 'chats.jsonl', jsonl(records));
  const loaded = await loadDataset([path]);
  t.is(loaded.examples.length, 1);
  t.deepEqual(
    loaded.skipped.map((s) => [s.source.line, s.code, s.reason]),
    [
      [2, 'unknown-role', "conversations[1].from is 'bing'; expected human, gpt or system"],
      [
        3,
        'no-response',
        'the conversation ends with a user message (conversations[2].value): there is no response to learn',
      ],
      [
        4,
        'bad-turn-order',
        'conversations[0].value: the conversation starts with an assistant message, expected a user message first',
      ],
      [
        5,
        'bad-turn-order',
        'conversations[1].value: two user messages in a row (turns must alternate user, assistant)',
      ],
      [6, 'bad-turn-order', 'conversations[2].value is a system message after the conversation began'],
      [7, 'empty-field', 'conversations[1].value is empty'],
      [8, 'empty-field', "'conversations' is an empty list"],
      [9, 'wrong-type', "'conversations' is a string, expected a list of messages"],
      [10, 'wrong-type', "'conversations[0].value' is a number, expected a string"],
      [11, 'no-response', "'conversations' has only system messages: there is no response to learn"],
    ],
  );
  const messages = await writeData(
    dir,
    'messages.jsonl',
    jsonl([
      {
        messages: [
          { role: 'user', content: 'x' },
          { role: 'tool', content: 'y' },
        ],
      },
      {
        messages: [
          { role: 'user', content: [{ type: 'image_url', image_url: { url: 'x' } }] },
          { role: 'assistant', content: 'y' },
        ],
      },
      {
        messages: [
          { role: 'user', content: 'x' },
          { role: 'assistant', content: null },
        ],
      },
    ]),
  );
  const m = await loadDataset([messages]);
  t.deepEqual(
    m.skipped.map((s) => [s.source.line, s.code, s.reason]),
    [
      [1, 'unknown-role', "messages[1].role is 'tool'; expected system, user or assistant"],
      [2, 'wrong-type', "messages[0].content[0] is a 'image_url' part; only text content can be trained on"],
      [3, 'missing-field', "missing field 'messages[1].content'"],
    ],
  );
});

test('invalid JSON Lines lines are skipped rows with file:line:column; the report lists them', async (t) => {
  const dir = await tempDir(t);
  const text = [
    JSON.stringify({ instruction: 'a', output: 'b' }),
    '{"instruction": "broken", "output": }',
    JSON.stringify({ instruction: 'c', output: 'd' }),
  ].join('\n');
  const path = await writeData(dir, 'data.jsonl', text);
  const loaded = await loadDataset([path]);
  t.is(loaded.examples.length, 2);
  t.deepEqual(
    loaded.skipped.map((s) => [s.source.line, s.column, s.code]),
    [[2, 37, 'invalid-json']],
  );
  const text2 = formatReport(createReport({ loaded }));
  t.regex(
    text2,
    new RegExp(
      `${path.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}:2:37: not valid JSON: expected a value, found '\\}'`,
    ),
  );
});

test('a file whose format cannot be told fails, naming the fields it has', async (t) => {
  const dir = await tempDir(t);
  const path = await writeData(dir, 'qa.jsonl', jsonl([{ question: 'q', answer: 'a' }]));
  const err = await t.throwsAsync(loadDataset([path]), { instanceOf: DatasetError });
  t.is(err?.code, 'DATASET_FORMAT');
  t.regex(
    err?.message ?? '',
    /qa\.jsonl: cannot tell the dataset format: its first record has the fields 'question', 'answer'/,
  );
  const empty = await writeData(dir, 'empty.json', '[]');
  t.is((await t.throwsAsync(loadDataset([empty]), { instanceOf: DatasetError }))?.code, 'DATASET_EMPTY');
});

test('format detection goes by the majority of the first records', async (t) => {
  const dir = await tempDir(t);
  const records = [
    { instruction: 'typo', respnse: 'x', output: 'looks alpaca' },
    { instruction: 'a', response: 'b' },
    { instruction: 'c', response: 'd' },
  ];
  const loaded = await loadDataset([await writeData(dir, 'd.jsonl', jsonl(records))]);
  t.is(loaded.files[0].format, 'dolly');
  t.deepEqual(
    loaded.skipped.map((s) => [s.source.line, s.reason]),
    [[1, "missing field 'response'"]],
  );
});

test('duplicates, empty fields and categories are counted in the report', async (t) => {
  const dir = await tempDir(t);
  const a = await writeData(
    dir,
    'a.jsonl',
    jsonl([
      { instruction: 'Name a colour.', context: '', response: 'Blue.', category: 'brainstorming' },
      { instruction: 'Name a fruit.', context: '', response: 'Apple.', category: 'brainstorming' },
      { instruction: '  Name a colour. ', context: '', response: 'Blue.', category: 'open_qa' },
      { instruction: '', context: '', response: 'orphan', category: 'open_qa' },
      { instruction: 'x', context: '', response: '', category: 'open_qa' },
      { instruction: 'y', context: '', response: '\n', category: 'open_qa' },
    ]),
  );
  const b = await writeData(
    dir,
    'b.json',
    jsonArray([
      { instruction: 'Name a fruit.', context: null, response: 'Apple.', category: 'classification' },
    ]),
  );
  const loaded = await loadDataset([a, b]);
  t.is(loaded.examples.length, 4);
  t.deepEqual(
    loaded.duplicates.map((d) => [d.source.file, d.source.line, d.first.file, d.first.line]),
    [
      [a, 3, a, 1],
      [b, 2, a, 2],
    ],
  );
  const report = createReport({ loaded });
  t.is(report.records, 7);
  t.is(report.usable, 4);
  t.is(report.skipped.total, 3);
  t.deepEqual(report.emptyFields, { instruction: 1, response: 2 });
  t.deepEqual(report.categories, { brainstorming: 2, open_qa: 1, classification: 1 });
  t.is(report.duplicates.total, 2);
  t.false(report.duplicates.dropped);

  const dropped = await loadDataset([a, b], { dropDuplicates: true });
  t.is(dropped.examples.length, 2);
  const droppedReport = createReport({ loaded: dropped });
  t.is(droppedReport.skipped.byCode.duplicate, 2);
  t.is(droppedReport.usable + droppedReport.skipped.total, droppedReport.records);

  const text = formatReport(report);
  t.regex(text, /Records: 7, usable: 4, skipped: 3/);
  t.regex(text, /Empty required fields: instruction 1, response 2/);
  t.regex(text, /Duplicates: 2 records repeat an earlier conversation \(kept/);
  t.regex(text, /a\.jsonl:3 repeats .*a\.jsonl:1/);
  t.regex(text, /Categories: brainstorming 2, classification 1, open_qa 1/);
  t.regex(text, /dolly \(detected\)/);
});

test('the report caps its listings but keeps the counts', async (t) => {
  const dir = await tempDir(t);
  const records = [
    { instruction: 'ok', output: 'ok' },
    ...Array.from({ length: 30 }, (_, i) => ({ instruction: `bad ${i}` })),
  ];
  const loaded = await loadDataset([await writeData(dir, 'many.jsonl', jsonl(records))]);
  const report = createReport({ loaded, maxListed: 5 });
  t.is(report.skipped.total, 30);
  t.is(report.skipped.rows.length, 5);
  t.deepEqual(report.skipped.byCode, { 'missing-field': 30 });
  t.regex(formatReport(report), /\.\.\. and 25 more/);
});
