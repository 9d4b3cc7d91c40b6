// The `stockade` command (installed as `stockade-sandbox` and `stockade`): dispatches to one
// module per subcommand. Every error is one line on stderr (lib/cli/errors.ts): exit 2 for a
// usage error, never a stack trace.
import { describeCliError, quietOnClosedStdout } from './errors';

export { setBundleLoader } from '../bundles';

const commands: Record<string, { summary: string; load: () => { main(argv: string[]): Promise<number> } }> = {
  run: { summary: 'run a command (an MCP server) in a sandbox', load: () => require('./run') },
  check: { summary: 'validate a policy file and print the effective policy', load: () => require('./check') },
  approve: { summary: 'approve a policy that grew, and tools that changed since they were pinned', load: () => require('./approve') },
  update: { summary: "move an npx server's package pin to the version the registry has now", load: () => require('./update') },
  wrap: { summary: 'put every stdio server of an MCP client config behind stockade', load: () => require('./wrap') },
  demo: { summary: 'watch a hostile MCP server attack, unconfined and under stockade', load: () => require('./demo') },
  serve: { summary: 'serve sandboxed MCP servers over streamable HTTP, a sandbox per principal', load: () => require('./serve') },
  doctor: { summary: 'check what this host supports, and how to fix what is missing', load: () => require('./doctor') },
};

function usage(): string {
  const names = Object.keys(commands);
  const width = Math.max(...names.map((n) => n.length)) + 2;
  return `Usage: stockade <command> [options]

Confines untrusted processes — MCP servers above all — in a Linux kernel sandbox.

Commands:
${names.map((n) => `  ${n.padEnd(width)}${commands[n].summary}`).join('\n')}

Run 'stockade <command> --help' for the options of a command. Without installing:
npx stockade-sandbox@VERSION <command> (pin the version: an unpinned npx runs whatever the
registry serves that day, in front of your servers).`;
}

export async function main(argv: string[]): Promise<number> {
  const [name, ...rest] = argv;
  // Not for `run`: its stdout is the payload's, handed over as the fd; opening it as a stream
  // here would let libuv change the flags of the open file the payload shares.
  if (name !== 'run') quietOnClosedStdout();
  if (name === undefined || name === '--help' || name === '-h' || name === 'help') {
    process.stdout.write(`${usage()}\n`);
    return name === undefined ? 2 : 0;
  }
  if (name === '--version') {
    process.stdout.write(`${require('../../../package.json').version}\n`);
    return 0;
  }
  const command = commands[name];
  if (command === undefined) {
    process.stderr.write(`stockade: unknown command '${name}' (see stockade --help)\n`);
    return 2;
  }
  try {
    return await command.load().main(rest);
  } catch (err) {
    const { line, exitCode } = describeCliError(name, err, name === 'run' ? 2 : 1);
    process.stderr.write(`${line}\n`);
    return exitCode;
  }
}
