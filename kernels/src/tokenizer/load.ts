// A model's own tokenizer, from the files of a Hugging Face model folder:
//
//   tokenizer.json           required; the tokenizer itself, run by @huggingface/tokenizers
//   tokenizer_config.json    optional; chat_template, bos/eos/pad/unk tokens, add_bos_token
//   special_tokens_map.json  optional; special tokens tokenizer_config.json does not name
//   chat_template.jinja      optional; where newer transformers save the template instead
//   config.json              optional; bos_token_id, eos_token_id (number or list), pad_token_id
//   generation_config.json   optional; eos_token_id (number or list)
//
// Generation stops at any of the eos ids the three configs name, and at the end-of-turn token of
// the chat template (<|im_end|>, <|eot_id|>, ...), which instruct models emit instead of eos.

import { FeditError } from '@fedit/shared';
import { Tokenizer as HfTokenizer } from '@huggingface/tokenizers';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { missingModelFile } from '../model/model-folder.ts';
import { compileChatTemplate, ChatTemplateError, type ChatTemplate } from './chat-template.ts';
import type { ChatMessage, Tokenizer } from './types.ts';

export class TokenizerError extends FeditError {
  constructor(message: string, options?: { cause?: unknown }) {
    super('TOKENIZER', message, options);
  }
}

/** The parsed contents of a model folder's tokenizer files; only tokenizerJson is required. */
export interface TokenizerFiles {
  tokenizerJson: unknown;
  tokenizerConfig?: unknown;
  specialTokensMap?: unknown;
  /** chat_template.jinja, used when tokenizer_config.json has no chat_template. */
  chatTemplateJinja?: string;
  config?: unknown;
  generationConfig?: unknown;
}

/** End-of-turn markers of common chat formats; each is a stop token when the chat template uses it. */
const END_OF_TURN_TOKENS = ['<|im_end|>', '<|eot_id|>', '<|eom_id|>', '<|end|>', '<end_of_turn>'];

const SPECIAL_TOKEN_NAMES = ['bos_token', 'eos_token', 'pad_token', 'unk_token'] as const;

export async function loadTokenizer(modelDir: string): Promise<Tokenizer> {
  const tokenizerPath = join(modelDir, 'tokenizer.json');
  const tokenizerText = await readText(tokenizerPath);
  if (tokenizerText === undefined) {
    throw new TokenizerError(missingModelFile(modelDir, 'tokenizer.json'));
  }
  const optionalJson = async (name: string) => {
    const path = join(modelDir, name);
    const text = await readText(path);
    return text === undefined ? undefined : parseJson(text, path);
  };
  return createTokenizer(
    {
      tokenizerJson: parseJson(tokenizerText, tokenizerPath),
      tokenizerConfig: await optionalJson('tokenizer_config.json'),
      specialTokensMap: await optionalJson('special_tokens_map.json'),
      chatTemplateJinja: await readText(join(modelDir, 'chat_template.jinja')),
      config: await optionalJson('config.json'),
      generationConfig: await optionalJson('generation_config.json'),
    },
    modelDir,
  );
}

