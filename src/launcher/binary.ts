import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { executableSearchPath, findExecutable } from '../host/which.js';
import { ApplianceError } from '../errors.js';

export const QEMU_BINARY = 'qemu-system-x86_64';

const INSTALL_HINT =
  'install it (Debian/Ubuntu: apt-get install qemu-system-x86; Fedora: dnf install qemu-system-x86-core) ' + 'or pass its path with --qemu PATH';

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

const versions = new Map<string, Promise<string>>();

/** "7.2.22" from `qemu --version`, asked once per binary per process (it keys the accelerator verdict). */
export function qemuVersion(qemu: string): Promise<string> {
  let v = versions.get(qemu);
  if (!v) {
    v = promisify(execFile)(qemu, ['--version']).then(
      ({ stdout }) => /version\s+(\S+)/.exec(stdout)?.[1] ?? stdout.trim().split('\n')[0] ?? 'unknown',
      (err: unknown) => {
        // One line: execFile's message repeats the command and appends its whole stderr.
        const e = err as { code?: string | number; stderr?: string };
        const why = typeof e.code === 'number' ? `exit status ${e.code}` : (e.code ?? 'failed');
        const said = e.stderr?.trim().split('\n')[0];
        throw new ApplianceError('ENOQEMU', `cannot run ${qemu} --version (${why}${said ? `: ${said}` : ''}): ${INSTALL_HINT}`, { cause: err });
      },
    );
    versions.set(qemu, v);
  }
  return v;
}
