// MCP: server-everything's echo tool called from the official SDK client, with the server run
// directly, through `stockade run` (stdio handed over: should be at par) and through
// `stockade run --tools` (one more process hop, every message parsed). One client per mode stays
// connected; the rounds interleave the modes, each round a batch of sequential calls per mode,
// so the per-call figure of every mode comes from the same minutes of the machine. Then cold
// start to `initialized`, interleaved the same way.
//
//   MCP_ROUNDS (default 8), MCP_CALLS (calls per mode per round, default 200), MCP_STARTS (default 4 per round)
import * as fs from 'node:fs';
import * as path from 'node:path';
import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { StdioClientTransport } from '@modelcontextprotocol/sdk/client/stdio.js';
import { difference, interleave, knob, ratio, report, type Sampler, section } from './harness';

const root = path.join(__dirname, '..', '..');
const server = path.join(root, 'node_modules', '@modelcontextprotocol', 'server-everything', 'dist', 'index.js');
const launcher = path.join(root, 'bin', 'stockade.js');
const ROUNDS = knob('MCP_ROUNDS', 8);
const CALLS = knob('MCP_CALLS', 200);
const STARTS = knob('MCP_STARTS', 4);

// Each mode: the command the SDK client starts, and its arguments.
const modes: Record<string, [string, string[]]> = {
  direct: [process.execPath, [server, 'stdio']],
  'stockade run': [process.execPath, [launcher, 'run', '--ro', path.join(root, 'node_modules'), '--', process.execPath, server, 'stdio']],
  'stockade run --tools': [
    process.execPath,
    [launcher, 'run', '--ro', path.join(root, 'node_modules'), '--tools', 'echo', '--', process.execPath, server, 'stdio'],
  ],
};
// A server in a session of its own (setsid): where the kernel groups the scheduler by session
// (sched_autogroup_enabled), that alone moves it to another autogroup, whose wakeups then
// compete with every other session's — 2-4x slower per round trip on a loaded host. The sandbox
// was such a session until it gave up the terminal with TIOCNOTTY and setpgid instead
// (native/child.cc); this mode stays to show what that was worth.
if (fs.existsSync('/usr/bin/setsid')) modes['direct, own session (setsid)'] = ['/usr/bin/setsid', [process.execPath, server, 'stdio']];

async function connect([command, args]: [string, string[]]): Promise<Client> {
  const client = new Client({ name: 'stockade-bench', version: '0' });
  await client.connect(new StdioClientTransport({ command, args, stderr: 'ignore' }));
  return client;
}

async function main(): Promise<void> {
  const clients: Record<string, Client> = {};
  for (const [name, mode] of Object.entries(modes)) clients[name] = await connect(mode);
  let n = 0;
  const calls: Record<string, Sampler> = Object.fromEntries(
    Object.keys(modes).map((name) => [
      name,
      async () => {
        const t = performance.now();
        for (let i = 0; i < CALLS; i++) await clients[name].callTool({ name: 'echo', arguments: { message: `m${n++}` } });
        return ((performance.now() - t) / CALLS) * 1000; // µs per call
      },
    ]),
  );
  const rt = section('mcp', `MCP echo round trip: ${ROUNDS} rounds x ${CALLS} sequential calls per mode, interleaved (µs per call)`);
  rt.modes = await interleave(calls, { rounds: ROUNDS, perRound: 1, warmup: 1, unit: 'µs/call' });
  rt.ratios.push(ratio(rt.modes, 'stockade run', 'direct'), ratio(rt.modes, 'stockade run --tools', 'direct'));
  if (rt.modes['direct, own session (setsid)']) {
    rt.ratios.push(
      ratio(rt.modes, 'direct, own session (setsid)', 'direct'),
      ratio(rt.modes, 'stockade run', 'direct, own session (setsid)'),
    );
    const auto = '/proc/sys/kernel/sched_autogroup_enabled';
    rt.figures.sched_autogroup_enabled = fs.existsSync(auto) ? fs.readFileSync(auto, 'utf8').trim() : 'absent';
  }
  for (const c of Object.values(clients)) await c.close();
  report(rt);

  const starts: Record<string, Sampler> = Object.fromEntries(
    Object.entries(modes).map(([name, mode]) => [
      name,
      async () => {
        const t = performance.now();
        const c = await connect(mode);
        const ms = performance.now() - t;
        await c.close();
        return ms;
      },
    ]),
  );
  // Starts alternate mode by mode within a round: the difference per round is the figure.
  const cold = section('mcp-start', `MCP cold start to initialized: ${ROUNDS} rounds x ${STARTS} per mode, modes alternating (ms)`);
  cold.modes = await interleave(starts, { rounds: ROUNDS, perRound: STARTS, warmup: 1, alternate: true });
  cold.ratios.push(ratio(cold.modes, 'stockade run', 'direct'));
  cold.figures['stockade run over direct (median of per-round differences)'] = difference(cold.modes, 'stockade run', 'direct');
  report(cold);
}

main().catch((err) => {
  console.error(err);
  process.exit(1);
});