/** A tokenizer from already-parsed files; `source` (a folder, a model name) is named in errors. */
export function createTokenizer(files: TokenizerFiles, source: string): Tokenizer {
  const tokenizerPath = join(source, 'tokenizer.json');
  const configPath = join(source, 'tokenizer_config.json');
  const tokenizerJson = asObject(files.tokenizerJson, tokenizerPath);
  if (!('model' in tokenizerJson)) {
    throw new TokenizerError(`${tokenizerPath} is not a Hugging Face tokenizer.json: it has no "model".`);
  }
  const tokenizerConfig =
    files.tokenizerConfig === undefined ? {} : asObject(files.tokenizerConfig, configPath);
  const specialTokensMapPath = join(source, 'special_tokens_map.json');
  const specialTokensMap =
    files.specialTokensMap === undefined ? {} : asObject(files.specialTokensMap, specialTokensMapPath);

  // Special tokens by name; tokenizer_config.json wins over special_tokens_map.json.
  const specialTokens: Record<string, string> = {};
  const specialTokenFile: Record<string, string> = {};
  for (const name of SPECIAL_TOKEN_NAMES) {
    const fromConfig = tokenContent(tokenizerConfig[name], configPath, name);
    const token = fromConfig ?? tokenContent(specialTokensMap[name], specialTokensMapPath, name);
    if (token === undefined) continue;
    specialTokens[name] = token;
    specialTokenFile[name] = fromConfig === undefined ? specialTokensMapPath : configPath;
  }
  const additionalSpecialTokens = tokenList(
    tokenizerConfig.additional_special_tokens ?? specialTokensMap.additional_special_tokens,
    configPath,
  );

  let hf: HfTokenizer;
  try {
    hf = new HfTokenizer(
      {
        // @huggingface/tokenizers wants every component key present; tokenizer.json files written
        // by hand (or by older tools) may leave out the ones that are null.
        normalizer: null,
        pre_tokenizer: null,
        post_processor: null,
        decoder: null,
        added_tokens: [],
        ...tokenizerJson,
      },
      {
        ...tokenizerConfig,
        ...specialTokens,
        additional_special_tokens: additionalSpecialTokens,
        // Unset means false: @huggingface/tokenizers' default (true) turns " ." into "." and so
        // breaks decode(encode(text)) === text; a model that wants the clean-up says so.
        clean_up_tokenization_spaces: tokenizerConfig.clean_up_tokenization_spaces === true,
      },
    );
  } catch (error) {
    throw new TokenizerError(
      `${tokenizerPath} could not be loaded by @huggingface/tokenizers: ${messageOf(error)}`,
      { cause: error },
    );
  }

  const idOf = (token: string, file: string, field: string) => {
    const id = hf.token_to_id(token);
    if (id === undefined) {
      throw new TokenizerError(`${file}: ${field} ${JSON.stringify(token)} is not in ${tokenizerPath}.`);
    }
    return id;
  };
  const namedId = (name: (typeof SPECIAL_TOKEN_NAMES)[number]) =>
    specialTokens[name] === undefined ? undefined : idOf(specialTokens[name], specialTokenFile[name], name);

  const modelConfigPath = join(source, 'config.json');
  const generationConfigPath = join(source, 'generation_config.json');
  const modelConfig = files.config === undefined ? {} : asObject(files.config, modelConfigPath);
  const generationConfig =
    files.generationConfig === undefined ? {} : asObject(files.generationConfig, generationConfigPath);
  const configEos = tokenIds(modelConfig.eos_token_id, modelConfigPath, 'eos_token_id');
  const generationEos = tokenIds(generationConfig.eos_token_id, generationConfigPath, 'eos_token_id');

  const bosTokenId =
    namedId('bos_token') ?? tokenIds(modelConfig.bos_token_id, modelConfigPath, 'bos_token_id')[0];
  const eosTokenId = namedId('eos_token') ?? generationEos[0] ?? configEos[0];
  const padTokenId =
    namedId('pad_token') ?? tokenIds(modelConfig.pad_token_id, modelConfigPath, 'pad_token_id')[0];

  const { template: chatTemplate, names: templateNames } = chatTemplateOf(
    tokenizerConfig.chat_template,
    files.chatTemplateJinja,
    configPath,
  );

  const stopTokenIds = new Set<number>();
  for (const id of [eosTokenId, ...configEos, ...generationEos]) if (id !== undefined) stopTokenIds.add(id);
  for (const token of END_OF_TURN_TOKENS) {
    const id = hf.token_to_id(token);
    if (id !== undefined && chatTemplate?.includes(token)) stopTokenIds.add(id);
  }

  let vocabSize = 0;
  for (const id of hf.get_vocab(true).values()) vocabSize = Math.max(vocabSize, id + 1);
  // A token id past the model's embedding table would fail (or read garbage) in the first step.
  // The opposite is common and fine: Qwen2.5 pads its table to 151936 for 151665 tokens, and
  // generation never picks the ids the tokenizer lacks (Generator's tokenizerVocabSize).
  const modelVocab = modelConfig.vocab_size;
  if (typeof modelVocab === 'number' && vocabSize > modelVocab) {
    throw new TokenizerError(
      `${tokenizerPath} has ${vocabSize} token ids but ${modelConfigPath} says vocab_size ${modelVocab}: ` +
        'the tokenizer has ids the model has no embedding for (is it the tokenizer of another model?).',
    );
  }

  // add_bos_token as LlamaTokenizerFast honours it: it decides whether encoding with special tokens
  // starts with BOS, whatever tokenizer.json's post-processor does.
  const addBosToken = tokenizerConfig.add_bos_token;
  if (addBosToken !== undefined && addBosToken !== null && typeof addBosToken !== 'boolean') {
    throw new TokenizerError(
      `${configPath}: add_bos_token must be true or false, not ${JSON.stringify(addBosToken)}.`,
    );
  }
  const postProcessorAddsBos =
    bosTokenId !== undefined && hf.encode('', { add_special_tokens: true }).ids[0] === bosTokenId;
  let bosFix: ModelTokenizerParts['bosFix'] = 'none';
  if (bosTokenId !== undefined && typeof addBosToken === 'boolean' && addBosToken !== postProcessorAddsBos) {
    bosFix = addBosToken ? 'prepend' : 'strip';
  }

  return new ModelTokenizer({
    hf,
    source,
    vocabSize,
    bosTokenId,
    eosTokenId,
    padTokenId,
    stopTokenIds: [...stopTokenIds],
    chatTemplate,
    templateNames,
    specialTokens,
    bosFix,
  });
}

