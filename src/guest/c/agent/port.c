/*
 * What goes to the host: small frames through a bounded queue, bulk data spliced.
 *
 * Spliced frames. Each one's payload is first gathered in the stage, a pipe only the
 * agent writes to (from a command's pipe, or from a file: page references, no copy),
 * then its header is written to the port and the stage is spliced to the port whole.
 * Whole, because virtio_console's splice_write (Linux 6.1 at least) sizes its
 * scatterlist by the pipe's occupancy but fills only the buffers it takes: splicing
 * part of a pipe hands the device zero-sized descriptors (qemu then stops the device:
 * "virtio: zero sized buffers are not allowed") and overruns the indirect table. So the
 * stage holds exactly the frame under way (`left` bytes) and nothing else, which is
 * checked before each splice. A frame is begun only when nothing is queued, and nothing
 * else goes to the port until it is out: frames never interleave.
 * What the port gets: a pipe page nobody else holds (a command's output) as it is; a
 * clean page-cache page nobody else holds is taken out of the cache and handed over too
 * (a later read of that file goes to the disk again); any other page (tmpfs) is copied
 * once by the kernel. Copying it here, as before, cost three copies a byte.
 */
#include "agent.h"

#include <fcntl.h>
#include <sys/ioctl.h>

/* The stage's size: a frame's worth of buffers even when they are small. */
#define STAGE_SIZE (256 * 1024)

struct port_out po = {.splice = 1};

struct out {
  struct out *next;
  size_t len, off;
  unsigned char data[];
};

static struct {
  struct out *head, **tail;
  int stage_r, stage_w;
  size_t left, hoff; /* payload bytes still in the stage; header bytes written */
  unsigned char hdr[APPL_HEADER_SIZE];
} q = {NULL, &q.head, -1, -1, 0, APPL_HEADER_SIZE, {0}};

/* Makes the stage; without one every frame is copied. */
int port_out_init(void) {
  int st[2];
  if (pipe2(st, O_CLOEXEC | O_NONBLOCK) < 0) {
    po.splice = 0;
    return -1;
  }
  q.stage_r = st[0];
  q.stage_w = st[1];
  /* Room for a frame made of small buffers (a pipe buffer per write of a command's). */
  fcntl(q.stage_w, F_SETPIPE_SZ, STAGE_SIZE);
  return 0;
}

void send2(uint8_t type, uint8_t flags, uint32_t id, const void *a, size_t alen, const void *b, size_t blen) {
  struct out *o = xmalloc(sizeof *o + APPL_HEADER_SIZE + alen + blen);
  o->next = NULL;
  o->off = 0;
  o->len = APPL_HEADER_SIZE + alen + blen;
  appl_put_header(o->data, (uint32_t)(alen + blen), type, flags, id);
  if (alen) memcpy(o->data + APPL_HEADER_SIZE, a, alen);
  if (blen) memcpy(o->data + APPL_HEADER_SIZE + alen, b, blen);
  *q.tail = o;
  q.tail = &o->next;
  po.queued += o->len;
}

void send_frame(uint8_t type, uint32_t id, const void *p, size_t n) {
  send2(type, 0, id, p, n, NULL, 0);
}

void send_u32(uint8_t type, uint32_t id, uint32_t v) {
  unsigned char b[4];
  appl_put32(b, v);
  send_frame(type, id, b, 4);
}

void send_error(uint32_t id, int err, const char *fmt, ...) {
  char msg[1024];
  va_list ap;
  va_start(ap, fmt);
  int n = vsnprintf(msg, sizeof msg, fmt, ap);
  va_end(ap);
  if (n < 0) n = 0;
  if ((size_t)n >= sizeof msg) n = sizeof msg - 1;
  unsigned char e[APPL_PAYLOAD_ERROR_MIN];
  appl_put32(e, (uint32_t)err);
  send2(APPL_T_ERROR, 0, id, e, sizeof e, msg, (size_t)n);
}

/* Whoever connects first gets the HELLO, even if an earlier host left without a word: the queue is emptied first. */
void drop_queue(void) {
  while (q.head) {
    struct out *o = q.head;
    q.head = o->next;
    free(o);
  }
  q.tail = &q.head;
  po.queued = 0;
}

/* The port can take a new frame right now: nothing queued or under way before it. */
int port_idle(void) {
  return !q.head && !q.left && q.hoff == APPL_HEADER_SIZE && !po.full;
}

