// The participant's fedit home folder: its identity and the federations it has joined.
//
//   <home>/identity.json                     the participant's keys, mode 0600, sealed by the OS
//                                            keychain in the desktop app where one is available
//                                            (identity-file.ts)
//   <home>/federations/<federation>.json     one membership per federation joined (membership-file.ts
//                                            reads it)
//   <home>/adapters/<hex>.safetensors        global adapters already downloaded, by content hash
//   <home>/rounds/<federation>/<round>/      one round's training output and its pending upload
//   <home>/scaffold/<federation>.safetensors SCAFFOLD's own control variate c_i (control.ts)
//   <home>/results/<federation>.json         which cached adapter is which round's (results.ts)
//
// The folder is created with mode 0700. Every file is written atomically (temporary file, fsync,
// rename), so a crash leaves the old file or the new one. Reading validates: a corrupted file is
// an error naming the file and what is wrong with it, never silently replaced.
import { randomBytes } from 'node:crypto';
import { chmod, link, mkdir, open, readFile, readdir, rename, rm, type FileHandle } from 'node:fs/promises';
import { homedir } from 'node:os';
import { basename, dirname, join } from 'node:path';
import {
  CONTENT_HASH_PATTERN,
  FEDERATION_ID_PATTERN,
  generateIdentity,
  serializePublicIdentity,
  syncDirectory,
  type ContentHash,
  type Identity,
  type PublicIdentity,
} from '@fedit/shared';
import { FederationError, corruptedHomeFile } from './errors.ts';
import {
  encodeIdentityFile,
  identityProtector,
  inspectIdentityFile,
  openIdentityFile,
  type IdentityProtection,
} from './identity-file.ts';
import { parseMembership } from './membership-file.ts';

export const IDENTITY_FILE = 'identity.json';
export const FEDERATIONS_DIR = 'federations';
export const ADAPTERS_DIR = 'adapters';
export const ROUNDS_DIR = 'rounds';
export const SCAFFOLD_DIR = 'scaffold';
/** Which cached adapter is which round's, per federation (results.ts). */
export const RESULTS_DIR = 'results';

/** What the participant remembers of a federation it joined. */
export interface Membership {
  federation: string;
  /** The coordinator's URL, from the invite. */
  url: string;
  /** The coordinator's public keys, pinned from the invite. */
  coordinator: PublicIdentity;
  /** This participant's id in the federation (the fingerprint of its identity). */
  participantId: string;
  displayName: string;
  /** When the participant enrolled, ms since the epoch. */
  joinedAt: number;
  /** The federation config the participant last saw (JSON text, as the coordinator sent it). */
  config: string;
  configHash: ContentHash;
  /**
   * The LoRA rank this participant trains (rank.ts), when it chose one below the federation's;
   * absent: the federation's rank.
   */
  rank?: number;
}

interface MembershipFile {
  version: 1;
  federation: string;
  url: string;
  coordinator: { sign: string; box: string };
  participantId: string;
  displayName: string;
  joinedAt: string;
  configHash: string;
  config: string;
  rank?: number;
}

/**
 * The fedit home folder: `explicit` when given, else $FEDIT_HOME, else the operating system's
 * folder for per-user settings (XDG_CONFIG_HOME/fedit or ~/.config/fedit on Linux,
 * ~/Library/Application Support/fedit on macOS, %APPDATA%\fedit on Windows).
 */
export function resolveHome(
  explicit?: string,
  env: NodeJS.ProcessEnv = process.env,
  platform: NodeJS.Platform = process.platform,
): string {
  if (explicit) return explicit;
  if (env.FEDIT_HOME) return env.FEDIT_HOME;
  const home = env.HOME || homedir();
  switch (platform) {
    case 'win32':
      return join(env.APPDATA || join(env.USERPROFILE || home, 'AppData', 'Roaming'), 'fedit');
    case 'darwin':
      return join(home, 'Library', 'Application Support', 'fedit');
    default:
      return join(env.XDG_CONFIG_HOME || join(home, '.config'), 'fedit');
  }
}

/** Creates `dir` (and parents) with mode 0700 when missing. */
export async function ensurePrivateDir(dir: string): Promise<void> {
  const created = await mkdir(dir, { recursive: true, mode: 0o700 });
  // mkdir's mode is filtered by the umask; the folder holds a secret key, so set it exactly.
  if (created !== undefined) await chmod(dir, 0o700).catch(() => undefined);
}

/**
 * Writes `content` to `path` atomically and durably (temporary file in the same folder, fsync,
 * rename, folder fsync), with `mode` from the start: the file is never readable by others, not
 * even for a moment. With `exclusive`, an existing `path` is left alone and the call fails with
 * EEXIST (the complete file is hard-linked into place instead of renamed over it).
 */
