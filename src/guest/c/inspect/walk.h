/* A walk's state, shared by its traversal (walk.c) and its files' data (content.c). */
#ifndef APPLIANCE_WALK_H
#define APPLIANCE_WALK_H

#include "inspect.h"

struct walk {
  int rootfd;
  int hash, follow, one_fs, content, defer_big; /* its flags (APPL_WALK_*) */
  /* Inodes whose content was sent (hard links), as (dev, ino), open addressing. */
  uint64_t *sent;
  size_t sent_cap, sent_n;
  dev_t dev;
  uint64_t mnt_id; /* the walk's mount (statx), 0 if the kernel cannot tell */
  /* The entry's path in the filesystem, from "/": grown as the walk goes deeper, up to
   * APPL_RECORD_PATH_MAX (the walk itself goes by descriptor, so PATH_MAX is no limit). */
  char *path;
  size_t path_cap;
};

/* content.c */
int hash_file(int dirfd, const char *name, unsigned char out[32]);
void put_content(struct walk *w, int dirfd, const char *name, const struct stat *st);
off_t read_ahead(struct walk *w, int dirfd, const char *name);
/*
 * Read-ahead of a folder's regular files ahead of their turn, when the walk reads their
 * data (content or hashes). Read one at a time, each file is a disk request of its own
 * that the walk waits for (~0.3-0.5 ms each under TCG); asked for ahead (readahead(2)
 * only queues the reads), they are in flight together, and qemu serves them in parallel
 * on the host's other cores. Measured in a restored VM, 200 files of 0.1-20 KB on xfs,
 * cold: read one by one 64-111 ms, read after a readahead of each 40-49 ms. The window
 * bounds the page cache the walk fills ahead of the host's reading; files the host reads
 * apart (flag b) are left alone.
 */
#define AHEAD_BYTES (8 << 20)

#endif
