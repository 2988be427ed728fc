import { existsSync, readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

/**
 * Our package version, part of every cache key. Found from the first folder above
 * this module that has a package.json, so it works from src/ (tests) and dist/src/.
 */
export function packageVersion(): string {
  const dir = packageRoot();
  return dir ? (JSON.parse(readFileSync(join(dir, 'package.json'), 'utf8')) as { version: string }).version : '0.0.0';
}

/** The folder of our package.json (a checkout, or node_modules/appliance), if there is one. */
export function packageRoot(): string | undefined {
  let dir = dirname(fileURLToPath(import.meta.url));
  while (!existsSync(join(dir, 'package.json'))) {
    const up = dirname(dir);
    if (up === dir) return undefined;
    dir = up;
  }
  return dir;
}

/**
 * Bumped whenever the same inputs would now make another appliance (what we put in it
 * changed): part of every cache key and build record, so an update never reuses an
 * entry built the old way under the same package version.
 */
export const BUILD_FORMAT = 3;
