/**
 * Text an image or a guest wrote (a backing file's name in a header, a label, a release
 * file's PRETTY_NAME, an error's message), made safe to print: its control characters (C0,
 * DEL, C1) as \xNN, so that it stays on its line and no terminal takes it for a command
 * (clearing a line, setting a title, drawing a message of its own).
 */
export function escapeControls(text: string): string {
  return text.replace(/[\x00-\x1f\x7f-\x9f]/g, (c) => `\\x${c.charCodeAt(0).toString(16).padStart(2, '0')}`);
}
