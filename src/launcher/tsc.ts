import { existsSync, readFileSync } from 'node:fs';

/**
 * The host's TSC frequency in kHz, when /proc/cpuinfo tells it reliably; undefined otherwise.
 *
 * Under TCG the guest's TSC is the host's (qemu reads it with rdtsc), so this is the value
 * the guest would calibrate, given to it instead with tsc_early_khz. "cpu MHz" is the TSC
 * frequency when the kernel knew it from the hardware (tsc_known_freq) or when no cpufreq
 * driver reports a current frequency in its place; it only matters if the TSC is constant.
 */
export function hostTscKhz(cpuinfo = '/proc/cpuinfo', cpufreq = '/sys/devices/system/cpu/cpufreq/policy0'): number | undefined {
  let text: string;
  try {
    text = readFileSync(cpuinfo, 'latin1');
  } catch {
    return undefined;
  }
  const first = text.split('\n\n')[0] ?? '';
  const mhz = Number(/^cpu MHz\s*:\s*([\d.]+)/m.exec(first)?.[1]);
  const flags = new Set((/^flags\s*:(.*)$/m.exec(first)?.[1] ?? '').trim().split(/\s+/));
  if (!(mhz > 0) || !flags.has('constant_tsc')) return undefined;
  if (!flags.has('tsc_known_freq') && existsSync(cpufreq)) return undefined;
  return Math.round(mhz * 1000);
}
