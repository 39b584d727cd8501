// Running a fake store on its own (`npm run fake-stores`, `npm run fake-app-store`): start it when the file is
// the process's entry point, print how to use it, and close it on Ctrl-C or SIGTERM.
import { realpathSync } from 'node:fs';
import { pathToFileURL } from 'node:url';

/** Prints the lines, and closes the fake (then exits) on SIGINT or SIGTERM. */
export function serveUntilSignal(lines: readonly string[], close: () => Promise<void>): void {
  process.stdout.write(lines.join('\n') + '\n');
  const stop = (): void => {
    void close().then(() => process.exit(0));
  };
  process.once('SIGINT', stop);
  process.once('SIGTERM', stop);
}

/** Runs `main` when the module at `moduleUrl` is the script node was started with. */
export function runWhenEntryPoint(moduleUrl: string, main: () => Promise<unknown>): void {
  const entry = process.argv[1];
  if (entry === undefined) return;
  let direct = false;
  try {
    direct = moduleUrl === pathToFileURL(realpathSync(entry)).href;
  } catch {
    direct = false;
  }
  if (!direct) return;
  main().catch((err: unknown) => {
    console.error(err);
    process.exit(1);
  });
}
