/* walk: a filesystem's entries at and below a path, as records (contract.ts INSPECT_COMMAND). */
#include "walk.h"

#include <dirent.h>
#include <sys/syscall.h>
#include <sys/sysmacros.h>

/* statx(2) for the mount ID alone: musl's headers have no statx. The mount ID is at byte
 * 144 of struct statx, valid when STATX_MNT_ID (0x1000) is in the returned mask. */
#ifndef SYS_statx
#define SYS_statx 332
#endif
static uint64_t mount_id(int dirfd, const char *name) {
  uint64_t stx[32] = {0}; /* struct statx: 256 bytes */
  if (syscall(SYS_statx, dirfd, *name ? name : "", AT_SYMLINK_NOFOLLOW | (*name ? 0 : AT_EMPTY_PATH), 0x1000u, stx) < 0) return 0;
  return ((uint32_t)stx[0] & 0x1000u) ? stx[144 / 8] : 0;
}

/* Whether a directory is on the walk's filesystem: its device, or (btrfs subvolumes have a
 * device number each) its mount. Another filesystem mounted inside is not walked into. */
static int same_fs(struct walk *w, int dirfd, const char *name, const struct stat *st) {
  if (!w->one_fs || st->st_dev == w->dev) return 1;
  return w->mnt_id && mount_id(dirfd, name) == w->mnt_id;
}

static void put_error(int err, const char *path) {
  put8(APPL_RECORD_ERROR);
  put32((uint32_t)err);
  put_bytes(path, strlen(path));
}

/* One entry: `name` in `dirfd` (AT_EMPTY_PATH when name is ""), shown as w->path. */
static int put_entry(struct walk *w, int dirfd, const char *name, struct stat *st) {
  if (fstatat(dirfd, name, st, AT_SYMLINK_NOFOLLOW | (*name ? 0 : AT_EMPTY_PATH)) < 0) {
    put_error(errno, w->path);
    return -1;
  }
  char target[APPL_GUEST_PATH_MAX];
  ssize_t tlen = 0;
  if (S_ISLNK(st->st_mode) && (tlen = readlinkat(dirfd, name, target, sizeof target)) < 0) tlen = 0;
  unsigned char digest[32];
  int hash_err = w->hash && S_ISREG(st->st_mode) ? hash_file(dirfd, name, digest) : -1;
  int hashed = hash_err == 0;
  put8(APPL_RECORD_ENTRY);
  put8((unsigned)file_type(st->st_mode));
  put32(st->st_mode);
  put32(st->st_uid);
  put32(st->st_gid);
  put32((uint32_t)st->st_nlink);
  put64((uint64_t)st->st_size);
  put64((uint64_t)st->st_blocks);
  put64((uint64_t)st->st_ino);
  put32(major(st->st_rdev));
  put32(minor(st->st_rdev));
  put64((uint64_t)st->st_atim.tv_sec), put32((uint32_t)st->st_atim.tv_nsec);
  put64((uint64_t)st->st_mtim.tv_sec), put32((uint32_t)st->st_mtim.tv_nsec);
  put64((uint64_t)st->st_ctim.tv_sec), put32((uint32_t)st->st_ctim.tv_nsec);
  put_bytes(w->path, strlen(w->path));
  put_bytes(target, (size_t)tlen);
  put8((unsigned)hashed);
  if (hashed) put(digest, 32);
  if (w->content && S_ISREG(st->st_mode)) put_content(w, dirfd, name, st);
  /* Listed, but its content could not be read for its hash: said after it, with why. */
  if (hash_err > 0) put_error(hash_err, w->path);
  return 0;
}

/* Room in w->path for a path of `len` bytes; 0 when a record cannot hold it. */
static int path_room(struct walk *w, size_t len) {
  if (len >= APPL_RECORD_PATH_MAX) return 0;
  if (len < w->path_cap) return 1;
  size_t cap = w->path_cap * 2 > len ? w->path_cap * 2 : len + 1;
  char *more = realloc(w->path, cap < APPL_RECORD_PATH_MAX ? cap : APPL_RECORD_PATH_MAX);
  if (!more) fatal("out of memory");
  w->path = more, w->path_cap = cap < APPL_RECORD_PATH_MAX ? cap : APPL_RECORD_PATH_MAX;
  return 1;
}

