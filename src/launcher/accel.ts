import { createHash } from 'node:crypto';
import { closeSync, openSync } from 'node:fs';
import { cpus, release } from 'node:os';
import { readRecord, writeRecord } from '../cache/records.js';
import { ApplianceError } from '../errors.js';
import { qemuIdentity } from './binary.js';

export type Accel = 'kvm' | 'tcg';

/** An accelerator and the -cpu model to use with it (undefined: qemu's default model). */
export interface AccelChoice {
  accel: Accel;
  cpu?: string;
}

/**
 * TCG emulates `-cpu max`: the appliance runs the host's own binaries, which may need
 * x86-64-v2 (RHEL 9) or v3 (RHEL 10) instructions that qemu's default model (qemu64, v1)
 * lacks. Measured here it costs ~0.1 s per boot (1.50 → 1.60 s to poweroff on microvm;
 * Haswell costs the same, Nehalem (v2) nothing): the price of booting on every host.
 */
export const TCG: AccelChoice = { accel: 'tcg', cpu: 'max' };

/**
 * `-cpu host` first; on hosts where it cannot start (qemu aborts with "failed to set MSR
 * 0x10a" under nested virtualization) qemu's default model may still run under KVM.
 */
const KVM: AccelChoice[] = [{ accel: 'kvm', cpu: 'host' }, { accel: 'kvm' }];

const VERDICT_TTL_MS = 7 * 24 * 3600_000;

export interface AccelPlan {
  /** What to try, in order; the launcher falls back to the next when one fails. */
  candidates: AccelChoice[];
  /** Why these candidates, for the verbose log. */
  reason: string;
  /** Remembers what worked for this host ('auto' only). */
  remember?: (worked: AccelChoice) => Promise<void>;
}

interface Verdict {
  host: HostIdentity;
  choice: AccelChoice;
  /** ms since the epoch */
  at: number;
}

interface HostIdentity {
  /** qemuIdentity: the binary's path, size and modification time. */
  qemu: string;
  kernel: string;
  cpu: string;
}

/** True when /dev/kvm opens read-write, which is what qemu needs. */
export function kvmUsable(device = '/dev/kvm'): boolean {
  try {
    closeSync(openSync(device, 'r+'));
    return true;
  } catch {
    return false;
  }
}

export interface PlanAccelOptions {
  qemu: string;
  /** The cache root, where 'auto' remembers its verdict (cache/records.ts). */
  cacheRoot: string;
  kvmDevice?: string;
  now?: number;
}

/**
 * The accelerators to try. 'auto' tries KVM when /dev/kvm is usable, unless a verdict
 * less than 7 days old says KVM does not work on this host (same qemu binary, host kernel
 * and CPU), and ends on TCG, which always works.
 */
export async function planAccel(requested: 'auto' | Accel, opts: PlanAccelOptions): Promise<AccelPlan> {
  const device = opts.kvmDevice ?? '/dev/kvm';
  if (requested === 'tcg') return { candidates: [TCG], reason: 'TCG requested' };
  if (requested === 'kvm') {
    if (!kvmUsable(device)) {
      throw new ApplianceError(
        'ENOKVM',
        `cannot open ${device} read-write: add yourself to its group (usually kvm) or use accel 'tcg' (slower) or 'auto' (--accel on the command line)`,
      );
    }
    return { candidates: KVM, reason: 'KVM requested' };
  }
  if (!kvmUsable(device)) return { candidates: [TCG], reason: `${device} cannot be opened read-write` };

  const host: HostIdentity = { qemu: qemuIdentity(opts.qemu), kernel: release(), cpu: cpus()[0]?.model ?? 'unknown' };
  const id = `accel-${createHash('sha256').update(JSON.stringify(host)).digest('hex').slice(0, 16)}`;
  const now = opts.now ?? Date.now();
  const saved = await readRecord<Verdict>(opts.cacheRoot, id);
  const fresh = saved && JSON.stringify(saved.host) === JSON.stringify(host) && now - saved.at < VERDICT_TTL_MS ? saved : undefined;
  const remember = async (worked: AccelChoice) => {
    if (fresh && sameChoice(fresh.choice, worked)) return;
    await writeRecord(opts.cacheRoot, id, { host, choice: worked, at: now } satisfies Verdict);
  };
  if (!fresh) return { candidates: [...KVM, TCG], reason: 'no verdict for this host yet', remember };
  const candidates = fresh.choice.accel === 'kvm' ? [fresh.choice, TCG] : [TCG];
  return { candidates, reason: `verdict of ${new Date(fresh.at).toISOString()}: ${describeAccel(fresh.choice)}`, remember };
}

export function describeAccel(c: AccelChoice): string {
  return c.cpu ? `${c.accel} (-cpu ${c.cpu})` : c.accel;
}

function sameChoice(a: AccelChoice, b: AccelChoice): boolean {
  return a.accel === b.accel && a.cpu === b.cpu;
}
