/**
 * pacman's local database entry, /var/lib/pacman/local/NAME-VERSION/desc: sections headed
 * %NAME%, %VERSION%, %DESC%, %URL%, %ARCH%… each followed by its value lines and a blank
 * line. Read as libguestfs reads it (lib/inspect-apps.c list_applications_pacman): the
 * first line after a header is its value, a later header of the same name wins.
 */

export interface PacmanDesc {
  name?: string;
  /** [epoch:]version-release, as pacman writes it. */
  version?: string;
  desc?: string;
  url?: string;
  arch?: string;
}

const HEADERS: Record<string, keyof PacmanDesc> = { '%NAME%': 'name', '%VERSION%': 'version', '%DESC%': 'desc', '%URL%': 'url', '%ARCH%': 'arch' };

export function parsePacmanDesc(text: string): PacmanDesc {
  const out: PacmanDesc = {};
  let key: keyof PacmanDesc | undefined;
  for (const line of text.split('\n')) {
    if (line === '') key = undefined;
    else if (key) {
      out[key] = line;
      key = undefined;
    } else if (Object.hasOwn(HEADERS, line)) key = HEADERS[line];
  }
  return out;
}
