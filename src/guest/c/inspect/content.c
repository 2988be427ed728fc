/* A walk's file data: sha256s, extents without the holes, hard links sent once, reads ahead. */
#include "walk.h"
#include "../sha256.h"

int hash_file(int dirfd, const char *name, unsigned char out[32]) {
  char self[64];
  snprintf(self, sizeof self, "/proc/self/fd/%d", dirfd);
  /* name "": dirfd is the file itself (an O_PATH descriptor), reopened for reading. */
  int fd = *name ? openat(dirfd, name, O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC | O_NOCTTY)
                 : open(self, O_RDONLY | O_NONBLOCK | O_CLOEXEC | O_NOCTTY);
  if (fd < 0) return errno;
  static unsigned char buf[1 << 17];
  struct sha256 s;
  sha256_init(&s);
  ssize_t n;
  while ((n = read(fd, buf, sizeof buf)) != 0) {
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) {
      int e = errno;
      close(fd);
      return e;
    }
    sha256_update(&s, buf, (size_t)n);
  }
  close(fd);
  sha256_final(&s, out);
  return 0;
}

/* True the first time an inode is seen (so its content goes once, with its first name). */
static int first_time(struct walk *w, const struct stat *st) {
  uint64_t key = ((uint64_t)st->st_dev << 40) ^ (uint64_t)st->st_ino;
  if (key == 0) key = 1;
  if (w->sent_n * 2 >= w->sent_cap) {
    size_t cap = w->sent_cap ? w->sent_cap * 2 : 1024;
    uint64_t *t = calloc(cap, sizeof *t);
    if (!t) fatal("out of memory");
    for (size_t i = 0; i < w->sent_cap; i++)
      if (w->sent[i]) {
        size_t j = w->sent[i] % cap;
        while (t[j]) j = (j + 1) % cap;
        t[j] = w->sent[i];
      }
    free(w->sent);
    w->sent = t, w->sent_cap = cap;
  }
  size_t j = key % w->sent_cap;
  while (w->sent[j]) {
    if (w->sent[j] == key) return 0;
    j = (j + 1) % w->sent_cap;
  }
  w->sent[j] = key;
  w->sent_n++;
  return 1;
}

/* A large file without holes, whose data the host reads apart with APPL_WALK_DEFER_BIG. */
static int read_apart(const struct walk *w, const struct stat *st) {
  return w->defer_big && st->st_size >= APPL_BIG_FILE && st->st_blocks * 512 >= st->st_size;
}

/* A regular file's data as extents (see the record layout): holes are skipped. */
void put_content(struct walk *w, int dirfd, const char *name, const struct stat *st) {
  int err = 0;
  if (read_apart(w, st) && (st->st_nlink <= 1 || first_time(w, st))) {
    put64(APPL_EXTENT_DEFERRED);
    return;
  }
  if (st->st_nlink <= 1 || first_time(w, st)) {
    char self[64];
    snprintf(self, sizeof self, "/proc/self/fd/%d", dirfd);
    int fd = *name ? openat(dirfd, name, O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC | O_NOCTTY)
                   : open(self, O_RDONLY | O_NONBLOCK | O_CLOEXEC | O_NOCTTY);
    off_t at = 0;
    while (fd >= 0 && !err && at < st->st_size) {
      off_t data = lseek(fd, at, SEEK_DATA);
      if (data < 0) {
        if (errno != ENXIO) err = errno; /* ENXIO: only a hole is left */
        break;
      }
      off_t hole = lseek(fd, data, SEEK_HOLE);
      if (hole < 0 || hole > st->st_size) hole = st->st_size;
      for (at = data; at < hole && !err;) {
        /* The extent's length goes first, so a short read is padded with zeros and said. */
        size_t want = hole - at < APPL_EXTENT_MAX ? (size_t)(hole - at) : APPL_EXTENT_MAX;
        put64((uint64_t)at), put64((uint64_t)want);
        errno = 0;
        size_t got = send_range(fd, at, want);
        if (got < want) {
          err = errno ? errno : EIO;
          put_zeros(want - got);
        }
        at += (off_t)want;
      }
    }
    if (fd < 0) err = errno;
    else close(fd);
  }
  put64(APPL_EXTENT_END);
  put32((uint32_t)err);
}

/* Queues the reads of `name` in `dirfd` if it is a regular file the walk will read; returns the bytes queued. */
off_t read_ahead(struct walk *w, int dirfd, const char *name) {
  struct stat st;
  if (fstatat(dirfd, name, &st, AT_SYMLINK_NOFOLLOW) < 0 || !S_ISREG(st.st_mode) || st.st_size == 0) return 0;
  if (!w->hash && read_apart(w, &st)) return 0;
  off_t n = st.st_size < AHEAD_BYTES ? st.st_size : AHEAD_BYTES;
  int fd = openat(dirfd, name, O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC | O_NOCTTY);
  if (fd < 0) return 0;
  if (readahead(fd, 0, (size_t)n) < 0) n = 0;
  close(fd);
  return n;
}