interface ModelTokenizerParts {
  hf: HfTokenizer;
  source: string;
  vocabSize: number;
  bosTokenId: number | undefined;
  eosTokenId: number | undefined;
  padTokenId: number | undefined;
  stopTokenIds: number[];
  chatTemplate: string | undefined;
  templateNames: string[];
  specialTokens: Record<string, string>;
  /** How encode corrects the post-processor's BOS to match add_bos_token. */
  bosFix: 'none' | 'prepend' | 'strip';
}

class ModelTokenizer implements Tokenizer {
  readonly vocabSize: number;
  readonly bosTokenId: number | undefined;
  readonly eosTokenId: number | undefined;
  readonly padTokenId: number | undefined;
  readonly stopTokenIds: readonly number[];
  readonly chatTemplate: string | undefined;
  readonly #parts: ModelTokenizerParts;
  readonly #compiled = new Map<string, ChatTemplate>();

  constructor(parts: ModelTokenizerParts) {
    this.#parts = parts;
    this.vocabSize = parts.vocabSize;
    this.bosTokenId = parts.bosTokenId;
    this.eosTokenId = parts.eosTokenId;
    this.padTokenId = parts.padTokenId;
    this.stopTokenIds = Object.freeze(parts.stopTokenIds);
    this.chatTemplate = parts.chatTemplate;
  }

