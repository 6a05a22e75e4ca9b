// Static checks of the reference AWS deployment in infra/terraform, for machines with neither a
// terraform binary nor a cloud account. Every .tf file is parsed with @cdktf/hcl2json (HCL to
// JSON, expressions kept as "${...}" strings) and the module tree is checked for what
// `terraform validate` would catch without provider schemas: undeclared variables and locals,
// undocumented variables, module sources, arguments and outputs that do not match; plus the one
// network promise of the deployment: nothing is open to the world but TCP 5432 on the network
// load balancer. Each check is also run on a small bad tree in a temp dir, so none can pass by
// finding nothing.
import assert from 'node:assert/strict';
import { mkdir, mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { createRequire } from 'node:module';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { describe, test } from 'node:test';
import type { TestContext } from 'node:test';
import { fileURLToPath } from 'node:url';

type Json = null | boolean | number | string | Json[] | { [key: string]: Json };
type Body = { [key: string]: Json };

// Loaded through require: the package's own typings pull lib.dom into the whole test project.
const requireCjs = createRequire(import.meta.url);
const hcl2json = requireCjs('@cdktf/hcl2json') as { parse(file: string, text: string): Promise<Body> };

const ROOT = fileURLToPath(new URL('../../infra/terraform/', import.meta.url));
const EXPECTED_DIRS = [
  'modules/network',
  'modules/gateway',
  'modules/control_plane',
  'modules/redis',
  'modules/database',
  'modules/dns',
  'envs/example',
];
const MODULE_META_ARGUMENTS = new Set(['source', 'version', 'providers', 'count', 'for_each', 'depends_on']);
const POSTGRES_PORT = 5432;

interface Block {
  file: string;
  name: string;
  body: Body;
}

interface Resource extends Block {
  type: string;
}

interface Dir {
  rel: string;
  files: { file: string; json: Body }[];
  variables: Map<string, Block>;
  outputs: Map<string, Block>;
  locals: Map<string, Json>;
  modules: Map<string, Block>;
  resources: Resource[];
}

interface Tree {
  root: string;
  dirs: Map<string, Dir>;
  syntaxErrors: string[];
}

// ---- loading ----

async function tfFiles(dir: string): Promise<string[]> {
  const out: string[] = [];
  for (const entry of await readdir(dir, { withFileTypes: true })) {
    const full = path.join(dir, entry.name);
    if (entry.isDirectory() && entry.name !== '.terraform') out.push(...(await tfFiles(full)));
    else if (entry.isFile() && entry.name.endsWith('.tf')) out.push(full);
  }
  return out.sort();
}

function emptyDir(rel: string): Dir {
  return { rel, files: [], variables: new Map(), outputs: new Map(), locals: new Map(), modules: new Map(), resources: [] };
}

function isObject(value: Json | undefined): value is Body {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

function blocksOf(value: Json | undefined): Body[] {
  return Array.isArray(value) ? value.filter(isObject) : isObject(value) ? [value] : [];
}

// hcl2json gives `kind "name" { ... }` as { kind: { name: [body] } }.
function namedBlocks(json: Body, kind: string, file: string): Block[] {
  const group = json[kind];
  if (!isObject(group)) return [];
  return Object.entries(group).flatMap(([name, bodies]) => blocksOf(bodies).map((body) => ({ file, name, body })));
}

function addFile(dir: Dir, file: string, json: Body): void {
  dir.files.push({ file, json });
  for (const v of namedBlocks(json, 'variable', file)) dir.variables.set(v.name, v);
  for (const o of namedBlocks(json, 'output', file)) dir.outputs.set(o.name, o);
  for (const m of namedBlocks(json, 'module', file)) dir.modules.set(m.name, m);
  for (const locals of blocksOf(json.locals)) for (const [k, v] of Object.entries(locals)) dir.locals.set(k, v);
  const resources = json.resource;
  if (!isObject(resources)) return;
  for (const type of Object.keys(resources)) {
    for (const r of namedBlocks(resources, type, file)) dir.resources.push({ ...r, type });
  }
}

async function loadTree(root: string): Promise<Tree> {
  const tree: Tree = { root, dirs: new Map(), syntaxErrors: [] };
  for (const full of await tfFiles(root)) {
    const file = path.relative(root, full);
    const rel = path.dirname(file).split(path.sep).join('/');
    let json: Body;
    try {
      json = await hcl2json.parse(file, await readFile(full, 'utf8'));
    } catch (err) {
      tree.syntaxErrors.push(`${file}: ${err instanceof Error ? err.message : String(err)}`);
      continue;
    }
    const dir = tree.dirs.get(rel) ?? emptyDir(rel);
    tree.dirs.set(rel, dir);
    addFile(dir, file, json);
  }
  return tree;
}

// ---- expressions ----

// Expressions are the strings holding "${"; object keys may be expressions too.
function expressionStrings(value: Json | undefined, out: string[] = []): string[] {
  if (typeof value === 'string') {
    if (value.includes('${')) out.push(value);
  } else if (Array.isArray(value)) {
    for (const v of value) expressionStrings(v, out);
  } else if (isObject(value)) {
    for (const [k, v] of Object.entries(value)) {
      if (k.includes('${')) out.push(k);
      expressionStrings(v, out);
    }
  }
  return out;
}

const REFERENCE = {
  var: /(?<![\w.-])var\.([A-Za-z_][\w-]*)/g,
  local: /(?<![\w.-])local\.([A-Za-z_][\w-]*)/g,
  module: /(?<![\w.-])module\.([A-Za-z_][\w-]*)(?:\[[^\]]*\])?(?:\.([A-Za-z_][\w-]*))?/g,
  securityGroup: /(?<![\w.-])aws_security_group\.([A-Za-z_][\w-]*)/g,
  targetGroup: /(?<![\w.-])aws_lb_target_group\.([A-Za-z_][\w-]*)/g,
} as const;

function references(value: Json | undefined, kind: keyof typeof REFERENCE): RegExpMatchArray[] {
  return expressionStrings(value).flatMap((s) => [...s.matchAll(REFERENCE[kind])]);
}

function referencedNames(value: Json | undefined, kind: keyof typeof REFERENCE): string[] {
  return [...new Set(references(value, kind).map((m) => m[1]))];
}

function resolveModule(tree: Tree, dir: Dir, call: Block): Dir | undefined {
  const source = call.body.source;
  if (typeof source !== 'string' || !/^\.\.?\//.test(source)) return undefined;
  const target = path.posix.normalize(path.posix.join(dir.rel, source));
  return tree.dirs.get(target);
}

// ---- checks: each returns findings, "<file>: <what is wrong>" ----

function checkDeclaredReferences(tree: Tree): string[] {
  const findings: string[] = [];
  for (const dir of tree.dirs.values()) {
    for (const { file, json } of dir.files) {
      for (const name of referencedNames(json, 'var')) {
        if (!dir.variables.has(name)) findings.push(`${file}: var.${name} is used but not declared in ${dir.rel}`);
      }
      for (const name of referencedNames(json, 'local')) {
        if (!dir.locals.has(name)) findings.push(`${file}: local.${name} is used but not defined in ${dir.rel}`);
      }
    }
  }
  return findings;
}

function checkVariableDocs(tree: Tree): string[] {
  const findings: string[] = [];
  for (const dir of tree.dirs.values()) {
    for (const v of dir.variables.values()) {
      const description = v.body.description;
      if (typeof description !== 'string' || description.trim() === '') {
        findings.push(`${v.file}: variable "${v.name}" has no description`);
      }
      if (v.body.type === undefined) findings.push(`${v.file}: variable "${v.name}" has no type`);
    }
  }
  return findings;
}

function checkModuleSources(tree: Tree): string[] {
  const findings: string[] = [];
  for (const dir of tree.dirs.values()) {
    for (const call of dir.modules.values()) {
      const source = call.body.source;
      if (typeof source !== 'string') {
        findings.push(`${call.file}: module "${call.name}" has no literal source`);
      } else if (/^\.\.?\//.test(source) && !resolveModule(tree, dir, call)) {
        findings.push(`${call.file}: module "${call.name}" source ${source} is not a directory of .tf files in the tree`);
      }
    }
  }
  return findings;
}

function checkModuleArguments(tree: Tree): string[] {
  const findings: string[] = [];
  for (const dir of tree.dirs.values()) {
    for (const call of dir.modules.values()) {
      const target = resolveModule(tree, dir, call);
      if (!target) continue;
      const given = Object.keys(call.body).filter((k) => !MODULE_META_ARGUMENTS.has(k));
      for (const arg of given) {
        if (!target.variables.has(arg))
          findings.push(`${call.file}: module "${call.name}" passes ${arg}, which ${target.rel} does not declare`);
      }
      for (const v of target.variables.values()) {
        if (!('default' in v.body) && !given.includes(v.name)) {
          findings.push(`${call.file}: module "${call.name}" does not pass ${v.name}, which ${target.rel} requires`);
        }
      }
    }
  }
  return findings;
}

function checkModuleOutputs(tree: Tree): string[] {
  const findings: string[] = [];
  for (const dir of tree.dirs.values()) {
    for (const { file, json } of dir.files) {
      for (const [, name, output] of references(json, 'module')) {
        const call = dir.modules.get(name);
        const target = call && resolveModule(tree, dir, call);
        if (!call) findings.push(`${file}: module.${name} is referenced but not declared in ${dir.rel}`);
        else if (target && output !== undefined && !target.outputs.has(output)) {
          findings.push(`${file}: module.${name}.${output} is referenced but ${target.rel} has no output "${output}"`);
        }
      }
    }
  }
  return [...new Set(findings)];
}

// ---- the world-open ingress check ----

// Any address with a /0 prefix: 0.0.0.0/0, ::/0, and the same written another way (10.0.0.0/0).
const WORLD_CIDR = /(?:\b\d{1,3}(?:\.\d{1,3}){3}|[0-9a-f]*:[0-9a-f:]*)\/0(?!\d)/i;

function containsWorld(value: Json | undefined): boolean {
  if (typeof value === 'string') return WORLD_CIDR.test(value);
  if (Array.isArray(value)) return value.some(containsWorld);
  if (isObject(value)) return Object.values(value).some(containsWorld);
  return false;
}

type WorldVariables = Map<string, Set<string>>;

// Whether a value is, or is derived (through variables and locals) from, a world CIDR.
function reachesWorld(value: Json | undefined, dir: Dir, world: WorldVariables, seen = new Set<string>()): boolean {
  if (containsWorld(value)) return true;
  if (referencedNames(value, 'var').some((v) => world.get(dir.rel)?.has(v))) return true;
  return referencedNames(value, 'local').some((name) => {
    if (seen.has(name) || !dir.locals.has(name)) return false;
    seen.add(name);
    return reachesWorld(dir.locals.get(name), dir, world, seen);
  });
}

// Variables that may hold a world CIDR: by default, or because a caller passes one (to a fixed point).
function worldVariables(tree: Tree): WorldVariables {
  const world: WorldVariables = new Map();
  for (const dir of tree.dirs.values()) {
    world.set(dir.rel, new Set([...dir.variables.values()].filter((v) => containsWorld(v.body.default)).map((v) => v.name)));
  }
  for (let changed = true; changed;) {
    changed = false;
    for (const dir of tree.dirs.values()) {
      for (const call of dir.modules.values()) {
        const target = resolveModule(tree, dir, call);
        const targetWorld = target && world.get(target.rel);
        if (!target || !targetWorld) continue;
        for (const [arg, value] of Object.entries(call.body)) {
          if (!target.variables.has(arg) || targetWorld.has(arg) || !reachesWorld(value, dir, world)) continue;
          targetWorld.add(arg);
          changed = true;
        }
      }
    }
  }
  return world;
}

interface IngressRule {
  where: string;
  securityGroups: string[];
  cidrs: Json[];
  iteratedOver: Json[];
  protocol: Json | undefined;
  fromPort: Json | undefined;
  toPort: Json | undefined;
}

function inlineIngressRules(r: Resource): IngressRule[] {
  const rule = (block: Body, iteratedOver: Json[]): IngressRule => ({
    where: `${r.file}: ${r.type}.${r.name} ingress`,
    securityGroups: [r.name],
    cidrs: [block.cidr_blocks, block.ipv6_cidr_blocks].filter((c) => c !== undefined),
    iteratedOver,
    protocol: block.protocol,
    fromPort: block.from_port,
    toPort: block.to_port,
  });
  const own = [r.body.for_each].filter((c) => c !== undefined);
  const plain = blocksOf(r.body.ingress).map((b) => rule(b, own));
  const dynamics = isObject(r.body.dynamic) ? blocksOf(r.body.dynamic.ingress) : [];
  const dynamic = dynamics.flatMap((d) => blocksOf(d.content).map((b) => rule(b, [...own, d.for_each ?? null])));
  return [...plain, ...dynamic];
}

function ingressRules(dir: Dir): IngressRule[] {
  return dir.resources.flatMap((r): IngressRule[] => {
    const base = { where: `${r.file}: ${r.type}.${r.name}`, securityGroups: referencedNames(r.body.security_group_id, 'securityGroup') };
    const iteratedOver = [r.body.for_each].filter((c) => c !== undefined);
    switch (r.type) {
      case 'aws_security_group':
        return inlineIngressRules(r);
      case 'aws_security_group_rule':
        if (r.body.type === 'egress') return [];
        return [
          {
            ...base,
            cidrs: [r.body.cidr_blocks, r.body.ipv6_cidr_blocks].filter((c) => c !== undefined),
            iteratedOver,
            protocol: r.body.protocol,
            fromPort: r.body.from_port,
            toPort: r.body.to_port,
          },
        ];
      case 'aws_vpc_security_group_ingress_rule':
        return [
          {
            ...base,
            cidrs: [r.body.cidr_ipv4, r.body.cidr_ipv6].filter((c) => c !== undefined),
            iteratedOver,
            protocol: r.body.ip_protocol,
            fromPort: r.body.from_port,
            toPort: r.body.to_port,
          },
        ];
      default:
        return [];
    }
  });
}

// Security groups of network load balancers and of the ECS services behind TCP target groups.
function listenerSecurityGroups(dir: Dir): Set<string> {
  const groups = new Set<string>();
  const ofType = (type: string) => dir.resources.filter((r) => r.type === type);
  for (const lb of ofType('aws_lb')) {
    if (lb.body.load_balancer_type === 'network') referencedNames(lb.body.security_groups, 'securityGroup').forEach((g) => groups.add(g));
  }
  const tcpTargetGroups = new Set(
    ofType('aws_lb_target_group')
      .filter((tg) => ['TCP', 'TLS', 'TCP_UDP'].includes(String(tg.body.protocol)))
      .map((tg) => tg.name),
  );
  for (const service of ofType('aws_ecs_service')) {
    const fronted = referencedNames(service.body.load_balancer, 'targetGroup').some((tg) => tcpTargetGroups.has(tg));
    if (!fronted) continue;
    for (const net of blocksOf(service.body.network_configuration))
      referencedNames(net.security_groups, 'securityGroup').forEach((g) => groups.add(g));
  }
  return groups;
}

function literalNumber(value: Json | undefined): number | undefined {
  if (typeof value === 'number') return value;
  return typeof value === 'string' && /^\d+$/.test(value) ? Number(value) : undefined;
}

function postgresOnly(rule: IngressRule): boolean {
  const protocol = String(rule.protocol).toLowerCase();
  return (
    (protocol === 'tcp' || protocol === '6') &&
    literalNumber(rule.fromPort) === POSTGRES_PORT &&
    literalNumber(rule.toPort) === POSTGRES_PORT
  );
}

function opensToWorld(rule: IngressRule, dir: Dir, world: WorldVariables): boolean {
  // A CIDR computed from an iteration (each.value) is as open as what is iterated over.
  return rule.cidrs.some(
    (c) => reachesWorld(c, dir, world) || (expressionStrings(c).length > 0 && rule.iteratedOver.some((it) => reachesWorld(it, dir, world))),
  );
}

function checkWorldIngress(tree: Tree): { findings: string[]; allowed: string[] } {
  const world = worldVariables(tree);
  const findings: string[] = [];
  const allowed: string[] = [];
  for (const dir of tree.dirs.values()) {
    const listeners = listenerSecurityGroups(dir);
    for (const rule of ingressRules(dir).filter((r) => opensToWorld(r, dir, world))) {
      const onListener = rule.securityGroups.length > 0 && rule.securityGroups.every((g) => listeners.has(g));
      if (onListener && postgresOnly(rule)) allowed.push(rule.where);
      else
        findings.push(`${rule.where} is open to the world; only TCP ${POSTGRES_PORT} on the network load balancer (or its targets) may be`);
    }
  }
  return { findings, allowed };
}

// ---- the README documents every variable, in the section of its directory ----

function readmeSection(readme: string, rel: string): string | undefined {
  const lines = readme.split('\n');
  const start = lines.findIndex((l) => /^#{2,4} /.test(l) && l.includes(`\`${rel}\``));
  if (start === -1) return undefined;
  const level = /^#+/.exec(lines[start])?.[0].length ?? 2;
  const end = lines.findIndex((l, i) => i > start && /^#+ /.test(l) && (/^#+/.exec(l)?.[0].length ?? 0) <= level);
  return lines.slice(start, end === -1 ? undefined : end).join('\n');
}

function checkReadme(tree: Tree, readme: string): string[] {
  const findings: string[] = [];
  for (const dir of tree.dirs.values()) {
    if (dir.variables.size === 0) continue;
    const section = readmeSection(readme, dir.rel);
    if (section === undefined) {
      findings.push(`README.md: no section headed \`${dir.rel}\``);
      continue;
    }
    for (const name of dir.variables.keys()) {
      if (!section.includes(`\`${name}\``)) findings.push(`README.md: \`${name}\` of ${dir.rel} is not documented`);
    }
  }
  return findings;
}

function allFindings(tree: Tree): string[] {
  return [
    ...tree.syntaxErrors,
    ...checkDeclaredReferences(tree),
    ...checkVariableDocs(tree),
    ...checkModuleSources(tree),
    ...checkModuleArguments(tree),
    ...checkModuleOutputs(tree),
    ...checkWorldIngress(tree).findings,
  ];
}

// ---- the deployment ----

let realTree: Promise<Tree> | undefined;
function deployment(): Promise<Tree> {
  realTree ??= loadTree(ROOT);
  return realTree;
}

describe('infra/terraform', () => {
  test('parses every .tf file, and holds the six modules and the example', async () => {
    const tree = await deployment();
    assert.deepEqual(tree.syntaxErrors, []);
    for (const rel of EXPECTED_DIRS) {
      const dir = tree.dirs.get(rel);
      assert.ok(dir, `${rel} has no .tf file`);
      assert.ok(dir.variables.size > 0, `${rel} declares no variable`);
      assert.ok(dir.outputs.size > 0, `${rel} declares no output`);
    }
    assert.equal(tree.dirs.get('envs/example')?.modules.size, 6);
  });

  test('declares every var.x and local.x it uses, in the same directory', async () => {
    assert.deepEqual(checkDeclaredReferences(await deployment()), []);
  });

  test('gives every variable a description and a type', async () => {
    assert.deepEqual(checkVariableDocs(await deployment()), []);
  });

  test('points every local module source at a module of the tree', async () => {
    assert.deepEqual(checkModuleSources(await deployment()), []);
  });

  test('passes each module only the variables it declares, and every required one', async () => {
    assert.deepEqual(checkModuleArguments(await deployment()), []);
  });

  test('references only modules and module outputs that exist', async () => {
    assert.deepEqual(checkModuleOutputs(await deployment()), []);
  });

  test('opens nothing to the world but TCP 5432 on the network load balancer', async () => {
    const { findings, allowed } = checkWorldIngress(await deployment());
    assert.deepEqual(findings, []);
    // The clients' rule is seen as world-open (its CIDRs come from a variable defaulting to
    // 0.0.0.0/0) and allowed: the check did look at it.
    assert.deepEqual(allowed, ['modules/gateway/security.tf: aws_vpc_security_group_ingress_rule.nlb_clients']);
  });

  test('documents every variable in the README, in the section of its directory', async () => {
    const readme = await readFile(path.join(ROOT, 'README.md'), 'utf8');
    assert.deepEqual(checkReadme(await deployment(), readme), []);
  });
});

// ---- every check rejects a bad tree ----

async function badTree(t: TestContext, files: Record<string, string>): Promise<Tree> {
  const root = await mkdtemp(path.join(tmpdir(), 'tenantgate-tf-'));
  t.after(() => rm(root, { recursive: true, force: true }));
  for (const [file, text] of Object.entries(files)) {
    await mkdir(path.dirname(path.join(root, file)), { recursive: true });
    await writeFile(path.join(root, file), text);
  }
  return loadTree(root);
}

const MODULE_M = `
variable "required" {
  description = "needed"
  type        = string
}

variable "optional" {
  description = "not needed"
  type        = string
  default     = null
}

output "out" {
  value = var.required
}
`;

// A network load balancer whose security group admits clients on 5432 from var.clients.
const NLB = `
variable "clients" {
  description = "client ranges"
  type        = list(string)
  default     = ["0.0.0.0/0"]
}

resource "aws_security_group" "nlb" {
  name = "nlb"
}

resource "aws_lb" "this" {
  load_balancer_type = "network"
  security_groups    = [aws_security_group.nlb.id]
}
`;

function ingress(resource: string, attributes: string): string {
  return `\nresource "aws_vpc_security_group_ingress_rule" "${resource}" {\n${attributes}\n}\n`;
}

describe('each check rejects a bad tree', () => {
  test('a syntax error', async (t) => {
    const tree = await badTree(t, { 'a/main.tf': 'resource "aws_s3_bucket" "b" {\n  bucket = "x"\n' });
    assert.equal(tree.syntaxErrors.length, 1);
    assert.match(tree.syntaxErrors[0], /^a\/main\.tf: .*Unclosed configuration block/);
  });

  test('a variable or a local used but not declared', async (t) => {
    const tree = await badTree(t, {
      'a/main.tf': 'locals {\n  x = 1\n}\n\noutput "o" {\n  value = "${var.missing}-${local.x}-${local.nope}"\n}\n',
    });
    assert.deepEqual(checkDeclaredReferences(tree), [
      'a/main.tf: var.missing is used but not declared in a',
      'a/main.tf: local.nope is used but not defined in a',
    ]);
  });

  test('a variable declared in another directory does not count', async (t) => {
    const tree = await badTree(t, {
      'a/variables.tf': 'variable "x" {\n  description = "x"\n  type        = string\n}\n',
      'b/main.tf': 'output "o" {\n  value = var.x\n}\n',
    });
    assert.deepEqual(checkDeclaredReferences(tree), ['b/main.tf: var.x is used but not declared in b']);
  });

  test('a variable without a description, or without a type', async (t) => {
    const tree = await badTree(t, {
      'a/variables.tf':
        'variable "untyped" {\n  description = "d"\n}\n\nvariable "undocumented" {\n  type = string\n}\n\nvariable "blank" {\n  description = " "\n  type        = number\n}\n',
    });
    assert.deepEqual(checkVariableDocs(tree).sort(), [
      'a/variables.tf: variable "blank" has no description',
      'a/variables.tf: variable "undocumented" has no description',
      'a/variables.tf: variable "untyped" has no type',
    ]);
  });

  test('a local module source that does not exist', async (t) => {
    const tree = await badTree(t, {
      'root/main.tf':
        'module "gone" {\n  source = "../modules/gone"\n}\n\nmodule "registry" {\n  source  = "terraform-aws-modules/vpc/aws"\n  version = "5.0.0"\n}\n',
    });
    assert.deepEqual(checkModuleSources(tree), [
      'root/main.tf: module "gone" source ../modules/gone is not a directory of .tf files in the tree',
    ]);
  });

  test('a module given a variable it does not declare, or missing a required one', async (t) => {
    const tree = await badTree(t, {
      'modules/m/main.tf': MODULE_M,
      'root/main.tf': 'module "m" {\n  source = "../modules/m"\n  count  = 1\n\n  optional = "x"\n  unknown  = "y"\n}\n',
    });
    assert.deepEqual(checkModuleArguments(tree), [
      'root/main.tf: module "m" passes unknown, which modules/m does not declare',
      'root/main.tf: module "m" does not pass required, which modules/m requires',
    ]);
  });

  test('a module output, or a module, that does not exist', async (t) => {
    const tree = await badTree(t, {
      'modules/m/main.tf': MODULE_M,
      'root/main.tf':
        'module "m" {\n  source   = "../modules/m"\n  required = "x"\n}\n\noutput "a" {\n  value = module.m.out\n}\n\noutput "b" {\n  value = module.m.nope\n}\n\noutput "c" {\n  value = module.other.out\n}\n',
    });
    assert.deepEqual(checkModuleOutputs(tree), [
      'root/main.tf: module.m.nope is referenced but modules/m has no output "nope"',
      'root/main.tf: module.other is referenced but not declared in root',
    ]);
  });

  test('SSH open to 0.0.0.0/0 in an inline ingress block', async (t) => {
    const tree = await badTree(t, {
      'a/main.tf':
        'resource "aws_security_group" "bastion" {\n  ingress {\n    protocol    = "tcp"\n    from_port   = 22\n    to_port     = 22\n    cidr_blocks = ["0.0.0.0/0"]\n  }\n}\n',
    });
    assert.deepEqual(checkWorldIngress(tree).findings, [
      'a/main.tf: aws_security_group.bastion ingress is open to the world; only TCP 5432 on the network load balancer (or its targets) may be',
    ]);
  });

  test('every port open to ::/0 through aws_security_group_rule, and a dynamic ingress block', async (t) => {
    const tree = await badTree(t, {
      'a/main.tf': `
variable "open" {
  description = "ranges"
  type        = list(string)
  default     = ["::/0"]
}

resource "aws_security_group" "dyn" {
  dynamic "ingress" {
    for_each = var.open
    content {
      protocol         = "tcp"
      from_port        = 443
      to_port          = 443
      ipv6_cidr_blocks = [ingress.value]
    }
  }
}

resource "aws_security_group_rule" "all" {
  type              = "ingress"
  security_group_id = aws_security_group.dyn.id
  protocol          = "-1"
  from_port         = 0
  to_port           = 0
  ipv6_cidr_blocks  = ["::/0"]
}

resource "aws_security_group_rule" "out" {
  type              = "egress"
  security_group_id = aws_security_group.dyn.id
  protocol          = "-1"
  from_port         = 0
  to_port           = 0
  cidr_blocks       = ["0.0.0.0/0"]
}
`,
    });
    assert.deepEqual(checkWorldIngress(tree).findings, [
      'a/main.tf: aws_security_group.dyn ingress is open to the world; only TCP 5432 on the network load balancer (or its targets) may be',
      'a/main.tf: aws_security_group_rule.all is open to the world; only TCP 5432 on the network load balancer (or its targets) may be',
    ]);
  });

  test("5432 open to the world on a group that is not the load balancer's (a database)", async (t) => {
    const tree = await badTree(t, {
      'a/main.tf': `${NLB}\nresource "aws_security_group" "db" {\n  name = "db"\n}\n${ingress('db', '  security_group_id = aws_security_group.db.id\n  cidr_ipv4         = "0.0.0.0/0"\n  ip_protocol       = "tcp"\n  from_port         = 5432\n  to_port           = 5432')}`,
    });
    assert.deepEqual(checkWorldIngress(tree).findings, [
      'a/main.tf: aws_vpc_security_group_ingress_rule.db is open to the world; only TCP 5432 on the network load balancer (or its targets) may be',
    ]);
  });

  test('the load balancer open to the world on more than 5432, or on every protocol', async (t) => {
    const tree = await badTree(t, {
      'a/main.tf': `${NLB}${ingress('range', '  for_each          = toset(var.clients)\n  security_group_id = aws_security_group.nlb.id\n  cidr_ipv4         = each.value\n  ip_protocol       = "tcp"\n  from_port         = 5432\n  to_port           = 5433')}${ingress('any', '  security_group_id = aws_security_group.nlb.id\n  cidr_ipv4         = "10.0.0.0/0"\n  ip_protocol       = "-1"')}`,
    });
    assert.deepEqual(checkWorldIngress(tree).findings.sort(), [
      'a/main.tf: aws_vpc_security_group_ingress_rule.any is open to the world; only TCP 5432 on the network load balancer (or its targets) may be',
      'a/main.tf: aws_vpc_security_group_ingress_rule.range is open to the world; only TCP 5432 on the network load balancer (or its targets) may be',
    ]);
  });

  test('a world CIDR that reaches a module through a caller and a local', async (t) => {
    const tree = await badTree(t, {
      'modules/sg/main.tf': `
variable "admins" {
  description = "admin ranges, no default"
  type        = list(string)
}

locals {
  admin_ranges = [for c in var.admins : c]
}

resource "aws_security_group" "admin" {
  name = "admin"
}
${ingress('ssh', '  for_each          = toset(local.admin_ranges)\n  security_group_id = aws_security_group.admin.id\n  cidr_ipv4         = each.value\n  ip_protocol       = "tcp"\n  from_port         = 22\n  to_port           = 22')}`,
      'root/main.tf':
        'variable "everyone" {\n  description = "d"\n  type        = list(string)\n  default     = ["0.0.0.0/0"]\n}\n\nmodule "sg" {\n  source = "../modules/sg"\n  admins = var.everyone\n}\n',
    });
    assert.deepEqual(checkWorldIngress(tree).findings, [
      'modules/sg/main.tf: aws_vpc_security_group_ingress_rule.ssh is open to the world; only TCP 5432 on the network load balancer (or its targets) may be',
    ]);
  });

  test('but accepts 5432 from the world on the load balancer, and private ranges anywhere', async (t) => {
    const tree = await badTree(t, {
      'a/main.tf': `${NLB}${ingress('clients', '  for_each          = toset(var.clients)\n  security_group_id = aws_security_group.nlb.id\n  cidr_ipv4         = each.value\n  ip_protocol       = "tcp"\n  from_port         = 5432\n  to_port           = 5432')}${ingress('vpn', '  security_group_id = aws_security_group.nlb.id\n  cidr_ipv4         = "10.8.0.0/16"\n  ip_protocol       = "tcp"\n  from_port         = 22\n  to_port           = 22')}`,
    });
    assert.deepEqual(checkWorldIngress(tree), { findings: [], allowed: ['a/main.tf: aws_vpc_security_group_ingress_rule.clients'] });
  });

  test('a variable missing from the README', async (t) => {
    const tree = await badTree(t, { 'modules/m/main.tf': MODULE_M });
    const readme = '# x\n\n### `modules/m`\n\n| `required` | string |\n\n### `modules/other`\n\n| `optional` | string |\n';
    assert.deepEqual(checkReadme(tree, readme), ['README.md: `optional` of modules/m is not documented']);
    assert.deepEqual(checkReadme(tree, '# nothing\n'), ['README.md: no section headed `modules/m`']);
  });

  test('and the good parts of the bad trees pass every check', async (t) => {
    const tree = await badTree(t, {
      'modules/m/main.tf': MODULE_M,
      'root/main.tf': 'module "m" {\n  source   = "../modules/m"\n  required = "x"\n}\n\noutput "o" {\n  value = module.m.out\n}\n',
      'lb/main.tf': `${NLB}${ingress('clients', '  for_each          = toset(var.clients)\n  security_group_id = aws_security_group.nlb.id\n  cidr_ipv4         = each.value\n  ip_protocol       = "tcp"\n  from_port         = 5432\n  to_port           = 5432')}`,
    });
    assert.deepEqual(allFindings(tree), []);
  });
});
