/* The inspect helper's server (contract.ts INSPECT_COMMAND.serve): its commands without a fork and an exec each. */
#include "agent.h"

#include <sys/socket.h>

struct server server = {-1, -1, 0, 0};

/* Starts `inspect serve` when the root has the helper; without one, commands fork as ever. */
void start_server(void) {
  if (access(APPL_INSPECT_PATH, X_OK) < 0) return;
  int sv[2], ep[2] = {-1, -1};
  if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv) < 0) return;
  int null = open("/dev/null", O_RDWR | O_CLOEXEC);
  char *argv[] = {APPL_INSPECT_PATH, APPL_CMD_SERVE, NULL};
  pid_t pid = null >= 0 && pipe2(ep, O_CLOEXEC) == 0 ? fork() : -1;
  if (pid == 0) run_child(ep[1], sv[1], null, null, NULL, "", argv, chan.base_env);
  close(sv[1]);
  close_fd(&null);
  close_fd(&ep[1]);
  /* Its start report: end of file once it runs the helper. */
  struct child_error ce;
  ssize_t n = -1;
  while (pid > 0 && (n = read(ep[0], &ce, sizeof ce)) < 0 && errno == EINTR) {}
  close_fd(&ep[0]);
  if (n != 0) {
    if (n > 0) say("no inspect server: %s", ce.msg);
    close(sv[0]);
    return; /* a child that failed to start is reaped with the others */
  }
  server.pid = pid;
  server.fd = sv[0];
  set_nonblock(server.fd);
}

/* The server has exited (reaped): commands fork from now on. The one it served is reaped below it. */
void server_gone(void) {
  close_fd(&server.fd);
  server.pid = -1;
  server.busy = 0;
}

/*
 * Runs a command of the inspect helper in the server when it is free: r takes its output
 * pipes as a child's, and the server's pid (a signal for the command goes to the server,
 * which ends with it). 0: not served (another program, a server busy or gone, a request
 * too long), and nothing has changed.
 */
int serve_exec(struct req *r, char **argv, uint32_t argc) {
  if (server.fd < 0 || server.busy || argc < 2 || argc > APPL_SERVE_ARGS_MAX || strcmp(argv[0], APPL_INSPECT_PATH)) return 0;
  static char buf[APPL_SERVE_REQUEST_MAX];
  size_t len = 0;
  for (uint32_t i = 1; i < argc; i++) {
    size_t k = strlen(argv[i]) + 1;
    if (len + k > sizeof buf) return 0;
    memcpy(buf + len, argv[i], k);
    len += k;
  }
  int out[2] = {-1, -1}, err[2] = {-1, -1};
  if (pipe2(out, O_CLOEXEC) < 0 || pipe2(err, O_CLOEXEC) < 0) {
    close_fd(&out[0]), close_fd(&out[1]);
    return 0;
  }
  union {
    struct cmsghdr h;
    char space[CMSG_SPACE(2 * sizeof(int))];
  } ctl;
  memset(&ctl, 0, sizeof ctl);
  struct iovec iov = {buf, len};
  struct msghdr msg = {.msg_iov = &iov, .msg_iovlen = 1, .msg_control = ctl.space, .msg_controllen = sizeof ctl.space};
  struct cmsghdr *c = CMSG_FIRSTHDR(&msg);
  c->cmsg_level = SOL_SOCKET;
  c->cmsg_type = SCM_RIGHTS;
  c->cmsg_len = CMSG_LEN(2 * sizeof(int));
  memcpy(CMSG_DATA(c), (int[]){out[1], err[1]}, 2 * sizeof(int));
  ssize_t sent;
  while ((sent = sendmsg(server.fd, &msg, MSG_NOSIGNAL | MSG_DONTWAIT)) < 0 && errno == EINTR) {}
  close_fd(&out[1]);
  close_fd(&err[1]);
  if (sent != (ssize_t)len) {
    close_fd(&out[0]);
    close_fd(&err[0]);
    return 0;
  }
  server.busy = 1;
  server.req = r->id;
  r->served = 1;
  r->pid = server.pid;
  r->start_ms = clock_ms(CLOCK_MONOTONIC);
  r->out_fd = out[0];
  r->err_fd = err[0];
  set_nonblock(r->out_fd);
  set_nonblock(r->err_fd);
  fcntl(r->out_fd, F_SETPIPE_SZ, PIPE_SIZE);
  return 1;
}

/* The server's reply: the served command's exit status. Its end is left to reap(). */
void server_said(void) {
  int status;
  ssize_t n = recv(server.fd, &status, sizeof status, MSG_DONTWAIT);
  if (n < 0 && (errno == EAGAIN || errno == EINTR)) return;
  if (n != sizeof status) { /* it is exiting: reap() takes it, and the command with it */
    close_fd(&server.fd);
    return;
  }
  server.busy = 0;
  struct req *r = find_req(server.req);
  if (!r || !r->served || r->reaped) return;
  r->reaped = 1;
  r->status = (status & 0xff) << 8;
  r->end_ms = clock_ms(CLOCK_MONOTONIC);
  maybe_finish(r);
}
