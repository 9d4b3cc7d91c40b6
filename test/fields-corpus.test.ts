// One grammar per field, whoever gives the value (issue #12): for a table of values per field,
// the policy validator, `stockade check`, `stockade run --policy`, `stockade run` with the flag,
// and spawnSandboxed() all accept it or all refuse it. Accepted values really run (`true`, in a
// real sandbox, exit 0); refused ones fail before anything is spawned: exit 1 from check, 2 from
// run naming the field or flag, and a synchronous throw from the API (never an 'error' event
// after the sandbox started). Every allowlist form the README documents is among the values
// (parsed from README.md, so the table cannot drift from the documentation), for network.allow,
// --allow-net, and the hosts of a secret.
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { readFileSync, rmSync, writeFileSync } from 'node:fs';
import * as path from 'node:path';
import { after, describe, it } from 'node:test';
import type { SandboxOptions } from '../lib/options';
import { validatePolicy } from '../lib/policy';
import { spawnSandboxed } from '../lib/process';
import { repoRoot, sharedTempDir } from './helpers';

const launcher = path.join(repoRoot, 'bin', 'stockade.js');
const tmp = sharedTempDir('stockade-fields-');
after(() => rmSync(tmp, { recursive: true, force: true }));

type Value = string | number;
type Verdict = 'accept' | 'reject';

interface Field {
  name: string;
  /** The policy fragment (the command is added). */
  policy(v: Value): Record<string, unknown>;
  /** The same as API options. */
  api(v: Value): SandboxOptions;
  /** The same as `stockade run` flags, where a flag exists. */
  flags?(v: Value): string[];
  accept: Value[];
  reject: Value[];
  /** Accepted values that check and run warn about (policy lint), and the API takes silently. */
  warn?: Value[];
}

// ---- the documented allowlist forms, from README.md ------------------------------------------

