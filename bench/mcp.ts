// MCP round trip: 1,000 calls of server-everything's echo tool from the official SDK client,
// with the server run directly, through `stockade run`, and through `stockade run --tools`
// (the tool layer parses every message); and cold start to `initialized` for each. Ratios are
// against the direct run of the same process. Goals (issue #5): <= 1.05 without the tool layer,
// <= 1.2 with it.
import * as path from 'node:path';
import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { StdioClientTransport } from '@modelcontextprotocol/sdk/client/stdio.js';

const root = path.join(__dirname, '..', '..');
const server = path.join(root, 'node_modules', '@modelcontextprotocol', 'server-everything', 'dist', 'index.js');
const launcher = path.join(root, 'bin', 'stockade.js');
const CALLS = Number(process.env.MCP_CALLS ?? 1000);
const STARTS = Number(process.env.MCP_STARTS ?? 10);

const modes: Record<string, string[]> = {
  direct: [server, 'stdio'],
  'stockade run': [launcher, 'run', '--ro', path.join(root, 'node_modules'), '--', 'node', server, 'stdio'],
  'stockade run --tools': [launcher, 'run', '--ro', path.join(root, 'node_modules'), '--tools', 'echo', '--', 'node', server, 'stdio'],
};

async function connect(args: string[]): Promise<Client> {
  const client = new Client({ name: 'stockade-bench', version: '0' });
  await client.connect(new StdioClientTransport({ command: process.execPath, args, stderr: 'ignore' }));
  return client;
}

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];

async function main(): Promise<void> {
  const results: Record<string, { calls: number; start: number }> = {};
  for (const [name, args] of Object.entries(modes)) {
    const starts: number[] = [];
    for (let i = 0; i < STARTS; i++) {
      const t = performance.now();
      const c = await connect(args);
      starts.push(performance.now() - t);
      await c.close();
    }
    const client = await connect(args);
    for (let i = 0; i < 50; i++) await client.callTool({ name: 'echo', arguments: { message: 'warm' } });
    const t = performance.now();
    for (let i = 0; i < CALLS; i++) await client.callTool({ name: 'echo', arguments: { message: `m${i}` } });
    results[name] = { calls: performance.now() - t, start: median(starts) };
    await client.close();
  }
  const base = results.direct;
  console.log(`MCP: ${CALLS} sequential echo calls (SDK client, server-everything), cold start median of ${STARTS}`);
  console.log(
    `${'mode'.padEnd(24)}${'calls ms'.padStart(10)}${'x direct'.padStart(10)}${'start ms'.padStart(10)}${'x direct'.padStart(10)}`,
  );
  for (const [name, r] of Object.entries(results)) {
    console.log(
      `${name.padEnd(24)}${r.calls.toFixed(0).padStart(10)}${(r.calls / base.calls).toFixed(2).padStart(10)}${r.start.toFixed(0).padStart(10)}${(r.start / base.start).toFixed(2).padStart(10)}`,
    );
  }
}

main().catch((err) => {
  console.error(err);
  process.exit(1);
});