  encode(text: string, options: { addSpecialTokens?: boolean } = {}): number[] {
    const addSpecialTokens = options.addSpecialTokens ?? false;
    const ids = this.#parts.hf.encode(text, { add_special_tokens: addSpecialTokens }).ids;
    if (!addSpecialTokens || this.#parts.bosFix === 'none') return ids;
    const bos = this.bosTokenId as number;
    if (this.#parts.bosFix === 'prepend') return [bos, ...ids];
    return ids[0] === bos ? ids.slice(1) : ids;
  }

  decode(ids: readonly number[], options: { skipSpecialTokens?: boolean } = {}): string {
    for (const id of ids) {
      if (!Number.isInteger(id) || id < 0 || id >= this.vocabSize) {
        throw new TokenizerError(
          `Cannot decode token id ${id} with the tokenizer of ${this.#parts.source}: ids run from 0 to ${this.vocabSize - 1}.`,
        );
      }
    }
    // @huggingface/tokenizers refuses an empty list.
    if (ids.length === 0) return '';
    return this.#parts.hf.decode([...ids], { skip_special_tokens: options.skipSpecialTokens ?? false });
  }

  tokenToId(token: string): number | undefined {
    return this.#parts.hf.token_to_id(token);
  }

  idToToken(id: number): string | undefined {
    return this.#parts.hf.id_to_token(id);
  }

  applyChatTemplate(
    messages: readonly ChatMessage[],
    options: { addGenerationPrompt?: boolean; chatTemplate?: string } = {},
  ): string {
    const source = options.chatTemplate ?? this.chatTemplate;
    if (source === undefined) {
      const { templateNames } = this.#parts;
      const why =
        templateNames.length > 0
          ? `tokenizer_config.json lists chat templates named ${templateNames.map((n) => JSON.stringify(n)).join(', ')} but none named "default"`
          : 'tokenizer_config.json has no chat_template and there is no chat_template.jinja';
      throw new ChatTemplateError(
        `The model in ${this.#parts.source} has no chat template (${why}). Use an instruct model, or pass a Jinja chat template.`,
      );
    }
    let template = this.#compiled.get(source);
    if (template === undefined) {
      template = compileChatTemplate(source, this.#parts.source);
      this.#compiled.set(source, template);
    }
    return template.render(messages, {
      addGenerationPrompt: options.addGenerationPrompt,
      specialTokens: this.#parts.specialTokens,
    });
  }
}

async function readText(path: string): Promise<string | undefined> {
  try {
    return await readFile(path, 'utf8');
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw new TokenizerError(`Cannot read ${path}: ${messageOf(error)}`, { cause: error });
  }
}

function parseJson(text: string, path: string): unknown {
  try {
    return JSON.parse(text);
  } catch (error) {
    throw new TokenizerError(`${path} is not valid JSON: ${messageOf(error)}`, { cause: error });
  }
}

function asObject(value: unknown, path: string): Record<string, unknown> {
  if (typeof value !== 'object' || value === null || Array.isArray(value)) {
    throw new TokenizerError(`${path} must hold a JSON object.`);
  }
  return value as Record<string, unknown>;
}

/** A special token as configs write it: a string, an AddedToken object {content, ...}, or null. */
function tokenContent(value: unknown, path: string, field: string): string | undefined {
  if (value === undefined || value === null) return undefined;
  if (typeof value === 'string') return value;
  if (typeof value === 'object' && typeof (value as { content?: unknown }).content === 'string') {
    return (value as { content: string }).content;
  }
  throw new TokenizerError(
    `${path}: ${field} must be a string or an object with "content", not ${JSON.stringify(value)}.`,
  );
}

function tokenList(value: unknown, path: string): string[] {
  if (value === undefined || value === null) return [];
  if (!Array.isArray(value)) {
    throw new TokenizerError(`${path}: additional_special_tokens must be a list.`);
  }
  return value.flatMap((token, i) => tokenContent(token, path, `additional_special_tokens[${i}]`) ?? []);
}

/** A token id field of config.json / generation_config.json: a number, a list of numbers, or null. */
function tokenIds(value: unknown, path: string, field: string): number[] {
  if (value === undefined || value === null) return [];
  const ids = Array.isArray(value) ? value : [value];
  for (const id of ids) {
    if (!Number.isInteger(id) || (id as number) < 0) {
      throw new TokenizerError(
        `${path}: ${field} must be a token id or a list of them, not ${JSON.stringify(value)}.`,
      );
    }
  }
  return ids as number[];
}

/**
 * tokenizer_config.json's chat_template: a string, or a list of {name, template} of which
 * apply_chat_template uses "default"; chat_template.jinja when the config has none.
 */
function chatTemplateOf(
  value: unknown,
  jinja: string | undefined,
  path: string,
): { template: string | undefined; names: string[] } {
  if (value === undefined || value === null) return { template: jinja, names: [] };
  if (typeof value === 'string') return { template: value, names: [] };
  if (Array.isArray(value)) {
    const names: string[] = [];
    let template: string | undefined;
    for (const entry of value) {
      const { name, template: text } = (entry ?? {}) as { name?: unknown; template?: unknown };
      if (typeof name !== 'string' || typeof text !== 'string') {
        throw new TokenizerError(
          `${path}: each chat_template entry must be {"name": string, "template": string}.`,
        );
      }
      names.push(name);
      if (name === 'default') template = text;
    }
    return { template, names };
  }
  throw new TokenizerError(`${path}: chat_template must be a string or a list of {name, template}.`);
}

function messageOf(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}
