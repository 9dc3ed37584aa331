import test from 'ava';
import { FeditError } from '@fedit/shared';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import {
  ASCII_ALPHABET,
  charTokenizerFiles,
  writeCharTokenizer,
  type CharTokenizerOptions,
} from '../src/tokenizer/char-tokenizer.ts';
import { CHATML_TEMPLATE, ChatTemplateError } from '../src/tokenizer/chat-template.ts';
import { createTokenizer, loadTokenizer, TokenizerError } from '../src/tokenizer/load.ts';
import type { ChatMessage, Tokenizer } from '../src/tokenizer/types.ts';
import { byteLevelBpeJson, LLAMA3_SPECIALS } from './helpers/bpe.ts';
import {
  LLAMA3_TEMPLATE,
  MISTRAL_TEMPLATE,
  QWEN25_TEMPLATE,
  SMOLLM2_TEMPLATE,
} from './helpers/chat-templates.ts';
import { modelDir } from './helpers/model-dir.ts';

function charTokenizer(options: Partial<CharTokenizerOptions> = {}, extra: Record<string, unknown> = {}) {
  const { tokenizerJson, tokenizerConfig, info } = charTokenizerFiles({
    alphabet: ASCII_ALPHABET,
    ...options,
  });
  return { tokenizer: createTokenizer({ tokenizerJson, tokenizerConfig, ...extra }, '/models/demo'), info };
}

const conversation: ChatMessage[] = [
  { role: 'system', content: 'Be brief.' },
  { role: 'user', content: 'Hi!' },
  { role: 'assistant', content: 'Hello.' },
  { role: 'user', content: 'Sum 2+2?' },
];

// --- the char tokenizer ---------------------------------------------------------------------------

test('the char tokenizer written to disk loads and round-trips text', async (t) => {
  const dir = modelDir({}, (fn) => t.teardown(fn));
  const info = await writeCharTokenizer(dir, { alphabet: ASCII_ALPHABET });
  const tokenizer = await loadTokenizer(dir);
  const text = 'Hello, world .\n\tIt\'s "fine"  -- {ok}? ';
  const ids = tokenizer.encode(text);
  t.is(ids.length, text.length);
  t.is(tokenizer.decode(ids), text);
  t.is(tokenizer.vocabSize, info.vocabSize);
  t.is(info.vocabSize, 6 + ASCII_ALPHABET.length);
  t.deepEqual(
    [tokenizer.padTokenId, tokenizer.bosTokenId, tokenizer.eosTokenId],
    [info.padTokenId, info.bosTokenId, info.eosTokenId],
  );
  const written = JSON.parse(readFileSync(join(dir, 'tokenizer.json'), 'utf8'));
  t.is(written.model.type, 'BPE');
  t.deepEqual(written.model.merges, []);
  t.is(written.decoder.type, 'Fuse');
});

test('the char tokenizer gives every code point of its alphabet one id, astral ones included', (t) => {
  const { tokenizer } = charTokenizer({ alphabet: 'ab é😀\n' });
  const ids = tokenizer.encode('a😀é\nb');
  t.is(ids.length, 5);
  t.is(tokenizer.decode(ids), 'a😀é\nb');
  t.is(tokenizer.idToToken(ids[1]), '😀');
});

test('special tokens written in text encode to their single ids', (t) => {
  const { tokenizer, info } = charTokenizer();
  for (const token of ['<|bos|>', '<|eos|>', '<|pad|>', '<|im_start|>', '<|im_end|>']) {
    t.deepEqual(tokenizer.encode(token), [info.specialTokenIds[token]], token);
    t.is(tokenizer.tokenToId(token), info.specialTokenIds[token]);
  }
  const ids = tokenizer.encode('<|im_start|>user\nhi<|im_end|>\n');
  t.deepEqual(ids.slice(0, 2), [info.specialTokenIds['<|im_start|>'], tokenizer.tokenToId('u')]);
  t.is(ids.length, 1 + 'user\nhi'.length + 1 + 1);
  t.is(tokenizer.decode(ids), '<|im_start|>user\nhi<|im_end|>\n');
  t.is(tokenizer.decode(ids, { skipSpecialTokens: true }), 'user\nhi\n');
});

