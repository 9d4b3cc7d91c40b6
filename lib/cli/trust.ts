// The launcher's trust step for a policy file the user approved (lib/approval.ts): refuse a
// policy that grew since, and pin the server's tool definitions. Called by `stockade run` before
// the spawn; a policy without an approval file returns nothing and runs as before.
import type { Logger } from 'pino';
import { type ApprovalFiles, approvalFiles, assertOutOfReach, checkConsent, pinRecorder } from '../approval';
import { PinGate } from '../mcp/pins';
import type { PolicyLaunch } from '../policy';
import type { Policy } from '../policy/types';

export interface LaunchTrust {
  files: ApprovalFiles;
  /** The pin gate for the tool layer (turns the tool layer on even without --tools). */
  gate: PinGate;
}

/**
 * Throws ApprovalError (one line for the client's stderr view) when the policy file grew since
 * it was approved, or when its approval files are in reach of the sandbox.
 */
export function launchTrust(
  policyFile: string,
  filePolicy: Policy,
  launch: PolicyLaunch,
  logger: Logger | undefined,
  report: (line: string) => void,
): LaunchTrust | undefined {
  const files = approvalFiles(policyFile);
  const approval = checkConsent(files, filePolicy);
  if (approval === undefined) return undefined;
  const fs = launch.options.filesystem ?? {};
  assertOutOfReach(files, [...(fs.readWrite ?? []), ...(fs.home && fs.home !== 'tmpfs' ? [fs.home] : [])]);
  const hooks = pinRecorder(files, report);
  const gate = new PinGate(approval.tools, {
    onRecorded: (pins) => {
      logger?.info({ event: 'mcp.tools_pinned', tools: Object.keys(pins).length, file: files.approved }, 'tool definitions pinned');
      hooks.onRecorded?.(pins);
    },
    onWithheld: (w) => {
      logger?.warn(
        { event: 'violation', kind: 'mcp-tool-unapproved', tool: w.tool, reason: w.reason, changed: w.changed, digest: w.pin?.digest },
        'tool withheld',
      );
      hooks.onWithheld?.(w);
    },
  });
  return { files, gate };
}
