// A tiny byte-level BPE tokenizer.json in the two shapes real checkpoints use: GPT-2 / SmolLM2
// (ByteLevel pre-tokenizer with its own regex, merges as "a b" strings) and Llama-3 (a Split regex
// then ByteLevel without regex, merges as pairs, BOS added by TemplateProcessing).

/** GPT-2's reversible map from bytes to printable characters (space is "Ġ", newline "Ċ"). */
export function bytesToUnicode(): string[] {
  const printable = (b: number) =>
    (b >= 0x21 && b <= 0x7e) || (b >= 0xa1 && b <= 0xac) || (b >= 0xae && b <= 0xff);
  const map: string[] = [];
  let extra = 0;
  for (let b = 0; b < 256; b++) map[b] = String.fromCharCode(printable(b) ? b : 256 + extra++);
  return map;
}

/** Merges, in rank order, over the byte alphabet ("Ġ" is a leading space). */
export const MERGES: [string, string][] = [
  ['Ġ', 't'],
  ['h', 'e'],
  ['Ġt', 'he'],
  ['l', 'l'],
  ['ll', 'o'],
  ['Ġ', 'w'],
  ['o', 'r'],
  ['Ġw', 'or'],
  ['Ġwor', 'ld'],
  ['l', 'd'],
];

export const LLAMA3_SPECIALS = [
  '<|begin_of_text|>',
  '<|end_of_text|>',
  '<|start_header_id|>',
  '<|end_header_id|>',
  '<|eot_id|>',
];
export const GPT2_SPECIALS = ['<|endoftext|>', '<|im_start|>', '<|im_end|>'];

const LLAMA3_SPLIT =
  "(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}{1,3}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+";

export function byteLevelBpeJson(shape: 'gpt2' | 'llama3'): Record<string, unknown> {
  const vocab: Record<string, number> = {};
  const add = (token: string) => {
    if (!(token in vocab)) vocab[token] = Object.keys(vocab).length;
  };
  for (const character of bytesToUnicode()) add(character);
  for (const [a, b] of MERGES) add(a + b);
  const specials = shape === 'llama3' ? LLAMA3_SPECIALS : GPT2_SPECIALS;
  for (const token of specials) add(token);
  const addedTokens = specials.map((content) => ({
    id: vocab[content],
    content,
    single_word: false,
    lstrip: false,
    rstrip: false,
    normalized: false,
    special: true,
  }));
  const model = {
    type: 'BPE',
    dropout: null,
    unk_token: null,
    continuing_subword_prefix: null,
    end_of_word_suffix: null,
    fuse_unk: false,
    byte_fallback: false,
    ignore_merges: shape === 'llama3',
    vocab,
    merges: shape === 'llama3' ? MERGES : MERGES.map(([a, b]) => `${a} ${b}`),
  };
  const byteLevel = { add_prefix_space: false, trim_offsets: true, use_regex: shape === 'gpt2' };
  if (shape === 'gpt2') {
    return {
      version: '1.0',
      truncation: null,
      padding: null,
      added_tokens: addedTokens,
      normalizer: null,
      pre_tokenizer: { type: 'ByteLevel', ...byteLevel },
      post_processor: { type: 'ByteLevel', ...byteLevel },
      decoder: { type: 'ByteLevel', ...byteLevel },
      model,
    };
  }
  const bos = '<|begin_of_text|>';
  return {
    version: '1.0',
    truncation: null,
    padding: null,
    added_tokens: addedTokens,
    normalizer: null,
    pre_tokenizer: {
      type: 'Sequence',
      pretokenizers: [
        { type: 'Split', pattern: { Regex: LLAMA3_SPLIT }, behavior: 'Isolated', invert: false },
        { type: 'ByteLevel', ...byteLevel },
      ],
    },
    post_processor: {
      type: 'Sequence',
      processors: [
        { type: 'ByteLevel', ...byteLevel },
        {
          type: 'TemplateProcessing',
          single: [{ SpecialToken: { id: bos, type_id: 0 } }, { Sequence: { id: 'A', type_id: 0 } }],
          pair: [
            { SpecialToken: { id: bos, type_id: 0 } },
            { Sequence: { id: 'A', type_id: 0 } },
            { SpecialToken: { id: bos, type_id: 1 } },
            { Sequence: { id: 'B', type_id: 1 } },
          ],
          special_tokens: { [bos]: { id: bos, ids: [vocab[bos]], tokens: [bos] } },
        },
      ],
    },
    decoder: { type: 'ByteLevel', ...byteLevel },
    model,
  };
}
