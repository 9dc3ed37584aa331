// The instruction-data formats people actually have, each turned into one Conversation:
//
//   alpaca    {instruction, input?, output}            (+ system?, history? as LLaMA-Factory writes it)
//   dolly     {instruction, context?, response, category?}
//   sharegpt  {conversations: [{from: human|gpt|system, value}]}   (+ system?)
//   messages  {messages: [{role: system|user|assistant, content}]} (OpenAI fine-tuning files)
//
// Any format may carry a string `category`. A record that does not fit its file's format is not an
// error of the run: normalise() says what is wrong with it, and the loader skips and reports it.

import { DatasetError } from './errors.ts';
import type { Conversation, SkipCode, Turn } from './types.ts';

export const DATASET_FORMATS = ['alpaca', 'dolly', 'sharegpt', 'messages'] as const;
export type DatasetFormat = (typeof DATASET_FORMATS)[number];

export function isDatasetFormat(name: unknown): name is DatasetFormat {
  return typeof name === 'string' && (DATASET_FORMATS as readonly string[]).includes(name);
}

export type Normalized =
  { ok: true; conversation: Conversation } | { ok: false; code: SkipCode; reason: string; field?: string };

/** Thrown inside a normaliser to reject the row; caught by normalize(). */
class RowProblem {
  constructor(
    readonly code: SkipCode,
    readonly reason: string,
    readonly field?: string,
  ) {}
}

type JsonObject = Record<string, unknown>;

