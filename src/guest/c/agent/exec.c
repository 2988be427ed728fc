/* EXEC: commands started (forked, or in the inspect helper's server), and their ends. */
#include "agent.h"

#include <signal.h>
#include <sys/ioctl.h>
#include <sys/signalfd.h>
#include <sys/wait.h>

extern char **environ;

/* Next NUL-terminated string of a payload, or NULL when it is missing. */
const char *next_str(const unsigned char **cur, const unsigned char *end) {
  const unsigned char *nul = memchr(*cur, 0, (size_t)(end - *cur));
  if (!nul) return NULL;
  const char *s = (const char *)*cur;
  *cur = nul + 1;
  return s;
}

static void set_env(char **env, size_t *n, const char *kv) {
  size_t name = strcspn(kv, "=");
  for (size_t i = 0; i < *n; i++)
    if (!strncmp(env[i], kv, name) && env[i][name] == '=') {
      env[i] = (char *)kv;
      return;
    }
  env[(*n)++] = (char *)kv;
}


/* A request that could not start still ends with EXIT, as the protocol promises. */
static void exec_failed(struct req *r, int code) {
  r->reaped = 1;
  r->status = code << 8;
  r->start_ms = r->end_ms = clock_ms(CLOCK_MONOTONIC);
  maybe_finish(r);
}

/* The child's side of a start: its stdio, session and folder, then the exec. */
void run_child(int errpipe, int in, int out, int err, const char *slave, const char *cwd, char **argv, char **envp) {
  sigset_t none;
  sigemptyset(&none);
  sigprocmask(SIG_SETMASK, &none, NULL);
  signal(SIGPIPE, SIG_DFL);
  setsid();
  struct child_error ce = {0, ""};
  int code = 126;
  if (slave) {
    in = out = err = open(slave, O_RDWR);
    if (in < 0 || ioctl(in, TIOCSCTTY, 0) < 0) {
      ce.err = errno;
      snprintf(ce.msg, sizeof ce.msg, "cannot open the terminal %s: %s", slave, strerror(ce.err));
      goto fail;
    }
  }
  dup2(in, 0);
  dup2(out, 1);
  dup2(err, 2);
  /* With starts no longer waited for, a child that hangs before its exec must not hold
   * other commands' pipes open meanwhile. */
  close_others(errpipe);
  if (chdir(*cwd ? cwd : "/") < 0) {
    ce.err = errno;
    snprintf(ce.msg, sizeof ce.msg, "cannot change directory to %s: %s", cwd, strerror(ce.err));
    goto fail;
  }
  environ = envp;
  execvp(argv[0], argv);
  ce.err = errno;
  if (ce.err == ENOENT) {
    code = 127; /* as a shell says it */
    snprintf(ce.msg, sizeof ce.msg, "%s: command not found", argv[0]);
  } else {
    snprintf(ce.msg, sizeof ce.msg, "%s: %s", argv[0], strerror(ce.err));
  }
fail:
  while (write(errpipe, &ce, sizeof ce) < 0 && errno == EINTR) {}
  _exit(code);
}

/* The child's status pipe: a report of why it could not start, or end of file once it
 * has exec'd. Read in the poll loop: a child may take its time (or hang) before its exec. */
void read_status(struct req *r) {
  struct child_error ce;
  ssize_t n = read(r->status_fd, &ce, sizeof ce);
  if (n < 0 && (errno == EAGAIN || errno == EINTR)) return;
  close_fd(&r->status_fd);
  if (n == sizeof ce) {
    ce.msg[sizeof ce.msg - 1] = '\0';
    send2(APPL_T_STDERR, 0, r->id, ce.msg, strlen(ce.msg), "\n", 1);
    send_error(r->id, ce.err, "%s", ce.msg);
  }
  maybe_finish(r);
}

/* An EXEC request's command line: argv, and envp laid over the base environment. */
struct exec_request {
  const char *cwd;
  char **argv, **envp;
  uint32_t argc, envc;
};

/* Parses an EXEC payload; 0, or -1 when it is malformed (nothing is left allocated). */
static int parse_exec(const unsigned char *p, uint32_t len, struct exec_request *x) {
  int head = len >= APPL_PAYLOAD_EXEC_HEAD;
  const unsigned char *cur = p + APPL_PAYLOAD_EXEC_HEAD, *end = p + len;
  x->argc = head ? appl_get32(p + APPL_AT_EXEC_ARGC) : 0;
  x->envc = head ? appl_get32(p + APPL_AT_EXEC_ENVC) : 0;
  x->cwd = head ? next_str(&cur, end) : NULL;
  /* Each string takes at least one byte: this bounds the arrays by the payload size. */
  if (!x->cwd || x->argc == 0 || x->argc > len || x->envc > len) return -1;
  x->argv = xmalloc((x->argc + 1) * sizeof *x->argv);
  x->envp = xmalloc((x->envc + sizeof chan.base_env / sizeof *chan.base_env + 1) * sizeof *x->envp);
  size_t nenv = 0;
  int ok = 1;
  for (char **b = chan.base_env; *b; b++) x->envp[nenv++] = *b;
  for (uint32_t i = 0; ok && i < x->argc; i++) ok = (x->argv[i] = (char *)next_str(&cur, end)) != NULL;
  for (uint32_t i = 0; ok && i < x->envc; i++) {
    const char *kv = next_str(&cur, end);
    if (kv && strchr(kv, '=')) set_env(x->envp, &nenv, kv);
    else ok = 0;
  }
  x->argv[x->argc] = NULL;
  x->envp[nenv] = NULL;
  if (ok) return 0;
  free(x->argv);
  free(x->envp);
  return -1;
}

