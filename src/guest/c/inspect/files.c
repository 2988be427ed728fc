/* cat and read-files: files' contents, one streamed or many small ones in one call. */
#include "inspect.h"

/* A file that cannot be read exits APPL_CAT_ERRNO_BASE + its errno (1 stays fatal()'s). */
int cmd_cat(int argc, char **argv) {
  if (argc != 2) fatal("cat: give ROOT PATH");
  int rootfd = open_root(argv[0]);
  int err, fd = open_regular(rootfd, argv[1], &err);
  close(rootfd);
  if (fd < 0) {
    say("%s: %s", argv[1], strerror(err));
    return APPL_CAT_ERRNO_BASE + err; /* the host names the errno */
  }
  struct stat st;
  off_t at = 0;
  for (;;) {
    /* Up to the size fstat says, then on until EOF: a file may be longer than it says (/proc). */
    size_t want = fstat(fd, &st) == 0 && st.st_size > at ? (size_t)(st.st_size - at) : APPL_EXTENT_MAX;
    errno = 0;
    size_t got = send_range(fd, at, want);
    at += (off_t)got;
    if (errno) {
      int e = errno;
      say("%s: %s", argv[1], strerror(e));
      flush_out();
      close(fd);
      return APPL_CAT_ERRNO_BASE + e;
    }
    if (got < want) break; /* EOF */
  }
  flush_out();
  close(fd);
  return 0;
}

static void read_file(int rootfd, const char *path, size_t limit) {
  static unsigned char buf[1 << 16];
  {
    int err, fd = open_regular(rootfd, path, &err);
    size_t have = 0, cap = 0;
    unsigned char *data = NULL;
    while (fd >= 0 && have < limit) {
      ssize_t n = read(fd, buf, sizeof buf < limit - have ? sizeof buf : limit - have);
      if (n < 0 && errno == EINTR) continue;
      if (n < 0) err = errno;
      if (n <= 0) break;
      if (have + (size_t)n > cap) {
        unsigned char *more = realloc(data, cap = (have + (size_t)n) * 2);
        if (!more) fatal("out of memory");
        data = more;
      }
      memcpy(data + have, buf, (size_t)n);
      have += (size_t)n;
    }
    if (fd >= 0) close(fd);
    put32((uint32_t)err);
    put64(err ? 0 : have);
    if (!err) put(data, have);
    free(data);
  }
}

/* What is at `path`, its last step not followed (lstat): its type letter, then a symlink's target. */
static void read_type(int rootfd, const char *path) {
  char what[1 + APPL_GUEST_PATH_MAX];
  size_t have = 0;
  struct stat st;
  int fd = open_in_root(rootfd, path, O_PATH | O_NOFOLLOW), err = fd < 0 ? errno : 0;
  if (!err && fstat(fd, &st) < 0) err = errno;
  if (!err) {
    what[have++] = file_type(st.st_mode);
    ssize_t n = S_ISLNK(st.st_mode) ? readlinkat(fd, "", what + 1, APPL_GUEST_PATH_MAX) : 0;
    if (n > 0) have += (size_t)n;
  }
  if (fd >= 0) close(fd);
  put32((uint32_t)err);
  put64(have);
  put(what, have);
}

/* Small files of several filesystems in one call: groups of LIMIT, ROOT, a count, the paths. */
int cmd_read_files(int argc, char **argv) {
  for (int i = 0; i + 2 < argc;) {
    int types = strcmp(argv[i], APPL_READ_TYPES) == 0;
    size_t limit = strtoull(argv[i], NULL, 10);
    int rootfd = open_root(argv[i + 1]);
    long n = strtol(argv[i + 2], NULL, 10);
    if (n < 0 || n > argc - i - 3) fatal("read-files: %s has %ld paths, fewer are given", argv[i + 1], n);
    for (long j = 0; j < n; j++) types ? read_type(rootfd, argv[i + 3 + j]) : read_file(rootfd, argv[i + 3 + j], limit);
    close(rootfd);
    i += 3 + (int)n;
  }
  flush_out();
  return 0;
}
