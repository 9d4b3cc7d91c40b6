// `stockade run` started by native/launch.cc (README, "A launcher that is not a Node process"):
// either to resolve as always and leave a launch record for the next start (RECORD_ENV), or to
// attach to the sandbox launch.cc has already spawned from such a record (ATTACH_ENV): the same
// resolution runs, and its plan must be byte for byte the one launch.cc used, or the sandbox is
// killed and the record dropped.
import fs = require('node:fs');
import path = require('node:path');

import { libDir, packageRoot } from '../location';
import { initPath, type NativeSpawnResult, native } from '../native';
import type { SpawnVia } from '../process';
import { type Check, Recording, statView } from './readset';
import { ATTACH_ENV, dropRecord, encodeRecord, RECORD_DIR, racyCheck, takeRecordRequest, writeRecord } from './record';

export interface LaunchRequest {
  /** Attach mode: the sandbox exists already, so no warm child is made for it. */
  attaching: boolean;
  /** Record mode: the host reads of this start's resolution. */
  recording?: Recording;
  /** Starts the sandbox in place of the addon's spawn (lib/process.ts SPAWN_VIA). */
  spawn: SpawnVia;
  /** The start ended before its spawn: no record; a sandbox launch.cc started is killed. */
  abandon(): void;
}

/** STOCKADE_LAUNCH_DEBUG=1: says on stderr what became of the record, for tests and doctors. */
const debug = (line: string) => {
  if (process.env.STOCKADE_LAUNCH_DEBUG) process.stderr.write(`stockade: launch record: ${line}\n`);
};

/** The files a record is only good for while they are the ones it was made with. */
function identityChecks(): Check[] {
  const files = [path.join(libDir, 'cli.js'), path.join(packageRoot, 'bin', 'stockade.js'), initPath(), process.execPath];
  return files.map((f): Check => ({ op: 'stat', path: f, stat: statView(fs.statSync(f, { bigint: true })) }));
}

/**
 * The plan as a record holds it: without the warm pool's flags, which say how this process's
 * spawner makes the sandbox (launch.cc makes it with a clone of its own), not what it is.
 */
function comparable(plan: Parameters<SpawnVia>[0]): Parameters<SpawnVia>[0] {
  return { ...plan, warm: false, warmRefill: true };
}

/** The request launch.cc made of this start, if any, taken out of the environment. */
export function takeLaunchRequest(): LaunchRequest | undefined {
  const attach = process.env[ATTACH_ENV];
  delete process.env[ATTACH_ENV];
  const record = takeRecordRequest();
  if (attach !== undefined) return attachRequest(attach);
  if (record === undefined) return undefined;
  let recording: Recording;
  try {
    recording = new Recording(native());
  } catch {
    return undefined; // no addon: the spawn says so
  }
  const finish = (why: string | undefined, plan?: Parameters<SpawnVia>[0]) => {
    recording.stop();
    why ??= recording.poisoned ?? racyCheck(recording.checks, BigInt(Date.now()) * 1_000_000n);
    if (why !== undefined || plan === undefined) {
      dropRecord(record.file);
      debug(`none (${why ?? 'no spawn'})`);
      return;
    }
    try {
      const checks = [...identityChecks(), ...recording.checks];
      // STOCKADE_LAUNCH_DEBUG=2: every check, for test/launch.test.ts to compare with strace.
      if (process.env.STOCKADE_LAUNCH_DEBUG === '2') {
        const shown = checks.map((c) => ({
          op: c.op,
          path: 'path' in c ? c.path : 'root' in c ? c.root : '',
          result: 'result' in c ? c.result : 'file' in c ? c.file : undefined,
        }));
        debug(`checks ${JSON.stringify(shown)}`);
      }
      const bytes = encodeRecord(record.key, checks, native().encodePlan(comparable(plan)), process.pid);
      debug(writeRecord(record.file, bytes) ? `written (${recording.checks.length} checks)` : 'none (not writable)');
    } catch (err) {
      dropRecord(record.file);
      debug(`none (${(err as Error).message})`);
    }
  };
  return {
    attaching: false,
    recording,
    spawn(plan, onExit, onSpawn, onViolation) {
      recording.stop();
      native().spawn(plan, onExit, onSpawn, onViolation);
      finish(undefined, plan);
    },
    abandon: () => finish('the start failed'),
  };
}

/**
 * ATTACH_ENV: "plan=<memfd>,pid=<n>,pidfd=<fd>,status=<fd>,mntns=<fd>,oom=<fd>,landlock=<abi>,
 * notify=<0|1>", the sandbox launch.cc spawned and the plan it spawned it from.
 */
function attachRequest(value: string): LaunchRequest {
  // The record's file last: a path may hold commas.
  const at = value.indexOf(',file=');
  const file = at < 0 ? undefined : value.slice(at + 6);
  const fields = new Map((at < 0 ? value : value.slice(0, at)).split(',').map((kv) => kv.split('=') as [string, string]));
  const num = (k: string) => {
    const v = Number(fields.get(k));
    if (!Number.isInteger(v)) throw new Error(`stockade: ${ATTACH_ENV} lacks ${k}`);
    return v;
  };
  const recorded = fs.readFileSync(num('plan'));
  fs.closeSync(num('plan'));
  const pid = num('pid');
  const sandbox = { pid, pidfd: num('pidfd'), statusFd: num('status'), mountNsFd: num('mntns'), oomEventFd: num('oom') };
  let adopted = false;
  const kill = () => {
    try {
      process.kill(pid, 'SIGKILL');
    } catch {}
  };
  return {
    attaching: true,
    spawn(plan, onExit, onSpawn, onViolation) {
      adopted = true;
      let same = false;
      try {
        same = native().encodePlan(comparable(plan)).equals(recorded);
      } catch {
        // A plan the recorded form cannot hold was not the record's either.
      }
      if (!same && file !== undefined && path.dirname(file) === RECORD_DIR) dropRecord(file);
      debug(same ? 'attached (the sandbox stockade-launch spawned from it)' : 'did not hold this plan');
      // onSpawn comes after the caller has its listeners, as it does after a spawn. An adopt
      // that throws (fds that are not the sandbox's) leaves no sandbox running behind it.
      setImmediate(() => {
        try {
          adopt();
        } catch (err) {
          kill();
          throw err;
        }
      });
      const adopt = () =>
        native().adopt(
          {
            ...sandbox,
            landlockAbi: num('landlock'),
            seccompNotify: num('notify') === 1,
            cgroupDirs: (plan.cgroups ?? []).map((c) => c.dir),
          },
          onExit,
          (result: NativeSpawnResult) => {
            if (!same && !('error' in result)) {
              // A host read the record did not hold: a bug of lib/launch/readset.ts, never a
              // sandbox left running under a plan this start did not make.
              result.handle.kill(9);
              process.stderr.write(
                "stockade: the launch record did not hold this start's plan; the sandbox was stopped (a bug: please report it)\n",
              );
            }
            onSpawn(result);
          },
          onViolation,
        );
    },
    abandon() {
      if (!adopted) kill();
    },
  };
}
