// Every argument the page may pass to the app's API, declared once with the schema module of
// @fedit/shared (the one way fedit declares what crosses an edge; see shared/src/schema/schema.ts).
// `apiArguments` names each method's arguments and their rules; dispatch.ts checks what the page
// sent against it before any backend method runs, and the types the backend is called with are
// derived from it (and checked against FeditAppApi at compile time), so dispatch.ts calls the
// backend without a cast. The renderer is untrusted: a compromised page, a malicious invite's
// text, a bug.
//
// What is checked where follows from what can be known where. Here, at the edge: what a value must
// look like (text without NUL, at most 64 paths, a settings patch of known keys). In the backend,
// when the value is used: what a path names on disk (existingPath, APP_PATH) and whether the step
// can be taken now (APP_NOT_READY, APP_BUSY).
//
// The rules speak to the person at the page, so the app writes its own leaf schemas ("the data
// files is empty: choose at least one file") where the wire's wording would not do; they are
// plain `Schema`s, composed and reported like every other (SchemaError → AppError APP_ARGUMENT).

import { stat } from 'node:fs/promises';
import { isAbsolute } from 'node:path';
import { FeditError, MAX_DISPLAY_NAME_LENGTH, SchemaError, schema, type Schema } from '@fedit/shared';
import type { ApiMethod, AppSettings, FeditAppApi } from './api.ts';

export type AppErrorCode =
  /** An argument has the wrong type, size or shape. */
  | 'APP_ARGUMENT'
  /** A path is not absolute, does not exist, or is not the kind of thing expected. */
  | 'APP_PATH'
  /** The step cannot be taken yet (no identity, no federation, no model, no data). */
  | 'APP_NOT_READY'
  /** The step cannot be taken now (taking part: pause first). */
  | 'APP_BUSY'
  /** The training worker stopped while doing this. */
  | 'APP_WORKER_CRASHED';

export class AppError extends FeditError {
  constructor(code: AppErrorCode, message: string, options?: { cause?: unknown }) {
    super(code, message, options);
  }
}

export const MAX_PATH_LENGTH = 4096;
export const MAX_DATA_FILES = 64;
export const MAX_INVITE_LENGTH = 8192;
export const MAX_PROMPT_LENGTH = 4000;

/** What the rules depend on: this machine's CPU threads bound settings.maxThreads. */
export interface Machine {
  readonly cpuThreads: number;
}

// ---- the values ----------------------------------------------------------------------------------

/** Text of `min` to `max` characters without NUL (a path, an invite, a chat message). */
function appText(min: number, max: number): Schema<string> {
  return {
    parse(value, name) {
      if (typeof value !== 'string')
        schema.fail('TYPE', name, `${name} must be text, got ${typeName(value)}`);
      if (value.length < min || value.length > max) {
        schema.fail(
          'RANGE',
          name,
          min > 0 && value.length === 0
            ? `${name} is empty`
            : `${name} must be ${min} to ${max} characters long, got ${value.length}`,
        );
      }
      if (value.includes('\0')) schema.fail('FORMAT', name, `${name} contains a NUL character`);
      return value;
    },
  };
}

function typeName(value: unknown): string {
  if (value === null) return 'null';
  if (Array.isArray(value)) return 'a list';
  return typeof value === 'object' ? 'an object' : typeof value;
}

/** A path as typed or picked; what it names is checked when it is used (existingPath). */
export const pathText = appText(1, MAX_PATH_LENGTH);

/** One to MAX_DATA_FILES paths. */
export const dataFiles: Schema<string[]> = {
  parse(value, name) {
    if (!Array.isArray(value)) {
      schema.fail('TYPE', name, `${name} must be a list of files, got ${typeName(value)}`);
    }
    if (value.length === 0) schema.fail('RANGE', name, `${name} is empty: choose at least one file`);
    if (value.length > MAX_DATA_FILES) {
      schema.fail('RANGE', name, `${name} holds ${value.length} files; at most ${MAX_DATA_FILES} at once`);
    }
    // Array.from visits the holes of a sparse list too: each is refused as "got undefined".
    return Array.from(value, (path: unknown, i) => pathText.parse(path, `${name}[${i}]`));
  },
};

