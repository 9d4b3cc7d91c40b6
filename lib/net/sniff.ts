// Recognises what a client sent first on a raw connection: a TLS ClientHello (name from SNI), an
// HTTP/1.x request (name from the Host header), or something else. Used by transparent mode to
// find the name, and by CONNECT/SOCKS tunnels to check that SNI and Host agree with the target.
import { parseClientHello } from './sni';

export type SniffResult =
  | { kind: 'need-more' }
  | { kind: 'other' }
  | { kind: 'invalid'; protocol: 'tls' | 'http'; reason: string }
  | { kind: 'tls'; host: string | null }
  | { kind: 'http'; host: string | null };

const METHOD = /^[A-Z]{1,20} /;

export function sniff(data: Buffer, maxHeaderSize: number): SniffResult {
  if (data.length === 0) return { kind: 'need-more' };
  if (data[0] === 0x16) {
    const hello = parseClientHello(data);
    if (hello.kind === 'tls') return { kind: 'tls', host: hello.sni };
    if (hello.kind === 'invalid') return { kind: 'invalid', protocol: 'tls', reason: hello.reason };
    return hello.kind === 'need-more' ? hello : { kind: 'other' };
  }
  const start = data.subarray(0, 21).toString('latin1');
  if (!METHOD.test(start)) {
    // A method prefix that is still arriving ('GE') waits for more; anything else is opaque.
    return /^[A-Z]{1,20}$/.test(start) ? { kind: 'need-more' } : { kind: 'other' };
  }
  return sniffHttpHost(data, maxHeaderSize);
}

function sniffHttpHost(data: Buffer, maxHeaderSize: number): SniffResult {
  const end = data.indexOf('\r\n\r\n');
  if (end < 0) {
    return data.length > maxHeaderSize
      ? { kind: 'invalid', protocol: 'http', reason: `request head larger than ${maxHeaderSize} bytes` }
      : { kind: 'need-more' };
  }
  const lines = data.subarray(0, end).toString('latin1').split('\r\n');
  if (!/^[A-Z]+ \S+ HTTP\/1\.[01]$/.test(lines[0])) {
    return { kind: 'invalid', protocol: 'http', reason: 'malformed request line' };
  }
  let host: string | null = null;
  for (const line of lines.slice(1)) {
    const colon = line.indexOf(':');
    if (colon <= 0 || /\s/.test(line.slice(0, colon))) {
      return { kind: 'invalid', protocol: 'http', reason: 'malformed header line' };
    }
    if (line.slice(0, colon).toLowerCase() !== 'host') continue;
    // Two Host headers is a request-smuggling classic: refuse rather than pick one.
    if (host !== null) return { kind: 'invalid', protocol: 'http', reason: 'more than one Host header' };
    host = line.slice(colon + 1).trim();
  }
  return { kind: 'http', host };
}
