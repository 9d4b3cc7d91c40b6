// Test helper: what `stockade run --tools` does on the stdio path, minus the sandbox. Spawns the
// server as a plain child and puts the tool filter between our stdio and the child's.
// Usage: node mcp-proxy.js --tools a,b [--audit FILE] -- CMD ARGS...
import { spawn } from 'node:child_process';
import pino from 'pino';
import { wireToolFilter } from '../../lib/mcp';

const argv = process.argv.slice(2);
const dashdash = argv.indexOf('--');
const flags = argv.slice(0, dashdash);
const [cmd, ...args] = argv.slice(dashdash + 1);
const flag = (name: string) => {
  const i = flags.indexOf(name);
  return i >= 0 ? flags[i + 1] : undefined;
};
const tools = (flag('--tools') ?? '').split(',').filter((t) => t !== '');
const auditFile = flag('--audit');
const logger = auditFile ? pino(pino.destination({ dest: auditFile, sync: true })) : undefined;

const child = spawn(cmd, args, { stdio: ['pipe', 'pipe', 'inherit'] });
wireToolFilter({ fromClient: process.stdin, toClient: process.stdout, toServer: child.stdin, fromServer: child.stdout }, { tools, logger });
child.on('exit', (code, signal) => process.exit(code ?? (signal ? 1 : 0)));
