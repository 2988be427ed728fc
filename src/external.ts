/**
 * import() of a package kept outside the CLI's bundle (execa, an ES module). The `appliance`
 * command runs the bundle from V8's code cache (bin.cts), and Node 20 gives functions
 * restored from a code cache no import() callback (ERR_VM_DYNAMIC_IMPORT_CALLBACK_MISSING),
 * so bin.cts leaves an importer of its own under this symbol; the library, loaded as ES
 * modules, finds none and imports as usual.
 */
export const IMPORTER = Symbol.for('appliance.import');

export function importExternal<T>(specifier: string): Promise<T> {
  const injected = (globalThis as { [IMPORTER]?: (s: string) => Promise<unknown> })[IMPORTER];
  return (injected ? injected(specifier) : import(specifier)) as Promise<T>;
}
