/* The data of requests: commands' stdin in, their output and files' content out. */
#include "agent.h"

void pump_stdin(struct req *r) {
  size_t done = 0;
  while (r->in_fd >= 0 && r->in_off < r->in_len) {
    ssize_t n = write(r->in_fd, r->in_buf + r->in_off, r->in_len - r->in_off);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0 && errno == EAGAIN) break;
    if (n < 0) { /* the command closed its stdin: drop the rest */
      n = (ssize_t)(r->in_len - r->in_off);
      close_fd(&r->in_fd);
    }
    r->in_off += (size_t)n;
    done += (size_t)n;
  }
  if (r->in_off == r->in_len) {
    r->in_off = r->in_len = 0;
    /* On a terminal, end of input is the EOF character, as typed. */
    if (r->in_eof && r->pty && r->in_fd >= 0) (void)!write(r->in_fd, "\x04", 1);
    if (r->in_eof) close_fd(&r->in_fd);
  }
  if (done) send_u32(APPL_T_STDIN_ACK, r->id, (uint32_t)done);
}

void handle_stdin(struct req *r, const unsigned char *p, uint32_t len) {
  if (len == 0) {
    r->in_eof = 1;
  } else if (r->in_fd < 0) {
    send_u32(APPL_T_STDIN_ACK, r->id, len);
    return;
  } else {
    if (r->in_off) {
      memmove(r->in_buf, r->in_buf + r->in_off, r->in_len - r->in_off);
      r->in_len -= r->in_off;
      r->in_off = 0;
    }
    unsigned char *b = realloc(r->in_buf, r->in_len + len);
    if (!b) fatal("out of memory");
    memcpy(b + r->in_len, p, len);
    r->in_buf = b;
    r->in_len += len;
  }
  pump_stdin(r);
}

/* ---- output of commands and files ---- */

/* The room at the host's end for a stream of r: stdout and a file's data, or stderr. */
static uint32_t *room_of(struct req *r, uint8_t type) {
  return type == APPL_T_STDERR ? &r->err_room : &r->out_room;
}

static size_t at_most(size_t n, uint32_t room) {
  return n < room ? n : room;
}

/* The host's reader took bytes of a stream: that much room again (never over the window). */
void handle_credit(struct req *r, const unsigned char *p) {
  uint32_t *room = room_of(r, (uint8_t)appl_get32(p + APPL_AT_CREDIT_STREAM));
  uint32_t bytes = appl_get32(p + APPL_AT_CREDIT_BYTES);
  *room = bytes > APPL_OUTPUT_WINDOW - *room ? APPL_OUTPUT_WINDOW : *room + bytes;
}

/* The end of a command's output pipe (it closes; EXIT goes once all have), or of a file
 * being read (then the request ends). */
static void output_ended(struct req *r, int *fd, int e) {
  close_fd(fd);
  if (r->kind == R_READ) {
    if (e) send_error(r->id, e, "cannot read %s: %s", r->path, strerror(e));
    else send_frame(APPL_T_DATA, r->id, NULL, 0);
    free_req(r);
  } else {
    maybe_finish(r);
  }
}

/* Copies a chunk of `*fd` into a queued frame: terminals, files splice cannot read. */
void pump_copy(struct req *r, int *fd, uint8_t type) {
  static unsigned char buf[APPL_MAX_PAYLOAD];
  uint32_t *room = room_of(r, type);
  if (!*room) return; /* the host's reader is behind: polled again once it has taken some */
  ssize_t n = read(*fd, buf, at_most(sizeof buf, *room));
  if (n > 0) {
    *room -= (uint32_t)n;
    send_frame(type, r->id, buf, (size_t)n);
    return;
  }
  if (n < 0 && (errno == EAGAIN || errno == EINTR)) return;
  /* End of file; a PTY master says EIO once the terminal's last user has gone. */
  output_ended(r, fd, n < 0 ? errno : 0);
}

/* Sends `avail` bytes that are in the pipe `fd` as frames of `type`, spliced, as long as
 * the port takes them at once. */
static void splice_out(struct req *r, int *fd, uint8_t type, size_t avail) {
  uint32_t *room = room_of(r, type);
  while (avail && *room && port_idle()) {
    ssize_t n = stage_from(*fd, at_most(avail < APPL_MAX_PAYLOAD ? avail : APPL_MAX_PAYLOAD, *room));
    if (n <= 0) { /* cannot happen with a pipe that has data: copy from now on */
      po.splice = 0;
      pump_copy(r, fd, type);
      return;
    }
    *room -= (uint32_t)n;
    avail -= (size_t)n < avail ? (size_t)n : avail;
    if (splice_frame(type, r->id, (size_t)n) < 0) return; /* the loop's flush_out says so again */
  }
}

/* A command's stdout or stderr pipe is readable: data, or its end. It is polled only
 * while the port is idle, but an earlier event of the same turn may have queued a frame:
 * then this chunk is copied, as all are when splicing is off, so that no request waits
 * on another's. */
void pump_pipe(struct req *r, int *fd, uint8_t type) {
  int avail = po.splice && port_idle() ? pipe_bytes(*fd) : 0;
  if (avail > 0) splice_out(r, fd, type, (size_t)avail);
  else pump_copy(r, fd, type); /* also the end, which read() tells */
}

/* At most this many frames of one file per turn of the loop, so that other requests and
 * the host's frames (a CANCEL) are served while a port that keeps up takes an endless file. */
#define FILE_FRAMES_PER_TURN 16

/* A file read by splice: into the stage (page references, no copy), then to the port.
 * Copied instead when it cannot be spliced, or when the port is busy (as for pipes). */
void pump_file(struct req *r) {
  if (!po.splice || r->copy || !port_idle()) {
    pump_copy(r, &r->fd, APPL_T_DATA);
    return;
  }
  for (int i = 0; i < FILE_FRAMES_PER_TURN && r->out_room && port_idle(); i++) {
    ssize_t n = stage_from(r->fd, at_most(APPL_MAX_PAYLOAD, r->out_room));
    if (n < 0 && errno == EAGAIN) return; /* a FIFO with nothing yet: polled */
    if (n < 0 && errno == EINVAL) {
      /* A file that splice cannot read (no splice_read): read() it instead. The stage is
       * empty, the file's offset where splice left it: nothing is lost or reordered. */
      r->copy = 1;
      pump_copy(r, &r->fd, APPL_T_DATA);
      return;
    }
    if (n <= 0) {
      output_ended(r, &r->fd, n < 0 ? errno : 0);
      return;
    }
    r->out_room -= (uint32_t)n;
    if (splice_frame(APPL_T_DATA, r->id, (size_t)n) < 0) return;
  }
}
