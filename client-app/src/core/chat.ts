// Talking to a model: the base model alone, or with an adapter (local or the federation's global
// one). Prompts go through the template the adapter was trained with when it says so, else the
// model's chat template, else the raw text. Text streams out as tokens are generated.

import {
  Generator,
  loadCheckpoint as loadModel,
  loadTokenizer,
  type ExecutionProvider,
  type SamplingOptions,
  type Tokenizer,
} from '@fedit/kernels';
import { renderAlpacaPrompt } from './data/index.ts';
import { loadEngineAdapter } from './adapter.ts';

export type PromptStyle = 'auto' | 'chat' | 'alpaca' | 'raw';

export interface ChatSessionOptions {
  modelDir: string;
  adapterDir?: string;
  provider?: ExecutionProvider;
  threads?: number;
  /** Allow an adapter trained on another base model (its recorded identity differs). */
  allowOtherBase?: boolean;
}

export interface ChatSession {
  readonly tokenizer: Tokenizer;
  /** The style 'auto' resolves to for this model and adapter. */
  readonly defaultStyle: Exclude<PromptStyle, 'auto'>;
  renderPrompt(text: string, style?: PromptStyle): string;
  /** Streams the reply as text pieces. */
  reply(
    text: string,
    options: Omit<SamplingOptions, 'stopTokens'> & { style?: PromptStyle },
  ): AsyncGenerator<string>;
  close(): Promise<void>;
}

export async function openChatSession(o: ChatSessionOptions): Promise<ChatSession> {
  const model = await loadModel(o.modelDir);
  const tokenizer = await loadTokenizer(o.modelDir);
  const adapter = o.adapterDir ? await loadEngineAdapter(o.adapterDir, model, o.allowOtherBase) : undefined;
  const lora = adapter && { config: { ...adapter.config, dropout: 0 }, tensors: adapter.tensors };
  const trainedTemplate = adapter?.template;
  const generator = await Generator.create({
    model: model.config,
    weights: model.store,
    lora,
    provider: o.provider,
    threads: o.threads,
    tokenizerVocabSize: tokenizer.vocabSize,
  });
  const defaultStyle: Exclude<PromptStyle, 'auto'> =
    trainedTemplate === 'alpaca'
      ? 'alpaca'
      : tokenizer.chatTemplate
        ? 'chat'
        : trainedTemplate === 'chat'
          ? 'chat'
          : 'raw';

  const renderPrompt = (text: string, style: PromptStyle = 'auto'): string => {
    const s = style === 'auto' ? defaultStyle : style;
    if (s === 'alpaca') return renderAlpacaPrompt(text);
    if (s === 'chat')
      return tokenizer.applyChatTemplate([{ role: 'user', content: text }], { addGenerationPrompt: true });
    return text;
  };

  return {
    tokenizer,
    defaultStyle,
    renderPrompt,
    async *reply(text, options) {
      const prompt = renderPrompt(text, options.style);
      // Chat templates write their own BOS where the model wants one; other prompts get the
      // tokenizer's usual special tokens.
      const style = options.style && options.style !== 'auto' ? options.style : defaultStyle;
      const ids = tokenizer.encode(prompt, { addSpecialTokens: style !== 'chat' });
      const out: number[] = [];
      let shown = '';
      for await (const token of generator.generate(ids, { ...options, stopTokens: tokenizer.stopTokenIds })) {
        out.push(token);
        const text = tokenizer.decode(out, { skipSpecialTokens: true });
        // Hold back an incomplete multi-byte character (decoders emit U+FFFD for it).
        if (text.endsWith('\uFFFD')) continue;
        if (text.length > shown.length) {
          yield text.slice(shown.length);
          shown = text;
        }
      }
    },
    close: () => generator.release(),
  };
}
