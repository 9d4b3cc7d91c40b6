// The `stockade` command: dispatches to one module per subcommand. A usage error prints one
// line on stderr and exits 2.
import { UsageError } from './flags';

const commands: Record<string, { summary: string; load: () => { main(argv: string[]): Promise<number> } }> = {
  run: { summary: 'run a command (an MCP server) in a sandbox', load: () => require('./run') },
  check: { summary: 'validate a policy file and print the effective policy', load: () => require('./check') },
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

Run 'stockade <command> --help' for the options of a command.`;
}

export async function main(argv: string[]): Promise<number> {
  const [name, ...rest] = argv;
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
    if (err instanceof UsageError) {
      process.stderr.write(`stockade ${name}: ${err.message}\n`);
      return 2;
    }
    throw err;
  }
}