const invite = appText(1, MAX_INVITE_LENGTH);

/** A chat id chosen by the page (it comes back in the 'chat' events). */
const chatId = schema.refine(appText(1, 64), (id, name) => {
  if (!/^[A-Za-z0-9_.:-]+$/.test(id)) {
    schema.fail('FORMAT', name, `${name} may hold only letters, digits and . _ : -`);
  }
});

const prompt = schema.refine(appText(1, MAX_PROMPT_LENGTH), (text, name) => {
  if (!text.trim()) schema.fail('RANGE', name, `${name} is empty`);
});

// ---- the settings --------------------------------------------------------------------------------

const DEVICES = ['auto', 'cpu', 'webgpu'] as const;

export const flag = schema.oneOf([true, false], { expected: 'true or false' });

function threads(cpuThreads: number): Schema<number> {
  return {
    parse(value, name) {
      if (typeof value !== 'number' || !Number.isInteger(value) || value < 0 || value > cpuThreads) {
        schema.fail(
          'RANGE',
          name,
          `${name} must be a whole number from 0 (all cores) to ${cpuThreads}, got ${JSON.stringify(value)}`,
        );
      }
      return value;
    },
  };
}

/** The name the federation sees: outer spaces dropped, at most MAX_DISPLAY_NAME_LENGTH printable characters. */
const displayName: Schema<string> = {
  parse(value, name) {
    // Room for outer spaces, which are dropped.
    const text = appText(0, MAX_DISPLAY_NAME_LENGTH + 16)
      .parse(value, name)
      .trim();
    if (text.length > MAX_DISPLAY_NAME_LENGTH || /\p{Cc}/u.test(text)) {
      schema.fail(
        'FORMAT',
        name,
        `the display name must be at most ${MAX_DISPLAY_NAME_LENGTH} printable characters`,
      );
    }
    return text;
  },
};

/** Each setting's rule on a machine with `cpuThreads` threads; the compiler holds it to AppSettings. */
export function settingRules(cpuThreads: number) {
  return {
    device: schema.oneOf(DEVICES),
    maxThreads: threads(cpuThreads),
    onlyWhenPluggedIn: flag,
    onlyWhenIdle: flag,
    displayName,
  } satisfies { [K in keyof AppSettings]-?: Schema<AppSettings[K]> };
}

/**
 * A change of settings: known keys only, each by its rule, reported under its own name (the page
 * and the settings file both show "maxThreads must be ..."); the keys left out stay as they are.
 */
export function settingsPatch(cpuThreads: number): Schema<Partial<AppSettings>> {
  const rules: Readonly<Record<string, Schema<unknown>>> = settingRules(cpuThreads);
  return {
    parse(value, name) {
      if (!schema.isRecord(value)) {
        schema.fail('TYPE', name, `${name} must be an object, got ${typeName(value)}`);
      }
      const patch: Record<string, unknown> = {};
      for (const [key, setting] of Object.entries(value)) {
        if (!Object.hasOwn(rules, key)) {
          schema.fail('UNKNOWN_FIELD', key, `unknown setting ${JSON.stringify(key).slice(0, 80)}`);
        }
        patch[key] = rules[key].parse(setting, key);
      }
      // Each key was checked by its rule, and settingRules is held to AppSettings above.
      return patch as Partial<AppSettings>;
    },
  };
}

// ---- the arguments of each method ----------------------------------------------------------------

/** One argument: the name its errors start with, and its rule. */
type Argument = readonly [name: string, rule: Schema<unknown>];

/** A method's arguments in order, checked; `parse` throws SchemaError. */
export interface ArgumentList<T extends readonly unknown[]> {
  readonly parse: (values: unknown) => T;
}

/** The types of declared arguments `A`, in order. */
type ArgumentTypes<A extends readonly Argument[]> = {
  -readonly [I in keyof A]: A[I] extends readonly [string, Schema<infer T>] ? T : never;
};

