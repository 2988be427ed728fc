// The inspection commands: one module each, over the shared options (options.ts) and printing (format.ts).
import type { Command } from 'commander';
import { register as registerInspect } from './inspect.js';
import { register as registerLs } from './ls.js';
import { register as registerCat } from './cat.js';
import { register as registerCopyOut } from './copy-out.js';
import { register as registerDiff } from './diff.js';

export function register(program: Command): void {
  for (const register of [registerInspect, registerLs, registerCat, registerCopyOut, registerDiff]) register(program);
}