/** The backticked entries of the README's allowlist table and of the network.allow field row. */
function documentedAllowEntries(): string[] {
  const readme = readFileSync(path.join(repoRoot, 'README.md'), 'utf8');
  const section = readme.slice(readme.indexOf('### Allowlist syntax'), readme.indexOf('**Ports:**'));
  const out = new Set<string>();
  for (const line of section.split('\n')) {
    const first = /^\| (.+?) \|/.exec(line)?.[1];
    if (first === undefined || first === 'Entry' || first.startsWith('---')) continue;
    for (const m of first.matchAll(/`([^`]+)`/g)) out.add(m[1]);
  }
  const row = readme.split('\n').find((l) => l.startsWith('| `network.allow` |'));
  assert.ok(row, 'the README has a network.allow row in its field table');
  const meaning = row.split('|')[4];
  for (const m of meaning.matchAll(/`([^`]+)`/g)) out.add(m[1]);
  return [...out];
}

const documented = documentedAllowEntries();

const allowAccept: Value[] = [
  ...documented,
  'bücher.example', // IDN: punycoded
  'example.com.', // one trailing dot dropped
  'EXAMPLE.com',
  '*.example.com:*',
  '[::1]:8080',
  'exa_mple.com', // underscores occur in real names; the proxy accepts them
];
const allowWarn: Value[] = ['*.com', '*.com:443', '127.1'];
const allowReject: Value[] = [
  '',
  'https://example.com',
  '*',
  '*example.com',
  'foo.*.example.com',
  'exa mple.com',
  'example.com:0',
  'example.com:65536',
  'a..b',
  '[fd00::/8',
  'user@example.com',
  '10.0.0.0/33',
  '256.1.1.1',
];

const pair = (v: Value): Record<string, string> => {
  const [key, address] = String(v).split('=');
  return { [key]: address };
};
const withCommand = (fragment: Record<string, unknown>) => ({ command: ['true'], ...fragment });
const secret = (hosts: Value[], extra: Record<string, unknown> = {}) => ({ name: 'TOK', hosts, source: { value: 'x' }, ...extra });

const fields: Field[] = [
  {
    name: 'filesystem.tmpSize',
    policy: (v) => ({ filesystem: { tmpSize: v } }),
    api: (v) => ({ filesystem: { tmpSize: v } }),
    flags: (v) => ['--tmp-size', String(v)],
    accept: ['64MiB', '64m', '64MB', '1.5g', '4096', 4096, '8 m'],
    reject: ['0', 0, '0.0001k', '-1', '12q', '', '1.5', 1.5],
  },
  {
    name: 'hostname',
    policy: (v) => ({ hostname: v }),
    api: (v) => ({ hostname: v as string }),
    flags: (v) => ['--hostname', String(v)],
    accept: ['box', 'box.local', 'Box-1.example', 'a'.repeat(63)],
    reject: ['box.', 'a..b', '-a', 'a_b', 'a'.repeat(65), '', 'bö', 'a b'],
  },
  {
    name: 'limits.memory',
    policy: (v) => ({ limits: { memory: v } }),
    api: (v) => ({ limits: { memory: v as number } }),
    flags: (v) => ['--memory', String(v)],
    accept: ['256m', '1g', 536870912, '0.5g'],
    reject: ['0', 0, '12q', -5],
  },
  {
    name: 'limits.timeout (seconds; the API takes wallTime in ms)',
    policy: (v) => ({ limits: { timeout: v } }),
    api: (v) => ({ limits: { wallTime: (v as number) * 1000 } }),
    flags: (v) => ['--timeout', String(v)],
    accept: [1, 0.5, 3600, 2147483],
    reject: [0, -1, 3000000, 2147484],
  },
  {
    name: 'limits.pids',
    policy: (v) => ({ limits: { pids: v } }),
    api: (v) => ({ limits: { pids: v as number } }),
    flags: (v) => ['--pids', String(v)],
    accept: [64, 1024],
    reject: [0, -1, 1.5, 2 ** 53],
  },
  {
    name: 'limits.openFiles',
    policy: (v) => ({ limits: { openFiles: v } }),
    api: (v) => ({ limits: { openFiles: v as number } }),
    flags: (v) => ['--open-files', String(v)],
    accept: [64, 4096],
    reject: [0, 2 ** 53],
  },
  {
    name: 'env (names)',
    policy: (v) => ({ env: { [v]: 'x' } }),
    api: (v) => ({ env: { [v]: 'x' } }),
    flags: (v) => ['--env', `${v}=x`],
    accept: ['FOO', '_X1'],
    reject: ['1X', 'A-B', 'A B', ''],
  },
  {
    name: 'cwd',
    policy: (v) => ({ cwd: v }),
    api: (v) => ({ cwd: v as string }),
    flags: (v) => ['--cwd', String(v)],
    accept: ['/', '/tmp', '/usr/bin'],
    reject: ['tmp', '', '/usr/../tmp', '~/x'],
  },
  {
    name: 'seccomp',
    policy: (v) => ({ seccomp: v }),
    api: (v) => ({ seccomp: v as 'default' }),
    flags: (v) => ['--seccomp', String(v)],
    accept: ['default', 'strict'],
    reject: ['lenient', ''],
  },
  {
    name: 'network.allow',
    policy: (v) => ({ network: { allow: [v] } }),
    api: (v) => ({ network: { allow: [v as string] } }),
    flags: (v) => ['--allow-net', String(v)],
    accept: allowAccept,
    warn: allowWarn,
    reject: allowReject,
  },
  {
    name: 'secrets[].hosts',
    policy: (v) => ({ network: { allow: ['example.org'] }, secrets: [secret([v])] }),
    api: (v) => ({ network: { allow: ['example.org'] }, secrets: [secret([v]) as never] }),
    flags: (v) => ['--allow-net', 'example.org', '--secret', `TOK@${v}`],
    // Each run makes a per-run CA: the documented forms and the review's examples, not every value.
    accept: [...documented, 'bücher.example', 'example.com.'],
    warn: ['*.com'],
    reject: ['https://example.com', '*example.com', 'example.com:0', '[fd00::/8', 'user@example.com'],
  },
  {
    name: 'network.resolve',
    policy: (v) => ({ network: { allow: ['example.org'], resolve: [v] } }),
    api: (v) => ({ network: { allow: ['example.org'], resolve: [v as string] } }),
    flags: (v) => ['--allow-net', 'example.org', '--resolve', String(v)],
    accept: [
      'api.example.com:443:127.0.0.1',
      'api.example.com:443:127.0.0.1:8443',
      'api.example.com:*:[::1]:8443',
      'a.example:80:127.0.0.1,127.0.0.2',
      'bücher.example:443:127.0.0.1',
    ],
    reject: ['bogus', 'a.example:0:127.0.0.1', 'a.example:443:not-an-ip', '127.0.0.1:443:127.0.0.2', 'a.example:443:127.0.0.1:0'],
  },
  {
    name: "network.resolve, object form ('KEY=ADDRESS' here)",
    policy: (v) => ({ network: { allow: ['example.org'], resolve: pair(v) } }),
    api: (v) => ({ network: { allow: ['example.org'], resolve: pair(v) } }),
    accept: ['a.example:443=127.0.0.1:8443', 'a.example=127.0.0.1', 'a.example:443=127.0.0.1,[::1]:8443'],
    reject: ['a.example:0=127.0.0.1', 'a.example:443=nope', '127.0.0.1:443=127.0.0.2', 'a.example:443=[::1'],
  },
  {
    name: 'secrets[].file',
    policy: (v) => ({ network: { allow: ['example.org'] }, secrets: [secret(['example.org'], { file: v })] }),
    api: (v) => ({ network: { allow: ['example.org'] }, secrets: [secret(['example.org'], { file: v }) as never] }),
    accept: ['/home/nobody/.token', '/etc/token'],
    reject: ['rel/token', '/a/../b', '/', '/a//b', '/a/./b', '/dir/'],
  },
];

// ---- the five ways in -------------------------------------------------------------------------

interface CliResult {
  code: number;
  stderr: string;
}

function cli(args: string[]): Promise<CliResult> {
  return new Promise((resolve) => {
    const child = execFile(
      process.execPath,
      [launcher, ...args],
      { env: { PATH: process.env.PATH, TOK: 'x' }, timeout: 60_000 },
      (err, _stdout, stderr) => {
        const code = err ? (typeof err.code === 'number' ? err.code : -1) : 0;
        resolve({ code, stderr });
      },
    );
    child.stdin?.end();
  });
}

/** spawnSandboxed(): 'reject' is a synchronous throw; an accepted value must run `true` to exit 0. */
async function viaApi(options: SandboxOptions): Promise<{ verdict: Verdict; detail: string }> {
  let child: ReturnType<typeof spawnSandboxed>;
  try {
    child = spawnSandboxed('true', [], { ...options, stdio: 'ignore' });
  } catch (err) {
    return { verdict: 'reject', detail: (err as Error).message };
  }
  try {
    const { exitCode } = await child.exited;
    return { verdict: exitCode === 0 ? 'accept' : 'reject', detail: `exit ${exitCode}` };
  } catch (err) {
    // Refused after spawnSandboxed() returned: the one outcome this corpus rules out.
    return { verdict: 'reject', detail: `LATE 'error' event: ${(err as Error).message}` };
  }
}

let serial = 0;

interface Observed {
  validator: Verdict;
  check: Verdict;
  runPolicy: Verdict;
  runFlags?: Verdict;
  api: Verdict;
  warnedByCheck: boolean;
  warnedByRun: boolean;
  details: string[];
}

async function observe(field: Field, v: Value): Promise<Observed> {
  const doc = withCommand(field.policy(v));
  const file = path.join(tmp, `p${serial++}.json`);
  writeFileSync(file, JSON.stringify(doc));
  const issues = validatePolicy(doc);
  const [check, runPolicy, runFlags, api] = await Promise.all([
    cli(['check', file]),
    cli(['run', '--policy', file]),
    field.flags ? cli(['run', ...field.flags(v), '--', 'true']) : Promise.resolve(undefined),
    viaApi(field.api(v)),
  ]);
  const verdict = (r: CliResult, accepted: number, refused: number): Verdict =>
    r.code === accepted ? 'accept' : r.code === refused ? 'reject' : (`exit ${r.code}` as Verdict);
  return {
    validator: issues.length === 0 ? 'accept' : 'reject',
    check: verdict(check, 0, 1),
    runPolicy: verdict(runPolicy, 0, 2),
    ...(runFlags ? { runFlags: verdict(runFlags, 0, 2) } : {}),
    api: api.verdict,
    warnedByCheck: check.stderr.includes('warning:'),
    warnedByRun: runPolicy.stderr.includes('warning:'),
    details: [
      `validator: ${issues.map((i) => i.message).join('; ')}`,
      `check: ${check.stderr.trim()}`,
      `run --policy: ${runPolicy.stderr.trim()}`,
      ...(runFlags ? [`run flags: ${runFlags.stderr.trim()}`] : []),
      `api: ${api.detail}`,
    ],
  };
}

/** A few at a time: each value starts up to three CLI processes and a sandbox. */
async function pool<T>(items: T[], limit: number, work: (item: T) => Promise<void>): Promise<void> {
  const queue = [...items];
  await Promise.all(
    Array.from({ length: limit }, async () => {
      for (let item = queue.shift(); item !== undefined; item = queue.shift()) await work(item);
    }),
  );
}

describe('one grammar per field: validator, check, run --policy, run flags and the API agree', () => {
  it('the README documents the allowlist forms this corpus checks', () => {
    for (const form of ['api.example.com', '*.example.com', 'db.example.com:5432', 'example.com:*', '[2001:db8::1]', '[fd00::/8]:443']) {
      assert.ok(documented.includes(form), `${form} parsed from README.md (found: ${documented.join(' ')})`);
    }
  });

  for (const field of fields) {
    it(field.name, async () => {
      const cases: [Value, Verdict, boolean][] = [
        ...field.accept.map((v): [Value, Verdict, boolean] => [v, 'accept', false]),
        ...(field.warn ?? []).map((v): [Value, Verdict, boolean] => [v, 'accept', true]),
        ...field.reject.map((v): [Value, Verdict, boolean] => [v, 'reject', false]),
      ];
      const failures: string[] = [];
      await pool(cases, 3, async ([v, expected, warns]) => {
        const o = await observe(field, v);
        const verdicts = { validator: o.validator, check: o.check, runPolicy: o.runPolicy, runFlags: o.runFlags, api: o.api };
        const wrong = Object.entries(verdicts).filter(([, got]) => got !== undefined && got !== expected);
        if (wrong.length > 0) {
          failures.push(
            `${JSON.stringify(v)} should be ${expected}ed, but ${wrong.map(([k, got]) => `${k}: ${got}`).join(', ')}\n    ${o.details.join('\n    ')}`,
          );
        }
        if (o.details.some((d) => d.includes('LATE')))
          failures.push(`${JSON.stringify(v)}: refused after the spawn\n    ${o.details.join('\n    ')}`);
        if (expected === 'accept' && (o.warnedByCheck !== warns || o.warnedByRun !== warns)) {
          failures.push(
            `${JSON.stringify(v)}: ${warns ? 'expected' : 'unexpected'} lint warning (check ${o.warnedByCheck}, run ${o.warnedByRun})`,
          );
        }
      });
      assert.deepEqual(failures, []);
    });
  }
});
