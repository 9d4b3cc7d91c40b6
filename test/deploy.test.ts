// The deployment recipe (deploy/): what cannot be run here (a cluster) is checked as far as a
// machine without one allows. Every Kubernetes manifest is validated against the Kubernetes API
// schemas (kubernetes-models, generated from the OpenAPI spec), the gateway config inside the
// ConfigMap is validated by the gateway's own loader, and the pod keeps the security context
// unprivileged user namespaces need, and nothing more.
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { describe, test } from 'node:test';
import { parseAllDocuments } from 'yaml';
import { parseServeConfig } from '../lib/serve/config';
import { repoRoot } from './helpers';

const dir = path.join(repoRoot, 'deploy', 'kubernetes');

// biome-ignore lint/suspicious/noExplicitAny: manifests are untyped YAML
type Manifest = any;

const models: Record<string, () => new (m: Manifest) => { validate(): void }> = {
  'v1/ConfigMap': () => require('kubernetes-models/v1/ConfigMap').ConfigMap,
  'v1/Secret': () => require('kubernetes-models/v1/Secret').Secret,
  'v1/Service': () => require('kubernetes-models/v1/Service').Service,
  'apps/v1/StatefulSet': () => require('kubernetes-models/apps/v1/StatefulSet').StatefulSet,
  'networking.k8s.io/v1/Ingress': () => require('kubernetes-models/networking.k8s.io/v1/Ingress').Ingress,
};

function manifests(): Manifest[] {
  return fs
    .readdirSync(dir)
    .filter((f) => f.endsWith('.yaml'))
    .flatMap((f) => parseAllDocuments(fs.readFileSync(path.join(dir, f), 'utf8')).map((d) => d.toJS()));
}

describe('deploy/kubernetes', () => {
  const all = manifests();
  const byKind = (kind: string) => all.find((m) => m.kind === kind);

  test('every manifest validates against the Kubernetes API schema', () => {
    assert.deepEqual(all.map((m) => m.kind).sort(), ['ConfigMap', 'Ingress', 'Secret', 'Service', 'StatefulSet']);
    for (const m of all) {
      const model = models[`${m.apiVersion}/${m.kind}`];
      assert.ok(model, `no schema for ${m.apiVersion} ${m.kind}`);
      const Model = model();
      assert.doesNotThrow(() => new Model(m).validate(), `${m.kind} ${m.metadata?.name}`);
    }
  });

  test('the validator is not a rubber stamp', () => {
    const Model = models['apps/v1/StatefulSet']();
    const broken = structuredClone(byKind('StatefulSet'));
    broken.spec.replicas = 'two';
    assert.throws(() => new Model(broken).validate());
  });

  test('the gateway config in the ConfigMap is valid for stockade serve', () => {
    const config = parseServeConfig(parseAllDocuments(byKind('ConfigMap').data['serve.yaml'])[0].toJS(), '/var/lib/stockade');
    assert.equal(config.listen.host, '0.0.0.0');
    assert.equal(config.stateDir, '/var/lib/stockade/state');
    assert.deepEqual(config.auth.tokens, { file: '/etc/stockade/tokens/tokens' });
  });

  test('the pod runs in its own user namespace, unprivileged, with /proc unmasked for the sandboxes', () => {
    const pod = byKind('StatefulSet').spec.template.spec;
    assert.equal(pod.hostUsers, false);
    assert.equal(pod.securityContext.runAsNonRoot, true);
    assert.equal(pod.automountServiceAccountToken, false);
    const c = pod.containers[0].securityContext;
    assert.equal(c.procMount, 'Unmasked');
    assert.equal(c.allowPrivilegeEscalation, false);
    assert.equal(c.readOnlyRootFilesystem, true);
    assert.deepEqual(c.capabilities.drop, ['ALL']);
    assert.equal(c.privileged, undefined);
    // The tokens Secret holds digests only.
    for (const line of byKind('Secret').stringData.tokens.split('\n')) assert.match(line, /^(#.*|\S+ sha256:[0-9a-f]{64}|)$/);
  });

  test('the Dockerfile runs the installed launcher as a non-root user', () => {
    const dockerfile = fs.readFileSync(path.join(repoRoot, 'deploy', 'Dockerfile'), 'utf8');
    assert.match(dockerfile, /^USER 10001:10001$/m);
    const pkg = JSON.parse(fs.readFileSync(path.join(repoRoot, 'package.json'), 'utf8'));
    const entry = /^ENTRYPOINT \["([^"]+)", "serve"/m.exec(dockerfile);
    assert.ok(entry && entry[1] in pkg.bin, 'the entrypoint is a bin of the package');
  });
});