test('BOS is added only with addSpecialTokens', (t) => {
  const { tokenizer, info } = charTokenizer();
  t.deepEqual(tokenizer.encode('ab'), [tokenizer.tokenToId('a'), tokenizer.tokenToId('b')]);
  t.deepEqual(tokenizer.encode('ab', { addSpecialTokens: true }), [
    info.bosTokenId,
    tokenizer.tokenToId('a'),
    tokenizer.tokenToId('b'),
  ]);
  t.deepEqual(tokenizer.encode('', { addSpecialTokens: true }), [info.bosTokenId]);
  t.deepEqual(tokenizer.encode(''), []);
  t.is(tokenizer.decode([]), '');
  const { tokenizer: noBos } = charTokenizer({ addBosToken: false });
  t.deepEqual(noBos.encode('ab', { addSpecialTokens: true }), noBos.encode('ab'));
});

test('add_bos_token in tokenizer_config.json overrides what the post-processor does', (t) => {
  const files = charTokenizerFiles({ alphabet: 'ab' });
  const without = createTokenizer(
    {
      tokenizerJson: files.tokenizerJson,
      tokenizerConfig: { ...files.tokenizerConfig, add_bos_token: false },
    },
    '/m',
  );
  const a = without.tokenToId('a')!;
  t.deepEqual(without.encode('a', { addSpecialTokens: true }), [a]);
  const withBos = createTokenizer(
    {
      tokenizerJson: { ...files.tokenizerJson, post_processor: null },
      tokenizerConfig: { ...files.tokenizerConfig, add_bos_token: true },
    },
    '/m',
  );
  t.deepEqual(withBos.encode('a', { addSpecialTokens: true }), [files.info.bosTokenId, a]);
});

test('characters outside the alphabet become <|unk|>, one per character', (t) => {
  const { tokenizer, info } = charTokenizer({ alphabet: 'abc' });
  const ids = tokenizer.encode('a€xb😀');
  t.deepEqual(ids, [
    tokenizer.tokenToId('a'),
    info.unkTokenId,
    info.unkTokenId,
    tokenizer.tokenToId('b'),
    info.unkTokenId,
  ]);
  t.is(tokenizer.decode(ids), 'a<|unk|><|unk|>b<|unk|>');
});

test('the char tokenizer rejects an empty alphabet and clashing special tokens', (t) => {
  t.throws(() => charTokenizerFiles({ alphabet: '' }), {
    instanceOf: TokenizerError,
    message: /non-empty alphabet/,
  });
  t.throws(() => charTokenizerFiles({ alphabet: 'ab', specialTokens: { eos: '<|bos|>' } }), {
    instanceOf: TokenizerError,
    message: /"<\|bos\|>" twice/,
  });
  t.throws(() => charTokenizerFiles({ alphabet: 'ab#', specialTokens: { pad: '#' } }), {
    message: /alphabet holds "#", which is also a special token/,
  });
});

test('decode rejects ids outside the vocabulary', (t) => {
  const { tokenizer } = charTokenizer();
  t.throws(() => tokenizer.decode([0, tokenizer.vocabSize]), {
    instanceOf: TokenizerError,
    message: new RegExp(`token id ${tokenizer.vocabSize} .*/models/demo`),
  });
  t.throws(() => tokenizer.decode([1.5]), { instanceOf: TokenizerError });
});

// --- byte-level BPE, as GPT-2 / SmolLM2 / Llama-3 ship it ------------------------------------------