function isObject(v: unknown): v is JsonObject {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

function typeName(v: unknown): string {
  if (v === null) return 'null';
  if (Array.isArray(v)) return 'a list';
  if (typeof v === 'object') return 'an object';
  return `a ${typeof v}`;
}

/**
 * A string field. `path` names it in messages ("conversations[2].value"); `field` is the name
 * counted in the report's empty-field tally ("conversations[].value").
 */
function stringField(value: unknown, path: string, required: boolean, field = path): string | undefined {
  if (value === undefined || value === null) {
    if (required) throw new RowProblem('missing-field', `missing field '${path}'`, field);
    return undefined;
  }
  if (typeof value !== 'string') {
    throw new RowProblem('wrong-type', `'${path}' is ${typeName(value)}, expected a string`, field);
  }
  if (value.trim() === '') {
    if (required) throw new RowProblem('empty-field', `'${path}' is empty`, field);
    return undefined;
  }
  return value;
}

function listField(record: JsonObject, key: string): unknown[] {
  const value = record[key];
  if (value === undefined || value === null)
    throw new RowProblem('missing-field', `missing field '${key}'`, key);
  if (!Array.isArray(value)) {
    throw new RowProblem('wrong-type', `'${key}' is ${typeName(value)}, expected a list of messages`, key);
  }
  if (value.length === 0) throw new RowProblem('empty-field', `'${key}' is an empty list`, key);
  return value;
}

interface Message {
  role: 'system' | 'user' | 'assistant';
  content: string;
  /** "conversations[3]", for messages. */
  path: string;
}

/**
 * Checks the order of messages and builds the conversation: system messages only first, then
 * user/assistant alternating from a user turn, ending with an assistant turn.
 */
function conversationFrom(messages: Message[], system: string | undefined, listName: string): Conversation {
  let i = 0;
  const systems: string[] = system === undefined ? [] : [system];
  for (; i < messages.length && messages[i].role === 'system'; i++) {
    if (messages[i].content.trim() !== '') systems.push(messages[i].content);
  }
  const turns: Turn[] = [];
  for (; i < messages.length; i++) {
    const m = messages[i];
    if (m.role === 'system') {
      throw new RowProblem('bad-turn-order', `${m.path} is a system message after the conversation began`);
    }
    const expected = turns.length % 2 === 0 ? 'user' : 'assistant';
    if (m.role !== expected) {
      throw new RowProblem(
        'bad-turn-order',
        turns.length === 0
          ? `${m.path}: the conversation starts with an assistant message, expected a user message first`
          : `${m.path}: two ${m.role} messages in a row (turns must alternate user, assistant)`,
      );
    }
    if (m.content.trim() === '') {
      throw new RowProblem('empty-field', `${m.path} is empty`, `${listName}[].${m.path.split('.').pop()}`);
    }
    turns.push(
      m.role === 'user' ? { role: 'user', content: m.content } : { role: 'assistant', content: m.content },
    );
  }
  if (turns.length === 0) {
    throw new RowProblem(
      'no-response',
      `'${listName}' has only system messages: there is no response to learn`,
    );
  }
  if (turns[turns.length - 1].role !== 'assistant') {
    throw new RowProblem(
      'no-response',
      `the conversation ends with a user message (${messages[messages.length - 1].path}): there is no response to learn`,
    );
  }
  return systems.length ? { system: systems.join('\n\n'), turns } : { turns };
}

function withCategory(conversation: Conversation, record: JsonObject): Conversation {
  const category = record.category;
  if (typeof category === 'string' && category.trim() !== '') conversation.category = category.trim();
  return conversation;
}

function alpaca(record: JsonObject): Conversation {
  const instruction = stringField(record.instruction, 'instruction', true)!;
  const input = stringField(record.input, 'input', false);
  const output = stringField(record.output, 'output', true)!;
  const system = stringField(record.system, 'system', false);
  const turns: Turn[] = [];
  // LLaMA-Factory's alpaca variant: earlier exchanges as [[instruction, response], ...]
  const history = record.history;
  if (history !== undefined && history !== null) {
    if (!Array.isArray(history)) {
      throw new RowProblem(
        'wrong-type',
        `'history' is ${typeName(history)}, expected a list of [instruction, response] pairs`,
      );
    }
    history.forEach((pair, k) => {
      if (!Array.isArray(pair) || pair.length !== 2) {
        throw new RowProblem('wrong-type', `history[${k}] is not an [instruction, response] pair`);
      }
      turns.push({ role: 'user', content: stringField(pair[0], `history[${k}][0]`, true, 'history')! });
      turns.push({ role: 'assistant', content: stringField(pair[1], `history[${k}][1]`, true, 'history')! });
    });
  }
  turns.push(
    input === undefined
      ? { role: 'user', content: instruction }
      : { role: 'user', content: instruction, input },
  );
  turns.push({ role: 'assistant', content: output });
  return system === undefined ? { turns } : { system, turns };
}

function dolly(record: JsonObject): Conversation {
  const instruction = stringField(record.instruction, 'instruction', true)!;
  const context = stringField(record.context, 'context', false);
  const response = stringField(record.response, 'response', true)!;
  return {
    turns: [
      context === undefined
        ? { role: 'user', content: instruction }
        : { role: 'user', content: instruction, input: context },
      { role: 'assistant', content: response },
    ],
  };
}

const SHAREGPT_ROLES: Record<string, Message['role']> = {
  human: 'user',
  user: 'user',
  gpt: 'assistant',
  assistant: 'assistant',
  system: 'system',
};

function sharegpt(record: JsonObject): Conversation {
  const list = listField(record, 'conversations');
  const messages = list.map((item, k): Message => {
    const path = `conversations[${k}]`;
    if (!isObject(item))
      throw new RowProblem('wrong-type', `${path} is ${typeName(item)}, expected {from, value}`);
    const from = stringField(item.from, `${path}.from`, true, 'conversations[].from')!;
    const role = Object.hasOwn(SHAREGPT_ROLES, from) ? SHAREGPT_ROLES[from] : undefined;
    if (role === undefined) {
      throw new RowProblem('unknown-role', `${path}.from is '${from}'; expected human, gpt or system`);
    }
    if (item.value === undefined || item.value === null) {
      throw new RowProblem('missing-field', `missing field '${path}.value'`, 'conversations[].value');
    }
    if (typeof item.value !== 'string') {
      throw new RowProblem('wrong-type', `'${path}.value' is ${typeName(item.value)}, expected a string`);
    }
    return { role, content: item.value, path: `${path}.value` };
  });
  return conversationFrom(messages, stringField(record.system, 'system', false), 'conversations');
}

/** OpenAI message content: a string, or a list of parts of which only text parts are allowed. */
function messageContent(content: unknown, path: string): string {
  if (content === undefined || content === null) {
    throw new RowProblem('missing-field', `missing field '${path}'`, 'messages[].content');
  }
  if (typeof content === 'string') return content;
  if (Array.isArray(content)) {
    return content
      .map((part, k) => {
        if (isObject(part) && part.type === 'text' && typeof part.text === 'string') return part.text;
        const type =
          isObject(part) && typeof part.type === 'string' ? `a '${part.type}' part` : typeName(part);
        throw new RowProblem('wrong-type', `${path}[${k}] is ${type}; only text content can be trained on`);
      })
      .join('');
  }
  throw new RowProblem('wrong-type', `'${path}' is ${typeName(content)}, expected a string`);
}

function messages(record: JsonObject): Conversation {
  const list = listField(record, 'messages');
  const msgs = list.map((item, k): Message => {
    const path = `messages[${k}]`;
    if (!isObject(item))
      throw new RowProblem('wrong-type', `${path} is ${typeName(item)}, expected {role, content}`);
    const name = stringField(item.role, `${path}.role`, true, 'messages[].role')!;
    // 'developer' is what newer OpenAI models call the system message.
    const role = name === 'developer' ? 'system' : name;
    if (role !== 'system' && role !== 'user' && role !== 'assistant') {
      throw new RowProblem('unknown-role', `${path}.role is '${name}'; expected system, user or assistant`);
    }
    return { role, content: messageContent(item.content, `${path}.content`), path: `${path}.content` };
  });
  return conversationFrom(msgs, undefined, 'messages');
}

const NORMALIZERS: Record<DatasetFormat, (record: JsonObject) => Conversation> = {
  alpaca,
  dolly,
  sharegpt,
  messages,
};

/** One record of a file in `format`, as a conversation, or why it cannot be one. */
export function normalize(record: unknown, format: DatasetFormat): Normalized {
  if (!isObject(record)) {
    return {
      ok: false,
      code: 'not-an-object',
      reason: `the record is ${typeName(record)}, expected an object`,
    };
  }
  try {
    return { ok: true, conversation: withCategory(NORMALIZERS[format](record), record) };
  } catch (err) {
    if (!(err instanceof RowProblem)) throw err;
    return err.field === undefined
      ? { ok: false, code: err.code, reason: err.reason }
      : { ok: false, code: err.code, reason: err.reason, field: err.field };
  }
}

/** The field that marks each format, in order of precedence when a record has several. */
const SIGNATURES: [DatasetFormat, (r: JsonObject) => boolean][] = [
  ['messages', (r) => Array.isArray(r.messages)],
  ['sharegpt', (r) => Array.isArray(r.conversations)],
  ['dolly', (r) => 'response' in r],
  ['alpaca', (r) => 'output' in r],
];

/**
 * The format most of `records` (the first records of a file) are in, judged by their marking
 * fields. Throws DatasetError when none has the marks of any format.
 */
export function detectFormat(records: readonly unknown[], file: string): DatasetFormat {
  const votes = new Map<DatasetFormat, number>();
  for (const record of records) {
    if (!isObject(record)) continue;
    const match = SIGNATURES.find(([, test]) => test(record));
    if (match) votes.set(match[0], (votes.get(match[0]) ?? 0) + 1);
  }
  let best: DatasetFormat | undefined;
  for (const [format] of SIGNATURES) {
    if ((votes.get(format) ?? 0) > (best === undefined ? 0 : votes.get(best)!)) best = format;
  }
  if (best !== undefined) return best;
  const first = records.find(isObject);
  const keys = first
    ? `its first record has the fields ${
        Object.keys(first)
          .map((k) => `'${k}'`)
          .join(', ') || '(none)'
      }`
    : 'none of its first records is a JSON object';
  throw new DatasetError(
    'DATASET_FORMAT',
    `${file}: cannot tell the dataset format: ${keys}. fedit reads alpaca {instruction, input, output}, ` +
      'dolly {instruction, context, response}, sharegpt {conversations: [{from, value}]} and ' +
      'messages {messages: [{role, content}]}; rename the fields or choose the format explicitly',
  );
}
