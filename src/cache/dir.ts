import { mkdir, stat } from 'node:fs/promises';
import { homedir } from 'node:os';
import { join, resolve } from 'node:path';
import { ApplianceError } from '../errors.js';

/** `$APPLIANCE_CACHE_DIR`, else `$XDG_CACHE_HOME/appliance`, else `~/.cache/appliance`. */
export function cacheRootPath(env: NodeJS.ProcessEnv = process.env): string {
  // Absolute, so that the paths handed to qemu never depend on its working folder.
  if (env.APPLIANCE_CACHE_DIR) return resolve(env.APPLIANCE_CACHE_DIR);
  if (env.XDG_CACHE_HOME) return resolve(env.XDG_CACHE_HOME, 'appliance');
  return join(homedir(), '.cache', 'appliance');
}

/**
 * Creates the cache folder if needed and refuses one that another user could tamper
 * with: what is cached there is booted, so it must be ours and not writable by others.
 */
export async function ensureCacheRoot(given = cacheRootPath()): Promise<string> {
  const root = resolve(given);
  await mkdir(root, { recursive: true, mode: 0o700 });
  const st = await stat(root);
  const uid = process.getuid?.();
  if (uid !== undefined && st.uid !== uid) {
    throw new ApplianceError(
      'ECACHEOWNER',
      `cache folder ${root} is owned by uid ${st.uid}, not by you (uid ${uid}): ` + `use a folder of your own with APPLIANCE_CACHE_DIR, or chown it`,
    );
  }
  if (st.mode & 0o022) {
    throw new ApplianceError(
      'ECACHEPERM',
      `cache folder ${root} is writable by others (mode ${(st.mode & 0o777).toString(8)}): ` +
        `run chmod go-w ${root}, or use another folder with APPLIANCE_CACHE_DIR`,
    );
  }
  return root;
}
