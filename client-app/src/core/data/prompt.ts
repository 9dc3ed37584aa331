// Conversations -> the token rows the trainer sees: the prompt template applied, the text
// tokenized by the model's own tokenizer, labels set so the loss falls on response tokens only
// (IGNORE_INDEX elsewhere), and the row cut to cutoffLen. This follows FedIT's Shepherd
// (generate_and_tokenize_prompt): BOS + prompt + response + EOS, truncated to cutoff_len, EOS
// dropped when the text reaches the cutoff, and `train_on_inputs` to train on every token.
//
// Two templates:
//   alpaca  Shepherd's templates/alpaca.json, for base models;
//   chat    the model's own chat template (tokenizer_config.json), for instruct models.
//
// Which tokens are the response: the text is rendered as pieces (prompt, response, prompt, ...),
// then tokenized as one text, and each piece boundary is checked to fall on a token boundary:
// encode(text up to the boundary) must be a prefix of encode(whole text). When a tokenizer merges
// characters across a boundary, the pieces are tokenized one by one and concatenated instead
// (so the mask stays exact), and the report counts the example as tokenized piecewise.

import { IGNORE_INDEX, type ChatMessage, type TokenRow, type Tokenizer } from '@fedit/kernels';
import { DatasetError } from './errors.ts';
import type { Conversation, Example, SkippedRow, SourceRef, UserTurn } from './types.ts';

export const PROMPT_TEMPLATES = ['alpaca', 'chat'] as const;
export type PromptTemplate = (typeof PROMPT_TEMPLATES)[number];

/** Shepherd's templates/alpaca.json, verbatim. */
export const ALPACA_TEMPLATE = {
  promptInput:
    'Below is an instruction that describes a task, paired with an input that provides further context. ' +
    'Write a response that appropriately completes the request.\n\n' +
    '### Instruction:\n{instruction}\n\n### Input:\n{input}\n\n### Response:\n',
  promptNoInput:
    'Below is an instruction that describes a task. Write a response that appropriately completes the request.\n\n' +
    '### Instruction:\n{instruction}\n\n### Response:\n',
} as const;

export interface BuildOptions {
  template: PromptTemplate;
  /** Shepherd's cutoff_len: rows are cut to this many tokens. */
  cutoffLen: number;
  /** Shepherd's train_on_inputs: learn every token, prompt included. Default false (responses only). */
  trainOnInputs?: boolean;
}

/** A row ready for training, with what a preview or the report needs to know about it. */
export interface TrainingExample extends TokenRow {
  source: SourceRef;
  /** The rendered text (prompt and response, EOS written out), before truncation. */
  text: string;
  /** Tokens before truncation. */
  fullLength: number;
  /** The row was cut to cutoffLen (for alpaca this includes a dropped EOS). */
  truncated: boolean;
  /** Response tokens kept in the row: the ones labels train when trainOnInputs is off. */
  responseTokens: number;
  /** 'joint': tokenized as one text; 'piecewise': prompt and response tokenized apart (see above). */
  tokenization: 'joint' | 'piecewise';
  /**
   * Chat template only: the template renders earlier turns differently once the conversation goes
   * on (some drop earlier reasoning), so only the last assistant turn can be told apart and trained.
   */
  lastTurnOnly: boolean;
  category?: string;
}

export type BuiltExample = { ok: true; example: TrainingExample } | { ok: false; skipped: SkippedRow };

interface Piece {
  text: string;
  /** Part of a response (trained), or of the prompt. */
  response: boolean;
}

/**
 * Instruction, input and response for the alpaca template. Alpaca has one instruction and one
 * response, so a longer conversation keeps its last exchange as instruction and response, and
 * everything before it (system prompt, earlier turns, the last turn's own input) goes under
 * "### Input:" as a transcript ("User: ...", "Assistant: ..."); only the last response is trained.
 * A single-turn conversation without system prompt renders exactly as Shepherd renders it.
 */
