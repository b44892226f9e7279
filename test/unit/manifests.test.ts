/**
 * The deployment files under deploy/ cannot be run here (no Docker engine, no
 * cluster, no Slurm), so this checks everything that can be checked without
 * them: every YAML file parses; Kubernetes objects have their required fields;
 * names, labels, ports, volumes, keys and env vars agree across files and with
 * the CLI's real flags (read from the commander definitions); compose
 * references resolve; `kubectl kustomize` renders with real keys; `promtool`
 * accepts the compose Prometheus config; the docs' commands use real flags.
 */
import { test, describe, before } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync, spawnSync } from 'node:child_process';
import { existsSync, readFileSync, readdirSync, statSync } from 'node:fs';
import { cp, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join, posix, relative } from 'node:path';
import { parse, parseAllDocuments } from 'yaml';
import { Command } from 'commander';
import { register as registerCoordinator } from '../../src/cli/commands/coordinator.js';
import { register as registerWorker } from '../../src/cli/commands/worker.js';
import { register as registerKeygen } from '../../src/cli/commands/keygen.js';
import { readPublicKeyFile, readSecretKeyFile, writeKeys } from '../../src/transport/curve.js';
import { K8S_WORLD_SIZE_ENV } from '../../src/transport/scheduler-env.js';
import { ROOT } from '../helpers/cli.js';


