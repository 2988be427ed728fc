/**
 * rpm's version comparison (rpmvercmp; the algorithm rpm documents in its tests,
 * tests/rpmvercmp.at): versions split into runs of digits and runs of letters, anything
 * else only separates them. Digit runs compare as numbers, letter runs as bytes, and a
 * digit run is newer than a letter run. `~` sorts before everything, even the end
 * (1.0~rc1 < 1.0); `^` sorts after the end but before anything else (1.0 < 1.0^git1 < 1.0.1).
 */

const isDigit = (c: string | undefined): boolean => c !== undefined && c >= '0' && c <= '9';
const isLetter = (c: string | undefined): boolean => c !== undefined && ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z'));
const isSeparator = (c: string | undefined): boolean => c !== undefined && !isDigit(c) && !isLetter(c) && c !== '~' && c !== '^';

/** The end of the run of digits (or of letters) starting at `i`. */
function runEnd(s: string, i: number, digits: boolean): number {
  while (i < s.length && (digits ? isDigit(s[i]) : isLetter(s[i]))) i++;
  return i;
}

/** Two digit runs as numbers of any length: leading zeros dropped, then the longer is larger. */
function compareDigits(a: string, b: string): number {
  const x = a.replace(/^0+/, '');
  const y = b.replace(/^0+/, '');
  if (x.length !== y.length) return x.length > y.length ? 1 : -1;
  return x === y ? 0 : x > y ? 1 : -1;
}

/** 1 when `a` is the newer version (or release), -1 when `b` is, 0 when rpm deems them equal. */
export function rpmVersionCompare(a: string, b: string): number {
  if (a === b) return 0;
  let i = 0;
  let j = 0;
  for (;;) {
    while (isSeparator(a[i])) i++;
    while (isSeparator(b[j])) j++;
    const x = a[i];
    const y = b[j];
    if (x === '~' || y === '~') {
      if (x !== y) return x === '~' ? -1 : 1;
    } else if (x === '^' || y === '^') {
      if (x === undefined || y === undefined) return x === undefined ? -1 : 1;
      if (x !== y) return x === '^' ? -1 : 1;
    } else {
      if (x === undefined || y === undefined) break;
      const digits = isDigit(x);
      const endA = runEnd(a, i, digits);
      const endB = runEnd(b, j, digits);
      // b has a run of the other kind here: digits are newer than letters.
      if (endB === j) return digits ? 1 : -1;
      const runA = a.slice(i, endA);
      const runB = b.slice(j, endB);
      const c = digits ? compareDigits(runA, runB) : runA === runB ? 0 : runA > runB ? 1 : -1;
      if (c !== 0) return c;
      i = endA;
      j = endB;
      continue;
    }
    i++;
    j++;
  }
  if (i >= a.length && j >= b.length) return 0;
  return i >= a.length ? -1 : 1;
}