export function alpacaFields(c: Conversation): { instruction: string; input?: string; response: string } {
  const turns = c.turns;
  const last = turns[turns.length - 2] as UserTurn;
  const response = turns[turns.length - 1].content;
  const context: string[] = [];
  if (c.system !== undefined) context.push(`System: ${c.system}`);
  for (const t of turns.slice(0, -2)) {
    context.push(
      t.role === 'user'
        ? `User: ${t.content}${t.input === undefined ? '' : `\n\n${t.input}`}`
        : `Assistant: ${t.content}`,
    );
  }
  if (last.input !== undefined) context.push(last.input);
  return context.length
    ? { instruction: last.content, input: context.join('\n\n'), response }
    : { instruction: last.content, response };
}

/** The alpaca prompt (everything before the response). */
export function renderAlpacaPrompt(instruction: string, input?: string): string {
  // Function replacers: a '$' in the data must not be read as a replacement pattern.
  return input === undefined
    ? ALPACA_TEMPLATE.promptNoInput.replace('{instruction}', () => instruction)
    : ALPACA_TEMPLATE.promptInput.replace('{instruction}', () => instruction).replace('{input}', () => input);
}

/** The messages a chat template sees: a user turn's input follows its content after a blank line. */
export function chatMessages(c: Conversation): ChatMessage[] {
  const messages: ChatMessage[] = c.system === undefined ? [] : [{ role: 'system', content: c.system }];
  for (const t of c.turns) {
    messages.push({
      role: t.role,
      content: t.role === 'user' && t.input !== undefined ? `${t.content}\n\n${t.input}` : t.content,
    });
  }
  return messages;
}

/** Checks the options and that the tokenizer has what the template needs. */
export function checkBuildOptions(tokenizer: Tokenizer, options: BuildOptions): void {
  if (!(PROMPT_TEMPLATES as readonly string[]).includes(options.template)) {
    throw new DatasetError(
      'DATASET_OPTIONS',
      `unknown prompt template '${String(options.template)}'; choose alpaca or chat`,
    );
  }
  if (!Number.isInteger(options.cutoffLen) || options.cutoffLen < 2) {
    throw new DatasetError(
      'DATASET_OPTIONS',
      `cutoffLen must be an integer of at least 2, not ${options.cutoffLen}`,
    );
  }
  if (options.template === 'alpaca' && tokenizer.eosTokenId === undefined) {
    throw new DatasetError(
      'DATASET_TOKENIZER',
      'the alpaca template ends every response with EOS, and this tokenizer has no eos_token',
    );
  }
  if (options.template === 'chat' && tokenizer.chatTemplate === undefined) {
    throw new DatasetError(
      'DATASET_TOKENIZER',
      'the chat template was chosen, but this model has no chat template (tokenizer_config.json has no ' +
        'chat_template); use the alpaca template for a base model',
    );
  }
  if (options.template === 'chat') {
    // A template that cannot render the plainest exchange is broken for every row: say so once,
    // rather than skip every row with the same reason.
    try {
      tokenizer.applyChatTemplate([
        { role: 'user', content: 'Hello' },
        { role: 'assistant', content: 'Hi' },
      ]);
    } catch (err) {
      throw new DatasetError(
        'DATASET_TOKENIZER',
        `the model's chat template cannot render a plain user/assistant exchange: ${err instanceof Error ? err.message : String(err)}`,
        { cause: err },
      );
    }
  }
}

/** Tokens the tokenizer puts before a text when asked for special tokens (BOS, for Llama). */
function leadingSpecialIds(tokenizer: Tokenizer): number[] {
  const probe = 'Hello';
  const plain = tokenizer.encode(probe);
  const withSpecial = tokenizer.encode(probe, { addSpecialTokens: true });
  for (let i = 0; i + plain.length <= withSpecial.length; i++) {
    if (plain.every((id, k) => withSpecial[i + k] === id)) return withSpecial.slice(0, i);
  }
  return [];
}

