// fedit's version, one constant for every package (all workspaces share it; a test checks that
// each package.json says the same). A constant rather than a package.json read at run time, which
// breaks once the code is bundled into the desktop app.
export const FEDIT_VERSION = '0.1.0';
