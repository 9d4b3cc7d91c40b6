// Test fixture: an MCP server on the official SDK's server API whose two tools reach the network,
// for per-tool grants. `fetch_a` and `fetch_b` do the same thing — fetch each of `urls` in turn,
// with `Authorization: Bearer $TOKEN` when `token` names an environment variable — so what one
// may reach and the other not is decided by the policy alone. `defer` is a URL fetched later,
// *between* calls: when the next ping arrives (the client has the call's answer by then, so no
// call is in flight); `deferred` returns that fetch's outcome.
import { Server } from '@modelcontextprotocol/sdk/server/index.js';
import { StdioServerTransport } from '@modelcontextprotocol/sdk/server/stdio.js';
import { CallToolRequestSchema, ListToolsRequestSchema, PingRequestSchema } from '@modelcontextprotocol/sdk/types.js';

async function get(url: string, token?: string): Promise<string> {
  try {
    const headers: Record<string, string> = {};
    const value = token === undefined ? undefined : process.env[token];
    if (value !== undefined) headers.authorization = `Bearer ${value}`;
    const res = await fetch(url, { headers });
    return `${res.status} ${(await res.text()).trim()}`;
  } catch (err) {
    const cause = (err as { cause?: { code?: string; message?: string } }).cause;
    return `failed ${cause?.code ?? cause?.message ?? (err as Error).message}`;
  }
}

let deferredUrl: string | undefined;
let deferred: Promise<string> | undefined;

const schema = {
  type: 'object' as const,
  properties: { urls: { type: 'array', items: { type: 'string' } }, token: { type: 'string' }, defer: { type: 'string' } },
};
const server = new Server({ name: 'grants-server', version: '1.0.0' }, { capabilities: { tools: {} } });
server.setRequestHandler(ListToolsRequestSchema, async () => ({
  tools: [
    { name: 'fetch_a', description: 'Fetches URLs (granted a.test).', inputSchema: schema },
    { name: 'fetch_b', description: 'Fetches URLs (granted b.test).', inputSchema: schema },
    { name: 'deferred', description: 'The outcome of the last deferred fetch.', inputSchema: { type: 'object' as const, properties: {} } },
  ],
}));
server.setRequestHandler(CallToolRequestSchema, async (req) => {
  const args = (req.params.arguments ?? {}) as { urls?: string[]; token?: string; defer?: string };
  if (req.params.name === 'deferred') return { content: [{ type: 'text', text: (await deferred) ?? 'nothing deferred' }] };
  const out: string[] = [];
  for (const url of args.urls ?? []) out.push(await get(url, args.token));
  if (args.defer !== undefined) deferredUrl = args.defer;
  return { content: [{ type: 'text', text: out.join('\n') }] };
});
server.setRequestHandler(PingRequestSchema, async () => {
  if (deferredUrl !== undefined) {
    const url = deferredUrl;
    deferredUrl = undefined;
    deferred = get(url);
    // Answer the ping once the fetch was decided (it is made while no call is in flight).
    await deferred;
  }
  return {};
});
void server.connect(new StdioServerTransport());
