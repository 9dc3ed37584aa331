// Reading dataset files: JSON arrays and JSON Lines told apart by content, source lines kept for
// every record, and files that are not JSON at all rejected with file:line:column.

import test from 'ava';
import { DatasetError, detectContainer, readRecords, type ReadItem } from '../src/core/data/index.ts';
import { JsonSyntaxError, scanJsonValue, scanTopLevelArray } from '../src/core/data/json-scan.ts';
import { arrayLines, jsonArray, jsonl, tempDir, writeData } from './fixtures/data-helpers.ts';

async function readAll(path: string): Promise<ReadItem[]> {
  const items: ReadItem[] = [];
  for await (const item of readRecords(path)) items.push(item);
  return items;
}

const records = [
  { instruction: 'a', output: 'b' },
  { instruction: 'nested', input: 'x', output: 'y', extra: { list: [1, 2, { deep: '[not a boundary]' }] } },
  { instruction: 'brackets "]" and escapes \\" inside', output: 'ok' },
];

test('detects a JSON array and JSON Lines by content, whatever the extension', async (t) => {
  const dir = await tempDir(t);
  t.is(await detectContainer(await writeData(dir, 'array.jsonl', jsonArray(records))), 'json');
  t.is(await detectContainer(await writeData(dir, 'lines.json', jsonl(records))), 'jsonl');
  t.is(await detectContainer(await writeData(dir, 'spaced.txt', '\n\n   \n' + jsonl(records))), 'jsonl');
});

test('a JSON array element keeps the line where it starts', async (t) => {
  const dir = await tempDir(t);
  const items = await readAll(await writeData(dir, 'data.json', jsonArray(records)));
  t.deepEqual(
    items.map((i) => (i.kind === 'record' ? i.value : undefined)),
    records,
  );
  t.deepEqual(
    items.map((i) => i.source.line),
    arrayLines(records),
  );
  // a compact array: several elements on one line
  const compact = await readAll(
    await writeData(
      dir,
      'compact.json',
      `[\n${JSON.stringify(records[0])}, ${JSON.stringify(records[1])},\n\n${JSON.stringify(records[2])}]`,
    ),
  );
  t.deepEqual(
    compact.map((i) => i.source.line),
    [2, 2, 4],
  );
});

test('JSON Lines keep their line numbers across blank lines and CRLF endings', async (t) => {
  const dir = await tempDir(t);
  const text = `${JSON.stringify(records[0])}\r\n\r\n   \r\n${JSON.stringify(records[1])}\r\n${JSON.stringify(records[2])}`;
  const items = await readAll(await writeData(dir, 'data.jsonl', text));
  t.deepEqual(
    items.map((i) => [i.kind, i.source.line]),
    [
      ['record', 1],
      ['record', 4],
      ['record', 5],
    ],
  );
  t.deepEqual(
    items.map((i) => (i.kind === 'record' ? i.value : undefined)),
    records,
  );
});

test('a UTF-8 byte-order mark is tolerated in both containers', async (t) => {
  const dir = await tempDir(t);
  const bom = '\uFEFF';
  const json = await readAll(await writeData(dir, 'bom.json', bom + jsonArray(records)));
  t.is(json.length, 3);
  const lines = await readAll(await writeData(dir, 'bom.jsonl', bom + jsonl(records)));
  t.deepEqual(
    lines.map((i) => i.kind),
    ['record', 'record', 'record'],
  );
});

test('non-ASCII text survives, including characters split across read chunks', async (t) => {
  const dir = await tempDir(t);
  // ~3 MB of JSON Lines: the reader's 1 MiB chunks cut lines and multi-byte characters apart.
  const many = Array.from({ length: 20_000 }, (_, i) => ({
    instruction: `Frage ${i}: größer? 日本語 🙂`,
    output: 'ja'.repeat(50),
  }));
  const items = await readAll(await writeData(dir, 'big.jsonl', jsonl(many)));
  t.is(items.length, many.length);
  t.true(items.every((item, i) => item.kind === 'record' && item.source.line === i + 1));
  t.deepEqual(items[12_345].kind === 'record' ? items[12_345].value : undefined, many[12_345]);
});

test('a JSON array that is not valid JSON fails naming file:line:column', async (t) => {
  const dir = await tempDir(t);
  const cases: [string, string, RegExp][] = [
    // missing comma between elements: line 3, column 3 is where the second '{' stands
    [
      '[\n  {"instruction": "a", "output": "b"}\n  {"instruction": "c", "output": "d"}\n]',
      'no-comma.json',
      /no-comma\.json:3:3: not valid JSON: expected ',' or '\]', found '\{'/,
    ],
    [
      '[\n  {"instruction": "a", "output": "b"},\n]\n',
      'trailing.json',
      /trailing\.json:2:38: .*trailing comma/,
    ],
    [
      '[\n  {"instruction": "a",\n   "output": \'b\'}\n]',
      'quotes.json',
      /quotes\.json:3:14: .*expected a value, found "'"|quotes\.json:3:14: .*double quotes/,
    ],
    [
      '[\n  {"instruction": "a", "output": "b"}\n',
      'unclosed.json',
      /unclosed\.json:3:1: .*expected ',' or '\]', found the end of the text/,
    ],
    ['[{"a": 1}] extra', 'extra.json', /extra\.json:1:12: .*unexpected 'e' after the closing '\]'/],
    ['[{"a": "line\nbreak"}]', 'newline.json', /newline\.json:1:13: .*line break inside a string/],
    ['[{"a": 01}]', 'zero.json', /zero\.json:1:8: .*leading zero/],
    ['[{instruction: "a"}]', 'bare.json', /bare\.json:1:3: .*expected a key in double quotes/],
  ];
  for (const [text, name, pattern] of cases) {
    const path = await writeData(dir, name, text);
    const err = await t.throwsAsync(readAll(path), { instanceOf: DatasetError }, name);
    t.is(err?.code, 'DATASET_SYNTAX', name);
    t.regex(err?.message ?? '', pattern, name);
  }
});

