import { realpathSync, statSync } from 'node:fs';
import { executableSearchPath, findExecutable } from '../host/which.js';
import { ApplianceError } from '../errors.js';

export const QEMU_BINARY = 'qemu-system-x86_64';

const INSTALL_HINT =
  'install it (Debian/Ubuntu: apt-get install qemu-system-x86; Fedora: dnf install qemu-system-x86-core) ' +
  'or pass its path (the qemu option; --qemu PATH on the command line)';

/** The qemu binary to run: `explicit` (--qemu) when given, else qemu-system-x86_64 from $PATH and the sbin folders. */
export function findQemu(explicit?: string, envPath = process.env.PATH): string {
  if (explicit) {
    const found = findExecutable(explicit, executableSearchPath(envPath));
    if (!found) throw new ApplianceError('ENOQEMU', `qemu binary ${explicit} does not exist or is not executable: ${INSTALL_HINT}`);
    return found;
  }
  const found = findExecutable(QEMU_BINARY, executableSearchPath(envPath));
  if (!found) throw new ApplianceError('ENOQEMU', `${QEMU_BINARY} is not installed: ${INSTALL_HINT}`);
  return found;
}

/**
 * What the accelerator verdict (accel.ts) and the snapshots (snapshot.ts) key qemu by: the
 * binary's resolved path, size and modification time, so an upgrade (or another binary)
 * is tried afresh and saves its own snapshots. A stat: asking `qemu --version` cost each
 * process ~35 ms of its first boot.
 */
export function qemuIdentity(qemu: string): string {
  try {
    const real = realpathSync(qemu);
    const st = statSync(real);
    return `${real} ${st.size} ${st.mtimeMs}`;
  } catch (err) {
    throw new ApplianceError('ENOQEMU', `cannot read ${qemu}: ${(err as Error).message}: ${INSTALL_HINT}`, { cause: err });
  }
}
