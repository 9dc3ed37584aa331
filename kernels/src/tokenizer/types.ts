// What the rest of fedit needs from a tokenizer: the model's own, loaded from tokenizer.json and
// tokenizer_config.json (see load.ts). Datasets, prompt templates, training and generation all go
// through this interface.

export interface ChatMessage {
  role: 'system' | 'user' | 'assistant' | string;
  content: string;
}

export interface Tokenizer {
  /**
   * Token ids of `text`. With addSpecialTokens (default false), the tokenizer's own post-processing
   * (e.g. BOS) applies. Special tokens written in `text` (`<|im_start|>`) become their single ids.
   */
  encode(text: string, options?: { addSpecialTokens?: boolean }): number[];
  decode(ids: readonly number[], options?: { skipSpecialTokens?: boolean }): string;
  readonly vocabSize: number;
  readonly bosTokenId: number | undefined;
  readonly eosTokenId: number | undefined;
  /** All ids that end generation (eos, and e.g. <|im_end|> / <|eot_id|> from the configs). */
  readonly stopTokenIds: readonly number[];
  readonly padTokenId: number | undefined;
  /** The id of a token of the vocabulary (special tokens included), if it has one. */
  tokenToId(token: string): number | undefined;
  idToToken(id: number): string | undefined;
  /** The model's chat template (tokenizer_config.json's chat_template), if it has one. */
  readonly chatTemplate: string | undefined;
  /**
   * Renders messages with the chat template (or with `options.chatTemplate`, a Jinja template given
   * instead); throws a ChatTemplateError when there is none, or when the template raises one.
   */
  applyChatTemplate(
    messages: readonly ChatMessage[],
    options?: { addGenerationPrompt?: boolean; chatTemplate?: string },
  ): string;
}
