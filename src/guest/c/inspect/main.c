/* The helper's entry: one command (argv), or the agent's server of commands (serve). */
#include "inspect.h"

#include <sys/socket.h>

/* The commands, by name (contract.ts INSPECT_COMMAND). */
static const struct {
  const char *name;
  int (*run)(int argc, char **argv);
} COMMANDS[] = {
    {APPL_CMD_DEVICES, cmd_devices}, {APPL_CMD_READ, cmd_read},     {APPL_CMD_MOUNT, cmd_mount},
    {APPL_CMD_UMOUNT, cmd_umount},   {APPL_CMD_STATFS, cmd_statfs}, {APPL_CMD_WALK, cmd_walk},
    {APPL_CMD_CAT, cmd_cat},         {APPL_CMD_READ_FILES, cmd_read_files}, {APPL_CMD_BTRFS_FORGET, cmd_btrfs_forget},
};

/* One command: argv[0] is the program, argv[1] the command. Its exit status. */
static int run_command(int argc, char **argv) {
  out_reset();
  for (size_t i = 0; argc >= 2 && i < sizeof COMMANDS / sizeof *COMMANDS; i++) {
    if (strcmp(argv[1], COMMANDS[i].name)) continue;
    int r = COMMANDS[i].run(argc - 2, argv + 2);
    flush_out();
    return r;
  }
  if (argc < 2) say("usage: inspect COMMAND ARGS… (commands: see contract.ts INSPECT_COMMAND)");
  else say("unknown command %s", argv[1]);
  return 2;
}

/* ---- serving (contract.ts INSPECT_COMMAND.serve) ---- */

/* The next request on `sock`: its arguments into argv (argv[0] is set), its stdout and
 * stderr onto 1 and 2. The argument count; 0 once the agent has gone, -1 for a bad request. */
static int next_request(int sock, char *buf, char **argv) {
  union {
    struct cmsghdr h;
    char space[CMSG_SPACE(2 * sizeof(int))];
  } ctl;
  struct iovec iov = {buf, APPL_SERVE_REQUEST_MAX};
  struct msghdr msg = {.msg_iov = &iov, .msg_iovlen = 1, .msg_control = ctl.space, .msg_controllen = sizeof ctl.space};
  ssize_t len;
  while ((len = recvmsg(sock, &msg, MSG_CMSG_CLOEXEC)) < 0 && errno == EINTR) {}
  if (len <= 0) return 0;
  int fds[2] = {-1, -1};
  struct cmsghdr *c = CMSG_FIRSTHDR(&msg);
  if (c && c->cmsg_level == SOL_SOCKET && c->cmsg_type == SCM_RIGHTS && c->cmsg_len == CMSG_LEN(sizeof fds))
    memcpy(fds, CMSG_DATA(c), sizeof fds);
  int ok = fds[0] >= 0 && fds[1] >= 0 && !(msg.msg_flags & (MSG_TRUNC | MSG_CTRUNC)) && buf[len - 1] == '\0';
  if (ok) ok = dup2(fds[0], 1) == 1 && dup2(fds[1], 2) == 2;
  for (int i = 0; i < 2; i++)
    if (fds[i] > 2) close(fds[i]);
  if (!ok) return -1;
  int argc = 1;
  for (char *p = buf; p < buf + len && argc < APPL_SERVE_ARGS_MAX; p += strlen(p) + 1) argv[argc++] = p;
  argv[argc] = NULL;
  return argc;
}

/* inspect serve: the agent's commands, one at a time, in this process. */
static int cmd_serve(char *self) {
  struct stat st;
  int sock = fcntl(0, F_DUPFD_CLOEXEC, 3);
  if (sock < 0 || fstat(sock, &st) < 0 || !S_ISSOCK(st.st_mode)) fatal("serve: stdin is not the agent's socket");
  int null = open("/dev/null", O_RDWR);
  if (null < 0 || dup2(null, 0) < 0) fatal("serve: /dev/null: %s", strerror(errno));
  close(null);
  static char buf[APPL_SERVE_REQUEST_MAX];
  static char *argv[APPL_SERVE_ARGS_MAX + 1];
  argv[0] = self;
  for (;;) {
    int argc = next_request(sock, buf, argv);
    if (argc == 0) return 0;
    int status = argc < 0 ? 2 : run_command(argc, argv);
    /* Its pipes closed (the agent waits for their end), and whatever the command left open. */
    dup2(0, 1);
    dup2(0, 2);
    close_others(sock);
    if (send(sock, &status, sizeof status, MSG_NOSIGNAL) != sizeof status) return 0;
  }
}

int main(int argc, char **argv) {
  if (argc == 2 && !strcmp(argv[1], APPL_CMD_SERVE)) return cmd_serve(argv[0]);
  return run_command(argc, argv);
}
