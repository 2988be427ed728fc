/* btrfs-forget: btrfs device registrations the kernel keeps across mounts. */
#include "inspect.h"

#include <sys/ioctl.h>

/* BTRFS_IOC_FORGET_DEV with no path: the kernel forgets every device it scanned that no
 * mounted filesystem uses, so that mounting one of two cloned images reads that one. */
int cmd_btrfs_forget(int argc, char **argv) {
  (void)argc, (void)argv;
  struct {
    int64_t fd;
    char name[4088];
  } args = {0, ""};
  int fd = open("/dev/btrfs-control", O_RDWR | O_CLOEXEC);
  int r = fd < 0 ? -1 : ioctl(fd, _IOW(0x94, 5, char[4096]), &args);
  field_u64(APPL_FIELD_ERRNO, r < 0 ? (uint64_t)errno : 0);
  end_line();
  if (fd >= 0) close(fd);
  flush_out();
  return 0;
}
