// The import graph of src/ and the rules it must follow (ARCHITECTURE.md "Who may import whom").
import { readdirSync, readFileSync } from 'node:fs';
import { dirname, join, relative, resolve } from 'node:path';
import ts from 'typescript';

/** Every .ts file under `root`, as paths relative to it. */
export function sourceFiles(root: string, dir = root): string[] {
  return readdirSync(dir, { withFileTypes: true }).flatMap((e) => {
    const path = join(dir, e.name);
    if (e.isDirectory()) return sourceFiles(root, path);
    return e.name.endsWith('.ts') ? [relative(root, path)] : [];
  });
}

/** file → the files it imports (static, type-only, re-exports and dynamic import() alike), relative to `root`. */
export function importGraph(root: string): Map<string, string[]> {
  const graph = new Map<string, string[]>();
  for (const file of sourceFiles(root)) {
    const info = ts.preProcessFile(readFileSync(join(root, file), 'utf8'), true, true);
    const targets = info.importedFiles
      .map((f) => f.fileName)
      .filter((spec) => spec.startsWith('.'))
      .map((spec) => relative(root, resolve(dirname(join(root, file)), spec)).replace(/\.js$/, '.ts'));
    graph.set(file, [...new Set(targets)]);
  }
  return graph;
}

/** The layer a file belongs to: its top folder under src/, or `base` for the shared top-level modules. */
export function layerOf(file: string): string {
  const [top, ...rest] = file.split('/');
  if (rest.length > 0) return top!;
  return file === 'cli.ts' ? 'cli' : file === 'index.ts' ? 'index' : 'base';
}

/**
 * Who may import whom. A layer may always import itself and `base` (errors, files, units);
 */
export type Rules = Record<string, { may: string[] }>;

export const RULES: Rules = {
  base: { may: [] },
  formats: { may: [] },
  kernel: { may: [] },
  cache: { may: [] },
  host: { may: ['formats'] },
  guest: { may: ['host', 'cache'] },
  agent: { may: ['guest'] },
  appliance: { may: ['formats', 'host', 'kernel', 'cache', 'guest'] },
  launcher: { may: ['kernel', 'cache', 'host', 'guest'] },
  vm: { may: ['appliance', 'launcher', 'guest', 'agent'] },
  inspect: { may: ['vm', 'guest', 'formats'] },
  cli: { may: ['vm', 'inspect', 'appliance', 'formats', 'cache'] },
  index: { may: ['*'] },
};

export interface Violation {
  kind: 'direction' | 'cycle' | 'unknown-layer';
  detail: string;
}

export function checkGraph(graph: Map<string, string[]>, rules: Rules = RULES): Violation[] {
  const violations: Violation[] = [];
  for (const [file, targets] of graph) {
    const from = layerOf(file);
    const rule = rules[from];
    if (!rule) {
      violations.push({ kind: 'unknown-layer', detail: `${file}: the layer "${from}" has no rule` });
      continue;
    }
    for (const target of targets) {
      const to = layerOf(target);
      if (to === from || to === 'base' || rule.may.includes('*')) continue;
      if (!rule.may.includes(to)) violations.push({ kind: 'direction', detail: `${file} imports ${target} (${from} → ${to})` });
    }
  }
  for (const cycle of cycles(graph)) violations.push({ kind: 'cycle', detail: cycle.join(' → ') });
  return violations;
}

/** The import cycles, one per strongly connected component (Tarjan), each as a path that closes on itself. */
export function cycles(graph: Map<string, string[]>): string[][] {
  let next = 0;
  const index = new Map<string, number>();
  const low = new Map<string, number>();
  const stack: string[] = [];
  const onStack = new Set<string>();
  const found: string[][] = [];
  const visit = (v: string) => {
    index.set(v, next);
    low.set(v, next++);
    stack.push(v);
    onStack.add(v);
    for (const w of graph.get(v) ?? []) {
      if (!index.has(w)) {
        visit(w);
        low.set(v, Math.min(low.get(v)!, low.get(w)!));
      } else if (onStack.has(w)) {
        low.set(v, Math.min(low.get(v)!, index.get(w)!));
      }
    }
    if (low.get(v) !== index.get(v)) return;
    const component: string[] = [];
    let w: string;
    do {
      w = stack.pop()!;
      onStack.delete(w);
      component.push(w);
    } while (w !== v);
    if (component.length > 1 || (graph.get(v) ?? []).includes(v)) found.push([...component.reverse(), component[0]!]);
  };
  for (const v of graph.keys()) if (!index.has(v)) visit(v);
  return found;
}

/** Functions longer than `max` lines in `file` that do not say why just above them ("long because …"). */
export function longFunctions(path: string, max: number): string[] {
  const text = readFileSync(path, 'utf8');
  const source = ts.createSourceFile(path, text, ts.ScriptTarget.ES2022, true);
  const found: string[] = [];
  const visit = (node: ts.Node) => {
    if (ts.isFunctionLike(node) && 'body' in node && node.body) {
      const start = source.getLineAndCharacterOfPosition(node.getStart()).line;
      const end = source.getLineAndCharacterOfPosition(node.getEnd()).line;
      const lines = end - start + 1;
      const comments = ts.getLeadingCommentRanges(text, node.getFullStart()) ?? [];
      const statement = ts.isVariableDeclaration(node.parent) ? node.parent.parent.parent : node;
      const leading = [...comments, ...(ts.getLeadingCommentRanges(text, statement.getFullStart()) ?? [])].map((c) => text.slice(c.pos, c.end)).join('\n');
      if (lines > max && !/long because/i.test(leading)) {
        const name = (node as ts.FunctionLikeDeclaration).name?.getText(source) ?? `(anonymous at line ${start + 1})`;
        found.push(`${path}:${start + 1} ${name}: ${lines} lines`);
      }
    }
    ts.forEachChild(node, visit);
  };
  visit(source);
  return found;
}

/** The same for C: a function is a line at column 0 that opens a body (`…) {`), up to the `}` at column 0 that closes it. */
export function longCFunctions(path: string, max: number): string[] {
  const lines = readFileSync(path, 'utf8').split('\n');
  const found: string[] = [];
  for (let i = 0; i < lines.length; i++) {
    if (!/^[A-Za-z_].*\)\s*\{\s*$/.test(lines[i]!) || /^(struct|union|enum|static const)\b.*=/.test(lines[i]!)) continue;
    let end = i + 1;
    while (end < lines.length && !lines[end]!.startsWith('}')) end++;
    const count = end - i + 1;
    // The comment just above it, if any, may say why it is long.
    let c = i - 1;
    while (c >= 0 && (lines[c]!.startsWith(' *') || lines[c]!.startsWith('/*') || lines[c]!.startsWith('//'))) c--;
    const leading = lines.slice(c + 1, i).join('\n');
    if (count > max && !/long because/i.test(leading)) found.push(`${path}:${i + 1} ${/([A-Za-z_]\w*)\s*\(/.exec(lines[i]!)?.[1] ?? '?'}: ${count} lines`);
    i = end;
  }
  return found;
}
