import { ApplianceError } from './errors.js';

/** Parses sizes like 64M, 1G, 4096, 512k (binary units). */
export function parseSize(text: string): number {
  const m = /^(\d+)([kKmMgGtT]?)(i?[bB])?$/.exec(text.trim());
  if (!m) throw new ApplianceError('EBADSIZE', `bad size "${text}": use a number of bytes, optionally with K, M, G or T`);
  const mult = { '': 1, k: 1024, m: 1024 ** 2, g: 1024 ** 3, t: 1024 ** 4 }[m[2]!.toLowerCase() as '' | 'k' | 'm' | 'g' | 't'];
  return Number(m[1]) * mult;
}
