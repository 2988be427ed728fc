import { existsSync } from 'node:fs';
import type { Accel } from './accel.js';

export type MachineName = 'microvm' | 'q35' | 'pc';

/** How one qemu machine type is driven: its -M value, firmware and virtio transport. */
export interface MachineProfile {
  name: MachineName;
  /** The -M value. */
  type: string;
  /** -bios: qboot where installed (it reaches the kernel faster than SeaBIOS). */
  bios?: string;
  /** virtio devices are virtio-*-device on the MMIO transport, virtio-*-pci on PCI. */
  virtio: 'device' | 'pci';
  /** Guest modules the transport needs before any virtio device appears (the initrd must hold them). */
  transportModules: string[];
}

export const QBOOT_ROM = '/usr/share/qemu/qboot.rom';

/**
 * microvm: no PCI, no firmware tables beyond ACPI (which is how the kernel finds the
 * virtio-mmio devices: Debian kernels lack VIRTIO_MMIO_CMDLINE_DEVICES). The PIT and the
 * PIC are off because nothing needs them once the TSC frequency is known (see
 * machineCandidates); without them a boot under TCG is ~30 ms shorter.
 * The RTC stays on: the guest's wall clock comes from it.
 */
export function machineProfile(name: MachineName, qboot = QBOOT_ROM): MachineProfile {
  const bios = existsSync(qboot) ? qboot : undefined;
  switch (name) {
    case 'microvm':
      return { name, type: 'microvm,acpi=on,rtc=on,pit=off,pic=off', virtio: 'device', transportModules: ['virtio_mmio'] };
    case 'q35':
      return { name, type: 'q35,sata=off,smbus=off,vmport=off', bios, virtio: 'pci', transportModules: ['virtio_pci'] };
    case 'pc':
      return { name, type: 'pc,sata=off,smbus=off,vmport=off', bios, virtio: 'pci', transportModules: ['virtio_pci'] };
  }
}

/**
 * The machines to try, fastest first. microvm has no HPET or ACPI PM timer, so a guest
 * under TCG can only calibrate its TSC against the PIT, which fails often when the host
 * is busy; the kernel then marks the TSC unstable and hangs before init (the "one boot in
 * three hangs" seen here). With the host's TSC frequency on the command line
 * (tsc_early_khz) no calibration happens, so microvm is used under TCG only when that
 * frequency is known. Under KVM, kvmclock gives the frequency.
 */
export function machineCandidates(requested: 'auto' | MachineName, accel: Accel, tscKhz: number | undefined): MachineName[] {
  if (requested !== 'auto') return [requested];
  return accel === 'kvm' || tscKhz ? ['microvm', 'q35', 'pc'] : ['q35', 'pc'];
}
