/* WRITE_FILE and READ_FILE: files moved in and out of the guest. */
#include "agent.h"

#include <sys/stat.h>

void handle_write_file(uint32_t id, const unsigned char *p, uint32_t len) {
  const unsigned char *cur = p + APPL_PAYLOAD_WRITE_FILE_HEAD;
  const char *path = len > APPL_PAYLOAD_WRITE_FILE_HEAD ? next_str(&cur, p + len) : NULL;
  if (!path || !*path) {
    send_error(id, EINVAL, "malformed WRITE_FILE request");
    return;
  }
  uint32_t mode = appl_get32(p) & 07777;
  /* Regular files only: O_NONBLOCK so that a FIFO (no reader: ENXIO) or a device cannot
   * hold PID 1 in open(), and no symlink as the last component. */
  int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOCTTY | O_NONBLOCK | O_NOFOLLOW, mode);
  struct stat st;
  int special = fd < 0 ? errno == ENXIO : fstat(fd, &st) == 0 && !S_ISREG(st.st_mode);
  if (special) {
    if (fd >= 0) close(fd);
    send_error(id, EINVAL, "cannot write %s: not a regular file (a FIFO, device or socket)", path);
    return;
  }
  if (fd < 0 && errno == ELOOP && lstat(path, &st) == 0 && S_ISLNK(st.st_mode)) {
    send_error(id, ELOOP, "cannot write %s: it is a symbolic link, which writeFile does not follow", path);
    return;
  }
  if (fd < 0) {
    send_error(id, errno, "cannot write %s: %s", path, strerror(errno));
    return;
  }
  struct req *r = new_req(id, R_WRITE);
  r->fd = fd;
  r->mode = mode;
  r->path = strdup(path);
  if (!r->path) fatal("out of memory");
}

void handle_write_data(struct req *r, uint8_t flags, const unsigned char *p, uint32_t len) {
  int e = 0;
  for (uint32_t done = 0; done < len;) {
    ssize_t n = write(r->fd, p + done, len - done);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) {
      e = errno;
      break;
    }
    done += (uint32_t)n;
  }
  if (!e && len) return;
  if (!e && flags & APPL_F_ABORT) {
    e = ECANCELED;
    unlink(r->path);
  } else if (!e && fchmod(r->fd, r->mode) < 0) {
    e = errno; /* the umask must not change the mode the host asked for */
  }
  if (close(r->fd) < 0 && !e) e = errno;
  r->fd = -1;
  if (e) send_error(r->id, e, "cannot write %s: %s", r->path, strerror(e));
  else send_frame(APPL_T_OK, r->id, NULL, 0);
  free_req(r);
}

void handle_read_file(uint32_t id, const unsigned char *p, uint32_t len) {
  const unsigned char *cur = p;
  const char *path = next_str(&cur, p + len);
  if (!path || !*path) {
    send_error(id, EINVAL, "malformed READ_FILE request");
    return;
  }
  int fd = open(path, O_RDONLY | O_CLOEXEC | O_NONBLOCK | O_NOCTTY);
  struct stat st;
  if (fd >= 0 && fstat(fd, &st) == 0 && S_ISDIR(st.st_mode)) {
    close(fd);
    fd = -1;
    errno = EISDIR;
  }
  if (fd < 0) {
    send_error(id, errno, "cannot read %s: %s", path, strerror(errno));
    return;
  }
  struct req *r = new_req(id, R_READ);
  r->fd = fd;
  r->path = strdup(path);
  if (!r->path) fatal("out of memory");
}