export async function writePrivateFile(
  path: string,
  content: string | Uint8Array,
  options: { mode?: number; exclusive?: boolean } = {},
): Promise<void> {
  const mode = options.mode ?? 0o600;
  const directory = dirname(path);
  const temporary = join(directory, `.${basename(path)}.${randomBytes(6).toString('hex')}.tmp`);
  const bytes = typeof content === 'string' ? new TextEncoder().encode(content) : content;
  let handle: FileHandle | undefined = await open(temporary, 'wx', mode);
  try {
    let written = 0;
    while (written < bytes.byteLength) {
      const { bytesWritten } = await handle.write(bytes, written, bytes.byteLength - written);
      written += bytesWritten;
    }
    await handle.sync();
    await handle.close();
    handle = undefined;
    if (options.exclusive) {
      await link(temporary, path);
      await rm(temporary, { force: true });
    } else {
      await rename(temporary, path);
    }
  } catch (error) {
    await handle?.close().catch(() => undefined);
    await rm(temporary, { force: true });
    throw error;
  }
  await syncDirectory(directory);
}

async function readText(path: string): Promise<string | undefined> {
  try {
    return await readFile(path, 'utf8');
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw new FederationError('FEDERATION_HOME', `${path} cannot be read: ${(error as Error).message}`, {
      cause: error,
    });
  }
}

/** The identity stored in `home`, or undefined when there is none yet. */
export async function readIdentity(home: string): Promise<Identity | undefined> {
  const path = join(home, IDENTITY_FILE);
  const text = await readText(path);
  if (text === undefined) return undefined;
  try {
    return openIdentityFile(text, path);
  } catch (error) {
    if (error instanceof FederationError) throw error;
    throw corruptedHomeFile(path, (error as Error).message, error);
  }
}

/** The identity's public keys and how its file is protected, read without opening a sealed file. */
export async function readIdentityKeys(
  home: string,
): Promise<{ public: PublicIdentity; protection: IdentityProtection } | undefined> {
  const path = join(home, IDENTITY_FILE);
  const text = await readText(path);
  if (text === undefined) return undefined;
  try {
    return inspectIdentityFile(text);
  } catch (error) {
    throw corruptedHomeFile(path, (error as Error).message, error);
  }
}

/**
 * Seals a plain identity file with this process's protector (the desktop app, once it knows the
 * keychain works), and says how the file is protected now; undefined when there is no identity.
 */
export async function protectIdentityFile(home: string): Promise<IdentityProtection | undefined> {
  const path = join(home, IDENTITY_FILE);
  const text = await readText(path);
  if (text === undefined) return undefined;
  const protector = identityProtector();
  const identity = await requireIdentity(home);
  if (!protector || inspectIdentityFile(text).protection === 'os-keychain')
    return inspectIdentityFile(text).protection;
  await writePrivateFile(path, encodeIdentityFile(identity, protector));
  return 'os-keychain';
}

/** The identity stored in `home`; a new random one is made and saved (mode 0600) when there is none. */
export async function loadOrCreateIdentity(home: string): Promise<{ identity: Identity; created: boolean }> {
  const existing = await readIdentity(home);
  if (existing) return { identity: existing, created: false };
  await ensurePrivateDir(home);
  const identity = generateIdentity();
  try {
    // Exclusive: never replace an identity another process (a second window) wrote meanwhile.
    await writePrivateFile(join(home, IDENTITY_FILE), encodeIdentityFile(identity, identityProtector()), {
      exclusive: true,
    });
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code !== 'EEXIST') throw error;
    return { identity: await requireIdentity(home), created: false };
  }
  return { identity, created: true };
}

/** The identity stored in `home`; FEDERATION_NOT_JOINED when there is none. */
export async function requireIdentity(home: string): Promise<Identity> {
  const identity = await readIdentity(home);
  if (!identity) {
    throw new FederationError(
      'FEDERATION_NOT_JOINED',
      `${home} holds no fedit identity: join a federation first (fedit client join <invite>)`,
    );
  }
  return identity;
}

export function membershipPath(home: string, federation: string): string {
  checkFederationId(federation);
  return join(home, FEDERATIONS_DIR, `${federation}.json`);
}

function checkFederationId(federation: string): void {
  if (!FEDERATION_ID_PATTERN.test(federation)) {
    throw new FederationError(
      'FEDERATION_NOT_JOINED',
      `${JSON.stringify(federation)} is not a federation id (1-64 letters, digits, '.', '_' or '-', starting with a letter or digit)`,
    );
  }
}

