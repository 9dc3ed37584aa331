// What <home>/identity.json holds: the participant's keys, in the clear (owner-only file, as
// always) or sealed by the operating system's keychain (Electron's safeStorage: the macOS
// Keychain, Windows DPAPI, the Secret Service or KWallet on Linux) when the desktop app runs where
// one is available. Sealed, a copy of the file taken off the computer, or read by another user
// account, does not give the key away.
//
//   plain   serializeIdentity(identity) (shared/src/crypto/identity.ts), as fedit always wrote
//   sealed  { "protection": "os-keychain", "version": 1,
//             "public": serializePublicIdentity(publicIdentity(identity)),
//             "sealed": base64(protector.encrypt(UTF-8(JSON.stringify(serializeIdentity(identity))))) }
//
// The public half stays readable, so every command can still say which participant this is. The
// sealer is a parameter (IdentityProtector): Electron's safeStorage in the app, and a real cipher
// in tests, since Electron does not run there. Where no sealer is given (the CLI, the training
// worker, an app without a keychain) a sealed file cannot be opened, and the error says why and
// what to do; the app hands the opened identity to its worker itself (unlockIdentity in store.ts).

import {
  parseIdentity,
  parsePublicIdentity,
  publicIdentity,
  serializeIdentity,
  serializePublicIdentity,
  type Identity,
  type PublicIdentity,
} from '@fedit/shared';
import { FederationError } from './errors.ts';

/** Encrypts and decrypts with a key the OS keeps for this user (Electron's safeStorage). */
export interface IdentityProtector {
  encrypt(plain: Uint8Array): Uint8Array;
  decrypt(sealed: Uint8Array): Uint8Array;
}

/** How the identity on disk is protected: sealed by the OS keychain, or only by file permissions. */
export type IdentityProtection = 'os-keychain' | 'file-permissions';

const SEALED = 'os-keychain';

/** The text of identity.json for `identity`: sealed when a protector is given, else plain. */
export function encodeIdentityFile(identity: Identity, protector?: IdentityProtector): string {
  const plain = serializeIdentity(identity);
  if (!protector) return JSON.stringify(plain, null, 2) + '\n';
  const sealed = protector.encrypt(new TextEncoder().encode(JSON.stringify(plain)));
  const file = {
    protection: SEALED,
    version: 1,
    public: serializePublicIdentity(publicIdentity(identity)),
    sealed: Buffer.from(sealed).toString('base64'),
  };
  return JSON.stringify(file, null, 2) + '\n';
}

/** How an identity.json's text is protected, and its public keys (readable either way). */
export function inspectIdentityFile(text: string): {
  protection: IdentityProtection;
  public: PublicIdentity;
} {
  const value = JSON.parse(text) as Record<string, unknown>;
  if (value.protection === SEALED)
    return { protection: SEALED, public: parsePublicIdentity(value.public, 'public') };
  return { protection: 'file-permissions', public: publicIdentity(parseIdentity(value)) };
}

/**
 * The identity in an identity.json's text. A sealed one needs the protector that sealed it; its
 * public keys must be the ones written beside it (a file pieced together from two identities is
 * refused). Throws FederationError('FEDERATION_IDENTITY_SEALED') for a sealed file without one.
 */
export function decodeIdentityFile(text: string, path: string, protector?: IdentityProtector): Identity {
  const value = JSON.parse(text) as Record<string, unknown>;
  if (value.protection !== SEALED) return parseIdentity(value);
  if (value.version !== 1) throw new Error(`version must be 1, got ${JSON.stringify(value.version)}`);
  const expected = parsePublicIdentity(value.public, 'public');
  if (!protector)
    throw new FederationError(
      'FEDERATION_IDENTITY_SEALED',
      `${path} is protected by the fedit desktop app with this computer's keychain (Electron ` +
        'safeStorage): only the app, run by this user on this computer, can open it, so this ' +
        'command cannot use the identity. Take part through the desktop app, or use the command ' +
        'line with another fedit home (--home) and join there with a new invite',
    );
  if (typeof value.sealed !== 'string') throw new Error('"sealed" is not a base64 string');
  let opened: Uint8Array;
  try {
    opened = protector.decrypt(new Uint8Array(Buffer.from(value.sealed, 'base64')));
  } catch (error) {
    throw new FederationError(
      'FEDERATION_IDENTITY_SEALED',
      `${path} cannot be opened with this computer's keychain (${(error as Error).message}): it was ` +
        'sealed by another user account or computer, or the keychain entry was reset',
      { cause: error },
    );
  }
  const identity = parseIdentity(new TextDecoder().decode(opened));
  const keys = publicIdentity(identity);
  if (!sameBytes(keys.sign, expected.sign) || !sameBytes(keys.box, expected.box))
    throw new Error('the sealed keys are not the public keys written beside them');
  return identity;
}

function sameBytes(a: Uint8Array, b: Uint8Array): boolean {
  return a.length === b.length && a.every((x, i) => x === b[i]);
}

// ---- this process's means of opening a sealed identity ------------------------------------------

let processProtector: IdentityProtector | undefined;
let unlocked: Identity | undefined;

/**
 * The protector this process seals and opens identity files with: the desktop app's main process
 * sets Electron's safeStorage when isEncryptionAvailable(); undefined (the default) keeps files plain.
 */
export function useIdentityProtector(protector: IdentityProtector | undefined): void {
  processProtector = protector;
}

export function identityProtector(): IdentityProtector | undefined {
  return processProtector;
}

/**
 * An identity this process was handed already opened (the app's training worker, from the main
 * process, which holds the keychain): a sealed file with these public keys opens to it.
 */
export function unlockIdentity(identity: Identity | undefined): void {
  unlocked = identity;
}

/** decodeIdentityFile with this process's protector, or the identity it was handed. */
export function openIdentityFile(text: string, path: string): Identity {
  if (!processProtector && unlocked) {
    const file = inspectIdentityFile(text);
    const keys = publicIdentity(unlocked);
    if (
      file.protection === SEALED &&
      sameBytes(keys.sign, file.public.sign) &&
      sameBytes(keys.box, file.public.box)
    )
      return unlocked;
  }
  return decodeIdentityFile(text, path, processProtector);
}
