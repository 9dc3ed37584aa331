// Process entry of the `fedit` command (kept apart from main.ts so tests can import the program
// without running it).
import { main } from './main.ts';
import { npmUserFolder } from './user-folder.ts';

const userFolder = npmUserFolder(process.env, process.cwd());
if (userFolder !== undefined) process.chdir(userFolder);
process.exitCode = await main(process.argv.slice(2));