/** Saves a membership (atomically, mode 0600). */
export async function writeMembership(home: string, membership: Membership): Promise<void> {
  const path = membershipPath(home, membership.federation);
  await ensurePrivateDir(home);
  await ensurePrivateDir(join(home, FEDERATIONS_DIR));
  const file: MembershipFile = {
    version: 1,
    federation: membership.federation,
    url: membership.url,
    coordinator: serializePublicIdentity(membership.coordinator),
    participantId: membership.participantId,
    displayName: membership.displayName,
    joinedAt: new Date(membership.joinedAt).toISOString(),
    configHash: membership.configHash,
    config: membership.config,
    ...(membership.rank === undefined ? {} : { rank: membership.rank }),
  };
  await writePrivateFile(path, JSON.stringify(file, null, 2) + '\n');
}

/** The membership of `federation`, or undefined when this home has not joined it. */
export async function readMembership(home: string, federation: string): Promise<Membership | undefined> {
  const path = membershipPath(home, federation);
  const text = await readText(path);
  if (text === undefined) return undefined;
  const membership = parseMembership(text, path);
  if (membership.federation !== federation) {
    throw corruptedHomeFile(
      path,
      `it describes federation ${JSON.stringify(membership.federation)}, not ${JSON.stringify(federation)}`,
    );
  }
  return membership;
}

/** Every membership in `home`, sorted by federation id. */
export async function listMemberships(home: string): Promise<Membership[]> {
  let names: string[];
  try {
    names = await readdir(join(home, FEDERATIONS_DIR));
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return [];
    throw error;
  }
  const ids = names
    .filter((n) => n.endsWith('.json') && !n.startsWith('.'))
    .map((n) => n.slice(0, -'.json'.length))
    .filter((id) => FEDERATION_ID_PATTERN.test(id))
    .sort();
  const out: Membership[] = [];
  for (const id of ids) {
    const m = await readMembership(home, id);
    if (m) out.push(m);
  }
  return out;
}

/**
 * The membership to use: `federation`'s when given, else the only one. FEDERATION_NOT_JOINED
 * when there is none, or several and no choice was made (the message lists them).
 */
export async function selectMembership(home: string, federation?: string): Promise<Membership> {
  if (federation !== undefined) {
    const m = await readMembership(home, federation);
    if (!m) {
      throw new FederationError(
        'FEDERATION_NOT_JOINED',
        `this computer has not joined federation ${JSON.stringify(federation)} (fedit home: ${home}); join it with an invite first`,
      );
    }
    return m;
  }
  const all = await listMemberships(home);
  if (all.length === 0) {
    throw new FederationError(
      'FEDERATION_NOT_JOINED',
      `this computer has not joined any federation (fedit home: ${home}); join one with an invite first`,
    );
  }
  if (all.length > 1) {
    throw new FederationError(
      'FEDERATION_NOT_JOINED',
      `this computer has joined ${all.length} federations (${all.map((m) => m.federation).join(', ')}); say which one to use`,
    );
  }
  return all[0];
}

/**
 * Forgets a membership: its file, its round folders (pending uploads, training output) and its
 * SCAFFOLD control variate.
 * Returns false when there was none. The identity and the adapter cache stay.
 */
export async function removeMembership(home: string, federation: string): Promise<boolean> {
  const path = membershipPath(home, federation);
  const existed = (await readText(path)) !== undefined;
  await rm(path, { force: true });
  await rm(join(home, ROUNDS_DIR, federation), { recursive: true, force: true });
  await rm(ownControlPath(home, federation), { force: true });
  await rm(join(home, RESULTS_DIR, `${federation}.json`), { force: true });
  return existed;
}

/** Where the participant keeps its SCAFFOLD control variate c_i for `federation`. */
export function ownControlPath(home: string, federation: string): string {
  checkFederationId(federation);
  return join(home, SCAFFOLD_DIR, `${federation}.safetensors`);
}

/** The cache file of the adapter whose content hash is `hash`. */
export function adapterCachePath(home: string, hash: string): string {
  if (!CONTENT_HASH_PATTERN.test(hash))
    throw new FederationError('FEDERATION_ADAPTER', `${hash} is not a content hash`);
  return join(home, ADAPTERS_DIR, `${hash.slice('sha256:'.length)}.safetensors`);
}

/** The folder of one round's training output and pending upload. */
export function roundDir(home: string, federation: string, round: number): string {
  checkFederationId(federation);
  return join(home, ROUNDS_DIR, federation, String(round));
}

/** Removes the folders of `federation`'s rounds other than `keep` (finished, or left behind by a crash). */
export async function removeRoundDirs(
  home: string,
  federation: string,
  keep: number | undefined,
): Promise<void> {
  const base = join(home, ROUNDS_DIR, federation);
  const entries = await readdir(base).catch(() => [] as string[]);
  for (const name of entries) {
    if (name !== String(keep)) await rm(join(base, name), { recursive: true, force: true });
  }
}
