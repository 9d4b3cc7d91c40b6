// The gateway as the serve tests run it (lib/serve): a config parsed against its directory,
// audit records collected as parsed objects, listening on an ephemeral port; and an SDK client
// session as a principal.
import { PassThrough } from 'node:stream';
import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { StreamableHTTPClientTransport } from '@modelcontextprotocol/sdk/client/streamableHttp.js';
import pino from 'pino';
import { parseServeConfig } from '../../lib/serve/config';
import { Gateway } from '../../lib/serve/gateway';

export interface TestGateway {
  gateway: Gateway;
  port: number;
}

/**
 * Starts a gateway from `config` (a serve config document, its paths relative to `dir`). Audit
 * records are appended to `records` when given; otherwise the gateway logs nothing.
 */
export async function startGateway(config: unknown, dir: string, records?: Record<string, unknown>[]): Promise<TestGateway> {
  let logger = pino({ level: 'silent' });
  if (records) {
    const audit = new PassThrough();
    audit.on('data', (chunk: Buffer) => {
      for (const line of chunk.toString().split('\n')) if (line) records.push(JSON.parse(line));
    });
    logger = pino(audit);
  }
  const gateway = new Gateway(parseServeConfig(config, dir), { logger });
  return { gateway, port: (await gateway.listen()).port };
}

/** An SDK client connected to server `server` of the gateway on `port`, as the holder of `token`. */
export async function connectAs(port: number, server: string, token: string): Promise<Client> {
  const transport = new StreamableHTTPClientTransport(new URL(`http://127.0.0.1:${port}/mcp/${server}`), {
    requestInit: { headers: { authorization: `Bearer ${token}` } },
  });
  const client = new Client({ name: 'stockade-test', version: '0.0.0' });
  await client.connect(transport);
  return client;
}

/** Ends a session as a client that is done does: DELETE (which stops its sandbox), then close. */
export async function endSession(client: Client): Promise<void> {
  await (client.transport as StreamableHTTPClientTransport).terminateSession();
  await client.close();
}
