import { ApplianceError } from './errors.js';

/** Parses sizes like 64M, 1G, 4096, 512k (binary units). */
export function parseSize(text: string): number {
  const m = /^(\d+)([kKmMgGtT]?)(i?[bB])?$/.exec(text.trim());
  if (!m) throw new ApplianceError('EBADSIZE', `bad size "${text}": use a number of bytes, optionally with K, M, G or T`);
  const mult = { '': 1, k: 1024, m: 1024 ** 2, g: 1024 ** 3, t: 1024 ** 4 }[m[2]!.toLowerCase() as '' | 'k' | 'm' | 'g' | 't'];
  return Number(m[1]) * mult;
}

/** A size for people, in the binary units parseSize takes: "512 B", "1.5 KiB", "54.2 MiB", "2.0 GiB". */
export function formatSize(bytes: number): string {
  const units = ['KiB', 'MiB', 'GiB', 'TiB', 'PiB'];
  if (bytes < 1024) return `${bytes} B`;
  let n = bytes / 1024;
  let i = 0;
  while (n >= 1024 && i < units.length - 1) ((n /= 1024), i++);
  return `${n.toFixed(1)} ${units[i]}`;
}
