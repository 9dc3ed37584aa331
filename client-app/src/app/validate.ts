// Checks of every argument that crosses the app's API. The renderer is untrusted (a compromised
// page, a malicious invite's text, a bug): nothing it sends is used before it has the type, size
// and shape the backend expects, and paths are absolute and name what they should.

import { stat } from 'node:fs/promises';
import { isAbsolute } from 'node:path';
import { FeditError, MAX_DISPLAY_NAME_LENGTH } from '@fedit/shared';
import type { AppSettings } from './api.ts';

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

export function text(value: unknown, name: string, options: { min?: number; max: number }): string {
  if (typeof value !== 'string')
    throw new AppError('APP_ARGUMENT', `${name} must be text, got ${typeName(value)}`);
  const min = options.min ?? 0;
  if (value.length < min || value.length > options.max) {
    throw new AppError(
      'APP_ARGUMENT',
      min > 0 && value.length === 0
        ? `${name} is empty`
        : `${name} must be ${min} to ${options.max} characters long, got ${value.length}`,
    );
  }
  if (value.includes('\0')) throw new AppError('APP_ARGUMENT', `${name} contains a NUL character`);
  return value;
}

function typeName(value: unknown): string {
  if (value === null) return 'null';
  if (Array.isArray(value)) return 'a list';
  return typeof value === 'object' ? 'an object' : typeof value;
}

/** An absolute path to an existing folder (`kind` 'dir') or regular file ('file'). */
export async function existingPath(value: unknown, name: string, kind: 'dir' | 'file'): Promise<string> {
  const path = text(value, name, { min: 1, max: MAX_PATH_LENGTH }).trim();
  if (!isAbsolute(path)) {
    throw new AppError(
      'APP_PATH',
      `${name} must be an absolute path (starting at the root of a drive), got ${JSON.stringify(path)}`,
    );
  }
  const info = await stat(path).catch(() => undefined);
  if (!info) throw new AppError('APP_PATH', `${path} does not exist`);
  if (kind === 'dir' && !info.isDirectory()) throw new AppError('APP_PATH', `${path} is not a folder`);
  if (kind === 'file' && !info.isFile()) throw new AppError('APP_PATH', `${path} is not a file`);
  return path;
}

export async function existingFiles(value: unknown, name: string): Promise<string[]> {
  if (!Array.isArray(value))
    throw new AppError('APP_ARGUMENT', `${name} must be a list of files, got ${typeName(value)}`);
  if (value.length === 0) throw new AppError('APP_ARGUMENT', `${name} is empty: choose at least one file`);
  if (value.length > MAX_DATA_FILES) {
    throw new AppError(
      'APP_ARGUMENT',
      `${name} holds ${value.length} files; at most ${MAX_DATA_FILES} at once`,
    );
  }
  const files: string[] = [];
  for (const [i, v] of value.entries()) {
    const path = await existingPath(v, `${name}[${i}]`, 'file');
    if (!files.includes(path)) files.push(path);
  }
  return files;
}

const DEVICES = ['auto', 'cpu', 'webgpu'] as const;

/** A settings patch: only known keys, each of the right type and range. */
export function settingsPatch(value: unknown, cpuThreads: number): Partial<AppSettings> {
  if (typeof value !== 'object' || value === null || Array.isArray(value)) {
    throw new AppError('APP_ARGUMENT', `the settings must be an object, got ${typeName(value)}`);
  }
  const patch: Partial<AppSettings> = {};
  for (const [key, v] of Object.entries(value)) {
    switch (key) {
      case 'device':
        if (!DEVICES.includes(v as (typeof DEVICES)[number])) {
          throw new AppError(
            'APP_ARGUMENT',
            `device must be one of ${DEVICES.join(', ')}, got ${JSON.stringify(v)}`,
          );
        }
        patch.device = v as AppSettings['device'];
        break;
      case 'maxThreads':
        if (typeof v !== 'number' || !Number.isInteger(v) || v < 0 || v > cpuThreads) {
          throw new AppError(
            'APP_ARGUMENT',
            `maxThreads must be a whole number from 0 (all cores) to ${cpuThreads}, got ${JSON.stringify(v)}`,
          );
        }
        patch.maxThreads = v;
        break;
      case 'onlyWhenPluggedIn':
      case 'onlyWhenIdle':
        if (typeof v !== 'boolean')
          throw new AppError('APP_ARGUMENT', `${key} must be true or false, got ${JSON.stringify(v)}`);
        patch[key] = v;
        break;
      case 'displayName': {
        const name = text(v, 'displayName', { max: MAX_DISPLAY_NAME_LENGTH + 16 }).trim();
        if (name.length > MAX_DISPLAY_NAME_LENGTH || /\p{Cc}/u.test(name)) {
          throw new AppError(
            'APP_ARGUMENT',
            `the display name must be at most ${MAX_DISPLAY_NAME_LENGTH} printable characters`,
          );
        }
        patch.displayName = name;
        break;
      }
      default:
        throw new AppError('APP_ARGUMENT', `unknown setting ${JSON.stringify(key).slice(0, 80)}`);
    }
  }
  return patch;
}

/** A chat id chosen by the renderer (it comes back in the 'chat' events). */
export function chatId(value: unknown): string {
  const id = text(value, 'the chat id', { min: 1, max: 64 });
  if (!/^[A-Za-z0-9_.:-]+$/.test(id)) {
    throw new AppError('APP_ARGUMENT', 'the chat id may hold only letters, digits and . _ : -');
  }
  return id;
}