for (const shape of ['gpt2', 'llama3'] as const) {
  test(`a byte-level BPE tokenizer.json with merges (${shape} shape) loads and round-trips`, async (t) => {
    const dir = modelDir(
      {
        'tokenizer.json': byteLevelBpeJson(shape),
        'tokenizer_config.json': shape === 'llama3' ? { bos_token: '<|begin_of_text|>' } : {},
      },
      (fn) => t.teardown(fn),
    );
    const tokenizer = await loadTokenizer(dir);
    const pieces = (text: string) => tokenizer.encode(text).map((id) => tokenizer.idToToken(id));
    t.deepEqual(pieces('the hello world'), ['t', 'he', 'Ġ', 'he', 'llo', 'Ġworld']);
    const text = "The world, it's naïve: café 😀 中文\n\n  x\t12345 ";
    t.is(tokenizer.decode(tokenizer.encode(text)), text);
    if (shape === 'llama3') {
      const bos = tokenizer.tokenToId('<|begin_of_text|>');
      t.is(tokenizer.bosTokenId, bos);
      t.deepEqual(tokenizer.encode('the', { addSpecialTokens: true }), [bos!, ...tokenizer.encode('the')]);
      const withSpecial = 'hello<|eot_id|> world';
      t.deepEqual(pieces(withSpecial), ['he', 'llo', '<|eot_id|>', 'Ġworld']);
      t.is(tokenizer.decode(tokenizer.encode(withSpecial)), withSpecial);
      t.is(tokenizer.decode(tokenizer.encode(withSpecial), { skipSpecialTokens: true }), 'hello world');
    } else {
      t.is(tokenizer.bosTokenId, undefined);
      t.deepEqual(tokenizer.encode('the', { addSpecialTokens: true }), tokenizer.encode('the'));
    }
  });
}

// --- chat templates -------------------------------------------------------------------------------

test('the default ChatML template renders each turn as <|im_start|>role\\ncontent<|im_end|>\\n', (t) => {
  const { tokenizer } = charTokenizer();
  t.is(tokenizer.chatTemplate, CHATML_TEMPLATE);
  const messages = conversation.slice(1, 3);
  const turns = '<|im_start|>user\nHi!<|im_end|>\n<|im_start|>assistant\nHello.<|im_end|>\n';
  t.is(tokenizer.applyChatTemplate(messages), turns);
  t.is(
    tokenizer.applyChatTemplate(messages, { addGenerationPrompt: true }),
    turns + '<|im_start|>assistant\n',
  );
});

test('renders the SmolLM2-Instruct template, adding its default system prompt', (t) => {
  const { tokenizer } = charTokenizer({ chatTemplate: SMOLLM2_TEMPLATE });
  const system =
    '<|im_start|>system\nYou are a helpful AI assistant named SmolLM, trained by Hugging Face<|im_end|>\n';
  t.is(
    tokenizer.applyChatTemplate([{ role: 'user', content: 'Hi!' }], { addGenerationPrompt: true }),
    system + '<|im_start|>user\nHi!<|im_end|>\n<|im_start|>assistant\n',
  );
  t.is(
    tokenizer.applyChatTemplate(conversation.slice(0, 2)),
    '<|im_start|>system\nBe brief.<|im_end|>\n<|im_start|>user\nHi!<|im_end|>\n',
  );
});

test('renders the Qwen2.5-Instruct template, with and without a system message', (t) => {
  const { tokenizer } = charTokenizer({ chatTemplate: QWEN25_TEMPLATE });
  t.is(
    tokenizer.applyChatTemplate(conversation, { addGenerationPrompt: true }),
    '<|im_start|>system\nBe brief.<|im_end|>\n' +
      '<|im_start|>user\nHi!<|im_end|>\n' +
      '<|im_start|>assistant\nHello.<|im_end|>\n' +
      '<|im_start|>user\nSum 2+2?<|im_end|>\n' +
      '<|im_start|>assistant\n',
  );
  t.is(
    tokenizer.applyChatTemplate([{ role: 'user', content: 'Hi!' }]),
    '<|im_start|>system\nYou are Qwen, created by Alibaba Cloud. You are a helpful assistant.<|im_end|>\n' +
      '<|im_start|>user\nHi!<|im_end|>\n',
  );
});

