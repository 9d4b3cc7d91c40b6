// HTTP header fields that describe one connection, not the message (RFC 9110 7.6.1), plus the
// proxy-* fields a client addresses to its proxy: a proxy never forwards them. The one list, used
// by the HTTP proxy (./http-proxy.ts) and the credential interceptor (lib/secrets/rewrite.ts),
// which adds what only it must drop.
export const HOP_BY_HOP: ReadonlySet<string> = new Set([
  'connection',
  'keep-alive',
  'proxy-connection',
  'proxy-authenticate',
  'proxy-authorization',
  'te',
  'trailer',
  'transfer-encoding',
  'upgrade',
]);