function isPrefix(prefix: readonly number[], of: readonly number[]): boolean {
  if (prefix.length > of.length) return false;
  for (let i = 0; i < prefix.length; i++) if (prefix[i] !== of[i]) return false;
  return true;
}

/** Token ids of the pieces and, per token, whether it belongs to a response piece. */
function tokenizePieces(
  tokenizer: Tokenizer,
  pieces: readonly Piece[],
): { ids: number[]; response: boolean[]; tokenization: 'joint' | 'piecewise' } {
  const text = pieces.map((p) => p.text).join('');
  const ids = tokenizer.encode(text);
  const ends: number[] = [];
  let offset = 0;
  let joint = true;
  for (let i = 0; i < pieces.length - 1 && joint; i++) {
    offset += pieces[i].text.length;
    const prefix = tokenizer.encode(text.slice(0, offset));
    joint = isPrefix(prefix, ids) && prefix.length >= (ends.at(-1) ?? 0);
    ends.push(prefix.length);
  }
  if (joint) {
    ends.push(ids.length);
    const response: boolean[] = [];
    let start = 0;
    pieces.forEach((p, i) => {
      for (let t = start; t < ends[i]; t++) response.push(p.response);
      start = ends[i];
    });
    return { ids, response, tokenization: 'joint' };
  }
  const piecewise: number[] = [];
  const response: boolean[] = [];
  for (const p of pieces) {
    for (const id of tokenizer.encode(p.text)) {
      piecewise.push(id);
      response.push(p.response);
    }
  }
  return { ids: piecewise, response, tokenization: 'piecewise' };
}

/**
 * The chat rendering cut into prompt and response pieces. For each assistant turn, the template
 * renders the conversation up to it with the generation prompt (what the model sees before
 * answering) and up to and including it; the difference is the response. Both must be prefixes of
 * the whole rendering, or the template rewrites earlier turns and only the last turn can be split.
 */
function chatPieces(
  tokenizer: Tokenizer,
  c: Conversation,
): { pieces: Piece[]; lastTurnOnly: boolean } | { error: string } {
  const messages = chatMessages(c);
  const render = (count: number, addGenerationPrompt: boolean) =>
    tokenizer.applyChatTemplate(messages.slice(0, count), { addGenerationPrompt });
  let full: string;
  try {
    full = render(messages.length, false);
    const pieces: Piece[] = [];
    let pos = 0;
    let chained = true;
    for (let k = 0; k < messages.length && chained; k++) {
      if (messages[k].role !== 'assistant') continue;
      const prompt = render(k, true);
      const through = render(k + 1, false);
      chained =
        prompt.length >= pos &&
        prompt.length <= through.length &&
        full.startsWith(prompt) &&
        full.startsWith(through);
      if (chained) {
        pieces.push({ text: full.slice(pos, prompt.length), response: false });
        pieces.push({ text: full.slice(prompt.length, through.length), response: true });
        pos = through.length;
      }
    }
    if (chained) {
      if (pos < full.length) pieces.push({ text: full.slice(pos), response: false });
      return { pieces, lastTurnOnly: false };
    }
    const prompt = render(messages.length - 1, true);
    if (full.startsWith(prompt)) {
      return {
        pieces: [
          { text: prompt, response: false },
          { text: full.slice(prompt.length), response: true },
        ],
        lastTurnOnly: true,
      };
    }
  } catch (err) {
    return { error: err instanceof Error ? err.message : String(err) };
  }
  return {
    error:
      'the chat template does not render the prompt as the beginning of the conversation, so the ' +
      'response tokens cannot be told apart',
  };
}

/**
 * Chat templates close a turn with an end-of-turn token and often a separator after it
 * (ChatML's "<|im_end|>\n"). The end-of-turn token is learnt (it is how the model stops); what
 * follows it belongs to the frame, not the response.
 */
