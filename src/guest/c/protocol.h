/*
 * The guest channel's framed protocol, spoken between the host (src/agent/agent-client.ts)
 * and the agent (c/agent/) over the virtio-serial port APPL_PORT_NAME. Its numbers and names
 * come from contract.h, generated from src/guest/contract.ts: this file documents them.
 *
 * Every frame is a 12-byte header and a payload. All integers are little endian.
 *
 *   u32 len      payload length, at most APPL_MAX_PAYLOAD
 *   u8  type     APPL_T_*
 *   u8  flags    per type (APPL_F_*), else 0
 *   u16 reserved 0
 *   u32 id       request id chosen by the host (non-zero); 0 for HELLO
 *
 * Strings in payloads end with a NUL byte. Messages ("h>a" host to agent, "a>h" back):
 *
 *   HELLO      a>h  id 0, sent once when the agent is ready:
 *                   u32 version (APPL_VERSION), u32 boot_ms (CLOCK_BOOTTIME when ready),
 *                   u32 init_ms (CLOCK_BOOTTIME when the init started; 0 if unknown),
 *                   u32 flags (APPL_HELLO_PID1 when the agent is the guest's PID 1),
 *                   u32 resume_ms (CLOCK_BOOTTIME when the agent took the go line at
 *                   the snapshot point; 0 if it ran none)
 *   EXEC       h>a  flags APPL_F_STDIN (stdin comes in STDIN frames, else /dev/null) and
 *                   APPL_F_PTY (run on a pseudo-terminal: all output comes as STDOUT).
 *                   u32 argc, u32 envc, u16 rows, u16 cols (PTY size; 0 = default),
 *                   then cwd ("" = "/"), argv[argc], env[envc] ("NAME=value", laid
 *                   over the agent's base env PATH, HOME, TERM), each NUL-terminated.
 *                   The reply is any STDOUT/STDERR/STDIN_ACK/ERROR frames, then always
 *                   one EXIT, sent once the command has exited and both of its output
 *                   pipes reached end of file.
 *   STDIN      h>a  a chunk of the command's stdin; an empty chunk is end of file.
 *                   The host keeps at most APPL_STDIN_WINDOW bytes unacknowledged per
 *                   request, so a command that does not read its stdin cannot make the
 *                   agent buffer without bound nor stop it reading other requests.
 *   STDIN_ACK  a>h  u32 count of stdin bytes the agent is done with (written to the
 *                   command or dropped because it closed its stdin).
 *   STDOUT     a>h  a chunk of the command's stdout, as it comes.
 *   STDERR     a>h  a chunk of the command's stderr.
 *   CREDIT     h>a  u32 stream (APPL_T_STDOUT, APPL_T_STDERR or APPL_T_DATA), u32 bytes:
 *                   the host's reader has taken that many bytes of the stream. Each
 *                   output stream of a request starts with APPL_OUTPUT_WINDOW bytes of
 *                   room; the agent sends no more than its room and reads no more of the
 *                   command's pipe (or the file) meanwhile, so one reader that is behind
 *                   holds up its own stream, never the channel nor other requests.
 *   EXIT       a>h  i32 exit code (-1 when killed by a signal), u32 signal number (0 when
 *                   it exited), u32 duration in milliseconds.
 *   ERROR      a>h  i32 errno, then a message (not NUL-terminated: the rest of the
 *                   payload). For EXEC it explains a failed start (the command still gets
 *                   EXIT 127 when not found, 126 otherwise, and the message on stderr,
 *                   as a shell would do); for the file requests it ends the request.
 *   WRITE_FILE h>a  u32 mode, path. Then DATA frames with the content and an empty DATA
 *                   to end it (with APPL_F_ABORT: give up and remove the file). The agent
 *                   answers OK, or ERROR as soon as something fails (then it drops the
 *                   remaining DATA frames of that id). Regular files only: a FIFO, device
 *                   or socket at the path is refused with EINVAL (opened O_NONBLOCK, so
 *                   it cannot hold the agent), and a symbolic link as the last component
 *                   with ELOOP (not followed).
 *   READ_FILE  h>a  path. The agent answers DATA frames, then an empty DATA; or ERROR.
 *                   Any file but a folder (a FIFO waits for a writer; /dev/zero never ends).
 *   CANCEL     h>a  no payload: the host gives up the READ_FILE with this id. The agent
 *                   closes the file and sends nothing more for it; frames it had already
 *                   queued still come, and the host drops them. Ignored for other ids.
 *   DATA       both a chunk of a file.
 *   OK         a>h  WRITE_FILE or POWEROFF done.
 *   POWEROFF   h>a  the agent ends every process and syncs the disks, answers OK, then
 *                   powers the guest off (exits with --connect).
 *   SIGNAL     h>a  u32 signal number, sent to the process group of the EXEC with this id.
 *   RESIZE     h>a  u16 rows, u16 cols: new size of a PTY exec's terminal.
 *
 * The agent powers off when the host closes the channel after sending anything. A host
 * that leaves without a word is not an end: the next one to connect gets a fresh HELLO.
 *
 * The host does not trust the guest (src/agent/protocol.ts checkAgentFrame, channel.ts):
 * any frame this agent never sends closes the channel, and every request fails with
 * EPROTO. That is: a frame before the HELLO or a second HELLO; a length over
 * APPL_MAX_PAYLOAD, reserved bits or flags set; a type the agent does not send; a payload
 * size other than above (HELLO 20, EXIT 12, STDIN_ACK 4, OK 0, ERROR at least 4,
 * STDOUT/STDERR at least 1); output beyond the room CREDIT gave; an EXIT whose status no
 * process has; a STDIN_ACK for more than is in flight; a frame its request never gets
 * (DATA for an EXEC, STDOUT for a READ_FILE...); a frame for an id the host never used. Frames for a request the host has
 * given up (CANCEL, or a command it stopped waiting for after a kill) are dropped.
 */
#ifndef APPLIANCE_PROTOCOL_H
#define APPLIANCE_PROTOCOL_H

#include <stdint.h>
#include <string.h>

#include "contract.h"

static inline uint32_t appl_get32(const unsigned char *p) {
  return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}
static inline uint16_t appl_get16(const unsigned char *p) {
  return (uint16_t)(p[0] | p[1] << 8);
}
static inline void appl_put32(unsigned char *p, uint32_t v) {
  p[0] = (unsigned char)v;
  p[1] = (unsigned char)(v >> 8);
  p[2] = (unsigned char)(v >> 16);
  p[3] = (unsigned char)(v >> 24);
}
static inline void appl_put_header(unsigned char *h, uint32_t len, uint8_t type, uint8_t flags,
                                   uint32_t id) {
  appl_put32(h + APPL_AT_HEADER_LENGTH, len);
  h[APPL_AT_HEADER_TYPE] = type;
  h[APPL_AT_HEADER_FLAGS] = flags;
  h[APPL_AT_HEADER_RESERVED] = h[APPL_AT_HEADER_RESERVED + 1] = 0;
  appl_put32(h + APPL_AT_HEADER_ID, id);
}

#endif
