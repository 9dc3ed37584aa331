// The OS keychain that seals the participant's identity file (src/core/federation/identity-file.ts):
// Electron's safeStorage, which keeps its key in the macOS Keychain, Windows DPAPI, or the Linux
// Secret Service / KWallet. Only the main process has safeStorage, and only once the app is ready.
//
// On Linux with no secret service safeStorage falls back to 'basic_text', a key written into
// Chromium itself: it would seal the file with a key everyone has. That counts as no keychain, so
// the file stays plain (owner-only) and the page says the key is not protected by a keychain.

import type { IdentityProtector } from '../src/core/federation/identity-file.ts';

/** The part of Electron's safeStorage this uses. */
export interface SafeStorageLike {
  isEncryptionAvailable(): boolean;
  getSelectedStorageBackend?(): string;
  encryptString(plain: string): Buffer;
  decryptString(sealed: Buffer): string;
}

/** safeStorage as an IdentityProtector, or undefined where it protects nothing. */
export function keychainProtector(
  safeStorage: SafeStorageLike,
  platform: NodeJS.Platform = process.platform,
): IdentityProtector | undefined {
  if (!safeStorage.isEncryptionAvailable()) return undefined;
  if (platform === 'linux' && safeStorage.getSelectedStorageBackend?.() === 'basic_text') return undefined;
  // safeStorage seals strings: the bytes travel as base64.
  return {
    encrypt: (plain) => new Uint8Array(safeStorage.encryptString(Buffer.from(plain).toString('base64'))),
    decrypt: (sealed) =>
      new Uint8Array(Buffer.from(safeStorage.decryptString(Buffer.from(sealed)), 'base64')),
  };
}
