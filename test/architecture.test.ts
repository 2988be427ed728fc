// The tree shows the architecture: layers import only in the allowed directions, nothing
// imports in a cycle, and no function of src/ (TypeScript or C) is overlong without a reason.
import { mkdtempSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { describe, expect, it } from 'vitest';
import { checkGraph, importGraph, longCFunctions, longFunctions, sourceFiles, type Rules } from './helpers/imports.js';

const SRC = resolve('src');

describe('the import graph of src/', () => {
  it('follows the allowed directions and has no cycle', () => {
    const graph = importGraph(SRC);
    expect(graph.size).toBeGreaterThan(80);
    expect(checkGraph(graph)).toEqual([]);
  });

  it('the check catches a wrong-way import and a cycle (the checker tested on a graph with both)', () => {
    const rules: Rules = {
      base: { may: [] },
      formats: { may: [] },
      cli: { may: ['formats'] },
      launcher: { may: ['guest'] },
      guest: { may: [] },
      agent: { may: ['guest'] },
    };
    const graph = new Map<string, string[]>([
      ['formats/a.ts', ['cli/x.ts']], // wrong way: formats must not know the CLI
      ['cli/x.ts', ['formats/a.ts', 'errors.ts']],
      ['launcher/l.ts', ['guest/contract.ts', 'agent/client.ts']], // the launcher must not know the agent client
      ['guest/contract.ts', []],
      ['agent/client.ts', ['guest/contract.ts']],
      ['errors.ts', []],
    ]);
    const found = checkGraph(graph, rules).map((v) => `${v.kind}: ${v.detail}`);
    expect(found).toEqual([
      'direction: formats/a.ts imports cli/x.ts (formats → cli)',
      'direction: launcher/l.ts imports agent/client.ts (launcher → agent)',
      'cycle: formats/a.ts → cli/x.ts → formats/a.ts',
    ]);
  });
});

describe('function length', () => {
  // Every function of src/, TypeScript and C alike: one over 60 lines says why just above it ("long because …").
  const tsFiles = sourceFiles(SRC).map((f) => join(SRC, f));
  const cFiles = cSources(join(SRC, 'guest'));

  it('no function in src/ is over 60 lines without a reason beside it', () => {
    expect(tsFiles.length).toBeGreaterThan(150);
    expect(cFiles.length).toBeGreaterThan(20);
    expect([...tsFiles.flatMap((f) => longFunctions(f, 60)), ...cFiles.flatMap((f) => longCFunctions(f, 60))]).toEqual([]);
  });

  it('the checks find a long function and accept one that says why (the checkers tested)', () => {
    const dir = mkdtempSync(join(tmpdir(), 'long-'));
    try {
      const body = Array.from({ length: 61 }, (_, i) => `  x += ${i};`).join('\n');
      writeFileSync(
        join(dir, 'a.ts'),
        `export function tooLong(x: number) {\n${body}\n  return x;\n}\n// long because a table\nexport function table(x: number) {\n${body}\n  return x;\n}\n`,
      );
      writeFileSync(
        join(dir, 'a.c'),
        `int too_long(int x) {\n${body}\n  return x;\n}\n/* long because a table */\nint table(int x) {\n${body}\n  return x;\n}\n`,
      );
      expect(longFunctions(join(dir, 'a.ts'), 60)).toEqual([`${join(dir, 'a.ts')}:1 tooLong: 64 lines`]);
      expect(longCFunctions(join(dir, 'a.c'), 60)).toEqual([`${join(dir, 'a.c')}:1 too_long: 64 lines`]);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

function cSources(dir: string): string[] {
  return readdirSync(dir, { withFileTypes: true }).flatMap((e) => {
    const path = join(dir, e.name);
    if (e.isDirectory()) return cSources(path);
    return /\.[ch]$/.test(e.name) ? [path] : [];
  });
}
