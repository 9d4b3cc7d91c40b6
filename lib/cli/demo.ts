// `stockade demo`: a bundled, deliberately hostile MCP server attacks a planted (fake) user
// environment twice — once unconfined, once under stockade — driven by a small MCP client over
// stdio. The table shows what each attack achieved and what stopped it.
import fs = require('node:fs');
import net = require('node:net');
import os = require('node:os');
import path = require('node:path');
import readline = require('node:readline');

import { type ChildProcess, spawn } from 'node:child_process';
import { libDir } from '../location';
import { spawnSandboxed } from '../process';
import { parseCommandArgs } from './args';

interface Rpc {
  call(
    method: string,
    params?: unknown,
  ): Promise<{ content?: { text: string }[]; isError?: boolean; tools?: { name: string; description: string }[] }>;
  close(): void;
}

/** A minimal MCP client over newline-delimited JSON-RPC. */
function client(child: Pick<ChildProcess, 'stdin' | 'stdout' | 'kill'>): Rpc {
  let next = 1;
  const pending = new Map<number, (result: never) => void>();
  readline.createInterface({ input: child.stdout as NodeJS.ReadableStream }).on('line', (line) => {
    const msg = JSON.parse(line) as { id: number; result: never };
    pending.get(msg.id)?.(msg.result);
    pending.delete(msg.id);
  });
  return {
    call(method, params) {
      const id = next++;
      child.stdin?.write(`${JSON.stringify({ jsonrpc: '2.0', id, method, params })}\n`);
      return new Promise((resolve) => pending.set(id, resolve));
    },
    close() {
      child.stdin?.end();
      child.kill('SIGKILL');
    },
  };
}

async function attack(rpc: Rpc): Promise<Map<string, { description: string; outcome: string; blocked: boolean }>> {
  await rpc.call('initialize', { protocolVersion: '2025-06-18', capabilities: {}, clientInfo: { name: 'stockade-demo', version: '1' } });
  const { tools = [] } = await rpc.call('tools/list');
  const out = new Map<string, { description: string; outcome: string; blocked: boolean }>();
  for (const tool of tools) {
    const result = await rpc.call('tools/call', { name: tool.name, arguments: {} });
    out.set(tool.name, { description: tool.description, outcome: result.content?.[0]?.text ?? '', blocked: result.isError === true });
  }
  return out;
}

export async function main(argv: string[]): Promise<number> {
  if (parseCommandArgs(argv, { command: 'demo', options: {} }).values.help) {
    process.stdout.write(
      'Usage: stockade demo\n\nRuns a bundled hostile MCP server against a fake home directory, unconfined and then under stockade, and shows what each attack achieved.\n',
    );
    return 0;
  }
  // A fake victim: a home with an SSH key and a credential in the launcher's environment.
  const root = fs.mkdtempSync(path.join(os.tmpdir(), 'stockade-demo-'));
  fs.chmodSync(root, 0o755);
  const home = path.join(root, 'home');
  fs.mkdirSync(path.join(home, '.ssh'), { recursive: true, mode: 0o755 });
  const sshKey = path.join(home, '.ssh', 'id_ed25519');
  fs.writeFileSync(
    sshKey,
    '-----BEGIN OPENSSH PRIVATE KEY-----\n(a fake key planted by stockade demo)\n-----END OPENSSH PRIVATE KEY-----\n',
  );
  fs.chmodSync(home, 0o777);
  const received: string[] = [];
  const attacker = net.createServer((s) => s.on('data', (d) => received.push(d.toString().trim())));
  await new Promise<void>((resolve) => attacker.listen(0, '127.0.0.1', resolve));
  const targets = JSON.stringify({ sshKey, home, exfil: (attacker.address() as net.AddressInfo).port });
  const server = path.join(libDir, 'demo', 'hostile-server.js');
  const env = { ...process.env, DEMO_API_KEY: 'sk-demo-not-a-real-key' };

  try {
    const unconfined = spawn(process.execPath, [server, targets], { stdio: ['pipe', 'pipe', 'ignore'], env });
    const before = await attack(client(unconfined)).finally(() => unconfined.kill('SIGKILL'));
    fs.rmSync(path.join(home, '.bashrc'), { force: true });

    process.env.DEMO_API_KEY = env.DEMO_API_KEY;
    const sandboxed = spawnSandboxed('node', [server, targets], {
      filesystem: { readOnly: [path.dirname(server)] },
      stdio: ['pipe', 'pipe', 'ignore'],
    });
    const rpc = client(sandboxed as unknown as ChildProcess);
    const after = await attack(rpc).finally(() => rpc.close());
    delete process.env.DEMO_API_KEY;

    const lines = ['stockade demo: a hostile MCP server attacks a (fake) user, unconfined and then under stockade', ''];
    for (const [name, b] of before) {
      const a = after.get(name);
      lines.push(`● ${b.description} (${name})`);
      lines.push(`    unconfined:     ${b.outcome}`);
      lines.push(`    under stockade: ${a?.outcome ?? '(no answer)'}${a?.blocked ? '  ✗ blocked' : ''}`);
    }
    lines.push('', `The attacker's server received ${received.length} message(s), all from the unconfined run.`);
    lines.push(`Nothing was written to ${home} under stockade: ${fs.existsSync(path.join(home, '.bashrc')) ? 'NO, it was' : 'confirmed'}.`);
    process.stdout.write(`${lines.join('\n')}\n`);
    return 0;
  } finally {
    attacker.close();
    fs.rmSync(root, { recursive: true, force: true });
  }
}
