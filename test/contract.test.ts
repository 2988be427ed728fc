// The guest contract: the C programs are compiled against contract.h rendered from
// src/guest/contract.ts, so both sides agree by construction; this checks the rendering
// through the C compiler itself, and that the C sources spell none of it out by hand.
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import * as contract from '../src/guest/contract.js';
import { contractHeader } from '../src/guest/contract-header.js';

const C_DIR = resolve('src/guest/c');
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

  it('is spelled out nowhere in the C sources (they take it from contract.h)', () => {
    const literals = [
      contract.AGENT_PORT_NAME,
      contract.AGENT_PATH,
      contract.ROOT_SERIAL,
      contract.INIT_LOG_PREFIX,
      contract.AGENT_LOG_PREFIX,
      contract.GO_LINE.start,
      ...Object.values(contract.CMDLINE).map((k) => `"${k}=`),
      ...Object.values(contract.INIT_LINES).map((l) => `"${l}`),
    ];
    for (const file of ['init.c', 'agent.c', 'protocol.h', 'util.h']) {
      // Comments may name things; code must not.
      const code = readFileSync(join(C_DIR, file), 'utf8')
        .replace(/\/\*[\s\S]*?\*\//g, '')
        .replace(/\/\/.*$/gm, '');
      for (const literal of literals) expect(code.includes(literal), `${file} spells out ${literal}`).toBe(false);
    }
  });

  it('writes a go line the init accepts: the clock to the nanosecond, 32 random bytes, the timing flag', () => {
    const line = contract.goLine(true, 1_764_489_600_123.456789);
    expect(line).toMatch(/^appliance\.go realtime=1764489600\.123456\d{3} seed=[0-9a-f]{64} timing=1 end\n$/);
    expect(contract.goLine(false).split(' ')[2]).not.toBe(contract.goLine(false).split(' ')[2]);
  });
});