/* The command's stdio: a terminal (`slave`, with `*master` ours), or pipes (in[0], out[1], err[1] the child's). 0 or -1. */
static int make_stdio(uint8_t flags, const unsigned char *p, int in[2], int out[2], int err[2], int *master, char slave[32]) {
  if (!(flags & APPL_F_PTY)) {
    return pipe2(out, O_CLOEXEC) == 0 && pipe2(err, O_CLOEXEC) == 0 &&
                   (flags & APPL_F_STDIN ? pipe2(in, O_CLOEXEC) == 0 : (in[0] = open("/dev/null", O_RDONLY | O_CLOEXEC)) >= 0)
               ? 0
               : -1;
  }
  unsigned n;
  struct winsize ws = {appl_get16(p + APPL_AT_EXEC_ROWS), appl_get16(p + APPL_AT_EXEC_COLS), 0, 0};
  int ok = (*master = posix_openpt(O_RDWR | O_NOCTTY | O_CLOEXEC)) >= 0 && grantpt(*master) == 0 && unlockpt(*master) == 0 &&
           ioctl(*master, TIOCGPTN, &n) == 0;
  if (ok) snprintf(slave, 32, "/dev/pts/%u", n);
  if (ok && ws.ws_row && ws.ws_col) ioctl(*master, TIOCSWINSZ, &ws);
  return ok ? 0 : -1;
}

/* The request's ends of a started command's stdio and status pipe, non-blocking. */
static void keep_ends(struct req *r, uint8_t flags, int in, int out, int err, int master, int status) {
  if (r->pty) {
    r->out_fd = master;
    r->in_fd = (flags & APPL_F_STDIN) ? fcntl(master, F_DUPFD_CLOEXEC, 3) : -1;
  } else {
    r->out_fd = out;
    r->err_fd = err;
    r->in_fd = in;
  }
  if (r->out_fd >= 0) set_nonblock(r->out_fd);
  if (r->err_fd >= 0) set_nonblock(r->err_fd);
  /* stdout is where bulk output comes (stderr keeps the default size); a smaller pipe
   * (the kernel's limits) works too. */
  if (!r->pty) fcntl(r->out_fd, F_SETPIPE_SZ, PIPE_SIZE);
  if (r->in_fd >= 0) set_nonblock(r->in_fd);
  r->status_fd = status;
  set_nonblock(r->status_fd);
}

/* Forks the command of `x` for `r`. */
static void start_child(struct req *r, uint8_t flags, const unsigned char *p, struct exec_request *x) {
  int in[2] = {-1, -1}, out[2] = {-1, -1}, err[2] = {-1, -1}, ep[2] = {-1, -1};
  char slave[32] = "";
  int master = -1;
  r->pty = (flags & APPL_F_PTY) != 0;
  int ok = make_stdio(flags, p, in, out, err, &master, slave) == 0 && pipe2(ep, O_CLOEXEC) == 0;
  pid_t pid = ok ? fork() : -1;
  if (pid == 0) run_child(ep[1], in[0], out[1], err[1], r->pty ? slave : NULL, x->cwd, x->argv, x->envp);
  int fork_errno = errno;
  close_fd(&in[0]);
  close_fd(&out[1]);
  close_fd(&err[1]);
  close_fd(&ep[1]);
  if (pid < 0) {
    int *ours[] = {&in[1], &out[0], &err[0], &ep[0], &master};
    for (size_t i = 0; i < sizeof ours / sizeof *ours; i++) close_fd(ours[i]);
    send_error(r->id, fork_errno, "cannot start the command: %s", strerror(fork_errno));
    exec_failed(r, 126);
    return;
  }
  r->pid = pid;
  r->start_ms = clock_ms(CLOCK_MONOTONIC);
  keep_ends(r, flags, in[1], out[0], err[0], master, ep[0]);
}

void handle_exec(uint32_t id, uint8_t flags, const unsigned char *p, uint32_t len) {
  if (find_req(id)) {
    send_error(id, EEXIST, "request id %u is already in use", id);
    return;
  }
  struct req *r = new_req(id, R_EXEC);
  struct exec_request x;
  if (parse_exec(p, len, &x) < 0) {
    send_error(id, EINVAL, "malformed EXEC request");
    exec_failed(r, 127);
    return;
  }
  /* The inspect helper's plain commands go to its server while it is free. */
  int plain = !(flags & (APPL_F_PTY | APPL_F_STDIN)) && x.envc == 0 && !*x.cwd;
  if (!plain || !serve_exec(r, x.argv, x.argc)) start_child(r, flags, p, &x);
  free(x.argv);
  free(x.envp);
}

void reap(void) {
  struct signalfd_siginfo si;
  while (read(chan.sigfd, &si, sizeof si) > 0) {}
  int st;
  pid_t pid;
  /* As PID 1 this also reaps the orphans the kernel hands us. */
  while ((pid = waitpid(-1, &st, WNOHANG)) > 0) {
    if (pid == server.pid) server_gone();
    for (struct req *r = reqs; r; r = r->next)
      if (r->kind == R_EXEC && r->pid == pid && !r->reaped) {
        r->reaped = 1;
        r->status = st;
        r->end_ms = clock_ms(CLOCK_MONOTONIC);
        maybe_finish(r);
        break;
      }
  }
}
