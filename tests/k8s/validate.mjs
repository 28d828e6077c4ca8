// Validates every YAML document under the given directories against the Kubernetes API schema
// (kubernetes-models: the OpenAPI schema compiled into validators), then checks ipsnat's own
// deployment rules that the schema cannot express. Exit 1 with one line per problem.
// Usage: node validate.mjs DIR...
import fs from "node:fs";
import path from "node:path";
import { createRequire } from "node:module";
import YAML from "yaml";

const require = createRequire(import.meta.url);
const problems = [];
const seen = [];

function modelFor(apiVersion, kind) {
  // "v1" -> core; "apps/v1" -> apps/v1; "rbac.authorization.k8s.io/v1" -> same path.
  try {
    const mod = require(`kubernetes-models/${apiVersion}/${kind}`);
    return mod[kind];
  } catch {
    return undefined;
  }
}

// ipsnat's rules (docs/operations.md): what a reviewer would otherwise have to remember.
function checkIpsnatRules(where, doc) {
  if (doc.kind !== "DaemonSet") return;
  const pod = doc.spec?.template?.spec ?? {};
  const need = (cond, what) => { if (!cond) problems.push(`${where}: ${what}`); };
  need(pod.hostNetwork === true, "spec.template.spec.hostNetwork must be true (hooks live in the node's netns)");
  need(doc.spec?.updateStrategy?.type === "RollingUpdate", "updateStrategy.type must be RollingUpdate");
  const bpffs = (pod.volumes ?? []).find((v) => v.hostPath?.path === "/sys/fs/bpf");
  need(bpffs, "a hostPath volume for /sys/fs/bpf is required (pins must outlive the pod)");
  // The attach records must outlive the pod like the pins, or the next pod cannot adopt.
  const runMount = (pod.containers ?? []).flatMap((c) => c.volumeMounts ?? []).find((m) => m.mountPath === "/run/ipsnat");
  const runVol = runMount && (pod.volumes ?? []).find((v) => v.name === runMount.name);
  need(runVol?.hostPath?.path === "/run/ipsnat", "/run/ipsnat (attach state) must be a hostPath volume of /run/ipsnat");
  need(doc.spec?.updateStrategy?.rollingUpdate?.maxSurge === 0,
       "rollingUpdate.maxSurge must be 0 (one daemon per node and pin root)");
  for (const c of pod.containers ?? []) {
    const cw = `${where}: container ${c.name}`;
    const caps = c.securityContext?.capabilities ?? {};
    const allowed = new Set(["BPF", "NET_ADMIN", "SYS_ADMIN", "CAP_BPF", "CAP_NET_ADMIN", "CAP_SYS_ADMIN"]);
    for (const cap of caps.add ?? []) if (!allowed.has(cap)) problems.push(`${cw}: capability ${cap} is not needed`);
    if (!(caps.drop ?? []).includes("ALL")) problems.push(`${cw}: capabilities.drop must contain ALL`);
    if (c.securityContext?.privileged) problems.push(`${cw}: must not be privileged (capabilities suffice)`);
    const pre = c.lifecycle?.preStop;
    const preText = JSON.stringify(pre ?? {});
    if (/detach/.test(preText)) problems.push(`${cw}: preStop must not detach (a rolling update would open a gap)`);
    if (bpffs && !(c.volumeMounts ?? []).some((m) => m.name === bpffs.name && m.mountPath === "/sys/fs/bpf"))
      problems.push(`${cw}: must mount ${bpffs.name} at /sys/fs/bpf`);
    for (const probe of ["livenessProbe", "readinessProbe"]) {
      const cmd = c[probe]?.exec?.command ?? [];
      if (!(cmd[0]?.endsWith("ipsnat") && cmd.includes("status")))
        problems.push(`${cw}: ${probe} must exec 'ipsnat status --check' (or --alive)`);
    }
  }
}

function validateFile(file) {
  const text = fs.readFileSync(file, "utf8");
  const docs = YAML.parseAllDocuments(text, { prettyErrors: true });
  docs.forEach((d, i) => {
    const where = `${path.basename(file)}[${i}]`;
    if (d.errors.length) {
      for (const e of d.errors) problems.push(`${where}: YAML: ${e.message.split("\n")[0]}`);
      return;
    }
    const obj = d.toJS();
    if (obj == null) return;  // empty document after a trailing ---
    if (!obj.apiVersion || !obj.kind) {
      problems.push(`${where}: apiVersion and kind are required`);
      return;
    }
    const Model = modelFor(obj.apiVersion, obj.kind);
    if (!Model) {
      problems.push(`${where}: unknown apiVersion/kind ${obj.apiVersion}/${obj.kind}`);
      return;
    }
    try {
      new Model(obj).validate();
    } catch (e) {
      problems.push(`${where} ${obj.kind}/${obj.metadata?.name}: ${e.message}`);
      return;
    }
    checkIpsnatRules(`${where} ${obj.kind}/${obj.metadata?.name}`, obj);
    seen.push(`${obj.kind}/${obj.metadata?.name}`);
  });
}

const dirs = process.argv.slice(2);
if (!dirs.length) {
  console.error("usage: node validate.mjs DIR...");
  process.exit(2);
}
for (const dir of dirs) {
  const files = fs.readdirSync(dir).filter((f) => /\.ya?ml$/.test(f)).sort();
  if (!files.length) problems.push(`${dir}: no YAML files`);
  for (const f of files) validateFile(path.join(dir, f));
}
if (!seen.some((s) => s.startsWith("DaemonSet/"))) problems.push("no DaemonSet among the manifests");
if (problems.length) {
  for (const p of problems) console.error(`invalid: ${p}`);
  process.exit(1);
}
console.log(`valid: ${seen.join(", ")}`);
