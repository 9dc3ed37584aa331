// electron-builder's configuration for the desktop app's installers. Used only by
// scripts/release.mjs (`npm run release -w client-app`), which stages the built app (app-dist/)
// with its production node_modules outside the repository and packages that folder; never by
// `npm test` (electron-builder downloads Electron and its packaging tools).
//
//   Windows  NSIS installer (x64, arm64)
//   macOS    dmg (Apple silicon: onnxruntime-node 1.30 ships no Intel-Mac binaries)
//   Linux    AppImage and deb (x64, arm64)

import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const clientDir = dirname(fileURLToPath(import.meta.url));
const require = createRequire(import.meta.url);

/** @type {import('electron-builder').Configuration} */
const config = {
  appId: 'org.fedit.client',
  productName: 'fedit',
  copyright: 'The fedit contributors',
  // The version in client-app's package.json devDependencies, as installed (npm ci).
  electronVersion: require('electron/package.json').version,
  directories: {
    output: join(clientDir, 'app-release'),
    buildResources: join(clientDir, 'electron/resources'),
  },
  files: ['**/*', '!**/*.map', '!**/*.d.ts', '!**/*.md'],
  asar: true,
  // Native code must be real files on disk: the OS loader cannot read inside app.asar. That is
  // onnxruntime-node's binding with the runtime libraries next to it (libonnxruntime, DirectML,
  // dxcompiler), and any other .node binary (msgpackr-extract's).
  asarUnpack: ['**/node_modules/onnxruntime-node/bin/**', '**/*.node'],
  // The native dependencies are N-API prebuilds, loadable by any Electron: nothing to rebuild,
  // and the release script has installed node_modules already.
  npmRebuild: false,
  nodeGypRebuild: false,
  electronFuses: {
    // Training runs in a utilityProcess, not a child process with ELECTRON_RUN_AS_NODE; but the
    // backend's WebGPU probe (src/app/device.ts) starts the app's binary as Node to try the GPU
    // in a process of its own, so this fuse stays on until that probe runs in a utilityProcess.
    runAsNode: true,
    enableCookieEncryption: true,
    enableNodeOptionsEnvironmentVariable: false,
    enableNodeCliInspectArguments: false,
    enableEmbeddedAsarIntegrityValidation: true,
    onlyLoadAppFromAsar: true,
    // The page is loaded from file:// and is an ES module script, which needs these privileges.
    grantFileProtocolExtraPrivileges: true,
    // Flipping fuses breaks Electron's ad-hoc signature; without a signing certificate (CSC_LINK)
    // electron-builder does not sign, and Apple silicon refuses to start a badly signed binary.
    resetAdHocDarwinSignature: true,
  },
  win: {
    target: [{ target: 'nsis', arch: ['x64', 'arm64'] }],
  },
  nsis: {
    oneClick: false,
    perMachine: false,
    allowToChangeInstallationDirectory: true,
    // The participant's identity and training state stay unless they delete them (docs/install.md).
    deleteAppDataOnUninstall: false,
    artifactName: '${productName}-${version}-windows-${arch}-setup.${ext}',
  },
  mac: {
    target: [{ target: 'dmg', arch: ['arm64'] }],
    category: 'public.app-category.developer-tools',
    hardenedRuntime: true,
  },
  dmg: {
    artifactName: '${productName}-${version}-macos-${arch}.${ext}',
  },
  linux: {
    target: [
      { target: 'AppImage', arch: ['x64', 'arm64'] },
      { target: 'deb', arch: ['x64', 'arm64'] },
    ],
    category: 'Science',
    synopsis: 'Train a shared language model together, each on your own data',
    maintainer: 'The fedit contributors',
    artifactName: '${productName}-${version}-linux-${arch}.${ext}',
  },
  publish: null,
};

export default config;
