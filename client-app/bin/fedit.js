#!/usr/bin/env node
// The installed `fedit` command runs the compiled CLI; in the repository, `npm run fedit -- ...`
// runs the TypeScript sources directly.
import '../dist/cli/fedit.js';
