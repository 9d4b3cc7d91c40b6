// The gateway's trust checks per server, the same as `stockade run --policy FILE` makes
// (lib/cli/trust.ts, lib/cli/package-pin.ts), applied to every session:
//
//   consent   a server given as a policy file with an approval beside it is refused for new
//             sessions while the policy has grown since it was approved (re-read per session,
//             so `stockade approve FILE` takes effect without a restart); its approval files
//             must be out of reach of every sandbox of it.
//   tools     its pinned tool definitions gate every session's tool layer: a changed or new
//             tool is withheld from the client and its calls refused until approved; the first
//             session after an approval without pins records them.
//   package   a `package` pin is verified once, when the gateway starts, by the install phase
//             (download/install with the registry reachable, digest compared); a mismatch
//             withholds the server from every session, naming both digests. Sessions run the
//             verified install, with the registry out of reach unless the policy names it.
//
// Inline policies in the serve config are the administrator's own and have no approval.
import type { Logger } from 'pino';
import { type ApprovalFiles, approvalFiles, assertOutOfReach, checkConsent, pinRecorder } from '../approval';
import { PinGate } from '../mcp/pins';
import type { PolicyLaunch } from '../policy/resolve';
import { policyToOptions } from '../policy/resolve';
import type { Policy } from '../policy/types';

export class ServerWithheld extends Error {
  constructor(
    /** What the client is told. */
    message: string,
    /** What the audit log gets. */
    readonly detail: string,
    readonly kind: 'consent' | 'package',
  ) {
    super(message);
    this.name = 'ServerWithheld';
  }
}

export class ServerTrust {
  private readonly files: ApprovalFiles | undefined;
  /** The run phase of a verified package pin, or why the server is withheld. */
  private verified: PolicyLaunch | undefined;
  private withheld: string | undefined;

  constructor(
    readonly server: string,
    private readonly policy: Policy,
    policyFile: string | undefined,
    private readonly logger: Logger,
  ) {
    this.files = policyFile === undefined ? undefined : approvalFiles(policyFile);
  }

  /** The install phase of a package pin (once, at gateway start). Never throws: a failure withholds the server. */
  async preparePackage(): Promise<void> {
    const pin = this.policy.package;
    if (pin === undefined) return;
    const { installPinned } = require('../cli/package-pin') as typeof import('../cli/package-pin');
    const net = this.policy.network;
    try {
      const verified = await installPinned(policyToOptions(this.policy), pin, (h) => typeof net === 'object' && net.allow.includes(h));
      // npx would write to its cache, which sessions get read-only: they run the installed bin.
      const cache = verified.options.env?.npm_config_cache;
      if (verified.command.endsWith('npx') && typeof cache === 'string') {
        const { installedBin } = require('../cli/package-pin') as typeof import('../cli/package-pin');
        const { npxPackage } = require('../cli/package-resolve') as typeof import('../cli/package-resolve');
        const spec = npxPackage([verified.command, ...verified.args]);
        verified.args = spec ? verified.args.slice(spec.index) : [];
        verified.command = installedBin(cache, pin);
      }
      this.verified = verified;
      this.logger.info({
        event: 'serve-package-verified',
        server: this.server,
        package: `${pin.name}@${pin.version}`,
        integrity: pin.integrity,
      });
    } catch (err) {
      this.withheld = (err as Error).message.replace(/^stockade: /, '');
      this.logger.warn({ event: 'violation', kind: 'package-pin', server: this.server, reason: this.withheld });
    }
  }

  /**
   * Admits a session: throws ServerWithheld when the server's package did not verify or its
   * policy grew; returns the tool pin gate (undefined when the policy has no approval).
   */
  admit(launch: PolicyLaunch): PinGate | undefined {
    if (this.withheld !== undefined) {
      throw new ServerWithheld(`server ${this.server} is withheld: its package is not the pinned one`, this.withheld, 'package');
    }
    if (this.files === undefined) return undefined;
    const files = this.files;
    let approval: ReturnType<typeof checkConsent>;
    try {
      approval = checkConsent(files, this.policy);
      const fs = launch.options.filesystem ?? {};
      if (approval !== undefined) assertOutOfReach(files, [...(fs.readWrite ?? []), ...(fs.home && fs.home !== 'tmpfs' ? [fs.home] : [])]);
    } catch (err) {
      const e = err as Error & { code?: string; grown?: string[] };
      if (e.code !== 'ERR_STOCKADE_NOT_APPROVED' && e.code !== 'ERR_STOCKADE_APPROVAL_FILE') throw err;
      this.logger.warn({ event: 'violation', kind: 'policy-not-approved', server: this.server, grown: e.grown, reason: e.message });
      throw new ServerWithheld(
        e.code === 'ERR_STOCKADE_NOT_APPROVED'
          ? `server ${this.server} is withheld: its policy grew since it was approved (${(e.grown ?? []).join('; ')}); an administrator must approve it`
          : `server ${this.server} is withheld: its approval cannot be trusted`,
        e.message,
        'consent',
      );
    }
    if (approval === undefined) return undefined;
    const hooks = pinRecorder(files, (line) => this.logger.warn({ event: 'serve-tool-pins', server: this.server, message: line }));
    return new PinGate(approval.tools, {
      onRecorded: (pins) => {
        this.logger.info({ event: 'mcp.tools_pinned', server: this.server, tools: Object.keys(pins).length });
        hooks.onRecorded?.(pins);
      },
      onWithheld: (w) => {
        this.logger.warn({
          event: 'violation',
          kind: 'mcp-tool-unapproved',
          server: this.server,
          tool: w.tool,
          reason: w.reason,
          changed: w.changed,
        });
        hooks.onWithheld?.(w);
      },
    });
  }

  /**
   * A session's launch with the verified package install in place of the registry command. The
   * install lives in the server's package cache, which every principal's sessions of this server
   * share: sessions get it read-only, so one tenant cannot change the code another one runs
   * (`stockade run` has one user, and reinstalls at every start instead).
   */
  applyPackage(launch: PolicyLaunch): PolicyLaunch {
    const v = this.verified;
    if (v === undefined) return launch;
    const env = { ...(v.options.env ?? {}) };
    const cache = [env.npm_config_cache, env.PIP_CACHE_DIR].filter((c): c is string => typeof c === 'string');
    const fs = launch.options.filesystem ?? {};
    const filesystem = {
      ...fs,
      readWrite: (fs.readWrite ?? []).filter((p) => !cache.includes(p)),
      readOnly: [...(fs.readOnly ?? []), ...cache.filter((c) => (fs.readWrite ?? []).includes(c))],
    };
    return {
      ...launch,
      command: v.command,
      args: [...v.args],
      options: { ...launch.options, filesystem, env, ...(v.options.network !== undefined ? { network: v.options.network } : {}) },
    };
  }
}