function args<const A extends readonly Argument[]>(...declared: A): ArgumentList<ArgumentTypes<A>> {
  return {
    parse(values) {
      if (!Array.isArray(values)) {
        schema.fail('TYPE', 'the arguments', `the arguments must be a list, got ${typeName(values)}`);
      }
      // Arguments past the declared ones are dropped, as a JavaScript call would drop them.
      const parsed = declared.map(([name, rule], i) => {
        const value: unknown = values[i];
        // JSON has no undefined: the development shell sends null for an argument left out.
        if (isOptional(rule) && (value === undefined || value === null)) return undefined;
        return rule.parse(value, name);
      });
      return parsed as ArgumentTypes<A>;
    },
  };
}

function isOptional(rule: Schema<unknown>): boolean {
  return (rule as Partial<schema.OptionalSchema<unknown>>).optional === true;
}

/** Each API method's arguments, as the page may send them. */
export function apiArguments(machine: Machine) {
  return {
    getState: args(),
    createIdentity: args(),
    updateSettings: args(['the settings', settingsPatch(machine.cpuThreads)]),
    inspectInvite: args(['the invite', invite]),
    joinFederation: args(['the invite', invite]),
    estimateCost: args(['the invite', invite]),
    leaveFederation: args(),
    renameParticipant: args(['the display name', displayName]),
    // Left out: the person picks in the system's file picker (dispatch.ts).
    chooseModel: args(['the model folder', schema.optional(pathText)]),
    downloadModel: args(),
    chooseData: args(['the data files', schema.optional(dataFiles)]),
    start: args(),
    pause: args(),
    resume: args(),
    // Left out: the person picks in the system's folder picker (dispatch.ts).
    saveAdapter: args(['the adapter folder', schema.optional(pathText)]),
    chat: args(['the chat id', chatId], ['the message', prompt]),
    openLogs: args(),
    readLogs: args(),
  } satisfies { [M in ApiMethod]: ArgumentList<Parameters<FeditAppApi[M]>> };
}

type DeclaredArguments = ReturnType<typeof apiArguments>;

/** The checked arguments of `M`, as declared in apiArguments. */
export type ApiArguments<M extends ApiMethod> = ReturnType<DeclaredArguments[M]['parse']>;

/**
 * What the page sent as `method`'s arguments, checked against its declaration; a value that does
 * not fit is AppError APP_ARGUMENT, whose message names the argument.
 */
export function parseApiArguments<M extends ApiMethod>(
  method: M,
  values: unknown,
  machine: Machine,
): ApiArguments<M> {
  const declared: { [K in ApiMethod]: ArgumentList<ApiArguments<K>> } = apiArguments(machine);
  try {
    return declared[method].parse(values);
  } catch (error) {
    if (error instanceof SchemaError) throw new AppError('APP_ARGUMENT', error.message);
    throw error;
  }
}

// ---- what a path names, when it is used ----------------------------------------------------------

/** `path` (outer spaces dropped) if it is absolute and names an existing folder ('dir') or file. */
export async function existingPath(path: string, name: string, kind: 'dir' | 'file'): Promise<string> {
  const trimmed = path.trim();
  if (!isAbsolute(trimmed)) {
    throw new AppError(
      'APP_PATH',
      `${name} must be an absolute path (starting at the root of a drive), got ${JSON.stringify(trimmed)}`,
    );
  }
  const info = await stat(trimmed).catch(() => undefined);
  if (!info) throw new AppError('APP_PATH', `${trimmed} does not exist`);
  if (kind === 'dir' && !info.isDirectory()) throw new AppError('APP_PATH', `${trimmed} is not a folder`);
  if (kind === 'file' && !info.isFile()) throw new AppError('APP_PATH', `${trimmed} is not a file`);
  return trimmed;
}

/** `paths`, each an existing file (existingPath), once each. */
export async function existingFiles(paths: readonly string[], name: string): Promise<string[]> {
  const files: string[] = [];
  for (const [i, path] of paths.entries()) {
    const file = await existingPath(path, `${name}[${i}]`, 'file');
    if (!files.includes(file)) files.push(file);
  }
  return files;
}