function stopAtEndOfTurn(ids: readonly number[], response: boolean[], stopIds: ReadonlySet<number>): void {
  for (let t = 0; t < ids.length;) {
    if (!response[t]) {
      t++;
      continue;
    }
    let end = t;
    while (end < ids.length && response[end]) end++;
    let lastStop = -1;
    for (let k = t; k < end; k++) if (stopIds.has(ids[k])) lastStop = k;
    if (lastStop !== -1) for (let k = lastStop + 1; k < end; k++) response[k] = false;
    t = end;
  }
}

/** A prepared builder: checks options and the tokenizer once, then builds examples. */
export function exampleBuilder(
  tokenizer: Tokenizer,
  options: BuildOptions,
): (example: Example) => BuiltExample {
  checkBuildOptions(tokenizer, options);
  const leading = options.template === 'alpaca' ? leadingSpecialIds(tokenizer) : [];
  const eos = tokenizer.eosTokenId;
  const eosText = eos === undefined ? '' : tokenizer.decode([eos]);
  const stopIds = new Set(tokenizer.stopTokenIds);
  const trainOnInputs = options.trainOnInputs ?? false;

  return (example) => {
    let pieces: Piece[];
    let lastTurnOnly = false;
    if (options.template === 'alpaca') {
      const { instruction, input, response } = alpacaFields(example);
      pieces = [
        { text: renderAlpacaPrompt(instruction, input), response: false },
        { text: response, response: true },
      ];
    } else {
      const split = chatPieces(tokenizer, example);
      if ('error' in split) {
        return { ok: false, skipped: { source: example.source, code: 'template', reason: split.error } };
      }
      pieces = split.pieces;
      lastTurnOnly = split.lastTurnOnly;
    }
    const tokens = tokenizePieces(tokenizer, pieces);
    let ids = [...leading, ...tokens.ids];
    let response = [...leading.map(() => false), ...tokens.response];
    let text = pieces.map((p) => p.text).join('');
    if (options.template === 'alpaca') {
      ids.push(eos as number);
      response.push(true);
      text += eosText;
    } else stopAtEndOfTurn(ids, response, stopIds);

    const fullLength = ids.length;
    const promptLength = response.indexOf(true);
    if (promptLength === -1) {
      const reason =
        'the rendered conversation has no response tokens (does the chat template drop replies?)';
      return { ok: false, skipped: { source: example.source, code: 'template', reason } };
    }
    const truncated = fullLength > options.cutoffLen;
    if (truncated) {
      ids = ids.slice(0, options.cutoffLen);
      response = response.slice(0, options.cutoffLen);
    }
    const responseTokens = response.reduce((n, r) => n + (r ? 1 : 0), 0);
    if (responseTokens === 0) {
      return {
        ok: false,
        skipped: {
          source: example.source,
          code: 'truncated-away',
          reason: `the prompt alone is ${promptLength} tokens: cutoffLen ${options.cutoffLen} leaves no response token to learn`,
        },
      };
    }
    const built: TrainingExample = {
      inputIds: ids,
      labels: ids.map((id, t) => (trainOnInputs || response[t] ? id : IGNORE_INDEX)),
      source: example.source,
      text,
      fullLength,
      truncated,
      responseTokens,
      tokenization: tokens.tokenization,
      lastTurnOnly,
    };
    if (example.category !== undefined) built.category = example.category;
    return { ok: true, example: built };
  };
}

export interface BuildResult {
  examples: TrainingExample[];
  skipped: SkippedRow[];
}

/** Builds every example; the ones that cannot be trained on are skipped with a reason. */
export function buildExamples(
  examples: readonly Example[],
  tokenizer: Tokenizer,
  options: BuildOptions,
): BuildResult {
  const build = exampleBuilder(tokenizer, options);
  const result: BuildResult = { examples: [], skipped: [] };
  for (const example of examples) {
    const built = build(example);
    if (built.ok) result.examples.push(built.example);
    else result.skipped.push(built.skipped);
  }
  return result;
}
