// The tree shows the architecture: layers import only in the allowed directions, nothing
// imports in a cycle, and the launcher and the agent client have no overlong functions.
import { join, resolve } from 'node:path';
import { describe, expect, it } from 'vitest';
import { checkGraph, importGraph, longFunctions, sourceFiles, type Rules } from './helpers/imports.js';

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
  const files = sourceFiles(SRC)
    .filter((f) => f.startsWith('launcher/') || ['guest/agent-client.ts', 'guest/channel.ts', 'guest/exec.ts'].includes(f))
    .map((f) => join(SRC, f));

  it('no function in the launcher or the agent client is over 60 lines without a reason beside it', () => {
    expect(files.length).toBeGreaterThan(15);
    expect(files.flatMap((f) => longFunctions(f, 60))).toEqual([]);
  });
});
