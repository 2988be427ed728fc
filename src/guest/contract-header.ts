/** contract.h for the guest programs, rendered from contract.ts (compile.ts writes it beside the build). */
import {
  AGENT_LOG_PREFIX,
  INSPECT_LOG_PREFIX,
  AGENT_PATH,
  AGENT_PORT_NAME,
  BY_ID_PREFIX,
  CMDLINE,
  FrameFlag,
  FrameType,
  FUSE_TYPE_PREFIX,
  GO_LINE,
  HEADER_SIZE,
  HELLO_PID1,
  INIT_ENV,
  INIT_LINES,
  INIT_LOG_PREFIX,
  INSPECT_PATH,
  MAX_PAYLOAD,
  MOVED_MOUNTS,
  PAYLOAD,
  PROGRAMS_DIR,
  PROTOCOL_VERSION,
  ROOT_SERIAL,
  STDIN_WINDOW,
  TMPFS_MOUNTS,
} from './contract.js';

/** A C string literal (the contract's strings are printable ASCII; anything else is escaped). */
const str = (s: string) =>
  `"${[...Buffer.from(s, 'utf8')].map((b) => (b >= 0x20 && b < 0x7f && b !== 0x22 && b !== 0x5c ? String.fromCharCode(b) : `\\${b.toString(8).padStart(3, '0')}`)).join('')}"`;
const upper = (name: string) => name.replace(/[A-Z]/g, (c) => `_${c}`).toUpperCase();

export function contractHeader(): string {
  const lines = [
    '/* Generated from src/guest/contract.ts by src/guest/contract-header.ts when the guest',
    ' * programs are compiled: edit contract.ts, not this. */',
    '#ifndef APPLIANCE_CONTRACT_H',
    '#define APPLIANCE_CONTRACT_H',
    '',
    `#define APPL_VERSION ${PROTOCOL_VERSION}`,
    `#define APPL_PORT_NAME ${str(AGENT_PORT_NAME)}`,
    `#define APPL_AGENT_PATH ${str(AGENT_PATH)}`,
    `#define APPL_PROGRAMS_DIR ${str(PROGRAMS_DIR)}`,
    `#define APPL_INSPECT_PATH ${str(INSPECT_PATH)}`,
    `#define APPL_ROOT_SERIAL ${str(ROOT_SERIAL)}`,
    `#define APPL_BY_ID_PREFIX ${str(BY_ID_PREFIX)}`,
    `#define APPL_INIT_LOG_PREFIX ${str(INIT_LOG_PREFIX)}`,
    `#define APPL_AGENT_LOG_PREFIX ${str(AGENT_LOG_PREFIX)}`,
    `#define APPL_INSPECT_LOG_PREFIX ${str(INSPECT_LOG_PREFIX)}`,
    `#define APPL_FUSE_TYPE_PREFIX ${str(FUSE_TYPE_PREFIX)}`,
    ...Object.entries(CMDLINE).map(([k, v]) => `#define APPL_PARAM_${upper(k)} ${str(`${v}=`)}`),
    ...Object.entries(INIT_LINES).map(([k, v]) => `#define APPL_LINE_${upper(k)} ${str(v)}`),
    ...Object.entries(INIT_ENV).map(([k, v]) => `#define APPL_ENV_${upper(k)} ${str(v)}`),
    `#define APPL_GO_START ${str(`${GO_LINE.start} `)}`,
    `#define APPL_GO_END ${str(GO_LINE.end)}`,
    `#define APPL_GO_SEED_BYTES ${GO_LINE.seedBytes}`,
    `#define APPL_TMPFS_MOUNTS {${TMPFS_MOUNTS.map((m) => `{${str(m.path)}, ${str(`mode=${m.mode.toString(8).padStart(4, '0')}`)}}`).join(', ')}}`,
    `#define APPL_MOVED_MOUNTS {${MOVED_MOUNTS.map((m) => str(m.path)).join(', ')}}`,
    '',
    `#define APPL_HEADER_SIZE ${HEADER_SIZE}`,
    `#define APPL_MAX_PAYLOAD ${MAX_PAYLOAD}`,
    `#define APPL_STDIN_WINDOW ${STDIN_WINDOW}`,
    `#define APPL_HELLO_PID1 ${HELLO_PID1}u`,
    ...Object.entries(PAYLOAD).map(([k, v]) => `#define APPL_PAYLOAD_${k} ${v}`),
    `enum { ${Object.entries(FrameType)
      .map(([k, v]) => `APPL_T_${k} = ${v}`)
      .join(', ')} };`,
    `enum { APPL_F_STDIN = ${FrameFlag.STDIN}, APPL_F_PTY = ${FrameFlag.PTY}, APPL_F_ABORT = ${FrameFlag.ABORT} };`,
    '',
    '#endif',
    '',
  ];
  return lines.join('\n');
}
