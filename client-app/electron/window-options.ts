// What makes the desktop app's window safe to show untrusted-by-design content in: the window's
// web preferences, the content security policy, and the rules for navigation and IPC senders.
// Pure data and functions (types only from 'electron'), so the test checks exactly what main.ts
// uses without starting Electron.

import type { BrowserWindowConstructorOptions, WebPreferences } from 'electron';

/**
 * The renderer's content security policy: its own bundled script and styles, nothing inline,
 * no eval, no network (it talks to the app only through the preload's `window.fedit`), no
 * frames, no forms, no plugins. scripts/build-app.mjs writes it into the built index.html's
 * <meta> tag (in place of the development shell's, which allows its WebSocket); main.ts also
 * sends it as a header, as defense in depth (a header is not guaranteed to reach file:// pages).
 * Only directives a <meta> policy honours (no frame-ancestors: nothing can frame this page).
 */
export const CONTENT_SECURITY_POLICY = [
  "default-src 'none'",
  "script-src 'self'",
  "style-src 'self'",
  "img-src 'self' data:",
  "font-src 'self'",
  "connect-src 'none'",
  "media-src 'none'",
  "object-src 'none'",
  "frame-src 'none'",
  "worker-src 'none'",
  "manifest-src 'none'",
  "base-uri 'none'",
  "form-action 'none'",
].join('; ');

/**
 * The renderer runs sandboxed, isolated from the preload's world, without Node; the preload is
 * the only bridge. Everything that could widen that is spelled out as off, so a change of
 * Electron's defaults cannot turn it on.
 */
export function secureWebPreferences(preload: string, devTools: boolean): WebPreferences {
  return {
    preload,
    contextIsolation: true,
    sandbox: true,
    nodeIntegration: false,
    nodeIntegrationInWorker: false,
    nodeIntegrationInSubFrames: false,
    webSecurity: true,
    allowRunningInsecureContent: false,
    experimentalFeatures: false,
    webviewTag: false,
    navigateOnDragDrop: false,
    safeDialogs: true,
    spellcheck: false,
    devTools,
  };
}

export function mainWindowOptions(preload: string, devTools: boolean): BrowserWindowConstructorOptions {
  return {
    title: 'fedit',
    width: 1100,
    height: 780,
    minWidth: 720,
    minHeight: 520,
    // Shown on 'ready-to-show', so the person never sees an empty white frame.
    show: false,
    backgroundColor: '#f7f7f5',
    autoHideMenuBar: true,
    webPreferences: secureWebPreferences(preload, devTools),
  };
}

/**
 * Whether an IPC message comes from our page: the window's top frame, showing the bundled
 * index.html. Anything else (a frame the page somehow gained, a page it navigated to) is refused.
 */
export function isTrustedSender(
  sender: { url: string; isMainFrame: boolean } | null | undefined,
  rendererUrl: string,
  platform: NodeJS.Platform = process.platform,
): boolean {
  if (!sender || !sender.isMainFrame) return false;
  let url: URL;
  try {
    url = new URL(sender.url);
  } catch {
    return false;
  }
  const expected = new URL(rendererUrl);
  // Windows paths compare without case (Chromium and Node may spell the drive letter differently).
  const path = (u: URL) => {
    const decoded = decodeURIComponent(u.pathname);
    return platform === 'win32' ? decoded.toLowerCase() : decoded;
  };
  return url.protocol === expected.protocol && url.host === expected.host && path(url) === path(expected);
}

/** Response headers with our policy in place of any the response brought. */
export function withContentSecurityPolicy(
  headers: Record<string, string[]> | undefined,
): Record<string, string[]> {
  const result: Record<string, string[]> = {};
  for (const [name, value] of Object.entries(headers ?? {})) {
    if (name.toLowerCase() !== 'content-security-policy') result[name] = value;
  }
  result['Content-Security-Policy'] = [CONTENT_SECURITY_POLICY];
  return result;
}
