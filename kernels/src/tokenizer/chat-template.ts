// Chat templates: the Jinja programs Hugging Face models ship in tokenizer_config.json, rendered
// with @huggingface/jinja and the variables transformers' apply_chat_template passes (messages,
// add_generation_prompt, the special tokens by name, raise_exception, strftime_now).

import { FeditError } from '@fedit/shared';
import { Environment, Interpreter, Template } from '@huggingface/jinja';
import type { ChatMessage } from './types.ts';

export class ChatTemplateError extends FeditError {
  constructor(message: string, options?: { cause?: unknown }) {
    super('CHAT_TEMPLATE', message, options);
  }
}

/**
 * ChatML, the format of SmolLM2-Instruct and Qwen2.5-Instruct, without a default system prompt:
 * `<|im_start|>role\ncontent<|im_end|>\n` per message.
 */
export const CHATML_TEMPLATE =
  "{% for message in messages %}{{ '<|im_start|>' + message['role'] + '\\n' + message['content'] + '<|im_end|>' + '\\n' }}" +
  "{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif %}";

export interface RenderOptions {
  addGenerationPrompt?: boolean;
  /** Special tokens by the names templates use: bos_token, eos_token, pad_token, unk_token. */
  specialTokens?: Readonly<Record<string, string>>;
}

export interface ChatTemplate {
  readonly source: string;
  render(messages: readonly ChatMessage[], options?: RenderOptions): string;
}

/**
 * Parses `source` once; `origin` names where it came from (a file or a model folder) in errors.
 * Parsing is separate from rendering so a template @huggingface/jinja cannot parse is reported as
 * such, not as a failure of whichever conversation happened to be rendered first.
 */
export function compileChatTemplate(source: string, origin: string): ChatTemplate {
  let template: Template;
  try {
    template = new Template(source);
  } catch (error) {
    throw new ChatTemplateError(`The chat template of ${origin} could not be parsed: ${messageOf(error)}`, {
      cause: error,
    });
  }
  return {
    source,
    render(messages, options = {}) {
      // A fresh environment per render: templates `set` variables, and @huggingface/jinja's own
      // Template.render cannot take our raise_exception (its globals refuse redeclaration).
      const env = new Environment();
      const globals: Record<string, unknown> = {
        true: true,
        false: false,
        none: null,
        True: true,
        False: false,
        None: null,
        range,
        strftime_now: strftimeNow,
        raise_exception: (message: unknown) => {
          throw new ChatTemplateError(`The chat template of ${origin} raised an error: ${String(message)}`);
        },
        ...options.specialTokens,
        // Plain copies: the template sees exactly role and content (and any extra fields a caller
        // put on a message, as transformers passes dicts through), never class instances.
        messages: messages.map((message) => ({ ...message })),
        add_generation_prompt: options.addGenerationPrompt ?? false,
      };
      for (const [name, value] of Object.entries(globals)) env.set(name, value);
      try {
        const result = new Interpreter(env).run(template.parsed);
        return String(result.value);
      } catch (error) {
        if (error instanceof FeditError) throw error;
        throw new ChatTemplateError(`The chat template of ${origin} failed to render: ${messageOf(error)}`, {
          cause: error,
        });
      }
    },
  };
}

function messageOf(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}

// Python's range, as Jinja exposes it.
function range(start: number, stop?: number, step = 1): number[] {
  if (stop === undefined) [start, stop] = [0, start];
  if (step === 0) throw new Error('range() arg 3 must not be zero');
  const out: number[] = [];
  for (let i = start; step > 0 ? i < stop : i > stop; i += step) out.push(i);
  return out;
}

const MONTHS = [
  'January',
  'February',
  'March',
  'April',
  'May',
  'June',
  'July',
  'August',
  'September',
  'October',
  'November',
  'December',
];
const WEEKDAYS = ['Sunday', 'Monday', 'Tuesday', 'Wednesday', 'Thursday', 'Friday', 'Saturday'];

// transformers passes strftime_now (Llama 3.1+ templates print today's date with it). Python's
// strftime in the C locale: English names whatever the machine's locale.
function strftimeNow(format: string): string {
  const now = new Date();
  const pad = (n: number, width = 2) => String(n).padStart(width, '0');
  return format.replace(/%[aAbBdHIjmMpSyY%]/g, (spec) => {
    switch (spec) {
      case '%a':
        return WEEKDAYS[now.getDay()].slice(0, 3);
      case '%A':
        return WEEKDAYS[now.getDay()];
      case '%b':
        return MONTHS[now.getMonth()].slice(0, 3);
      case '%B':
        return MONTHS[now.getMonth()];
      case '%d':
        return pad(now.getDate());
      case '%H':
        return pad(now.getHours());
      case '%I':
        return pad(now.getHours() % 12 || 12);
      case '%j': {
        const dayOfYear = Math.floor(
          (Date.UTC(now.getFullYear(), now.getMonth(), now.getDate()) - Date.UTC(now.getFullYear(), 0, 1)) /
            86_400_000,
        );
        return pad(dayOfYear + 1, 3);
      }
      case '%m':
        return pad(now.getMonth() + 1);
      case '%M':
        return pad(now.getMinutes());
      case '%p':
        return now.getHours() < 12 ? 'AM' : 'PM';
      case '%S':
        return pad(now.getSeconds());
      case '%y':
        return pad(now.getFullYear() % 100);
      case '%Y':
        return String(now.getFullYear());
      default:
        return '%';
    }
  });
}
