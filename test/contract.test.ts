// The guest contract: the C programs are compiled against contract.h rendered from
// src/guest/contract.ts, so both sides agree by construction; this checks the rendering
// through the C compiler itself, and that the C sources spell none of it out by hand.
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import ts from 'typescript';
import { afterAll, describe, expect, it } from 'vitest';
import * as contract from '../src/guest/contract.js';
import { contractHeader } from '../src/guest/contract-header.js';

const C_DIR = resolve('src/guest/c');
const INSPECT_DIR = resolve('src/inspect');
const upper = (name: string) => name.replace(/[A-Z]/g, (c) => `_${c}`).toUpperCase();

/** Every C source and header of the guest programs, comments removed (they may name things; code must not). */
function cSources(): [string, string][] {
  return (readdirSync(C_DIR, { recursive: true }) as string[]).filter((f) => /\.[ch]$/.test(f)).map((f) => [f, readFileSync(join(C_DIR, f), 'utf8')]);
}

/** What a C file spells out that contract.h has a name for: each finding as "what: the code". */
function literalsIn(source: string): string[] {
  const code = source.replace(/\/\*[\s\S]*?\*\//g, '').replace(/\/\/.*$/gm, '');
  const strings = [
    contract.AGENT_PORT_NAME,
    contract.AGENT_PATH,
    contract.INSPECT_PATH,
    contract.ROOT_SERIAL,
    contract.INIT_LOG_PREFIX,
    contract.AGENT_LOG_PREFIX,
    contract.INSPECT_LOG_PREFIX,
    contract.GO_LINE.start,
    ...Object.values(contract.CMDLINE).map((k) => `${k}=`),
    ...Object.values(contract.INIT_LINES),
    ...Object.values(contract.INIT_ENV),
  ];
  const found: string[] = [];
  const line = (at: number) => code.slice(code.lastIndexOf('\n', at) + 1, code.indexOf('\n', at)).trim();
  for (const m of code.matchAll(/"((?:[^"\\\n]|\\.)*)"/g)) {
    const text = m[1]!;
    if (Object.values(contract.INSPECT_COMMAND).includes(text as never)) found.push(`the command name "${text}": ${line(m.index)}`);
    else if (strings.some((s) => text.startsWith(s) && s.length > 2)) found.push(`a contract string: ${line(m.index)}`);
  }
  const patterns: [string, RegExp][] = [
    ['a record tag or file type letter', /\bput8\(\s*'/],
    ['a field key spelled out', /\bfield(_u64)?\(\s*"/],
    ['a walk flag letter', new RegExp(`strchr\\([^,]*,\\s*'[${Object.values(contract.WALK_FLAG).join('')}]'`)],
    ['a 64-bit sentinel', /~\s*\(uint64_t\)\s*[01]\b/],
    ['a literal offset in a payload', /appl_(get|put)(16|32)\([^,)]*\+\s*\d/],
    ['a literal payload size', /\blen\s*[<>]=?\s*[1-9]/],
    ['a literal offset in a frame', /\[[^\][]*\boff\b[^\]]*\+\s*\d+\]/],
  ];
  for (const l of code.split('\n')) for (const [what, re] of patterns) if (re.test(l)) found.push(`${what}: ${l.trim()}`);
  return found;
}

/** String and number literals of the helper's protocol in TypeScript code (comments, identifiers and types do not count). */
function tsLiteralsIn(text: string): string[] {
  const commands = new Set<string>(Object.values(contract.INSPECT_COMMAND));
  const keys = new Set<string>(Object.values(contract.INSPECT_FIELD));
  const numbers = new Set(['0x45', '0x58', '0xffffffffffffffffn', '0xfffffffffffffffen', String(contract.WALK_DEPTH_ALL)]);
  const source = ts.createSourceFile('x.ts', text, ts.ScriptTarget.ES2022, true);
  const found: string[] = [];
  const visit = (node: ts.Node) => {
    if (ts.isLiteralTypeNode(node)) return; // a type's keys ('partition' in a Pick) are not protocol
    if (ts.isStringLiteral(node) || ts.isNoSubstitutionTemplateLiteral(node)) {
      // A field key is read as an argument (text(f, 'dir')); elsewhere such a word is the code's own ('dir', a file type).
      const argument = ts.isCallExpression(node.parent) && node.parent.arguments.includes(node as ts.Expression);
      if (commands.has(node.text) || (keys.has(node.text) && argument)) found.push(node.getText(source));
    }
    if ((ts.isNumericLiteral(node) || ts.isBigIntLiteral(node)) && numbers.has(node.getText(source))) found.push(node.getText(source));
    ts.forEachChild(node, visit);
  };
  visit(source);
  return found;
}

const tmp = mkdtempSync(join(tmpdir(), 'appliance-contract-'));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

describe('the guest contract', () => {
  it('reaches the C side unchanged (a program built against protocol.h prints what contract.ts says)', () => {
    writeFileSync(join(tmp, 'contract.h'), contractHeader());
    const types = Object.keys(contract.FrameType)
      .map((k) => `  printf("T_${k}=%d\\n", APPL_T_${k});`)
      .join('\n');
    writeFileSync(
      join(tmp, 'probe.c'),
      `#include <stdio.h>
#include "protocol.h"
static const struct { const char *path, *opts; } tmpfs[] = APPL_TMPFS_MOUNTS;
static const char *const moved[] = APPL_MOVED_MOUNTS;
int main(void) {
  printf("VERSION=%d\\nPORT=%s\\nAGENT=%s\\nROOT=%s\\nBYID=%s\\n", APPL_VERSION, APPL_PORT_NAME, APPL_AGENT_PATH, APPL_ROOT_SERIAL, APPL_BY_ID_PREFIX);
  printf("HEADER=%d\\nMAX=%d\\nWINDOW=%d\\nPID1=%u\\nHELLO=%d\\n", APPL_HEADER_SIZE, APPL_MAX_PAYLOAD, APPL_STDIN_WINDOW, APPL_HELLO_PID1, APPL_PAYLOAD_HELLO);
  printf("F_STDIN=%d\\nF_PTY=%d\\nF_ABORT=%d\\n", APPL_F_STDIN, APPL_F_PTY, APPL_F_ABORT);
  printf("P_ROOT=%s\\nP_INIT=%s\\nP_SNAPSHOT=%s\\nP_TIMING=%s\\nP_ROOTWAIT=%s\\n", APPL_PARAM_ROOT, APPL_PARAM_INIT, APPL_PARAM_SNAPSHOT, APPL_PARAM_TIMING, APPL_PARAM_ROOTWAIT);
  printf("L_SNAPSHOT=%s\\nL_NO_SNAPSHOT=%s|\\nL_FATAL=%s|\\nGO=%s|%s|%d\\n", APPL_LINE_SNAPSHOT, APPL_LINE_NO_SNAPSHOT, APPL_LINE_FATAL, APPL_GO_START, APPL_GO_END, APPL_GO_SEED_BYTES);
  for (unsigned i = 0; i < sizeof tmpfs / sizeof *tmpfs; i++) printf("TMPFS=%s %s\\n", tmpfs[i].path, tmpfs[i].opts);
  for (unsigned i = 0; i < sizeof moved / sizeof *moved; i++) printf("MOVED=%s\\n", moved[i]);
${types}
  return 0;
}
`,
    );
    execFileSync('gcc', ['-Wall', '-Werror', `-I${C_DIR}`, `-iquote${tmp}`, '-o', join(tmp, 'probe'), join(tmp, 'probe.c')]);
    const out = execFileSync(join(tmp, 'probe'), { encoding: 'utf8' });
    const expected = [
      `VERSION=${contract.PROTOCOL_VERSION}`,
      `PORT=${contract.AGENT_PORT_NAME}`,
      `AGENT=${contract.AGENT_PATH}`,
      `ROOT=${contract.ROOT_SERIAL}`,
      `BYID=${contract.BY_ID_PREFIX}`,
      `HEADER=${contract.HEADER_SIZE}`,
      `MAX=${contract.MAX_PAYLOAD}`,
      `WINDOW=${contract.STDIN_WINDOW}`,
      `PID1=${contract.HELLO_PID1}`,
      `HELLO=${contract.PAYLOAD.HELLO}`,
      `F_STDIN=${contract.FrameFlag.STDIN}`,
      `F_PTY=${contract.FrameFlag.PTY}`,
      `F_ABORT=${contract.FrameFlag.ABORT}`,
      `P_ROOT=${contract.param('root', '')}`,
      `P_INIT=${contract.param('init', '')}`,
      `P_SNAPSHOT=${contract.param('snapshot', '')}`,
      `P_TIMING=${contract.param('timing', '')}`,
      `P_ROOTWAIT=${contract.param('rootwait', '')}`,
      `L_SNAPSHOT=${contract.INIT_LINES.snapshot}`,
      `L_NO_SNAPSHOT=${contract.INIT_LINES.noSnapshot}|`,
      `L_FATAL=${contract.INIT_LINES.fatal}|`,
      `GO=${contract.GO_LINE.start} |${contract.GO_LINE.end}|${contract.GO_LINE.seedBytes}`,
      ...contract.TMPFS_MOUNTS.map((m) => `TMPFS=${m.path} mode=${m.mode.toString(8).padStart(4, '0')}`),
      ...contract.MOVED_MOUNTS.map((m) => `MOVED=${m.path}`),
      ...Object.entries(contract.FrameType).map(([k, v]) => `T_${k}=${v}`),
    ];
    expect(out.trim().split('\n')).toEqual(expected);
  });

  it('reaches the C side for the inspect helper too: commands, flags, tags, bounds, field keys, payload offsets', () => {
    writeFileSync(join(tmp, 'contract.h'), contractHeader());
    const lines = [
      ...Object.keys(contract.INSPECT_COMMAND).map((k) => `  printf("CMD ${k}=%s\\n", APPL_CMD_${upper(k)});`),
      ...Object.keys(contract.WALK_FLAG).map((k) => `  printf("WALK ${k}=%c\\n", APPL_WALK_${upper(k)});`),
      ...Object.keys(contract.RECORD).map((k) => `  printf("RECORD ${k}=%c\\n", APPL_RECORD_${upper(k)});`),
      ...Object.keys(contract.FILE_TYPE).map((k) => `  printf("TYPE ${k}=%c\\n", APPL_TYPE_${upper(k)});`),
      ...Object.keys(contract.INSPECT_FIELD).map((k) => `  printf("FIELD ${k}=%s\\n", APPL_FIELD_${upper(k)});`),
      ...Object.entries(contract.FIELD_AT).flatMap(([m, f]) => Object.keys(f).map((k) => `  printf("AT ${m}.${k}=%d\\n", APPL_AT_${m}_${upper(k)});`)),
      '  printf("BOUNDS %d %d %d %d %d %llx %llx\\n", APPL_RECORD_PATH_MAX, APPL_EXTENT_MAX, APPL_BIG_FILE, APPL_CAT_ERRNO_BASE, APPL_WALK_DEPTH_ALL, (unsigned long long)APPL_EXTENT_END, (unsigned long long)APPL_EXTENT_DEFERRED);',
    ];
    writeFileSync(join(tmp, 'inspect-probe.c'), `#include <stdio.h>\n#include "protocol.h"\nint main(void) {\n${lines.join('\n')}\n  return 0;\n}\n`);
    execFileSync('gcc', ['-Wall', '-Werror', `-I${C_DIR}`, `-iquote${tmp}`, '-o', join(tmp, 'inspect-probe'), join(tmp, 'inspect-probe.c')]);
    const out = execFileSync(join(tmp, 'inspect-probe'), { encoding: 'utf8' }).trim().split('\n');
    expect(out).toEqual([
      ...Object.entries(contract.INSPECT_COMMAND).map(([k, v]) => `CMD ${k}=${v}`),
      ...Object.entries(contract.WALK_FLAG).map(([k, v]) => `WALK ${k}=${v}`),
      ...Object.entries(contract.RECORD).map(([k, v]) => `RECORD ${k}=${v}`),
      ...Object.entries(contract.FILE_TYPE).map(([k, v]) => `TYPE ${k}=${v}`),
      ...Object.entries(contract.INSPECT_FIELD).map(([k, v]) => `FIELD ${k}=${v}`),
      ...Object.entries(contract.FIELD_AT).flatMap(([m, f]) => Object.entries(f).map(([k, v]) => `AT ${m}.${k}=${v}`)),
      `BOUNDS ${contract.RECORD_PATH_MAX} ${contract.EXTENT_MAX} ${contract.BIG_FILE} ${contract.CAT_ERRNO_BASE} ${contract.WALK_DEPTH_ALL} ${contract.EXTENT_END.toString(16)} ${contract.EXTENT_DEFERRED.toString(16)}`,
    ]);
  });

  it('is spelled out nowhere in the C sources (they take it from contract.h)', () => {
    const sources = cSources();
    expect(sources.length).toBeGreaterThan(15);
    for (const [file, code] of sources) expect(literalsIn(code), file).toEqual([]);
  });

  it('is spelled out nowhere in src/inspect (it takes it from contract.ts)', () => {
    const files = (readdirSync(INSPECT_DIR, { recursive: true }) as string[]).filter((f) => f.endsWith('.ts'));
    expect(files.length).toBeGreaterThan(20);
    for (const file of files) expect(tsLiteralsIn(readFileSync(join(INSPECT_DIR, file), 'utf8')), file).toEqual([]);
  });

  it('the checks catch a literal added to a C file or to src/inspect (the checkers tested on code that has them)', () => {
    const c = `int cmd(int argc, char **argv) {
  if (!strcmp(argv[1], "walk")) put8('E');
  field("dir", d);
  if (strchr(flags, 'h')) hash = 1;
  put64(~(uint64_t)0);
  uint32_t argc = appl_get32(p + 4);
  if (len >= 12) go();
  dispatch(buf[off + 4]);
  say("%s", "a line that names APPL_PORT_NAME only in a comment"); /* "walk" */
}`;
    expect(literalsIn(c).map((l) => l.split(': ')[0])).toEqual([
      'the command name "walk"',
      'a record tag or file type letter',
      'a field key spelled out',
      'a walk flag letter',
      'a 64-bit sentinel',
      'a literal offset in a payload',
      'a literal payload size',
      'a literal offset in a frame',
    ]);
    const ts = `const r = await vm.exec([INSPECT_PATH, 'read-files', root]);\nif (text(f, "sector_size")) x(0x58, 0xffffffffffffffffn, 100000);\n// 'walk' in a comment is fine\ntype T = Pick<I, 'dir'>;\nswitch (t) { case 'dir': }`;
    expect(tsLiteralsIn(ts)).toEqual(["'read-files'", '"sector_size"', '0x58', '0xffffffffffffffffn', '100000']);
  });

  it('writes a go line the init accepts: the clock to the nanosecond, 32 random bytes, the timing flag', () => {
    const line = contract.goLine(true, 3, 1_764_489_600_123.456789);
    expect(line).toMatch(/^appliance\.go realtime=1764489600\.123456\d{3} seed=[0-9a-f]{64} timing=1 disks=3 end\n$/);
    expect(contract.goLine(false, 0).split(' ')[2]).not.toBe(contract.goLine(false, 0).split(' ')[2]);
  });
});
