// The files of a Hugging Face model folder beside config.json and the weights that describe its
// tokenizer and generation settings. Declared once, here, where nothing loads the engine: the
// engine's merge copies them into a merged model (kernels TOKENIZER_FILES), and the model fetch
// downloads them (client-app core/model/hub-fetch.ts, run in the app's main process, which must not
// load onnxruntime).

/** Tokenizer and generation files of a model folder, each optional. */
export const MODEL_SIDE_FILES = [
  'tokenizer.json',
  'tokenizer_config.json',
  'special_tokens_map.json',
  'generation_config.json',
  'tokenizer.model',
  'vocab.json',
  'merges.txt',
  'added_tokens.json',
  'chat_template.jinja',
  'chat_template.json',
] as const;
