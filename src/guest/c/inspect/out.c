/* The command's stdout: a buffer flushed as it fills, text fields, and file data spliced. */
#include "inspect.h"

#include <fcntl.h>

/* Small ranges are copied into the output buffer: a splice of its own would make each
 * small file a write of its own, which the agent sends as frames of their own. */
#define SPLICE_MIN (32 << 10)

static struct {
  unsigned char buf[1 << 16];
  size_t fill;
  int piped; /* stdout is a pipe: 1, is not: 0, not looked at yet (each command): -1 */
} out = {.piped = -1};

void out_reset(void) {
  out.fill = 0;
  out.piped = -1;
}

void flush_out(void) {
  size_t off = 0;
  while (off < out.fill) {
    ssize_t n = write(1, out.buf + off, out.fill - off);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) exit(3); /* the host stopped reading */
    off += (size_t)n;
  }
  out.fill = 0;
}

void put(const void *p, size_t n) {
  const unsigned char *b = p;
  while (n > 0) {
    if (out.fill == sizeof out.buf) flush_out();
    size_t take = sizeof out.buf - out.fill < n ? sizeof out.buf - out.fill : n;
    memcpy(out.buf + out.fill, b, take);
    out.fill += take, b += take, n -= take;
  }
}

/* `n` bytes of `fd` from `at` by splice, when stdout is a pipe; -1 when the file cannot be spliced (nothing sent). */
static ssize_t splice_range(int fd, off_t at, size_t n) {
  flush_out();
  size_t sent = 0;
  while (sent < n) {
    loff_t off = at + (off_t)sent;
    ssize_t k = splice(fd, &off, 1, NULL, n - sent, SPLICE_F_MORE);
    if (k < 0 && errno == EINTR) continue;
    if (k < 0 && (errno == EINVAL || errno == ENOSYS) && sent == 0) { /* not spliceable */
      errno = 0;
      return -1;
    }
    if (k < 0 && errno == EPIPE) exit(3); /* the host stopped reading */
    if (k <= 0) break;
    sent += (size_t)k;
  }
  return (ssize_t)sent;
}

/*
 * `n` bytes of `fd` from `at` onto stdout, after what put() holds: spliced when stdout is
 * a pipe (the agent's), so file data is never copied through this process (under TCG each
 * copy of a large file costs ~1 s per 256 MiB); read into the output buffer otherwise.
 * Returns the bytes sent: fewer than `n` only when the file ended early or a read failed
 * (errno set).
 */
size_t send_range(int fd, off_t at, size_t n) {
  if (out.piped < 0) {
    struct stat st;
    out.piped = fstat(1, &st) == 0 && S_ISFIFO(st.st_mode);
  }
  size_t sent = 0;
  if (out.piped && n >= SPLICE_MIN) {
    ssize_t k = splice_range(fd, at, n);
    if (k >= 0 && (size_t)k < n) return (size_t)k;
    if (k >= 0) return n;
  }
  while (sent < n) {
    if (out.fill == sizeof out.buf) flush_out();
    size_t room = sizeof out.buf - out.fill;
    size_t want = n - sent < room ? n - sent : room;
    ssize_t k = pread(fd, out.buf + out.fill, want, at + (off_t)sent);
    if (k < 0 && errno == EINTR) continue;
    if (k <= 0) return sent;
    out.fill += (size_t)k;
    sent += (size_t)k;
  }
  return sent;
}

/* `n` zero bytes: the rest of an extent whose file ended early, so the stream stays whole. */
void put_zeros(size_t n) {
  static const unsigned char zeros[4096];
  while (n > 0) {
    size_t k = n < sizeof zeros ? n : sizeof zeros;
    put(zeros, k);
    n -= k;
  }
}

void put8(unsigned v) {
  unsigned char b = (unsigned char)v;
  put(&b, 1);
}
void put32(uint32_t v) {
  unsigned char b[4];
  appl_put32(b, v);
  put(b, 4);
}
void put64(uint64_t v) {
  put32((uint32_t)v);
  put32((uint32_t)(v >> 32));
}
void put_bytes(const void *p, size_t n) {
  put32((uint32_t)n);
  put(p, n);
}

/* Text fields: bytes outside printable ASCII, `%` and `=` as %XX (the host's parseFields undoes it). */
static void put_escaped(const char *s, size_t n) {
  static const char hex[] = "0123456789ABCDEF";
  for (size_t i = 0; i < n; i++) {
    unsigned char c = (unsigned char)s[i];
    if (c <= 0x20 || c >= 0x7f || c == '%' || c == '=') {
      char e[3] = {'%', hex[c >> 4], hex[c & 15]};
      put(e, 3);
    } else {
      put(&c, 1);
    }
  }
}
void field(const char *key, const char *value) {
  if (!value) return;
  put(key, strlen(key));
  put("=", 1);
  put_escaped(value, strlen(value));
  put("\t", 1);
}
void field_u64(const char *key, uint64_t v) {
  char b[32];
  snprintf(b, sizeof b, "%llu", (unsigned long long)v);
  field(key, b);
}
void end_line(void) {
  put("\n", 1);
}
