/** The accelerators and machines a boot takes: one list for boot()'s check and the command line's. */
import type { Accel, MachineName } from '../launcher/index.js';

export const ACCEL_CHOICES = ['auto', 'kvm', 'tcg'] as const satisfies readonly ('auto' | Accel)[];
export const MACHINE_CHOICES = ['auto', 'microvm', 'q35', 'pc'] as const satisfies readonly ('auto' | MachineName)[];
