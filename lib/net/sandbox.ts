// Egress for one sandbox: serving the sockets its child binds inside its network namespace (the
// plan, ./egress-plan.ts) from this process once their fds have been handed up (the attachment).
//
// Inside the sandbox's netns:
//   127.0.0.1:HTTP   the explicit HTTP proxy (HTTP_PROXY/HTTPS_PROXY point here)
//   127.0.0.1:SOCKS  SOCKS5 (ALL_PROXY=socks5h://...)
//   127.0.0.1:53     DNS over UDP (served natively: Node's dgram cannot adopt an fd) and TCP
//   0.0.0.0:P, [::]:P  transparent listeners for 80, 443 and every port the allowlist names;
//                    with `local 0.0.0.0/0 dev lo` (and ::/0) every address is local, so a
//                    connect() to any address on P lands here, and the accepted socket's local
//                    address is the original destination.
// Nothing else listens, so any other port is refused at once, and no packet leaves the netns.
import net = require('node:net');

import type { Logger } from 'pino';
import { type NativeUdpEndpoint, native } from '../native';
import type { EgressOptions } from '../options';
import type { EgressPlan } from './egress-plan';
import { EgressProxy, type EgressProxyExtras } from './proxy';

/** Serves one sandbox's injected listeners through an EgressProxy; close() frees everything. */
export class EgressAttachment {
  readonly proxy: EgressProxy;
  private readonly servers: net.Server[] = [];
  private readonly udp: NativeUdpEndpoint[] = [];

  /**
   * `fds` are the sandbox's listeners, still owned by its native handle: each is adopted
   * (`adopt(i)`) in the statement right after the one that wraps it, so that whatever stops this
   * code half way (a Worker's terminate() interrupts any JavaScript) loses no fd: the handle
   * closes the ones not adopted (native/addon.cc, Sandbox::AdoptListener).
   */
  constructor(
    options: EgressOptions,
    plan: EgressPlan,
    fds: number[],
    adopt: (index: number) => void,
    sandbox: string,
    logger?: Logger,
    extras?: EgressProxyExtras,
  ) {
    this.proxy = new EgressProxy(options, sandbox, logger, extras);
    const { UdpEndpoint } = native();
    plan.roles.forEach((role, i) => {
      const fd = fds[i];
      if (role === 'dns-udp') {
        const endpoint: NativeUdpEndpoint = new UdpEndpoint(fd, (msg, peer) => {
          const answer = this.proxy.handleDnsQuery(msg);
          if (answer) endpoint.send(answer, peer);
        });
        adopt(i);
        this.udp.push(endpoint);
        return;
      }
      const server = net.createServer();
      server.listen({ fd });
      adopt(i);
      this.servers.push(server);
      if (role === 'http') this.proxy.serveHttpProxy(server);
      else if (role === 'socks') this.proxy.serveSocks(server);
      else if (role === 'dns-tcp') this.proxy.serveDnsTcp(server);
      else this.proxy.serveTransparent(server);
    });
  }

  ref(): void {
    for (const s of this.servers) s.ref();
  }

  unref(): void {
    for (const s of this.servers) s.unref();
  }

  async close(): Promise<void> {
    for (const u of this.udp) u.close();
    this.udp.length = 0;
    await this.proxy.close();
  }
}