test('renders the Llama-3-Instruct template with the tokenizer’s bos_token', async (t) => {
  const dir = modelDir(
    {
      'tokenizer.json': byteLevelBpeJson('llama3'),
      'tokenizer_config.json': {
        bos_token: { content: '<|begin_of_text|>', lstrip: false, normalized: false, special: true },
        eos_token: '<|end_of_text|>',
        chat_template: LLAMA3_TEMPLATE,
      },
    },
    (fn) => t.teardown(fn),
  );
  const tokenizer = await loadTokenizer(dir);
  const body =
    '<|begin_of_text|><|start_header_id|>system<|end_header_id|>\n\nBe brief.<|eot_id|>' +
    '<|start_header_id|>user<|end_header_id|>\n\nHi!<|eot_id|>';
  const messages = [conversation[0], { role: 'user', content: '  Hi!\n' }];
  t.is(tokenizer.applyChatTemplate(messages), body);
  const prompt = tokenizer.applyChatTemplate(messages, { addGenerationPrompt: true });
  t.is(prompt, body + '<|start_header_id|>assistant<|end_header_id|>\n\n');
  // The rendered prompt already starts with BOS, so it is encoded without special tokens.
  const ids = tokenizer.encode(prompt);
  t.is(ids[0], tokenizer.bosTokenId!);
  t.is(ids.filter((id) => id === tokenizer.bosTokenId).length, 1);
  t.is(tokenizer.decode(ids), prompt);
});

function mistralTokenizer(): Tokenizer {
  return charTokenizer({
    chatTemplate: MISTRAL_TEMPLATE,
    specialTokens: { bos: '<s>', eos: '</s>', unk: '<unk>', pad: '<pad>' },
    additionalSpecialTokens: [],
  }).tokenizer;
}

test('renders the Mistral-Instruct template ([INST] ... [/INST])', (t) => {
  const tokenizer = mistralTokenizer();
  const messages = conversation.slice(1);
  const expected = '<s>[INST] Hi! [/INST]Hello.</s>[INST] Sum 2+2? [/INST]';
  t.is(tokenizer.applyChatTemplate(messages), expected);
  // Mistral's template has no generation prompt: [/INST] already hands the turn over.
  t.is(tokenizer.applyChatTemplate(messages, { addGenerationPrompt: true }), expected);
});

test('the Mistral template’s raise_exception surfaces as a ChatTemplateError with its message', (t) => {
  const tokenizer = mistralTokenizer();
  const systemFirst = t.throws(() => tokenizer.applyChatTemplate(conversation), {
    instanceOf: ChatTemplateError,
  });
  t.true(systemFirst instanceof FeditError);
  t.is(systemFirst.code, 'CHAT_TEMPLATE');
  t.is(
    systemFirst.message,
    'The chat template of /models/demo raised an error: ' +
      'Conversation roles must alternate user/assistant/user/assistant/...',
  );
  t.throws(
    () =>
      tokenizer.applyChatTemplate([
        { role: 'user', content: 'a' },
        { role: 'user', content: 'b' },
      ]),
    { instanceOf: ChatTemplateError, message: /Conversation roles must alternate/ },
  );
});

test('a chat template is read from a list of named templates or from chat_template.jinja', async (t) => {
  const { tokenizerJson, tokenizerConfig } = charTokenizerFiles({ alphabet: 'ab', chatTemplate: null });
  const named = createTokenizer(
    {
      tokenizerJson,
      tokenizerConfig: {
        ...tokenizerConfig,
        chat_template: [
          { name: 'tool_use', template: 'tools' },
          { name: 'default', template: 'plain' },
        ],
      },
    },
    '/m',
  );
  t.is(named.chatTemplate, 'plain');
  const dir = modelDir(
    { 'tokenizer.json': tokenizerJson, 'tokenizer_config.json': tokenizerConfig, 'chat_template.jinja': 'J' },
    (fn) => t.teardown(fn),
  );
  t.is((await loadTokenizer(dir)).chatTemplate, 'J');
});