/* Bytes waiting in a pipe, or -1 when it cannot tell. */
int pipe_bytes(int fd) {
  int n;
  return ioctl(fd, FIONREAD, &n) < 0 ? -1 : n;
}

/* Splicing to the port failed without taking anything (ENOMEM...): the rest of the frame
 * is read from the stage and goes first in the queue, and later frames are copied. */
static void unsplice(void) {
  po.splice = 0;
  struct out *o = xmalloc(sizeof *o + q.left);
  o->off = 0;
  o->len = 0;
  while (o->len < q.left) {
    ssize_t n = read(q.stage_r, o->data + o->len, q.left - o->len);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) fatal("the stage lost %zu bytes of a frame", q.left - o->len);
    o->len += (size_t)n;
  }
  o->next = q.head;
  if (!q.head) q.tail = &o->next;
  q.head = o;
  po.queued += o->len;
  q.left = 0;
}

/* Writes the frame under way's header; 1 when it is out, 0 when the port is full, -1 when the host has gone. */
static int flush_header(void) {
  while (q.hoff < APPL_HEADER_SIZE) {
    ssize_t n = write(chan.fd, q.hdr + q.hoff, APPL_HEADER_SIZE - q.hoff);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0 && errno == EAGAIN) return po.full = 1, 0;
    if (n < 0) return -1;
    q.hoff += (size_t)n;
  }
  return 1;
}

/* Moves the frame under way to the port: 0, or -1 when the host has gone (or the frame
 * cannot be completed: the channel must end rather than carry a broken frame). */
static int flush_cur(void) {
  if (!q.left && q.hoff == APPL_HEADER_SIZE) return 0;
  int h = flush_header();
  if (h <= 0) return h;
  while (q.left) {
    int staged = pipe_bytes(q.stage_r);
    if (staged < 0 || (size_t)staged != q.left) {
      say("the stage holds %d bytes for a frame that needs %zu: closing the channel", staged, q.left);
      return -1;
    }
    ssize_t n = splice(q.stage_r, NULL, chan.fd, NULL, q.left, SPLICE_F_NONBLOCK | SPLICE_F_MOVE);
    if (n > 0) {
      q.left -= (size_t)n;
      continue;
    }
    if (n < 0 && errno == EINTR) continue;
    if (n < 0 && errno == EAGAIN) return po.full = 1, 0;
    if (n < 0 && (errno == EPIPE || errno == ECONNRESET || errno == ENOTCONN)) return -1;
    if (n == 0) {
      /* The stage held these bytes: a port that takes them and says 0 has lost them. */
      say("the port dropped %zu bytes of a frame: closing the channel", q.left);
      return -1;
    }
    unsplice(); /* nothing was taken: copy the rest instead */
  }
  return 0;
}

/* Moves up to `max` bytes from `fd` (a pipe or a file) to the empty stage: the count,
 * 0 at end of file, or -1 and errno. */
ssize_t stage_from(int fd, size_t max) {
  ssize_t n;
  do n = splice(fd, NULL, q.stage_w, NULL, max, SPLICE_F_NONBLOCK | SPLICE_F_MOVE);
  while (n < 0 && errno == EINTR);
  return n;
}

/* Begins a frame of what the stage holds (`len` bytes) and sends what the port takes;
 * returns -1 when the host has gone. Only when port_idle(). */
int splice_frame(uint8_t type, uint32_t id, size_t len) {
  appl_put_header(q.hdr, (uint32_t)len, type, 0, id);
  q.hoff = 0;
  q.left = len;
  return flush_cur();
}

/* Something is waiting for the port. */
int out_pending(void) {
  return q.head || q.left || q.hoff < APPL_HEADER_SIZE;
}

/* Writes what the port takes now; returns -1 when the host has gone. */
int flush_out(void) {
  po.full = 0;
  if (flush_cur() < 0) return -1;
  if (q.left || q.hoff < APPL_HEADER_SIZE) return 0;
  while (q.head) {
    struct out *o = q.head;
    ssize_t n = write(chan.fd, o->data + o->off, o->len - o->off);
    if (n < 0) {
      if (errno == EINTR) continue;
      if (errno == EAGAIN) po.full = 1;
      return errno == EAGAIN ? 0 : -1;
    }
    o->off += (size_t)n;
    po.queued -= (size_t)n;
    if (o->off == o->len) {
      q.head = o->next;
      if (!q.head) q.tail = &q.head;
      free(o);
    }
  }
  return 0;
}
