// `stockade serve CONFIG`: sandboxed MCP servers behind one streamable-HTTP endpoint
// (lib/serve). `stockade serve --new-token NAME` makes a token for the tokens file.
import pino from 'pino';
import { parseCommandArgs } from './args';
import { UsageError } from './errors';

function serveUsage(): string {
  return `Usage: stockade serve CONFIG [--audit FILE] [--verbose]
       stockade serve --new-token NAME

Serves every server of CONFIG (JSON or YAML) over MCP's streamable HTTP transport at
/mcp/NAME. Each authenticated principal gets its own sandbox per session, with its own HOME
under stateDir; idle sandboxes are stopped. Also /healthz, /metrics and, with OAuth, the
protected-resource metadata at /.well-known/oauth-protected-resource.

  --audit FILE       append the audit log (JSON lines) to FILE
  --verbose          audit log on stderr
  --new-token NAME   print a new random token (give it to NAME) and the tokens-file line for it
  --help             show this help`;
}

export async function main(argv: string[]): Promise<number> {
  const { values, positionals } = parseCommandArgs(argv, {
    command: 'serve',
    positional: 'CONFIG',
    min: 0,
    max: 1,
    options: { audit: { type: 'string' }, verbose: { type: 'boolean' }, 'new-token': { type: 'string' } },
  });
  if (values.help) {
    process.stdout.write(`${serveUsage()}\n`);
    return 0;
  }
  const { newToken } = require('../serve/auth') as typeof import('../serve/auth');
  if (values['new-token'] !== undefined) {
    let made: ReturnType<typeof newToken>;
    try {
      made = newToken(values['new-token']);
    } catch (err) {
      throw new UsageError((err as Error).message);
    }
    process.stdout.write(`${made.token}\n`);
    process.stderr.write(`give the token above to ${values['new-token']}; add this line to the tokens file:\n${made.line}\n`);
    return 0;
  }
  if (positionals.length !== 1) throw new UsageError('expected one CONFIG file (see stockade serve --help)');
  const { loadServeConfig } = require('../serve/config') as typeof import('../serve/config');
  const { Gateway } = require('../serve/gateway') as typeof import('../serve/gateway');
  let config: ReturnType<typeof loadServeConfig>;
  try {
    config = loadServeConfig(positionals[0]);
  } catch (err) {
    process.stderr.write(`stockade serve: ${(err as Error).message}\n`);
    return 2;
  }
  const streams: pino.StreamEntry[] = [];
  if (values.audit !== undefined) streams.push({ stream: pino.destination({ dest: values.audit, append: true, mkdir: false }) });
  if (values.verbose) streams.push({ stream: pino.destination({ dest: 2 }) });
  const logger = streams.length ? pino({ base: { component: 'stockade-serve' } }, pino.multistream(streams)) : pino({ level: 'silent' });
  let gateway: InstanceType<typeof Gateway>;
  try {
    gateway = new Gateway(config, { logger });
  } catch (err) {
    process.stderr.write(`stockade serve: ${(err as Error).message}\n`);
    return 2;
  }
  // Handlers before listening: a signal that came before them would kill the gateway by default
  // and leave its sandboxes to PR_SET_PDEATHSIG instead of a clean close.
  let stopping: Promise<void> | undefined;
  const stop = () => {
    stopping ??= gateway.close();
    return stopping;
  };
  const stopped = new Promise<void>((resolve) => {
    const onSignal = () => {
      process.off('SIGINT', onSignal);
      process.off('SIGTERM', onSignal);
      stop().then(resolve);
    };
    process.on('SIGINT', onSignal);
    process.on('SIGTERM', onSignal);
  });
  const address = await gateway.listen().catch((err: NodeJS.ErrnoException) => {
    process.stderr.write(`stockade serve: cannot listen on ${config.listen.host}:${config.listen.port}: ${err.code ?? err.message}\n`);
    return undefined;
  });
  if (!address) {
    await stop();
    return 1;
  }
  if (stopping) {
    await stopped;
    return 0;
  }
  const scheme = config.tls ? 'https' : 'http';
  const host = address.family === 'IPv6' ? `[${address.address}]` : address.address;
  process.stderr.write(`stockade serve: listening on ${scheme}://${host}:${address.port}/mcp/{${Object.keys(config.servers).join(',')}}\n`);
  logger.info({ event: 'serve.start', address: address.address, port: address.port, servers: Object.keys(config.servers) });
  await stopped;
  return 0;
}
