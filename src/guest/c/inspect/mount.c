/* Read-only mounts of the inspected filesystems, their unmounting and their statfs. */
#include "inspect.h"

#include <sys/mount.h>
#include <sys/statfs.h>

/* The kernel's messages since `from` (an open /dev/kmsg), as one escaped field. */
static void kernel_says(int kmsg) {
  char rec[1024], all[SAID_MAX] = "";
  size_t len = 0;
  ssize_t n;
  while (kmsg >= 0 && (n = read(kmsg, rec, sizeof rec - 1)) > 0) {
    rec[n] = '\0';
    char *text = strchr(rec, ';'); /* "prio,seq,time,flags;message\n" */
    if (!text) continue;
    text++;
    text[strcspn(text, "\n")] = '\0';
    int w = snprintf(all + len, sizeof all - len, "%s%s", len ? " / " : "", text);
    if (w < 0 || (size_t)w >= sizeof all - len) break;
    len += (size_t)w;
  }
  if (len) field(APPL_FIELD_KERNEL, all);
}

static void mkdirs(const char *path) {
  char p[4096];
  snprintf(p, sizeof p, "%s", path);
  for (char *s = p + 1; *s; s++)
    if (*s == '/') {
      *s = '\0';
      mkdir(p, 0755);
      *s = '/';
    }
  mkdir(p, 0755);
}

/* A mounted filesystem's size and use, as fields of the current line. */
int statfs_fields(const char *dir) {
  struct statfs s;
  if (statfs(dir, &s) < 0) return errno;
  field_u64(APPL_FIELD_FRSIZE, (uint64_t)s.f_frsize);
  field_u64(APPL_FIELD_BLOCKS, (uint64_t)s.f_blocks);
  field_u64(APPL_FIELD_BFREE, (uint64_t)s.f_bfree);
  field_u64(APPL_FIELD_BAVAIL, (uint64_t)s.f_bavail);
  field_u64(APPL_FIELD_FILES, (uint64_t)s.f_files);
  field_u64(APPL_FIELD_FFREE, (uint64_t)s.f_ffree);
  return 0;
}
int cmd_mount(int argc, char **argv) {
  if (argc % 4) fatal("mount: give DEV DIR TYPE OPTS quadruples");
  const size_t prefix = strlen(APPL_FUSE_TYPE_PREFIX);
  for (int i = 0; i < argc; i += 4) {
    const char *dev = argv[i], *dir = argv[i + 1], *type = argv[i + 2], *opts = argv[i + 3];
    mkdirs(dir);
    int err;
    if (!strncmp(type, APPL_FUSE_TYPE_PREFIX, prefix)) {
      char said[SAID_MAX];
      err = fuse_mount(type + prefix, dev, dir, opts, said);
      field(APPL_FIELD_DIR, dir);
      field_u64(APPL_FIELD_ERRNO, (uint64_t)err);
      if (err && said[0]) field(APPL_FIELD_KERNEL, said);
    } else {
      int kmsg = open("/dev/kmsg", O_RDONLY | O_NONBLOCK | O_CLOEXEC);
      if (kmsg >= 0) lseek(kmsg, 0, SEEK_END);
      err = mount(dev, dir, type, MS_RDONLY | MS_NOSUID | MS_NODEV | MS_NOEXEC, opts) < 0 ? errno : 0;
      field(APPL_FIELD_DIR, dir);
      field_u64(APPL_FIELD_ERRNO, (uint64_t)err);
      if (err) kernel_says(kmsg);
      if (kmsg >= 0) close(kmsg);
    }
    if (!err) statfs_fields(dir);
    end_line();
  }
  return 0;
}

int cmd_umount(int argc, char **argv) {
  for (int i = 0; i < argc; i++) {
    field(APPL_FIELD_DIR, argv[i]);
    field_u64(APPL_FIELD_ERRNO, (uint64_t)umount_dir(argv[i]));
    end_line();
  }
  return 0;
}

int cmd_statfs(int argc, char **argv) {
  for (int i = 0; i < argc; i++) {
    field(APPL_FIELD_DIR, argv[i]);
    field_u64(APPL_FIELD_ERRNO, (uint64_t)statfs_fields(argv[i]));
    end_line();
  }
  return 0;
}