const DEPLOY = join(ROOT, 'deploy');
const VERSION = (JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8')) as { version: string }).version;

// ---------------------------------------------------------------- helpers

type Obj = Record<string, any>; // eslint-disable-line @typescript-eslint/no-explicit-any

function walk(dir: string): string[] {
  return readdirSync(dir).flatMap((name) => {
    const p = join(dir, name);
    return statSync(p).isDirectory() ? walk(p) : [p];
  });
}

function read(rel: string): string {
  const p = join(ROOT, rel);
  assert.ok(existsSync(p), `${rel} is missing`);
  return readFileSync(p, 'utf8');
}

function yamlDocs(rel: string): Obj[] {
  return parseAllDocuments(read(rel)).map((d) => {
    assert.deepEqual(d.errors, [], `${rel}: ${d.errors.map((e) => e.message).join('; ')}`);
    return d.toJS() as Obj;
  });
}

/** `--flag=value` items of a container command → Map(flag → value). Bare `--flag` maps to ''. */
function flagMap(args: string[], where: string): Map<string, string> {
  const m = new Map<string, string>();
  for (const a of args) {
    if (!a.startsWith('--')) continue;
    const eq = a.indexOf('=');
    const flag = eq < 0 ? a : a.slice(0, eq);
    assert.ok(!m.has(flag), `${where}: ${flag} given twice`);
    m.set(flag, eq < 0 ? '' : a.slice(eq + 1));
  }
  return m;
}

function must<T>(v: T | undefined | null, what: string): T {
  assert.ok(v !== undefined && v !== null, `${what} is missing`);
  return v as T;
}

function endpointParts(ep: string, where: string): { host: string; port: number } {
  const m = /^tcp:\/\/([^:]+):(\d+)$/.exec(ep);
  assert.ok(m, `${where}: ${JSON.stringify(ep)} is not tcp://HOST:PORT`);
  return { host: m[1]!, port: Number(m[2]) };
}

/** The flags each distgan subcommand really accepts, from its commander definition. */
const cliFlags = new Map<string, Set<string>>();

before(() => {
  const program = new Command('distgan');
  for (const register of [registerCoordinator, registerWorker, registerKeygen]) register(program);
  for (const cmd of program.commands) {
    cliFlags.set(cmd.name(), new Set(cmd.options.flatMap((o) => [o.long, o.short]).filter((f): f is string => typeof f === 'string')));
  }
});

function assertKnownFlags(cmd: string, flags: Iterable<string>, where: string): void {
  const known = must(cliFlags.get(cmd), `distgan ${cmd} (CLI command)`);
  for (const f of flags) {
    if (f === '--help') continue;
    assert.ok(known.has(f), `${where}: distgan ${cmd} has no flag ${f} (it has ${[...known].join(' ')})`);
  }
}

// ---------------------------------------------------------------- YAML

test('every YAML file under deploy/ parses', () => {
  const files = walk(DEPLOY).filter((p) => /\.ya?ml$/.test(p));
  assert.ok(files.length >= 10, `found only ${files.length} YAML files`);
  for (const f of files) {
    const rel = relative(ROOT, f);
    const docs = parseAllDocuments(readFileSync(f, 'utf8'));
    for (const d of docs) assert.deepEqual(d.errors.map((e) => e.message), [], rel);
    assert.ok(docs.some((d) => d.toJS() !== null), `${rel} is empty`);
  }
});

// ---------------------------------------------------------------- Kubernetes

describe('Kubernetes manifests', () => {
  const kustomization = () => yamlDocs('deploy/k8s/kustomization.yaml')[0]!;
  const objects = (): { file: string; obj: Obj }[] =>
    (kustomization().resources as string[]).flatMap((f) => yamlDocs(`deploy/k8s/${f}`).map((obj) => ({ file: f, obj })));
  const find = (kind: string, name: string): Obj =>
    must(objects().find(({ obj }) => obj.kind === kind && obj.metadata?.name === name)?.obj, `${kind} ${name}`);
  const container = (job: Obj): Obj => must(job.spec?.template?.spec?.containers?.[0], `${job.metadata.name} container`);
  const generated = (kind: 'secret' | 'configMap', name: string): Map<string, string> => {
    const gens = (kustomization()[`${kind}Generator`] ?? []) as Obj[];
    const gen = must(gens.find((g) => g.name === name), `${kind}Generator ${name}`);
    // entries are "key=path" (path relative to deploy/k8s)
    return new Map((gen.files as string[]).map((e) => (e.includes('=') ? (e.split('=', 2) as [string, string]) : [posix.basename(e), e])));
  };

  test('every object has apiVersion, kind and metadata.name; resources exist', () => {
    const k = kustomization();
    assert.equal(k.kind, 'Kustomization');
    assert.equal(k.namespace, 'distgan');
    for (const f of k.resources as string[]) assert.ok(existsSync(join(DEPLOY, 'k8s', f)), `kustomization resource ${f} exists`);
    const all = [...objects(), ...yamlDocs('deploy/k8s/podmonitor.yaml').map((obj) => ({ file: 'podmonitor.yaml', obj }))];
    for (const { file, obj } of all) {
      assert.ok(typeof obj.apiVersion === 'string' && obj.apiVersion.length > 0, `${file}: apiVersion`);
      assert.ok(typeof obj.kind === 'string', `${file}: kind`);
      assert.match(must(obj.metadata?.name, `${file}: metadata.name`), /^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/, `${file}: DNS-1123 name`);
    }
    // Every manifest file in deploy/k8s is either a resource or the optional PodMonitor.
    const listed = new Set([...(k.resources as string[]), 'kustomization.yaml', 'podmonitor.yaml']);
    for (const f of readdirSync(join(DEPLOY, 'k8s')).filter((n) => /\.ya?ml$/.test(n))) assert.ok(listed.has(f), `${f} is not referenced by kustomization.yaml`);
  });

  test('Jobs have valid pod templates', () => {
    for (const name of ['distgan-coordinator', 'distgan-workers']) {
      const job = find('Job', name);
      assert.equal(job.apiVersion, 'batch/v1');
      const spec = job.spec.template.spec;
      assert.ok(['Never', 'OnFailure'].includes(spec.restartPolicy), `${name}: a Job's restartPolicy must be Never or OnFailure`);
      assert.equal(job.spec.backoffLimit, 0, `${name}: no blind retries of a synchronous run`);
      const c = container(job);
      assert.ok(c.name && c.image, `${name}: container name and image`);
      assert.equal(spec.securityContext.runAsNonRoot, true);
      // Secrets mounted for a non-root user need fsGroup to be readable (and stay 0440, which distgan accepts).
      assert.equal(spec.securityContext.fsGroup, spec.securityContext.runAsGroup, `${name}: fsGroup`);
      for (const vm of c.volumeMounts ?? []) {
        assert.ok((spec.volumes as Obj[]).some((v) => v.name === vm.name), `${name}: volumeMount ${vm.name} has a volume`);
      }
    }
  });

  test('the coordinator Service selects the coordinator pod and exposes its two ports', () => {
    const job = find('Job', 'distgan-coordinator');
    const svc = find('Service', 'distgan-coordinator');
    const podLabels = job.spec.template.metadata.labels as Obj;
    for (const [k, v] of Object.entries(svc.spec.selector as Obj)) assert.equal(podLabels[k], v, `Service selector ${k}=${v} matches the pod`);
    const c = container(job);
    const args = flagMap(c.args.slice(1), 'coordinator args');
    assert.equal(c.args[0], 'coordinator');
    const zmqPort = endpointParts(must(args.get('--bind'), '--bind'), 'coordinator --bind').port;
    const metricsPort = Number(must(args.get('--metrics-port'), '--metrics-port'));
    assert.equal(args.get('--metrics-host'), '0.0.0.0', 'metrics must listen beyond loopback to be scraped');
    const cports = new Map((c.ports as Obj[]).map((p) => [p.name, p.containerPort]));
    assert.equal(cports.get('zmq'), zmqPort);
    assert.equal(cports.get('metrics'), metricsPort);
    const sports = new Map((svc.spec.ports as Obj[]).map((p) => [p.name, p]));
    assert.equal(sports.size, 2, 'exactly one ZeroMQ port and one metrics port');
    assert.equal(sports.get('zmq')?.port, zmqPort);
    assert.equal(sports.get('metrics')?.port, metricsPort);
    for (const p of sports.values()) assert.ok(cports.has(p.targetPort), `Service targetPort ${p.targetPort} is a named container port`);
    assert.equal(c.readinessProbe?.httpGet?.port, 'metrics');
    // Scrape annotations and PodMonitor point at the same port.
    const ann = job.spec.template.metadata.annotations as Obj;
    assert.equal(ann['prometheus.io/scrape'], 'true');
    assert.equal(Number(ann['prometheus.io/port']), metricsPort);
    assert.equal(ann['prometheus.io/path'], '/metrics');
    const pm = yamlDocs('deploy/k8s/podmonitor.yaml')[0]!;
    assert.equal(pm.kind, 'PodMonitor');
    for (const [k, v] of Object.entries(pm.spec.selector.matchLabels as Obj)) assert.equal(podLabels[k], v, `PodMonitor selector ${k}`);
    assert.equal(pm.spec.podMetricsEndpoints[0].port, 'metrics');
    assert.ok(podLabels[pm.spec.jobLabel], 'PodMonitor jobLabel names a pod label');
  });

  test('workers: Indexed Job, one GPU each, world size agrees everywhere, connect to the Service', () => {
    const workers = find('Job', 'distgan-workers');
    const coordinator = find('Job', 'distgan-coordinator');
    const svc = find('Service', 'distgan-coordinator');
    assert.equal(workers.spec.completionMode, 'Indexed');
    const n = workers.spec.completions as number;
    assert.equal(workers.spec.parallelism, n, 'all ranks run at once');
    const c = container(workers);
    assert.equal(c.resources.limits['nvidia.com/gpu'], 1);
    const env = new Map((c.env as Obj[]).map((e) => [e.name, e]));
    assert.equal(Number(env.get(K8S_WORLD_SIZE_ENV)?.value), n, `${K8S_WORLD_SIZE_ENV} equals completions`);
    const coordArgs = flagMap(container(coordinator).args.slice(1), 'coordinator args');
    assert.equal(Number(coordArgs.get('--world-size')), n, 'coordinator --world-size equals completions');
    assert.equal(c.args[0], 'worker');
    const args = flagMap(c.args.slice(1), 'worker args');
    assert.ok(!args.has('--rank'), 'rank comes from JOB_COMPLETION_INDEX');
    const { host, port } = endpointParts(must(args.get('--connect'), '--connect'), 'worker --connect');
    assert.equal(host, svc.metadata.name, 'workers connect to the Service by name');
    assert.equal(port, (svc.spec.ports as Obj[]).find((p) => p.name === 'zmq')?.port);
    // $(VAR) references in args are declared env vars (Kubernetes expands only those).
    for (const a of c.args as string[]) for (const [, v] of a.matchAll(/\$\(([A-Z_]+)\)/g)) assert.ok(env.has(v!), `$(${v}) is declared in env`);
    assert.equal(env.get('WORKER_INDEX')?.valueFrom?.fieldRef?.fieldPath, "metadata.annotations['batch.kubernetes.io/job-completion-index']");
  });

  test('key paths in args resolve to mounted Secret/ConfigMap entries generated from keygen output', () => {
    const k = kustomization();
    const mountedFiles = (job: Obj): Map<string, { kind: 'secret' | 'configMap'; name: string; key: string }> => {
      const spec = job.spec.template.spec;
      const files = new Map<string, { kind: 'secret' | 'configMap'; name: string; key: string }>();
      for (const vm of container(job).volumeMounts as Obj[]) {
        const vol = (spec.volumes as Obj[]).find((v) => v.name === vm.name)!;
        const kind = vol.secret ? 'secret' : vol.configMap ? 'configMap' : undefined;
        if (!kind) continue;
        const name = kind === 'secret' ? vol.secret.secretName : vol.configMap.name;
        if (kind === 'secret') assert.equal(vol.secret.defaultMode, 0o400, `${name}: secret key files mounted 0400 (decimal 256)`);
        for (const key of generated(kind, name).keys()) files.set(posix.join(vm.mountPath, key), { kind, name, key });
      }
      return files;
    };
    const coordinator = find('Job', 'distgan-coordinator');
    const workers = find('Job', 'distgan-workers');
    const n = workers.spec.completions as number;
    const cf = mountedFiles(coordinator);
    const cargs = flagMap(container(coordinator).args.slice(1), 'coordinator args');
    assert.equal(cf.get(must(cargs.get('--curve-secret-key'), '--curve-secret-key'))?.kind, 'secret', 'coordinator key comes from a Secret');
    const authDir = must(cargs.get('--authorized-keys'), '--authorized-keys');
    const authorized = [...cf.keys()].filter((p) => posix.dirname(p) === authDir);
    assert.deepEqual(authorized.sort(), Array.from({ length: n }, (_, i) => posix.join(authDir, `worker-${i}.pub`)).sort());
    const wf = mountedFiles(workers);
    const wargs = flagMap(container(workers).args.slice(1), 'worker args');
    for (let i = 0; i < n; i++) {
      const keyPath = must(wargs.get('--curve-secret-key'), '--curve-secret-key').replace('$(WORKER_INDEX)', String(i));
      assert.equal(wf.get(keyPath)?.kind, 'secret', `rank ${i}'s key ${keyPath} is mounted from a Secret`);
    }
    assert.ok(wf.has(must(wargs.get('--coordinator-public-key'), '--coordinator-public-key')));
    // Generator sources are exactly the files `distgan keygen --out deploy/k8s/keys` writes.
    for (const gen of [...(k.secretGenerator as Obj[]), ...(k.configMapGenerator as Obj[])]) {
      for (const e of gen.files as string[]) {
        const src = e.split('=').pop()!;
        assert.match(src, /^keys\/(coordinator\.(key|pub)|worker-\d+\.key|authorized\/worker-\d+\.pub)$/, `${gen.name}: ${src} is a keygen output`);
        if (src.endsWith('.key')) assert.equal(gen.name.includes('authorized'), false);
      }
    }
    // Secret key files only ever travel in Secrets; the ConfigMap holds public keys only.
    for (const [key] of generated('configMap', 'distgan-authorized-keys')) assert.match(key, /\.pub$/);
  });

  test('images are the ones the kustomization rewrites, tagged with the package version', () => {
    const images = new Map((kustomization().images as Obj[]).map((i) => [i.name, i]));
    for (const name of ['distgan-coordinator', 'distgan-workers']) {
      const img = container(find('Job', name)).image as string;
      assert.ok(images.has(img), `${name} image ${img} is listed under images:`);
      assert.equal(images.get(img)?.newTag, VERSION, `${img} tag is the package version`);
    }
    assert.equal(container(find('Job', 'distgan-workers')).image, 'distgan-gpu', 'GPU workers use the GPU image');
    const args = flagMap(container(find('Job', 'distgan-workers')).args.slice(1), 'worker args');
    assert.equal(args.get('--backend'), 'tensorflow', 'the GPU image is for the tensorflow backend');
  });

  test('NetworkPolicy admits workers to the ZeroMQ port and anyone in-cluster to metrics', () => {
    const np = find('NetworkPolicy', 'distgan-coordinator');
    const coordLabels = find('Job', 'distgan-coordinator').spec.template.metadata.labels as Obj;
    const workerLabels = find('Job', 'distgan-workers').spec.template.metadata.labels as Obj;
    for (const [k, v] of Object.entries(np.spec.podSelector.matchLabels as Obj)) assert.equal(coordLabels[k], v);
    const [zmqRule, metricsRule] = np.spec.ingress as Obj[];
    for (const [k, v] of Object.entries(zmqRule!.from[0].podSelector.matchLabels as Obj)) assert.equal(workerLabels[k], v);
    const svcPorts = new Map((find('Service', 'distgan-coordinator').spec.ports as Obj[]).map((p) => [p.name, p.port]));
    assert.equal(zmqRule!.ports[0].port, svcPorts.get('zmq'));
    assert.equal(metricsRule!.ports[0].port, svcPorts.get('metrics'));
  });

  test('all CLI flags in the manifests exist', () => {
    for (const name of ['distgan-coordinator', 'distgan-workers']) {
      const [cmd, ...rest] = container(find('Job', name)).args as string[];
      assertKnownFlags(cmd!, flagMap(rest, name).keys(), `deploy/k8s ${name}`);
    }
  });

  test('kubectl kustomize renders the kustomization with real keys, rewriting generated names', async (t) => {
    if (spawnSync('kubectl', ['version', '--client'], { stdio: 'ignore' }).status !== 0) return t.skip('kubectl is not installed');
    const tmp = await mkdtemp(join(tmpdir(), 'distgan-k8s-'));
    try {
      await cp(join(DEPLOY, 'k8s'), tmp, { recursive: true, filter: (src) => !src.includes(`${join(DEPLOY, 'k8s', 'keys')}`) });
      const n = find('Job', 'distgan-workers').spec.completions as number;
      await writeKeys(join(tmp, 'keys'), n);
      const out = execFileSync('kubectl', ['kustomize', tmp], { encoding: 'utf8' });
      const docs = parseAllDocuments(out).map((d) => d.toJS() as Obj);
      const byKind = (kind: string) => docs.filter((d) => d.kind === kind);
      assert.ok(docs.every((d) => d.kind === 'Namespace' || d.metadata.namespace === 'distgan'), 'everything in namespace distgan');
      const secrets = new Map(byKind('Secret').map((s) => [s.metadata.name as string, s]));
      const jobs = new Map(byKind('Job').map((j) => [j.metadata.name as string, j]));
      const workerVol = (jobs.get('distgan-workers')!.spec.template.spec.volumes as Obj[])[0]!;
      const workerSecret = must(secrets.get(workerVol.secret.secretName), `rendered Secret ${workerVol.secret.secretName}`);
      // The rendered Secret holds readable keys: decode rank 1's and load it like a worker would.
      const keyFile = join(tmp, 'decoded-worker-1.key');
      await writeFile(keyFile, Buffer.from(workerSecret.data['worker-1.key'], 'base64'), { mode: 0o600 });
      const pair = await readSecretKeyFile(keyFile);
      const pubFile = join(tmp, 'decoded-worker-1.pub');
      const cm = must(byKind('ConfigMap').find((c) => c.metadata.name.startsWith('distgan-authorized-keys')), 'authorized-keys ConfigMap');
      await writeFile(pubFile, cm.data['worker-1.pub']);
      assert.equal(await readPublicKeyFile(pubFile), pair.publicKey, 'the authorised key matches the worker key');
      const coordVols = jobs.get('distgan-coordinator')!.spec.template.spec.volumes as Obj[];
      assert.ok(coordVols.some((v) => v.configMap?.name === cm.metadata.name), 'volume refers to the hashed ConfigMap name');
      assert.ok(coordVols.some((v) => v.secret && secrets.has(v.secret.secretName)), 'volume refers to the hashed Secret name');
      assert.equal((jobs.get('distgan-workers')!.spec.template.spec.containers[0].image as string), `distgan-gpu:${VERSION}`);
    } finally {
      await rm(tmp, { recursive: true, force: true });
    }
  });

  test('the documented dashboard ConfigMap command works on the real dashboard file', (t) => {
    const docs = read('docs/multi-node.md');
    const line = must(docs.split('\n').find((l) => /kubectl .*create configmap distgan-dashboard/.test(l)), 'kubectl create configmap distgan-dashboard in docs/multi-node.md');
    const file = must(/--from-file=([\w.-]+)=(\S+)/.exec(line), '--from-file=KEY=PATH');
    assert.ok(existsSync(join(ROOT, file[2]!)), `${file[2]} exists`);
    assert.match(docs, /kubectl -n distgan label configmap distgan-dashboard grafana_dashboard=1/);
    if (spawnSync('kubectl', ['version', '--client'], { stdio: 'ignore' }).status !== 0) return t.skip('kubectl is not installed');
    const argv = line.trim().split(/\s+/).slice(1);
    const out = execFileSync('kubectl', [...argv, '--dry-run=client', '-o', 'yaml'], { cwd: ROOT, encoding: 'utf8' });
    const cm = parse(out) as Obj;
    assert.equal(cm.metadata.name, 'distgan-dashboard');
    assert.equal(cm.metadata.namespace, 'distgan');
    assert.deepEqual(JSON.parse(cm.data[file[1]!]), JSON.parse(read(file[2]!)), 'the ConfigMap carries the dashboard JSON');
  });
});

// ---------------------------------------------------------------- Compose

describe('docker-compose.yml', () => {
  const compose = (): Obj => parse(read('deploy/docker-compose.yml'), { merge: true }) as Obj;
  /** Compose's ${VAR:-default} with our test values. */
  const interpolate = (s: string, vars: Record<string, string>): string =>
    s.replace(/\$\{([A-Z_]+)(?::-([^}]*))?\}/g, (_, name: string, dflt: string | undefined) => vars[name] ?? dflt ?? '');
  const mounts = (svc: Obj): { source: string; target: string }[] =>
    ((svc.volumes ?? []) as string[]).map((v) => {
      // SOURCE:TARGET[:MODE], where SOURCE may hold ${VAR:-default}.
      const parts = v.split(/:(?![^{]*\})/);
      return { source: parts[0]!, target: parts[1]! };
    });
  const workerNames = (c: Obj): string[] => Object.keys(c.services).filter((n) => /^worker-\d+$/.test(n));

  test('services, dependencies and named volumes resolve', () => {
    const c = compose();
    for (const s of ['coordinator', 'prometheus', 'grafana']) assert.ok(c.services[s], `service ${s}`);
    assert.ok(workerNames(c).length >= 2, 'two workers');
    for (const [name, svc] of Object.entries(c.services as Obj)) {
      assert.ok(svc.image, `${name}: image`);
      for (const dep of Array.isArray(svc.depends_on) ? svc.depends_on : Object.keys(svc.depends_on ?? {})) assert.ok(c.services[dep], `${name} depends on existing ${dep}`);
      for (const { source } of mounts(svc)) {
        if (!source.startsWith('.') && !source.startsWith('/') && !source.startsWith('$')) assert.ok(c.volumes && source in c.volumes, `${name}: named volume ${source} is declared`);
      }
    }
    const build = c.services.coordinator.build;
    assert.ok(existsSync(join(DEPLOY, build.context, build.dockerfile)), 'build context + dockerfile exist');
  });

  test('mounted files exist; key mounts are exactly what keygen writes', async () => {
    const c = compose();
    const keys = await mkdtemp(join(tmpdir(), 'distgan-compose-keys-'));
    try {
      await writeKeys(keys, workerNames(c).length);
      const vars = { DISTGAN_KEYS: keys, DISTGAN_RUNS: DEPLOY };
      for (const [name, svc] of Object.entries(c.services as Obj)) {
        for (const { source } of mounts(svc)) {
          if (!/^[.$/]/.test(source)) continue;
          const resolved = interpolate(source, vars);
          const abs = resolved.startsWith('/') ? resolved : join(DEPLOY, resolved);
          assert.ok(existsSync(abs), `${name}: mount source ${source} → ${abs} exists`);
        }
      }
    } finally {
      await rm(keys, { recursive: true, force: true });
    }
  });

  test('coordinator and workers agree on endpoint, world size, ranks, keys and flags', () => {
    const c = compose();
    const coord = c.services.coordinator;
    const [cmd, ...cargsList] = coord.command as string[];
    assert.equal(cmd, 'coordinator');
    const cargs = flagMap(cargsList, 'compose coordinator');
    assertKnownFlags('coordinator', cargs.keys(), 'compose coordinator');
    const bind = endpointParts(must(cargs.get('--bind'), '--bind'), 'compose --bind');
    const workers = workerNames(c);
    assert.equal(Number(cargs.get('--world-size')), workers.length);
    const targetsOf = (svc: Obj) => new Set(mounts(svc).map((m) => m.target));
    const sourceFor = (svc: Obj, target: string) => mounts(svc).find((m) => m.target === target)?.source;
    assert.ok(targetsOf(coord).has(cargs.get('--curve-secret-key')!), 'coordinator key is mounted');
    assert.ok(targetsOf(coord).has(cargs.get('--authorized-keys')!), 'authorized folder is mounted');
    assert.equal(cargs.get('--metrics-host'), '0.0.0.0');
    const ranks: number[] = [];
    for (const w of workers) {
      const svc = c.services[w];
      const [wcmd, ...rest] = svc.command as string[];
      assert.equal(wcmd, 'worker');
      const wargs = flagMap(rest, `compose ${w}`);
      assertKnownFlags('worker', wargs.keys(), `compose ${w}`);
      const { host, port } = endpointParts(must(wargs.get('--connect'), '--connect'), `${w} --connect`);
      assert.equal(host, 'coordinator', `${w} connects to the coordinator service`);
      assert.equal(port, bind.port);
      const rank = Number(wargs.get('--rank'));
      ranks.push(rank);
      assert.equal(w, `worker-${rank}`);
      const keySrc = must(sourceFor(svc, wargs.get('--curve-secret-key')!), `${w} key mount`);
      assert.match(keySrc, new RegExp(`/worker-${rank}\\.key$`), `${w} mounts its own key`);
      assert.match(must(sourceFor(svc, wargs.get('--coordinator-public-key')!), `${w} coordinator.pub mount`), /\/coordinator\.pub$/);
    }
    assert.deepEqual(ranks.sort(), workers.map((_, i) => i));
  });

  test('Prometheus scrapes the coordinator service with the shared rules', (t) => {
    const c = compose();
    const prom = c.services.prometheus;
    const cfgFlag = (prom.command as string[]).find((a) => a.startsWith('--config.file='))!.split('=')[1]!;
    const cfgSrc = must(mounts(prom).find((m) => m.target === cfgFlag), 'mounted Prometheus config').source;
    assert.equal(cfgSrc, './docker/prometheus.yml');
    const mine = parse(read('deploy/docker/prometheus.yml')) as Obj;
    const shared = parse(read('deploy/prometheus/prometheus.yml')) as Obj;
    const cargs = flagMap((c.services.coordinator.command as string[]).slice(1), 'compose coordinator');
    assert.deepEqual(
      (mine.scrape_configs as Obj[]).map((s) => s.job_name),
      (shared.scrape_configs as Obj[]).map((s) => s.job_name),
      'same job names as deploy/prometheus/prometheus.yml (alerts and dashboard use them)',
    );
    assert.deepEqual(mine.scrape_configs[0].static_configs[0].targets, [`coordinator:${cargs.get('--metrics-port')}`]);
    assert.equal(mine.scrape_configs[0].metrics_path, shared.scrape_configs[0].metrics_path);
    const rulesTarget = (mine.rule_files as string[])[0]!;
    assert.equal(mounts(prom).find((m) => m.target === rulesTarget)?.source, './prometheus/alerts.yml', 'the rule file is the shared alerts.yml');
    // promtool validates the config for real, with the rule path pointed at the repository copy.
    if (spawnSync('promtool', ['--version'], { stdio: 'ignore' }).status !== 0) return t.skip('promtool is not installed');
    const tmp = join(tmpdir(), `distgan-prom-${process.pid}.yml`);
    try {
      const text = read('deploy/docker/prometheus.yml').replace(rulesTarget, join(DEPLOY, 'prometheus', 'alerts.yml'));
      execFileSync('sh', ['-c', `cat > ${JSON.stringify(tmp)}`], { input: text });
      const r = spawnSync('promtool', ['check', 'config', tmp], { encoding: 'utf8' });
      assert.equal(r.status, 0, `promtool check config: ${r.stdout}${r.stderr}`);
    } finally {
      spawnSync('rm', ['-f', tmp]);
    }
  });

  test('Grafana gets the shared dashboard provider, the dashboard and a datasource with the shared uid', () => {
    const c = compose();
    const g = mounts(c.services.grafana);
    const provider = parse(read('deploy/grafana/provisioning/dashboards/distgan.yml')) as Obj;
    const dashPath = provider.providers[0].options.path as string;
    const dashMount = must(g.find((m) => m.source === './grafana/dashboards'), 'dashboards folder mount');
    assert.equal(dashMount.target, dashPath, "mounted where the provider's options.path looks");
    assert.ok(existsSync(join(DEPLOY, 'grafana', 'dashboards', 'distgan.json')));
    assert.ok(g.some((m) => m.source === './grafana/provisioning/dashboards/distgan.yml' && m.target.startsWith('/etc/grafana/provisioning/dashboards/')));
    const dsMount = must(g.find((m) => m.target.startsWith('/etc/grafana/provisioning/datasources/')), 'datasource mount');
    assert.equal(dsMount.source, './docker/grafana-datasource.yml');
    const mine = (parse(read('deploy/docker/grafana-datasource.yml')) as Obj).datasources[0];
    const shared = (parse(read('deploy/grafana/provisioning/datasources/prometheus.yml')) as Obj).datasources[0];
    assert.equal(mine.uid, shared.uid, 'datasource uid matches the shared provisioning file (the dashboard defaults to it)');
    assert.equal(mine.name, shared.name);
    assert.equal(mine.type, 'prometheus');
    const promPort = (c.services.prometheus.ports as string[])[0]!.split(':').pop();
    assert.equal(mine.url, `http://prometheus:${promPort}`);
    const dashboard = JSON.parse(read('deploy/grafana/dashboards/distgan.json')) as Obj;
    const dsVar = (dashboard.templating?.list ?? []).find((v: Obj) => v.type === 'datasource');
    if (dsVar?.current?.value) assert.equal(dsVar.current.value, mine.uid, "the dashboard's default datasource exists in compose");
  });
});

