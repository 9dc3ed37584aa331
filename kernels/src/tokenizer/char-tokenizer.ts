// A character-level tokenizer written as real Hugging Face files: the tokenizer of fedit's built-in
// demo model and of every test. It goes through exactly the loading path a downloaded model's
// tokenizer does (tokenizer.json run by @huggingface/tokenizers, tokenizer_config.json for the
// special tokens and chat template), and the Python tokenizers/transformers libraries load it too.
//
// The model is BPE without merges: every character of the alphabet is one token, and a character
// outside it becomes <|unk|>. A Split pre-tokenizer isolates each character (so no "word" longer
// than one character ever reaches the model), and the Fuse decoder joins tokens without spaces.

import { mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { CHATML_TEMPLATE } from './chat-template.ts';
import { TokenizerError } from './load.ts';

/** Tab, newline and printable ASCII: enough for English instruction data. */
export const ASCII_ALPHABET =
  '\t\n' + Array.from({ length: 0x7f - 0x20 }, (_, i) => String.fromCharCode(0x20 + i)).join('');

export const CHAR_SPECIAL_TOKENS = {
  pad: '<|pad|>',
  bos: '<|bos|>',
  eos: '<|eos|>',
  unk: '<|unk|>',
} as const;

export interface CharTokenizerOptions {
  /** The characters (Unicode code points) that get a token each; duplicates are ignored. */
  alphabet: string;
  /** The Jinja chat template: CHATML_TEMPLATE unless given; null for none (a base model). */
  chatTemplate?: string | null;
  /** Overrides of the names of the pad, bos, eos and unk tokens. */
  specialTokens?: Partial<Record<keyof typeof CHAR_SPECIAL_TOKENS, string>>;
  /** Further special tokens, each one id; by default ChatML's `<|im_start|>` and `<|im_end|>`. */
  additionalSpecialTokens?: readonly string[];
  /** Whether encoding with special tokens starts with BOS (default true). */
  addBosToken?: boolean;
  /** tokenizer_config.json's model_max_length, if the model has a context length to state. */
  modelMaxLength?: number;
}

export interface CharTokenizerInfo {
  vocabSize: number;
  padTokenId: number;
  bosTokenId: number;
  eosTokenId: number;
  unkTokenId: number;
  /** Every special token's id, by content. */
  specialTokenIds: Readonly<Record<string, number>>;
}

export interface CharTokenizerFiles {
  tokenizerJson: Record<string, unknown>;
  tokenizerConfig: Record<string, unknown>;
  info: CharTokenizerInfo;
}

/** The contents of tokenizer.json and tokenizer_config.json, without writing them. */
export function charTokenizerFiles(options: CharTokenizerOptions): CharTokenizerFiles {
  const names = { ...CHAR_SPECIAL_TOKENS, ...options.specialTokens };
  const specials = [
    names.pad,
    names.bos,
    names.eos,
    names.unk,
    ...(options.additionalSpecialTokens ?? ['<|im_start|>', '<|im_end|>']),
  ];
  const seen = new Set<string>();
  for (const token of specials) {
    if (token.length === 0) throw new TokenizerError('A special token of the char tokenizer is empty.');
    if (seen.has(token)) {
      throw new TokenizerError(`The char tokenizer has the special token ${JSON.stringify(token)} twice.`);
    }
    seen.add(token);
  }
  const characters = [...new Set(Array.from(options.alphabet))];
  if (characters.length === 0) throw new TokenizerError('The char tokenizer needs a non-empty alphabet.');
  for (const character of characters) {
    if (seen.has(character)) {
      throw new TokenizerError(
        `The char tokenizer's alphabet holds ${JSON.stringify(character)}, which is also a special token.`,
      );
    }
  }

  const vocab: Record<string, number> = {};
  for (const token of [...specials, ...characters]) vocab[token] = Object.keys(vocab).length;
  const specialTokenIds = Object.fromEntries(specials.map((token) => [token, vocab[token]]));
  const addedTokens = specials.map((content) => ({
    id: vocab[content],
    content,
    single_word: false,
    lstrip: false,
    rstrip: false,
    normalized: false,
    special: true,
  }));
  const addBosToken = options.addBosToken ?? true;
  const bos = (typeId: number) => ({ SpecialToken: { id: names.bos, type_id: typeId } });
  const sequence = (id: 'A' | 'B', typeId: number) => ({ Sequence: { id, type_id: typeId } });

  const tokenizerJson = {
    version: '1.0',
    truncation: null,
    padding: null,
    added_tokens: addedTokens,
    normalizer: null,
    // `[\s\S]`, not `.`: the tokenizers' `.` does not match a newline.
    pre_tokenizer: { type: 'Split', pattern: { Regex: '[\\s\\S]' }, behavior: 'Isolated', invert: false },
    post_processor: addBosToken
      ? {
          type: 'TemplateProcessing',
          single: [bos(0), sequence('A', 0)],
          pair: [bos(0), sequence('A', 0), bos(1), sequence('B', 1)],
          special_tokens: { [names.bos]: { id: names.bos, ids: [vocab[names.bos]], tokens: [names.bos] } },
        }
      : null,
    decoder: { type: 'Fuse' },
    model: {
      type: 'BPE',
      dropout: null,
      unk_token: names.unk,
      continuing_subword_prefix: null,
      end_of_word_suffix: null,
      // One <|unk|> per unknown character, so positions still line up with characters.
      fuse_unk: false,
      byte_fallback: false,
      ignore_merges: false,
      vocab,
      merges: [],
    },
  };

  const chatTemplate = options.chatTemplate === undefined ? CHATML_TEMPLATE : options.chatTemplate;
  const tokenizerConfig: Record<string, unknown> = {
    tokenizer_class: 'PreTrainedTokenizerFast',
    add_bos_token: addBosToken,
    add_eos_token: false,
    added_tokens_decoder: Object.fromEntries(addedTokens.map(({ id, ...token }) => [String(id), token])),
    additional_special_tokens: specials.slice(4),
    bos_token: names.bos,
    eos_token: names.eos,
    pad_token: names.pad,
    unk_token: names.unk,
    clean_up_tokenization_spaces: false,
    ...(chatTemplate === null ? {} : { chat_template: chatTemplate }),
    ...(options.modelMaxLength === undefined ? {} : { model_max_length: options.modelMaxLength }),
  };

  return {
    tokenizerJson,
    tokenizerConfig,
    info: {
      vocabSize: Object.keys(vocab).length,
      padTokenId: vocab[names.pad],
      bosTokenId: vocab[names.bos],
      eosTokenId: vocab[names.eos],
      unkTokenId: vocab[names.unk],
      specialTokenIds,
    },
  };
}

/** Writes tokenizer.json and tokenizer_config.json into `dir` (created if needed). */
export async function writeCharTokenizer(
  dir: string,
  options: CharTokenizerOptions,
): Promise<CharTokenizerInfo> {
  const { tokenizerJson, tokenizerConfig, info } = charTokenizerFiles(options);
  await mkdir(dir, { recursive: true });
  await writeFile(join(dir, 'tokenizer.json'), JSON.stringify(tokenizerJson, null, 2) + '\n');
  await writeFile(join(dir, 'tokenizer_config.json'), JSON.stringify(tokenizerConfig, null, 2) + '\n');
  return info;
}