static int by_bytes(const void *a, const void *b) {
  return strcmp(*(char *const *)a, *(char *const *)b);
}

/* The entries below the directory open as `dirfd` (w->path), depth first, names in byte order. */
static void walk_below(struct walk *w, int dirfd, int depth) {
  DIR *d = fdopendir(dup(dirfd));
  if (!d) {
    put_error(errno, w->path);
    return;
  }
  size_t n = 0, cap = 64;
  char **names = malloc(cap * sizeof *names);
  struct dirent *e;
  errno = 0;
  while (names && (e = readdir(d))) {
    if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, "..")) continue;
    if (n == cap) {
      char **more = realloc(names, (cap *= 2) * sizeof *names);
      if (!more) break;
      names = more;
    }
    if (!(names[n] = strdup(e->d_name))) break;
    n++;
  }
  if (errno) put_error(errno, w->path);
  closedir(d);
  if (!names) fatal("out of memory");
  qsort(names, n, sizeof *names, by_bytes);
  /* Bytes queued by read_ahead for each name, the window's total, and the next name to queue. */
  off_t *queued = w->content || w->hash ? calloc(n ? n : 1, sizeof *queued) : NULL;
  off_t window = 0;
  size_t ahead = 0;
  size_t base = strlen(w->path);
  for (size_t i = 0; i < n; i++) {
    while (queued && ahead < n && (ahead <= i || window < AHEAD_BYTES)) {
      queued[ahead] = read_ahead(w, dirfd, names[ahead]);
      window += queued[ahead++];
    }
    if (!path_room(w, base + 1 + strlen(names[i]))) {
      put_error(ENAMETOOLONG, w->path);
    } else {
      snprintf(w->path + base, w->path_cap - base, "%s%s", base > 1 ? "/" : "", names[i]);
      struct stat st;
      if (put_entry(w, dirfd, names[i], &st) == 0 && S_ISDIR(st.st_mode) && depth > 1 && same_fs(w, dirfd, names[i], &st)) {
        int sub = openat(dirfd, names[i], O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
        if (sub < 0) put_error(errno, w->path);
        else {
          walk_below(w, sub, depth - 1);
          close(sub);
        }
      }
      w->path[base] = '\0';
    }
    if (queued) window -= queued[i];
    free(names[i]);
  }
  free(queued);
  free(names);
}

int cmd_walk(int argc, char **argv) {
  if (argc != 4) fatal("walk: give ROOT PATH FLAGS DEPTH");
  struct walk w = {.rootfd = open_root(argv[0])};
  w.hash = strchr(argv[2], APPL_WALK_HASH) != NULL;
  w.follow = strchr(argv[2], APPL_WALK_FOLLOW) != NULL;
  w.one_fs = strchr(argv[2], APPL_WALK_ONE_FS) != NULL;
  w.content = strchr(argv[2], APPL_WALK_CONTENT) != NULL;
  w.defer_big = strchr(argv[2], APPL_WALK_DEFER_BIG) != NULL;
  long depth = strtol(argv[3], NULL, 10);
  const char *start = *argv[1] ? argv[1] : "/";
  if (!path_room(&w, strlen(start))) fatal("walk: a path of %zu bytes; at most %d", strlen(start), APPL_RECORD_PATH_MAX - 1);
  snprintf(w.path, w.path_cap, "%s", start);
  /* PATH itself: as a link unless asked to follow it; its parent is resolved inside the root. */
  int fd = open_in_root(w.rootfd, argv[1], O_PATH | (w.follow ? 0 : O_NOFOLLOW));
  struct stat st;
  if (fd < 0) {
    put_error(errno, w.path);
  } else if (put_entry(&w, fd, "", &st) == 0) {
    w.dev = st.st_dev;
    w.mnt_id = mount_id(fd, "");
    if (S_ISDIR(st.st_mode) && depth > 0) {
      int dir = openat(fd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
      if (dir < 0) put_error(errno, w.path);
      else {
        walk_below(&w, dir, (int)depth);
        close(dir);
      }
    }
  }
  if (fd >= 0) close(fd);
  close(w.rootfd);
  free(w.sent);
  free(w.path);
  flush_out();
  return 0;
}