test('applyChatTemplate without a chat template says so, naming the model folder', (t) => {
  const { tokenizer } = charTokenizer({ chatTemplate: null });
  t.is(tokenizer.chatTemplate, undefined);
  t.throws(() => tokenizer.applyChatTemplate([{ role: 'user', content: 'hi' }]), {
    instanceOf: ChatTemplateError,
    message: /\/models\/demo has no chat template \(tokenizer_config\.json has no chat_template/,
  });
  t.is(
    tokenizer.applyChatTemplate([{ role: 'user', content: 'hi' }], { chatTemplate: CHATML_TEMPLATE }),
    '<|im_start|>user\nhi<|im_end|>\n',
  );
  const { tokenizerJson, tokenizerConfig } = charTokenizerFiles({ alphabet: 'ab', chatTemplate: null });
  const unnamed = createTokenizer(
    {
      tokenizerJson,
      tokenizerConfig: { ...tokenizerConfig, chat_template: [{ name: 'tool_use', template: 'x' }] },
    },
    '/m',
  );
  t.throws(() => unnamed.applyChatTemplate([]), { message: /named "tool_use" but none named "default"/ });
});

test('a template @huggingface/jinja cannot parse is a ChatTemplateError', (t) => {
  const { tokenizer } = charTokenizer({ chatTemplate: '{% for m in messages %}{{ m.content }' });
  t.throws(() => tokenizer.applyChatTemplate([{ role: 'user', content: 'hi' }]), {
    instanceOf: ChatTemplateError,
    message: /The chat template of \/models\/demo could not be parsed/,
  });
});

test('templates get range and strftime_now as transformers provides them; other failures are wrapped', (t) => {
  const { tokenizer } = charTokenizer({ chatTemplate: null });
  const render = (chatTemplate: string) => tokenizer.applyChatTemplate([], { chatTemplate });
  t.is(render('{% for i in range(1, 4) %}{{ i }}{% endfor %}|{{ range(2) | length }}'), '123|2');
  t.is(render("{{ strftime_now('%Y') }}"), String(new Date().getFullYear()));
  t.is(render("{{ strftime_now('%d %b %Y') }}").length, '26 Jul 2024'.length);
  t.throws(() => render('{{ messages[0].content.upper() }}'), {
    instanceOf: ChatTemplateError,
    message: /^The chat template of \/models\/demo failed to render: /,
  });
});

// --- stop tokens ----------------------------------------------------------------------------------

test('stop token ids collect eos from config.json, generation_config.json and ChatML’s <|im_end|>', (t) => {
  const additionalSpecialTokens = ['<|im_start|>', '<|im_end|>', '<|endoftext|>', '<|eom|>'];
  const { info } = charTokenizer({ additionalSpecialTokens });
  const id = info.specialTokenIds;
  const { tokenizer } = charTokenizer(
    { additionalSpecialTokens },
    {
      config: { eos_token_id: id['<|endoftext|>'], bos_token_id: info.bosTokenId },
      generationConfig: { eos_token_id: [info.eosTokenId, id['<|eom|>']] },
    },
  );
  t.deepEqual(tokenizer.stopTokenIds, [
    info.eosTokenId,
    id['<|endoftext|>'],
    id['<|eom|>'],
    id['<|im_end|>'],
  ]);
  // Without a chat template that uses it, <|im_end|> is just a token.
  const { tokenizer: base } = charTokenizer({ chatTemplate: null });
  t.deepEqual(base.stopTokenIds, [info.eosTokenId]);
});

test('Llama-3’s stop tokens: <|end_of_text|> and <|eot_id|> from generation_config.json', async (t) => {
  const json = byteLevelBpeJson('llama3');
  const [, endOfText, , , eot] = LLAMA3_SPECIALS.map(
    (token) => (json.model as { vocab: Record<string, number> }).vocab[token],
  );
  const dir = modelDir(
    {
      'tokenizer.json': json,
      'tokenizer_config.json': { bos_token: '<|begin_of_text|>', eos_token: '<|end_of_text|>' },
      'config.json': { eos_token_id: endOfText },
      'generation_config.json': { eos_token_id: [endOfText, eot] },
    },
    (fn) => t.teardown(fn),
  );
  const tokenizer = await loadTokenizer(dir);
  t.is(tokenizer.eosTokenId, endOfText);
  t.deepEqual(tokenizer.stopTokenIds, [endOfText, eot]);
});

test('ids come from config.json when the tokenizer config names no special tokens', (t) => {
  const { tokenizerJson } = charTokenizerFiles({ alphabet: 'ab' });
  const tokenizer = createTokenizer(
    { tokenizerJson, config: { bos_token_id: 1, eos_token_id: [2, 5], pad_token_id: 0 } },
    '/m',
  );
  t.deepEqual([tokenizer.bosTokenId, tokenizer.eosTokenId, tokenizer.padTokenId], [1, 2, 0]);
  t.deepEqual(tokenizer.stopTokenIds, [2, 5]);
  t.throws(() => createTokenizer({ tokenizerJson, config: { eos_token_id: 'x' } }, '/m'), {
    instanceOf: TokenizerError,
    message: /\/m\/config\.json: eos_token_id must be a token id/,
  });
});

test('special tokens come from special_tokens_map.json when tokenizer_config.json has none', (t) => {
  const { tokenizerJson, info } = charTokenizerFiles({ alphabet: 'ab' });
  const tokenizer = createTokenizer(
    { tokenizerJson, specialTokensMap: { eos_token: { content: '<|eos|>' }, pad_token: '<|pad|>' } },
    '/m',
  );
  t.is(tokenizer.eosTokenId, info.eosTokenId);
  t.is(tokenizer.padTokenId, info.padTokenId);
  t.is(tokenizer.bosTokenId, undefined);
});

// --- errors ---------------------------------------------------------------------------------------

test('a model folder without tokenizer.json is named in the error', async (t) => {
  const dir = modelDir({ 'config.json': {} }, (fn) => t.teardown(fn));
  const error = await t.throwsAsync(loadTokenizer(dir), { instanceOf: TokenizerError });
  t.is(error.code, 'TOKENIZER');
  t.true(error.message.startsWith(`${dir} has no tokenizer.json`));
});

test('invalid JSON names the file it is in', async (t) => {
  const broken = modelDir({ 'tokenizer.json': '{"model": ' }, (fn) => t.teardown(fn));
  await t.throwsAsync(loadTokenizer(broken), {
    instanceOf: TokenizerError,
    message: new RegExp(`^${join(broken, 'tokenizer.json')} is not valid JSON`),
  });
  const { tokenizerJson } = charTokenizerFiles({ alphabet: 'ab' });
  const brokenConfig = modelDir(
    { 'tokenizer.json': tokenizerJson, 'tokenizer_config.json': '{chat_template: 1}' },
    (fn) => t.teardown(fn),
  );
  await t.throwsAsync(loadTokenizer(brokenConfig), {
    message: new RegExp(`^${join(brokenConfig, 'tokenizer_config.json')} is not valid JSON`),
  });
});

test('a tokenizer.json that is not a tokenizer, or that the library rejects, is a TokenizerError', (t) => {
  t.throws(() => createTokenizer({ tokenizerJson: [1, 2] }, '/m'), {
    message: '/m/tokenizer.json must hold a JSON object.',
  });
  t.throws(() => createTokenizer({ tokenizerJson: { version: '1.0' } }, '/m'), {
    instanceOf: TokenizerError,
    message: /\/m\/tokenizer\.json is not a Hugging Face tokenizer\.json: it has no "model"/,
  });
  t.throws(() => createTokenizer({ tokenizerJson: { model: { type: 'Nonsense' } } }, '/m'), {
    instanceOf: TokenizerError,
    message: /\/m\/tokenizer\.json could not be loaded by @huggingface\/tokenizers: .*Nonsense/,
  });
});

test('a special token the vocabulary lacks is an error naming the config file', (t) => {
  const { tokenizerJson, tokenizerConfig } = charTokenizerFiles({ alphabet: 'ab' });
  t.throws(
    () =>
      createTokenizer({ tokenizerJson, tokenizerConfig: { ...tokenizerConfig, eos_token: '</s>' } }, '/m'),
    {
      instanceOf: TokenizerError,
      message: '/m/tokenizer_config.json: eos_token "</s>" is not in /m/tokenizer.json.',
    },
  );
});