test('a file that is neither a JSON array nor JSON Lines fails at its first character', async (t) => {
  const dir = await tempDir(t);
  const csv = await writeData(dir, 'data.csv', '\n  instruction,output\nhello,world\n');
  const err = await t.throwsAsync(readAll(csv), { instanceOf: DatasetError });
  t.is(err?.code, 'DATASET_SYNTAX');
  t.regex(err?.message ?? '', /data\.csv:2:3: not a JSON array .* found 'i'/);

  const empty = await writeData(dir, 'empty.jsonl', '\n\n');
  t.is((await t.throwsAsync(readAll(empty), { instanceOf: DatasetError }))?.code, 'DATASET_EMPTY');

  const utf16 = await writeData(
    dir,
    'utf16.json',
    Buffer.concat([Buffer.from([0xff, 0xfe]), Buffer.from('[]', 'utf16le')]),
  );
  const e16 = await t.throwsAsync(readAll(utf16), { instanceOf: DatasetError });
  t.is(e16?.code, 'DATASET_ENCODING');
  t.regex(e16?.message ?? '', /UTF-16/);
});

test('a JSON Lines file with broken lines yields them as invalid, with line and column, and keeps the rest', async (t) => {
  const dir = await tempDir(t);
  const text = [
    JSON.stringify(records[0]),
    '{"instruction": "b", "output": "c"',
    '',
    '{"instruction": "b" "output": "c"}',
    JSON.stringify(records[1]),
  ].join('\n');
  const items = await readAll(await writeData(dir, 'data.jsonl', text));
  t.deepEqual(
    items.map((i) => (i.kind === 'invalid' ? [i.source.line, i.column] : ['ok', i.source.line])),
    [
      ['ok', 1],
      [2, 35],
      [4, 21],
      ['ok', 5],
    ],
  );
  const invalid = items.filter((i) => i.kind === 'invalid');
  t.regex(
    invalid[0].kind === 'invalid' ? invalid[0].reason : '',
    /not valid JSON: expected ',' or '\}', found the end of the text/,
  );
});

test('a JSON Lines file of which no line is JSON fails as a whole', async (t) => {
  const dir = await tempDir(t);
  // a pretty-printed object is not JSON Lines
  const pretty = await writeData(dir, 'pretty.jsonl', JSON.stringify(records[0], null, 2));
  const err = await t.throwsAsync(readAll(pretty), { instanceOf: DatasetError });
  t.is(err?.code, 'DATASET_SYNTAX');
  t.regex(err?.message ?? '', /pretty\.jsonl:1:2: not valid JSON: .*each record must be on one line/);

  // a large non-JSON file starting with '{' gives up early rather than reading to the end
  const junk = await writeData(dir, 'junk.jsonl', '{ not json\n'.repeat(1000));
  const junkErr = await t.throwsAsync(readAll(junk), { instanceOf: DatasetError });
  t.regex(junkErr?.message ?? '', /junk\.jsonl:1:3: .*not a JSON Lines file/);
});

test('invalid UTF-8 is reported at its line, not silently replaced', async (t) => {
  const dir = await tempDir(t);
  const good = Buffer.from(JSON.stringify(records[0]) + '\n');
  const bad = Buffer.concat([
    Buffer.from('{"instruction": "caf'),
    Buffer.from([0xe9]),
    Buffer.from('", "output": "x"}\n'),
  ]);
  const items = await readAll(await writeData(dir, 'latin1.jsonl', Buffer.concat([good, bad, good])));
  t.deepEqual(
    items.map((i) => i.kind),
    ['record', 'invalid', 'record'],
  );
  const invalid = items[1];
  t.true(
    invalid.kind === 'invalid' &&
      invalid.source.line === 2 &&
      invalid.column === 21 &&
      /UTF-8/.test(invalid.reason),
  );

  const array = await writeData(
    dir,
    'latin1.json',
    Buffer.concat([Buffer.from('[\n'), bad.subarray(0, bad.length - 1), Buffer.from(']')]),
  );
  const err = await t.throwsAsync(readAll(array), { instanceOf: DatasetError });
  t.is(err?.code, 'DATASET_ENCODING');
  t.regex(err?.message ?? '', /latin1\.json:2:21: not valid UTF-8/);
});

test('the scanner accepts exactly what JSON.parse accepts on a corpus of edge cases', (t) => {
  const texts = [
    '[]',
    '[1, -0, 0.5, 1e10, 1E-2, -1.5e+3, true, false, null, "", "\\u00e9\\n\\"", {}, [], [[]], {"a": {"b": [1]}}]',
    '[1,]',
    '[01]',
    '[1.]',
    '[.5]',
    '[-]',
    '[1e]',
    '["\\x"]',
    '["\\u12"]',
    '["tab\there"]',
    '[{"a" 1}]',
    '[{"a": 1,}]',
    '[{,}]',
    '[tru]',
    '[nul]',
    '[1] [2]',
    '[',
    '"just a string"',
    '[NaN]',
    '[Infinity]',
    '[{"a": 1}}]',
  ];
  for (const text of texts) {
    let native = true;
    try {
      JSON.parse(text);
    } catch {
      native = false;
    }
    let scanned = true;
    try {
      if (text.trimStart().startsWith('[')) scanTopLevelArray(text);
      else scanJsonValue(text);
    } catch (err) {
      t.true(err instanceof JsonSyntaxError, text);
      scanned = false;
    }
    t.is(scanned, native, text);
  }
});
