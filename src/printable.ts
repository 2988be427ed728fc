/**
 * Text an image or a guest wrote (a backing file's name in a header, a label, a release
 * file's PRETTY_NAME, an error's message), made safe to print: its control characters (C0,
 * DEL, C1) as \xNN, so that it stays on its line and no terminal takes it for a command
 * (clearing a line, setting a title, drawing a message of its own).
 */
export function escapeControls(text: string): string {
  return text.replace(/[\x00-\x1f\x7f-\x9f]/g, (c) => `\\x${c.charCodeAt(0).toString(16).padStart(2, '0')}`);
}

/**
 * A path of an image as a message shows it: UTF-8 text as it is, the bytes of a name that is
 * not UTF-8 as \xNN (never U+FFFD, which would name another file), control characters
 * escaped: a newline in a name cannot cut the message it is in.
 */
export function pathText(path: string | Buffer): string {
  if (typeof path === 'string') return escapeControls(path);
  const text = path.toString('utf8');
  if (Buffer.from(text).equals(path)) return escapeControls(text);
  return [...path].map((b) => (b < 0x80 ? escapeControls(String.fromCharCode(b)) : `\\x${b.toString(16).padStart(2, '0')}`)).join('');
}
