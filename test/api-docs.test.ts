// The API reference is built from the doc comments by typedoc (typedoc.json): every type the
// public surface refers to must be exported and every link must resolve, or the build fails
// (warnings are errors there). Built here into a folder of its own, then read.
import { execFileSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { afterAll, expect, it } from 'vitest';

const out = mkdtempSync(join(tmpdir(), 'appliance-api-'));
afterAll(() => rmSync(out, { recursive: true, force: true }));

it('`npm run docs` (typedoc) builds the API reference without a warning; it documents the library as the README uses it', () => {
  execFileSync(resolve('node_modules/.bin/typedoc'), ['--out', out], { encoding: 'utf8', stdio: 'pipe' });
  for (const page of [
    'functions/boot.html',
    'functions/inspect.html',
    'functions/prepare.html',
    'classes/Vm.html',
    'classes/Inspection.html',
    'classes/MountedFilesystem.html',
    'interfaces/CopyOutProgress.html',
  ]) {
    expect(existsSync(join(out, page)), page).toBe(true);
  }
  const fs = readFileSync(join(out, 'classes/MountedFilesystem.html'), 'utf8');
  // Doc comments come through; the constructor, made by an Inspection only, does not.
  expect(fs).toContain('depth first, names in byte order');
  expect(fs).not.toMatch(/id="constructor"/);
  expect(readFileSync(join(out, 'interfaces/BootOptions.html'), 'utf8')).toContain('up to 4 times as long on a busy host');
}, 120_000);
