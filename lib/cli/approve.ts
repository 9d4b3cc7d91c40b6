// `stockade approve POLICY`: the user's consent. Shows what the policy grants beyond what was
// last approved and which tools the launcher withheld (new ones, changed descriptions or
// schemas), and on confirmation records both beside the policy (lib/approval.ts). The launcher
// then runs the grown policy and shows the approved tools.
import readline = require('node:readline');

import { approvalFiles, type Pending, policyDigest, printable, readApproval, readPending, removePending, writeApproval } from '../approval';
import { describe, type ToolPins } from '../mcp/pins';
import { loadPolicy } from '../policy';
import { grownGrants, policyGrants } from '../policy/grants';
import { parseCommandArgs } from './args';

function approveUsage(): string {
  return `Usage: stockade approve POLICY [--yes] [--forget-tools]

Records POLICY as approved by you. Once a policy has been approved (stockade wrap approves the
policies it writes), the launcher refuses to run it when it grows — a new host, path, secret,
pass-through variable, tool or command, a looser limit — and withholds tools whose definition
changed since they were pinned, until you run this command.

  --yes            approve without asking (for scripts; review what it prints)
  --forget-tools   drop the pinned tool definitions; the next run pins the tools it is offered`;
}

interface CliIO {
  stdout: { write(s: string): unknown };
  stderr: { write(s: string): unknown };
  stdin: NodeJS.ReadableStream & { isTTY?: boolean };
}

function ask(io: CliIO, question: string): Promise<boolean> {
  const rl = readline.createInterface({ input: io.stdin, output: process.stderr });
  return new Promise((resolve) => {
    rl.question(question, (answer) => {
      rl.close();
      resolve(/^y(es)?$/i.test(answer.trim()));
    });
    rl.on('close', () => resolve(false));
  });
}

function pendingLines(pending: Pending | undefined): string[] {
  const lines: string[] = [];
  for (const w of Object.values(pending?.tools ?? {})) {
    lines.push(`  ${w.reason === 'new' ? '+' : '~'} ${printable(describe(w))}`);
    if (w.pin?.description !== undefined) lines.push(`      description: ${printable(w.pin.description, 500)}`);
  }
  return lines;
}

export async function main(argv: string[], io: CliIO = process): Promise<number> {
  const { values, positionals } = parseCommandArgs(argv, {
    command: 'approve',
    positional: 'POLICY',
    options: { yes: { type: 'boolean' }, 'forget-tools': { type: 'boolean' } },
  });
  if (values.help) {
    io.stdout.write(`${approveUsage()}\n`);
    return 0;
  }
  try {
    return await approve(positionals[0], { yes: values.yes === true, forget: values['forget-tools'] === true }, io);
  } catch (err) {
    const code = (err as { code?: string }).code;
    if (code !== 'ERR_STOCKADE_POLICY' && code !== 'ERR_STOCKADE_APPROVAL_FILE') throw err;
    io.stderr.write(`stockade approve: ${(err as Error).message.replace(/^stockade: /, '')}\n`);
    return 2;
  }
}

async function approve(file: string, opts: { yes: boolean; forget: boolean }, io: CliIO): Promise<number> {
  const policy = loadPolicy(file);
  const paths = approvalFiles(file);
  const approval = readApproval(paths);
  const pending = readPending(paths);
  const { forget } = opts;

  const grown = approval ? grownGrants(approval.grants, policyGrants(policy)) : policyGrants(policy).entries;
  const changed = approval?.policyDigest !== policyDigest(policy);
  const toolLines = pendingLines(pending);
  if (!changed && toolLines.length === 0 && !forget) {
    io.stdout.write(`stockade approve: ${paths.policy} is approved as it stands; nothing to do\n`);
    return 0;
  }
  const out: string[] = [`stockade approve: ${paths.policy}`];
  if (!approval) out.push('  first approval; the policy grants:', ...grown.map((g) => `  + ${g}`));
  else if (grown.length > 0) out.push('  grants beyond the last approval:', ...grown.map((g) => `  + ${g}`));
  else if (changed) out.push('  the policy changed but grants nothing new');
  if (toolLines.length > 0) out.push('  tools withheld by the launcher:', ...toolLines);
  if (forget) out.push('  the pinned tool definitions are dropped; the next run pins the tools it is offered');
  io.stdout.write(`${out.join('\n')}\n`);

  if (!opts.yes) {
    if (!io.stdin.isTTY) {
      io.stderr.write('stockade approve: not a terminal, so nothing was approved; review the above and run again with --yes\n');
      return 1;
    }
    if (!(await ask(io, 'Approve? [y/N] '))) {
      io.stderr.write('stockade approve: not approved\n');
      return 1;
    }
  }
  let tools: ToolPins | undefined = forget ? undefined : approval?.tools;
  if (!forget && pending) {
    const accepted = Object.values(pending.tools).flatMap((w) => (w.pin ? [[w.tool, w.pin] as const] : []));
    if (accepted.length > 0) tools = Object.fromEntries([...Object.entries(tools ?? {}), ...accepted]);
  }
  writeApproval(paths, policy, tools);
  removePending(paths);
  io.stdout.write(`stockade approve: recorded in ${paths.approved}\n`);
  return 0;
}
