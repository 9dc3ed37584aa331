// What the rest of fedit needs from a tokenizer: the model's own, loaded from tokenizer.json and
// tokenizer_config.json (see load.ts). Datasets, prompt templates, training and generation all go
// through this interface.

export interface ChatMessage {
  role: 'system' | 'user' | 'assistant' | string;
  content: string;
}

export interface Tokenizer {
  /** Token ids of `text`. With addSpecialTokens, the tokenizer's own post-processing (e.g. BOS) applies. */
  encode(text: string, options?: { addSpecialTokens?: boolean }): number[];
  decode(ids: readonly number[], options?: { skipSpecialTokens?: boolean }): string;
  readonly vocabSize: number;
  readonly bosTokenId: number | undefined;
  readonly eosTokenId: number | undefined;
  /** All ids that end generation (eos, and e.g. <|im_end|> / <|eot_id|> from the configs). */
  readonly stopTokenIds: readonly number[];
  readonly padTokenId: number | undefined;
  /** The model's chat template (tokenizer_config.json's chat_template), if it has one. */
  readonly chatTemplate: string | undefined;
  /** Renders messages with the chat template; throws a clear error when there is none. */
  applyChatTemplate(messages: readonly ChatMessage[], options?: { addGenerationPrompt?: boolean }): string;
}
