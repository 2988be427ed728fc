/* The requests under way, by id: commands, and files being written or read. */
#include "agent.h"

#include <sys/wait.h>

struct req *reqs;

void *xmalloc(size_t n) {
  void *p = malloc(n);
  if (!p) fatal("out of memory");
  return p;
}

void close_fd(int *fd) {
  if (*fd >= 0) close(*fd);
  *fd = -1;
}

void set_nonblock(int fd) {
  fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK);
}

struct req *find_req(uint32_t id) {
  for (struct req *r = reqs; r; r = r->next)
    if (r->id == id) return r;
  return NULL;
}

struct req *new_req(uint32_t id, int kind) {
  struct req *r = xmalloc(sizeof *r);
  memset(r, 0, sizeof *r);
  r->id = id;
  r->kind = kind;
  r->out_fd = r->err_fd = r->in_fd = r->status_fd = r->fd = -1;
  r->out_room = r->err_room = APPL_OUTPUT_WINDOW;
  r->next = reqs;
  reqs = r;
  return r;
}

void free_req(struct req *r) {
  for (struct req **p = &reqs; *p; p = &(*p)->next)
    if (*p == r) {
      *p = r->next;
      break;
    }
  close_fd(&r->out_fd);
  close_fd(&r->err_fd);
  close_fd(&r->in_fd);
  close_fd(&r->status_fd);
  close_fd(&r->fd);
  free(r->in_buf);
  free(r->path);
  free(r);
}

/* EXIT goes once the command has exited and all its output and its start report have been read. */
void maybe_finish(struct req *r) {
  if (!r->reaped || r->out_fd >= 0 || r->err_fd >= 0 || r->status_fd >= 0) return;
  unsigned char b[APPL_PAYLOAD_EXIT];
  int sig = WIFSIGNALED(r->status) ? WTERMSIG(r->status) : 0;
  appl_put32(b + APPL_AT_EXIT_CODE, sig ? (uint32_t)-1 : (uint32_t)WEXITSTATUS(r->status));
  appl_put32(b + APPL_AT_EXIT_SIGNAL, (uint32_t)sig);
  appl_put32(b + APPL_AT_EXIT_DURATION_MS, (uint32_t)(r->end_ms - r->start_ms));
  send_frame(APPL_T_EXIT, r->id, b, sizeof b);
  free_req(r);
}