// ---------------------------------------------------------------- Dockerfiles

describe('Dockerfiles', () => {
  const stages = (text: string) => text.split('\n').filter((l) => /^FROM\s/i.test(l));
  const copies = (text: string) =>
    text
      .split('\n')
      .filter((l) => /^COPY\s/.test(l) && !l.includes('--from='))
      .flatMap((l) => l.trim().split(/\s+/).slice(1, -1));

  for (const [file, gpu] of [['deploy/docker/Dockerfile', false], ['deploy/docker/Dockerfile.gpu', true]] as const) {
    test(`${file}: base, entrypoint, ports, and every copied path exists and passes the ignore file`, () => {
      const text = read(file);
      const froms = stages(text);
      const args = new Map([...text.matchAll(/^ARG\s+(\w+)=(\S+)/gm)].map((m) => [m[1]!, m[2]!]));
      const bases = froms.map((l) => l.split(/\s+/)[1]!.replace(/\$\{(\w+)\}/, (_, n: string) => args.get(n) ?? ''));
      assert.ok(bases.includes('node:20-bookworm-slim'), `${file}: node 20 bookworm-slim`);
      if (gpu) assert.match(bases.at(-1)!, /^nvidia\/cuda:11\.2\.\d+-cudnn8-runtime-/, 'CUDA 11.2 / cuDNN 8 runtime base for tfjs-node-gpu');
      else assert.equal(bases.at(-1), 'node:20-bookworm-slim');
      assert.match(text, /^ENTRYPOINT \[.*"distgan"\]$/m);
      assert.match(text, /RUN npm ci\b/);
      const exposed = new Set(text.match(/^EXPOSE (.+)$/m)![1]!.split(/\s+/).map(Number));
      const compose = parse(read('deploy/docker-compose.yml'), { merge: true }) as Obj;
      const cargs = flagMap((compose.services.coordinator.command as string[]).slice(1), 'compose coordinator');
      assert.ok(exposed.has(endpointParts(cargs.get('--bind')!, 'bind').port) && exposed.has(Number(cargs.get('--metrics-port'))), 'EXPOSE the ZeroMQ and metrics ports');
      const ignore = read(`${file}.dockerignore`).split('\n').filter((l) => l.startsWith('!')).map((l) => l.slice(1).replace(/\/$/, ''));
      for (const src of copies(text)) {
        const clean = src.replace(/\/$/, '');
        assert.ok(existsSync(join(ROOT, clean)), `${file}: COPY ${src} exists in the repository`);
        assert.ok(ignore.includes(clean), `${file}: ${src} is let through by ${file}.dockerignore`);
      }
      // Directories outside src/ that src/ imports from must be in the image too.
      const srcFiles = walk(join(ROOT, 'src')).filter((p) => p.endsWith('.ts'));
      const needed = new Set<string>();
      for (const f of srcFiles) {
        for (const [, spec] of readFileSync(f, 'utf8').matchAll(/(?:from|import\()\s*['"](\.[^'"]+)['"]/g)) {
          const top = relative(ROOT, join(dirname(f), spec!)).split(/[\\/]/)[0]!;
          if (top !== 'src' && top !== '..' && top !== 'node_modules') needed.add(top);
        }
      }
      for (const top of needed) assert.ok(copies(text).some((s) => s.replace(/\/$/, '') === top), `${file}: src/ imports from ${top}/, which is not copied`);
    });
  }
});

// ---------------------------------------------------------------- Slurm

describe('Slurm batch script', () => {
  const text = () => read('deploy/slurm/distgan.sbatch');
  /** Logical lines (backslash continuations joined). */
  const logical = (t: string) => t.replace(/\\\n/g, ' ').split('\n');

  test('is valid bash, one srun task per GPU, and names real flags', () => {
    const t = text();
    const r = spawnSync('bash', ['-n', join(ROOT, 'deploy/slurm/distgan.sbatch')], { encoding: 'utf8' });
    assert.equal(r.status, 0, r.stderr);
    assert.match(t, /^#SBATCH --ntasks-per-node=\d+$/m);
    assert.match(t, /^#SBATCH --gpus-per-task=1$/m, 'one GPU per task');
    // The workers' step (the reducers' step, one task per node, asks for no GPU: it only sums and sends).
    const srun = must(logical(t).find((l) => /^\s*srun\s/.test(l) && /\bworker\b/.test(l)), 'srun line of the workers');
    const reducers = must(logical(t).find((l) => /^\s*srun\s/.test(l) && /\breducer\b/.test(l)), 'srun line of the reducers');
    assert.match(reducers, /--overlap --ntasks="\$NODES" --ntasks-per-node=1/, 'one reducer per node, beside the workers');
    // The step asks for DISTGAN_GPUS_PER_TASK GPUs per task (default: the job's
    // SLURM_GPUS_PER_TASK, else 1), and for none when it is 0 (CPU-only nodes).
    assert.match(srun, /\$\{GPU_ARGS\[@\]\+"\$\{GPU_ARGS\[@\]\}"\}/, 'srun takes its GPU request from GPU_ARGS');
    assert.match(t, /^DISTGAN_GPUS_PER_TASK=\$\{DISTGAN_GPUS_PER_TASK:-\$\{SLURM_GPUS_PER_TASK:-1\}\}/m, 'one GPU per task unless told otherwise');
    assert.match(t, /if \(\(DISTGAN_GPUS_PER_TASK > 0\)\); then GPU_ARGS=\(--gpus-per-task="\$DISTGAN_GPUS_PER_TASK"\); fi/);
    assert.match(srun, /--ntasks="\$WORLD_SIZE"/);
    assert.match(t, /^WORLD_SIZE=\$SLURM_NTASKS$/m, 'world size is the task count');
    for (const cmd of ['coordinator', 'worker']) {
      const line = must(logical(t).find((l) => l.includes(`distgan.js" ${cmd}`)), `${cmd} invocation`);
      const after = line.slice(line.indexOf(`distgan.js" ${cmd}`));
      const flags = [...after.matchAll(/(?<![\w-])--[a-z][a-z-]*/g)].map((m) => m[0]);
      assertKnownFlags(cmd, flags, `distgan.sbatch ${cmd}`);
      if (cmd === 'worker') {
        assert.ok(!flags.includes('--rank'), 'the rank comes from SLURM_PROCID');
        assert.match(after, /worker-\$SLURM_PROCID\.key/, "each task uses its rank's key");
      } else {
        assert.match(after, /--world-size "\$WORLD_SIZE"/);
        assert.match(after, /\$\{EXTRA_ARGS\[@\]\+"\$\{EXTRA_ARGS\[@\]\}"\} \$\{RESUME_ARGS\[@\]\+"\$\{RESUME_ARGS\[@\]\}"\}/, 'extra flags and the automatic resume reach the coordinator');
      }
    }
  });

  test('checkpoints on a preemption notice or requeue, and a requeued job resumes its run', () => {
    const t = text();
    assert.match(t, /^#SBATCH --signal=B:USR1@\d+$/m, 'USR1 to the batch shell ahead of the end');
    assert.match(t, /^#SBATCH --requeue$/m);
    assert.match(t, /^#SBATCH --open-mode=append$/m, 'a requeued run appends to the same log');
    assert.match(t, /^trap on_usr1 USR1$/m);
    assert.match(t, /^trap 'on_term TERM' TERM$/m);
    assert.match(t, /kill -USR1 "\$COORDINATOR_PID"/, 'USR1 is forwarded to the coordinator');
    assert.match(t, /scontrol requeue "\$SLURM_JOB_ID"/, 'after a USR1 the job requeues itself');
    assert.match(t, /RESTART_COUNT=\$\{SLURM_RESTART_COUNT:-0\}/);
    assert.match(t, /RESUME_ARGS=\(--resume "\$DISTGAN_OUT"/, 'a rerun resumes from its own run folder');
    const resume = must(/RESUME_ARGS=\((--resume[^)]*)\)/.exec(t)?.[1], 'RESUME_ARGS=(--resume …)');
    assertKnownFlags('coordinator', [...resume.matchAll(/(?<![\w-])--[a-z][a-z-]*/g)].map((m) => m[0]), 'distgan.sbatch RESUME_ARGS');
  });
});

// ---------------------------------------------------------------- docs

describe('docs/multi-node.md', () => {
  test('every distgan command in it uses real flags, and it names the ports and files', () => {
    const md = read('docs/multi-node.md');
    const blocks = [...md.matchAll(/```(?:sh|bash)\n([\s\S]*?)```/g)].map((m) => m[1]!);
    let checked = 0;
    for (const block of blocks) {
      for (const line of block.replace(/\\\n/g, ' ').split('\n')) {
        const m = /^\s*distgan (coordinator|worker|keygen)\b(.*)$/.exec(line);
        if (!m) continue;
        const flags = [...m[2]!.matchAll(/(?<![\w-])--[a-z][a-z-]*/g)].map((x) => x[0]);
        assertKnownFlags(m[1]!, flags, `docs: ${line.trim()}`);
        checked++;
      }
    }
    assert.ok(checked >= 4, `only ${checked} distgan commands found in the docs`);
    for (const needle of ['29500', '9464', 'coordinator.key', 'coordinator.pub', 'authorized/worker-<i>.pub', K8S_WORLD_SIZE_ENV, 'JOB_COMPLETION_INDEX', 'SLURM_PROCID', 'no Docker engine']) {
      assert.ok(md.includes(needle), `docs/multi-node.md mentions ${needle}`);
    }
    for (const [, path] of md.matchAll(/`(deploy\/[\w./-]+)`/g)) {
      if (/\/(keys|runs)\b/.test(path!)) continue; // made by the user (keygen, mkdir)
      assert.ok(existsSync(join(ROOT, path!)), `docs refer to ${path}, which exists`);
    }
  });
});

test('the test runner and CI stop only what they started: no process is stopped by name', async () => {
  for (const file of ['scripts/test.js', '.ci/run', 'scripts/slurm-cluster.sh']) {
    const text = readFileSync(join(ROOT, file), 'utf8');
    // pkill/killall match other users' processes by name (a system Prometheus, another Slurm).
    assert.doesNotMatch(text.replace(/^\s*(#|\/\/).*$/gm, ''), /\b(pkill|killall)\b/, `${file} stops a process by name`);
  }
});
