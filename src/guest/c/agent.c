/*
 * appliance agent: PID 1 in the root after the init's switch. Serves the host over the
 * virtio-serial port APPL_PORT_NAME with the framed protocol of protocol.h: runs
 * commands (several at once), streams their output, moves files in and out, powers off.
 *
 * One poll loop, no threads. Small replies go through a bounded outgoing queue. Bulk data
 * (command output, files) stays in pipes and is moved to the port with splice(), one frame
 * at a time and only while the port is idle: the port takes the pipe's pages as they are,
 * without a copy (under TCG every byte the guest copies costs, and this is what bounded
 * the throughput). While the host is slow to read, the agent stops taking command output,
 * so commands block on their full pipes (backpressure end to end) and nothing is lost.
 *
 * `agent --connect SOCKET` talks over a unix socket instead, as an ordinary process,
 * so the host tests can run it without a VM.
 */
#define _GNU_SOURCE
#include "protocol.h"
#define LOG_PREFIX APPL_AGENT_LOG_PREFIX
#include "util.h"
#include "snapshot-point.h"
#include "serve.h"

#include <dirent.h>
#include <poll.h>
#include <signal.h>
#include <sys/ioctl.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/un.h>
#include <sys/wait.h>

/* Above this many queued bytes the agent stops reading command output and files. */
#define OUTQ_HIGH (1024 * 1024)
/* Size asked for commands' stdout pipes (the default is 64 KiB): fewer wake-ups of the
 * command and the agent, full frames; it still bounds what a command writes ahead. */
#define PIPE_SIZE (1024 * 1024)
/* The stage's size (below): a frame's worth of buffers even when they are small. */
#define STAGE_SIZE (256 * 1024)
#define PORT_WAIT_MS 10000

extern char **environ;

static int port = -1;
static int on_port;     /* the virtio-serial port (not --connect) */
static int host_spoke;  /* bytes came from the host: a hangup now means it has gone */
static int waiting_host; /* the port says hangup because no host is connected yet */
static int sigfd = -1;
static char *base_env[4];

static void *xmalloc(size_t n) {
  void *p = malloc(n);
  if (!p) fatal("out of memory");
  return p;
}

/* ---- outgoing queue ---- */

struct out {
  struct out *next;
  size_t len, off;
  unsigned char data[];
};
static struct out *oq_head, **oq_tail = &oq_head;
static size_t oq_bytes;

static void send2(uint8_t type, uint8_t flags, uint32_t id, const void *a, size_t alen,
                  const void *b, size_t blen) {
  struct out *o = xmalloc(sizeof *o + APPL_HEADER_SIZE + alen + blen);
  o->next = NULL;
  o->off = 0;
  o->len = APPL_HEADER_SIZE + alen + blen;
  appl_put_header(o->data, (uint32_t)(alen + blen), type, flags, id);
  if (alen) memcpy(o->data + APPL_HEADER_SIZE, a, alen);
  if (blen) memcpy(o->data + APPL_HEADER_SIZE + alen, b, blen);
  *oq_tail = o;
  oq_tail = &o->next;
  oq_bytes += o->len;
}

static void send_frame(uint8_t type, uint32_t id, const void *p, size_t n) {
  send2(type, 0, id, p, n, NULL, 0);
}

static void send_u32(uint8_t type, uint32_t id, uint32_t v) {
  unsigned char b[4];
  appl_put32(b, v);
  send_frame(type, id, b, 4);
}

static __attribute__((format(printf, 3, 4))) void send_error(uint32_t id, int err,
                                                             const char *fmt, ...) {
  char msg[1024];
  va_list ap;
  va_start(ap, fmt);
  int n = vsnprintf(msg, sizeof msg, fmt, ap);
  va_end(ap);
  if (n < 0) n = 0;
  if ((size_t)n >= sizeof msg) n = sizeof msg - 1;
  unsigned char e[4];
  appl_put32(e, (uint32_t)err);
  send2(APPL_T_ERROR, 0, id, e, 4, msg, (size_t)n);
}

/*
 * Spliced frames. Each one's payload is first gathered in the stage, a pipe only the
 * agent writes to (from a command's pipe, or from a file: page references, no copy),
 * then its header is written to the port and the stage is spliced to the port whole.
 * Whole, because virtio_console's splice_write (Linux 6.1 at least) sizes its
 * scatterlist by the pipe's occupancy but fills only the buffers it takes: splicing
 * part of a pipe hands the device zero-sized descriptors (qemu then stops the device:
 * "virtio: zero sized buffers are not allowed") and overruns the indirect table. So the
 * stage holds exactly the frame under way (`left` bytes) and nothing else, which is
 * checked before each splice. A frame is begun only when nothing is queued, and nothing
 * else goes to the port until it is out: frames never interleave.
 * What the port gets: a pipe page nobody else holds (a command's output) as it is; a
 * clean page-cache page nobody else holds is taken out of the cache and handed over too
 * (a later read of that file goes to the disk again); any other page (tmpfs) is copied
 * once by the kernel. Copying it here, as before, cost three copies a byte.
 */
static int stage_r = -1, stage_w = -1;
static struct {
  size_t left, hoff; /* payload bytes still in the stage; header bytes written */
  unsigned char hdr[APPL_HEADER_SIZE];
} cur = {0, APPL_HEADER_SIZE, {0}};
static int port_full;       /* the port said EAGAIN: nothing more until it polls writable */
static int splice_port = 1; /* 0 once splicing failed: frames are copied from then on */

/* The port can take a new frame right now: nothing queued or under way before it. */
static int port_idle(void) {
  return !oq_head && !cur.left && cur.hoff == APPL_HEADER_SIZE && !port_full;
}

/* Bytes waiting in a pipe, or -1 when it cannot tell. */
static int pipe_bytes(int fd) {
  int n;
  return ioctl(fd, FIONREAD, &n) < 0 ? -1 : n;
}

/* Splicing to the port failed without taking anything (ENOMEM...): the rest of the frame
 * is read from the stage and goes first in the queue, and later frames are copied. */
static void unsplice(void) {
  splice_port = 0;
  struct out *o = xmalloc(sizeof *o + cur.left);
  o->off = 0;
  o->len = 0;
  while (o->len < cur.left) {
    ssize_t n = read(stage_r, o->data + o->len, cur.left - o->len);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) fatal("the stage lost %zu bytes of a frame", cur.left - o->len);
    o->len += (size_t)n;
  }
  o->next = oq_head;
  if (!oq_head) oq_tail = &o->next;
  oq_head = o;
  oq_bytes += o->len;
  cur.left = 0;
}

/* Moves the frame under way to the port: 0, or -1 when the host has gone (or the frame
 * cannot be completed: the channel must end rather than carry a broken frame). */
static int flush_cur(void) {
  if (!cur.left && cur.hoff == APPL_HEADER_SIZE) return 0;
  while (cur.hoff < APPL_HEADER_SIZE) {
    ssize_t n = write(port, cur.hdr + cur.hoff, APPL_HEADER_SIZE - cur.hoff);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0 && errno == EAGAIN) return port_full = 1, 0;
    if (n < 0) return -1;
    cur.hoff += (size_t)n;
  }
  while (cur.left) {
    int staged = pipe_bytes(stage_r);
    if (staged < 0 || (size_t)staged != cur.left) {
      say("the stage holds %d bytes for a frame that needs %zu: closing the channel", staged, cur.left);
      return -1;
    }
    ssize_t n = splice(stage_r, NULL, port, NULL, cur.left, SPLICE_F_NONBLOCK | SPLICE_F_MOVE);
    if (n > 0) {
      cur.left -= (size_t)n;
      continue;
    }
    if (n < 0 && errno == EINTR) continue;
    if (n < 0 && errno == EAGAIN) return port_full = 1, 0;
    if (n < 0 && (errno == EPIPE || errno == ECONNRESET || errno == ENOTCONN)) return -1;
    if (n == 0) {
      /* The stage held these bytes: a port that takes them and says 0 has lost them. */
      say("the port dropped %zu bytes of a frame: closing the channel", cur.left);
      return -1;
    }
    unsplice(); /* nothing was taken: copy the rest instead */
  }
  return 0;
}

/* Moves up to `max` bytes from `fd` (a pipe or a file) to the empty stage: the count,
 * 0 at end of file, or -1 and errno. */
static ssize_t stage_from(int fd, size_t max) {
  ssize_t n;
  do n = splice(fd, NULL, stage_w, NULL, max, SPLICE_F_NONBLOCK | SPLICE_F_MOVE);
  while (n < 0 && errno == EINTR);
  return n;
}

/* Begins a frame of what the stage holds (`len` bytes) and sends what the port takes;
 * returns -1 when the host has gone. Only when port_idle(). */
static int splice_frame(uint8_t type, uint32_t id, size_t len) {
  appl_put_header(cur.hdr, (uint32_t)len, type, 0, id);
  cur.hoff = 0;
  cur.left = len;
  return flush_cur();
}

/* Something is waiting for the port. */
static int out_pending(void) {
  return oq_head || cur.left || cur.hoff < APPL_HEADER_SIZE;
}

/* Writes what the port takes now; returns -1 when the host has gone. */
static int flush_out(void) {
  port_full = 0;
  if (flush_cur() < 0) return -1;
  if (cur.left || cur.hoff < APPL_HEADER_SIZE) return 0;
  while (oq_head) {
    struct out *o = oq_head;
    ssize_t n = write(port, o->data + o->off, o->len - o->off);
    if (n < 0) {
      if (errno == EINTR) continue;
      if (errno == EAGAIN) port_full = 1;
      return errno == EAGAIN ? 0 : -1;
    }
    o->off += (size_t)n;
    oq_bytes -= (size_t)n;
    if (o->off == o->len) {
      oq_head = o->next;
      if (!oq_head) oq_tail = &oq_head;
      free(o);
    }
  }
  return 0;
}

/* ---- requests ---- */

enum { R_EXEC, R_WRITE, R_READ };

struct req {
  struct req *next;
  uint32_t id;
  int kind;
  /* R_EXEC */
  pid_t pid;
  int reaped, status, pty;
  int served; /* run by the inspect server (pid is the server's) */
  uint64_t start_ms, end_ms;
  int out_fd, err_fd, in_fd; /* -1 once closed; a PTY's out_fd and in_fd are its master */
  int status_fd;             /* the child's report of a failed start; -1 once read */
  unsigned char *in_buf;     /* stdin not yet taken by the command */
  size_t in_len, in_off;
  int in_eof;
  /* R_WRITE, R_READ */
  int fd;
  int copy; /* R_READ: the file cannot be spliced; read() it */
  uint32_t mode;
  char *path;
};
static struct req *reqs;

static void close_fd(int *fd) {
  if (*fd >= 0) close(*fd);
  *fd = -1;
}

static struct req *find_req(uint32_t id) {
  for (struct req *r = reqs; r; r = r->next)
    if (r->id == id) return r;
  return NULL;
}

static struct req *new_req(uint32_t id, int kind) {
  struct req *r = xmalloc(sizeof *r);
  memset(r, 0, sizeof *r);
  r->id = id;
  r->kind = kind;
  r->out_fd = r->err_fd = r->in_fd = r->status_fd = r->fd = -1;
  r->next = reqs;
  reqs = r;
  return r;
}

static void free_req(struct req *r) {
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
static void maybe_finish(struct req *r) {
  if (!r->reaped || r->out_fd >= 0 || r->err_fd >= 0 || r->status_fd >= 0) return;
  unsigned char b[12];
  int sig = WIFSIGNALED(r->status) ? WTERMSIG(r->status) : 0;
  appl_put32(b, sig ? (uint32_t)-1 : (uint32_t)WEXITSTATUS(r->status));
  appl_put32(b + 4, (uint32_t)sig);
  appl_put32(b + 8, (uint32_t)(r->end_ms - r->start_ms));
  send_frame(APPL_T_EXIT, r->id, b, sizeof b);
  free_req(r);
}

/* ---- exec ---- */

/* Next NUL-terminated string of a payload, or NULL when it is missing. */
static const char *next_str(const unsigned char **cur, const unsigned char *end) {
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

static void set_nonblock(int fd) {
  fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK);
}

/* A request that could not start still ends with EXIT, as the protocol promises. */
static void exec_failed(struct req *r, int code) {
  r->reaped = 1;
  r->status = code << 8;
  r->start_ms = r->end_ms = clock_ms(CLOCK_MONOTONIC);
  maybe_finish(r);
}

/* What a child that could not start writes on its status pipe, in one write (under
 * PIPE_BUF, so it comes whole): the errno and the line for the command's stderr. */
struct child_error {
  int err;
  char msg[600];
};

static __attribute__((noreturn)) void run_child(int errpipe, int in, int out, int err,
                                                const char *slave, const char *cwd,
                                                char **argv, char **envp) {
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
static void read_status(struct req *r) {
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

/* ---- the inspect server (serve.h) ---- */

static pid_t server_pid = -1;
static int server_fd = -1;    /* our end of its socket; -1 once it has gone */
static int server_busy;       /* serving server_req */
static uint32_t server_req;

/* Starts `inspect serve` when the root has the helper; without one, commands fork as ever. */
static void start_server(void) {
  if (access(APPL_INSPECT_PATH, X_OK) < 0) return;
  int sv[2], ep[2] = {-1, -1};
  if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv) < 0) return;
  int null = open("/dev/null", O_RDWR | O_CLOEXEC);
  char *argv[] = {APPL_INSPECT_PATH, APPL_SERVE_COMMAND, NULL};
  pid_t pid = null >= 0 && pipe2(ep, O_CLOEXEC) == 0 ? fork() : -1;
  if (pid == 0) run_child(ep[1], sv[1], null, null, NULL, "", argv, base_env);
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
  server_pid = pid;
  server_fd = sv[0];
  set_nonblock(server_fd);
}

/* The server has exited (reaped): commands fork from now on. The one it served is reaped below it. */
static void server_gone(void) {
  close_fd(&server_fd);
  server_pid = -1;
  server_busy = 0;
}

/*
 * Runs a command of the inspect helper in the server when it is free: r takes its output
 * pipes as a child's, and the server's pid (a signal for the command goes to the server,
 * which ends with it). 0: not served (another program, a server busy or gone, a request
 * too long), and nothing has changed.
 */
static int serve_exec(struct req *r, char **argv, uint32_t argc) {
  if (server_fd < 0 || server_busy || argc < 2 || argc > APPL_SERVE_ARGS_MAX || strcmp(argv[0], APPL_INSPECT_PATH)) return 0;
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
  while ((sent = sendmsg(server_fd, &msg, MSG_NOSIGNAL | MSG_DONTWAIT)) < 0 && errno == EINTR) {}
  close_fd(&out[1]);
  close_fd(&err[1]);
  if (sent != (ssize_t)len) {
    close_fd(&out[0]);
    close_fd(&err[0]);
    return 0;
  }
  server_busy = 1;
  server_req = r->id;
  r->served = 1;
  r->pid = server_pid;
  r->start_ms = clock_ms(CLOCK_MONOTONIC);
  r->out_fd = out[0];
  r->err_fd = err[0];
  set_nonblock(r->out_fd);
  set_nonblock(r->err_fd);
  fcntl(r->out_fd, F_SETPIPE_SZ, PIPE_SIZE);
  return 1;
}

/* The server's reply: the served command's exit status. Its end is left to reap(). */
static void server_said(void) {
  int status;
  ssize_t n = recv(server_fd, &status, sizeof status, MSG_DONTWAIT);
  if (n < 0 && (errno == EAGAIN || errno == EINTR)) return;
  if (n != sizeof status) { /* it is exiting: reap() takes it, and the command with it */
    close_fd(&server_fd);
    return;
  }
  server_busy = 0;
  struct req *r = find_req(server_req);
  if (!r || !r->served || r->reaped) return;
  r->reaped = 1;
  r->status = (status & 0xff) << 8;
  r->end_ms = clock_ms(CLOCK_MONOTONIC);
  maybe_finish(r);
}

static void handle_exec(uint32_t id, uint8_t flags, const unsigned char *p, uint32_t len) {
  if (find_req(id)) {
    send_error(id, EEXIST, "request id %u is already in use", id);
    return;
  }
  struct req *r = new_req(id, R_EXEC);
  const unsigned char *cur = p + 12, *end = p + len;
  uint32_t argc = len >= 12 ? appl_get32(p) : 0, envc = len >= 12 ? appl_get32(p + 4) : 0;
  const char *cwd = len >= 12 ? next_str(&cur, end) : NULL;
  /* Each string takes at least one byte: this bounds the arrays by the payload size. */
  if (!cwd || argc == 0 || argc > len || envc > len) {
    send_error(id, EINVAL, "malformed EXEC request");
    exec_failed(r, 127);
    return;
  }
  char **argv = xmalloc((argc + 1) * sizeof *argv);
  char **envp = xmalloc((envc + sizeof base_env / sizeof *base_env + 1) * sizeof *envp);
  size_t nenv = 0;
  int ok = 1;
  for (char **b = base_env; *b; b++) envp[nenv++] = *b;
  for (uint32_t i = 0; ok && i < argc; i++) ok = (argv[i] = (char *)next_str(&cur, end)) != NULL;
  for (uint32_t i = 0; ok && i < envc; i++) {
    const char *kv = next_str(&cur, end);
    if (kv && strchr(kv, '=')) set_env(envp, &nenv, kv);
    else ok = 0;
  }
  argv[argc] = NULL;
  envp[nenv] = NULL;
  if (!ok) {
    free(argv);
    free(envp);
    send_error(id, EINVAL, "malformed EXEC request");
    exec_failed(r, 127);
    return;
  }
  if (!(flags & (APPL_F_PTY | APPL_F_STDIN)) && envc == 0 && !*cwd && serve_exec(r, argv, argc)) {
    free(argv);
    free(envp);
    return;
  }
  int in[2] = {-1, -1}, out[2] = {-1, -1}, err[2] = {-1, -1}, ep[2] = {-1, -1};
  char slave[32] = "";
  int master = -1;
  r->pty = (flags & APPL_F_PTY) != 0;
  if (r->pty) {
    unsigned n;
    struct winsize ws = {appl_get16(p + 8), appl_get16(p + 10), 0, 0};
    ok = (master = posix_openpt(O_RDWR | O_NOCTTY | O_CLOEXEC)) >= 0 && grantpt(master) == 0 &&
         unlockpt(master) == 0 && ioctl(master, TIOCGPTN, &n) == 0;
    if (ok) snprintf(slave, sizeof slave, "/dev/pts/%u", n);
    if (ok && ws.ws_row && ws.ws_col) ioctl(master, TIOCSWINSZ, &ws);
  } else {
    ok = pipe2(out, O_CLOEXEC) == 0 && pipe2(err, O_CLOEXEC) == 0 &&
         (flags & APPL_F_STDIN ? pipe2(in, O_CLOEXEC) == 0
                               : (in[0] = open("/dev/null", O_RDONLY | O_CLOEXEC)) >= 0);
  }
  ok = ok && pipe2(ep, O_CLOEXEC) == 0;
  pid_t pid = ok ? fork() : -1;
  if (pid == 0) run_child(ep[1], in[0], out[1], err[1], r->pty ? slave : NULL, cwd, argv, envp);
  int fork_errno = errno;
  close_fd(&in[0]);
  close_fd(&out[1]);
  close_fd(&err[1]);
  close_fd(&ep[1]);
  free(argv);
  free(envp);
  if (pid < 0) {
    close_fd(&in[1]);
    close_fd(&out[0]);
    close_fd(&err[0]);
    close_fd(&ep[0]);
    close_fd(&master);
    send_error(id, fork_errno, "cannot start the command: %s", strerror(fork_errno));
    exec_failed(r, 126);
    return;
  }
  r->pid = pid;
  r->start_ms = clock_ms(CLOCK_MONOTONIC);
  if (r->pty) {
    r->out_fd = master;
    r->in_fd = (flags & APPL_F_STDIN) ? fcntl(master, F_DUPFD_CLOEXEC, 3) : -1;
  } else {
    r->out_fd = out[0];
    r->err_fd = err[0];
    r->in_fd = in[1];
  }
  if (r->out_fd >= 0) set_nonblock(r->out_fd);
  if (r->err_fd >= 0) set_nonblock(r->err_fd);
  /* stdout is where bulk output comes (stderr keeps the default size); a smaller pipe
   * (the kernel's limits) works too. */
  if (!r->pty) fcntl(r->out_fd, F_SETPIPE_SZ, PIPE_SIZE);
  if (r->in_fd >= 0) set_nonblock(r->in_fd);
  r->status_fd = ep[0];
  set_nonblock(r->status_fd);
}

/* ---- stdin ---- */

static void pump_stdin(struct req *r) {
  size_t done = 0;
  while (r->in_fd >= 0 && r->in_off < r->in_len) {
    ssize_t n = write(r->in_fd, r->in_buf + r->in_off, r->in_len - r->in_off);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0 && errno == EAGAIN) break;
    if (n < 0) { /* the command closed its stdin: drop the rest */
      n = (ssize_t)(r->in_len - r->in_off);
      close_fd(&r->in_fd);
    }
    r->in_off += (size_t)n;
    done += (size_t)n;
  }
  if (r->in_off == r->in_len) {
    r->in_off = r->in_len = 0;
    /* On a terminal, end of input is the EOF character, as typed. */
    if (r->in_eof && r->pty && r->in_fd >= 0) (void)!write(r->in_fd, "\x04", 1);
    if (r->in_eof) close_fd(&r->in_fd);
  }
  if (done) send_u32(APPL_T_STDIN_ACK, r->id, (uint32_t)done);
}

static void handle_stdin(struct req *r, const unsigned char *p, uint32_t len) {
  if (len == 0) {
    r->in_eof = 1;
  } else if (r->in_fd < 0) {
    send_u32(APPL_T_STDIN_ACK, r->id, len);
    return;
  } else {
    if (r->in_off) {
      memmove(r->in_buf, r->in_buf + r->in_off, r->in_len - r->in_off);
      r->in_len -= r->in_off;
      r->in_off = 0;
    }
    unsigned char *b = realloc(r->in_buf, r->in_len + len);
    if (!b) fatal("out of memory");
    memcpy(b + r->in_len, p, len);
    r->in_buf = b;
    r->in_len += len;
  }
  pump_stdin(r);
}

/* ---- output of commands and files ---- */

/* The end of a command's output pipe (it closes; EXIT goes once all have), or of a file
 * being read (then the request ends). */
static void output_ended(struct req *r, int *fd, int e) {
  close_fd(fd);
  if (r->kind == R_READ) {
    if (e) send_error(r->id, e, "cannot read %s: %s", r->path, strerror(e));
    else send_frame(APPL_T_DATA, r->id, NULL, 0);
    free_req(r);
  } else {
    maybe_finish(r);
  }
}

/* Copies a chunk of `*fd` into a queued frame: terminals, files splice cannot read. */
static void pump_copy(struct req *r, int *fd, uint8_t type) {
  static unsigned char buf[APPL_MAX_PAYLOAD];
  ssize_t n = read(*fd, buf, sizeof buf);
  if (n > 0) {
    send_frame(type, r->id, buf, (size_t)n);
    return;
  }
  if (n < 0 && (errno == EAGAIN || errno == EINTR)) return;
  /* End of file; a PTY master says EIO once the terminal's last user has gone. */
  output_ended(r, fd, n < 0 ? errno : 0);
}

/* Sends `avail` bytes that are in the pipe `fd` as frames of `type`, spliced, as long as
 * the port takes them at once. */
static void splice_out(struct req *r, int *fd, uint8_t type, size_t avail) {
  while (avail && port_idle()) {
    ssize_t n = stage_from(*fd, avail < APPL_MAX_PAYLOAD ? avail : APPL_MAX_PAYLOAD);
    if (n <= 0) { /* cannot happen with a pipe that has data: copy from now on */
      splice_port = 0;
      pump_copy(r, fd, type);
      return;
    }
    avail -= (size_t)n < avail ? (size_t)n : avail;
    if (splice_frame(type, r->id, (size_t)n) < 0) return; /* the loop's flush_out says so again */
  }
}

/* A command's stdout or stderr pipe is readable: data, or its end. It is polled only
 * while the port is idle, but an earlier event of the same turn may have queued a frame:
 * then this chunk is copied, as all are when splicing is off, so that no request waits
 * on another's. */
static void pump_pipe(struct req *r, int *fd, uint8_t type) {
  int avail = splice_port && port_idle() ? pipe_bytes(*fd) : 0;
  if (avail > 0) splice_out(r, fd, type, (size_t)avail);
  else pump_copy(r, fd, type); /* also the end, which read() tells */
}

/* At most this many frames of one file per turn of the loop, so that other requests and
 * the host's frames (a CANCEL) are served while a port that keeps up takes an endless file. */
#define FILE_FRAMES_PER_TURN 16

/* A file read by splice: into the stage (page references, no copy), then to the port.
 * Copied instead when it cannot be spliced, or when the port is busy (as for pipes). */
static void pump_file(struct req *r) {
  if (!splice_port || r->copy || !port_idle()) {
    pump_copy(r, &r->fd, APPL_T_DATA);
    return;
  }
  for (int i = 0; i < FILE_FRAMES_PER_TURN && port_idle(); i++) {
    ssize_t n = stage_from(r->fd, APPL_MAX_PAYLOAD);
    if (n < 0 && errno == EAGAIN) return; /* a FIFO with nothing yet: polled */
    if (n < 0 && errno == EINVAL) {
      /* A file that splice cannot read (no splice_read): read() it instead. The stage is
       * empty, the file's offset where splice left it: nothing is lost or reordered. */
      r->copy = 1;
      pump_copy(r, &r->fd, APPL_T_DATA);
      return;
    }
    if (n <= 0) {
      output_ended(r, &r->fd, n < 0 ? errno : 0);
      return;
    }
    if (splice_frame(APPL_T_DATA, r->id, (size_t)n) < 0) return;
  }
}

static void reap(void) {
  struct signalfd_siginfo si;
  while (read(sigfd, &si, sizeof si) > 0) {}
  int st;
  pid_t pid;
  /* As PID 1 this also reaps the orphans the kernel hands us. */
  while ((pid = waitpid(-1, &st, WNOHANG)) > 0) {
    if (pid == server_pid) server_gone();
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

/* ---- files ---- */

static void handle_write_file(uint32_t id, const unsigned char *p, uint32_t len) {
  const unsigned char *cur = p + 4;
  const char *path = len > 4 ? next_str(&cur, p + len) : NULL;
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

static void handle_write_data(struct req *r, uint8_t flags, const unsigned char *p, uint32_t len) {
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

static void handle_read_file(uint32_t id, const unsigned char *p, uint32_t len) {
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

/* ---- leaving ---- */

static __attribute__((noreturn)) void shut_down(void) {
  /* Let queued replies (OK to POWEROFF) out, for a second at most. */
  uint64_t deadline = clock_ms(CLOCK_MONOTONIC) + 1000;
  while (out_pending() && flush_out() == 0 && out_pending()) {
    uint64_t now = clock_ms(CLOCK_MONOTONIC);
    if (now >= deadline) break;
    struct pollfd pf = {port, POLLOUT, 0};
    poll(&pf, 1, (int)(deadline - now));
  }
  if (getpid() == 1) {
    kill(-1, SIGKILL);
    halt_vm(0);
  }
  for (struct req *r = reqs; r; r = r->next)
    if (r->kind == R_EXEC && !r->reaped) kill(-r->pid, SIGKILL);
  exit(0);
}

static unsigned char hello[APPL_PAYLOAD_HELLO];

/* Whoever connects first gets the HELLO, even if an earlier host left without a word. */
static void queue_hello(void) {
  while (oq_head) {
    struct out *o = oq_head;
    oq_head = o->next;
    free(o);
  }
  oq_tail = &oq_head;
  oq_bytes = 0;
  send_frame(APPL_T_HELLO, 0, hello, sizeof hello);
}

static void hangup(void) {
  if (on_port && !host_spoke) {
    /* No host yet (or one that left before asking anything): look again soon. Until a
     * host has spoken, the queue holds only the HELLO. */
    waiting_host = 1;
    queue_hello();
    return;
  }
  shut_down();
}

/* ---- incoming frames ---- */

static void dispatch(uint8_t type, uint8_t flags, uint32_t id, const unsigned char *p,
                     uint32_t len) {
  struct req *r = find_req(id);
  switch (type) {
  case APPL_T_EXEC:
    handle_exec(id, flags, p, len);
    break;
  case APPL_T_STDIN:
    if (r && r->kind == R_EXEC) handle_stdin(r, p, len);
    break;
  case APPL_T_SIGNAL:
    /* A served command that has ended has no process of its own left to signal. */
    if (r && r->kind == R_EXEC && len >= 4 && !(r->served && r->reaped)) {
      int sig = (int)appl_get32(p);
      /* The group outlives the command while its children hold the pipes. */
      if (kill(-r->pid, sig) < 0 && !r->reaped) kill(r->pid, sig);
    }
    break;
  case APPL_T_RESIZE:
    if (r && r->kind == R_EXEC && r->pty && len >= 4) {
      struct winsize ws = {appl_get16(p), appl_get16(p + 2), 0, 0};
      ioctl(r->out_fd >= 0 ? r->out_fd : r->in_fd, TIOCSWINSZ, &ws);
    }
    break;
  case APPL_T_WRITE_FILE:
    if (r) send_error(id, EEXIST, "request id %u is already in use", id);
    else handle_write_file(id, p, len);
    break;
  case APPL_T_DATA:
    if (r && r->kind == R_WRITE) handle_write_data(r, flags, p, len);
    break;
  case APPL_T_READ_FILE:
    if (r) send_error(id, EEXIST, "request id %u is already in use", id);
    else handle_read_file(id, p, len);
    break;
  case APPL_T_CANCEL:
    /* The host gave up reading this file; it drops what was already sent. */
    if (r && r->kind == R_READ) free_req(r);
    break;
  case APPL_T_POWEROFF:
    send_frame(APPL_T_OK, id, NULL, 0);
    shut_down();
    break;
  default:
    send_error(id, ENOSYS, "unknown request type %u", type);
  }
}

static void read_port(void) {
  static unsigned char buf[APPL_HEADER_SIZE + APPL_MAX_PAYLOAD];
  static size_t have;
  ssize_t n = read(port, buf + have, sizeof buf - have);
  if (n < 0 && (errno == EAGAIN || errno == EINTR)) return;
  if (n <= 0) {
    hangup();
    return;
  }
  host_spoke = 1;
  have += (size_t)n;
  size_t off = 0;
  while (have - off >= APPL_HEADER_SIZE) {
    uint32_t len = appl_get32(buf + off);
    if (len > APPL_MAX_PAYLOAD) {
      say("protocol error: a frame of %u bytes (at most %u): closing", len, APPL_MAX_PAYLOAD);
      shut_down();
    }
    if (have - off < APPL_HEADER_SIZE + len) break;
    dispatch(buf[off + 4], buf[off + 5], appl_get32(buf + off + 8), buf + off + APPL_HEADER_SIZE,
             len);
    off += APPL_HEADER_SIZE + len;
  }
  memmove(buf, buf + off, have - off);
  have -= off;
}

/* ---- the loop ---- */

enum { W_PORT, W_SIG, W_OUT, W_ERR, W_IN, W_STATUS, W_FILE, W_SERVER };

static void serve(void) {
  size_t cap = 0;
  struct pollfd *pfds = NULL;
  struct watch {
    int what;
    uint32_t id;
  } *watch = NULL;
  for (;;) {
    if (flush_out() < 0) hangup();
    size_t n = 0, need = 3; /* the port, the signalfd, the server, and at most 4 fds per request */
    for (struct req *r = reqs; r; r = r->next) need += 4;
    if (need > cap) {
      cap = need * 2;
      pfds = realloc(pfds, cap * sizeof *pfds);
      watch = realloc(watch, cap * sizeof *watch);
      if (!pfds || !watch) fatal("out of memory");
    }
#define WATCH(fd_, ev_, what_, id_) \
  (pfds[n] = (struct pollfd){(fd_), (ev_), 0}, watch[n++] = (struct watch){(what_), (id_)})
    if (!waiting_host) WATCH(port, POLLIN | (out_pending() || port_full ? POLLOUT : 0), W_PORT, 0);
    WATCH(sigfd, POLLIN, W_SIG, 0);
    if (server_busy && server_fd >= 0) WATCH(server_fd, POLLIN, W_SERVER, 0);
    /* Copied output may queue up to OUTQ_HIGH; spliced output waits for an idle port. */
    int room = oq_bytes < OUTQ_HIGH, idle = port_idle();
    for (struct req *r = reqs; r; r = r->next) {
      int spliced = splice_port && !r->pty && !r->copy;
      if (r->out_fd >= 0 && (spliced ? idle : room)) WATCH(r->out_fd, POLLIN, W_OUT, r->id);
      if (r->err_fd >= 0 && (spliced ? idle : room)) WATCH(r->err_fd, POLLIN, W_ERR, r->id);
      if (r->in_fd >= 0 && r->in_off < r->in_len) WATCH(r->in_fd, POLLOUT, W_IN, r->id);
      if (r->status_fd >= 0) WATCH(r->status_fd, POLLIN, W_STATUS, r->id);
      if (r->kind == R_READ && (spliced ? idle : room)) WATCH(r->fd, POLLIN, W_FILE, r->id);
    }
#undef WATCH
    int timeout = waiting_host ? 10 : -1;
    waiting_host = 0;
    if (poll(pfds, n, timeout) < 0) {
      if (errno == EINTR) continue;
      fatal("poll: %s", strerror(errno));
    }
    for (size_t i = 0; i < n; i++) {
      if (!pfds[i].revents) continue;
      if (watch[i].what == W_PORT) {
        if (pfds[i].revents & POLLOUT) port_full = 0;
        if (pfds[i].revents & (POLLIN | POLLHUP | POLLERR)) read_port();
        continue;
      }
      if (watch[i].what == W_SIG) {
        reap();
        continue;
      }
      if (watch[i].what == W_SERVER) {
        server_said();
        continue;
      }
      /* Requests may have ended while handling earlier events: look them up again. */
      struct req *r = find_req(watch[i].id);
      if (!r) continue;
      if (watch[i].what == W_OUT && r->out_fd == pfds[i].fd)
        r->pty ? pump_copy(r, &r->out_fd, APPL_T_STDOUT) : pump_pipe(r, &r->out_fd, APPL_T_STDOUT);
      else if (watch[i].what == W_ERR && r->err_fd == pfds[i].fd)
        pump_pipe(r, &r->err_fd, APPL_T_STDERR);
      else if (watch[i].what == W_FILE && r->fd == pfds[i].fd)
        pump_file(r);
      else if (watch[i].what == W_IN && r->in_fd == pfds[i].fd)
        pump_stdin(r);
      else if (watch[i].what == W_STATUS && r->status_fd == pfds[i].fd)
        read_status(r);
    }
  }
}

/* ---- start ---- */

static int open_port(void) {
  uint64_t deadline = clock_ms(CLOCK_BOOTTIME) + PORT_WAIT_MS;
  long delay_us = 500;
  for (;;) {
    DIR *d = opendir("/sys/class/virtio-ports");
    struct dirent *e;
    while (d && (e = readdir(d))) {
      char path[320], name[64];
      snprintf(path, sizeof path, "/sys/class/virtio-ports/%s/name", e->d_name);
      int fd = open(path, O_RDONLY | O_CLOEXEC);
      if (fd < 0) continue;
      ssize_t n = read(fd, name, sizeof name - 1);
      close(fd);
      if (n <= 0) continue;
      name[n] = '\0';
      name[strcspn(name, "\n")] = '\0';
      if (strcmp(name, APPL_PORT_NAME)) continue;
      snprintf(path, sizeof path, "/dev/%s", e->d_name);
      fd = open(path, O_RDWR | O_NONBLOCK | O_CLOEXEC | O_NOCTTY);
      if (fd >= 0) {
        closedir(d);
        return fd;
      }
    }
    if (d) closedir(d);
    if (clock_ms(CLOCK_BOOTTIME) >= deadline)
      fatal("no virtio-serial port named %s after %d s: is virtio_console loaded and the qemu "
            "virtserialport given that name?",
            APPL_PORT_NAME, PORT_WAIT_MS / 1000);
    struct timespec ts = {0, delay_us * 1000};
    nanosleep(&ts, NULL);
    if (delay_us < 20000) delay_us *= 2;
  }
}

static int connect_socket(const char *path) {
  struct sockaddr_un sa = {.sun_family = AF_UNIX};
  if (strlen(path) >= sizeof sa.sun_path) fatal("socket path too long: %s", path);
  strcpy(sa.sun_path, path);
  int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0 || connect(fd, (struct sockaddr *)&sa, sizeof sa) < 0)
    fatal("cannot connect to %s: %s", path, strerror(errno));
  set_nonblock(fd);
  return fd;
}

int main(int argc, char **argv) {
  const char *sock = NULL;
  if (argc == 3 && !strcmp(argv[1], "--connect")) {
    sock = argv[2];
  } else if (argc != 1) {
    say("usage: agent [--connect UNIX_SOCKET]");
    return 2;
  }
  /* Pipes must not land on 0-2, where the children's dup2 would clobber them. */
  int fd;
  while ((fd = open("/dev/null", O_RDWR)) >= 0 && fd <= 2) {}
  if (fd > 2) close(fd);
  umask(022);
  signal(SIGPIPE, SIG_IGN);
  sigset_t chld;
  sigemptyset(&chld);
  sigaddset(&chld, SIGCHLD);
  sigprocmask(SIG_BLOCK, &chld, NULL);
  if ((sigfd = signalfd(-1, &chld, SFD_NONBLOCK | SFD_CLOEXEC)) < 0)
    fatal("signalfd: %s", strerror(errno));

  static char term[64];
  const char *t = getenv("TERM");
  snprintf(term, sizeof term, "TERM=%s", t && *t ? t : "linux");
  base_env[0] = "PATH=/usr/sbin:/usr/bin:/sbin:/bin";
  base_env[1] = "HOME=/root";
  base_env[2] = term;

  const char *init_ms = getenv(APPL_ENV_INIT_MS);
  const char *point = getenv(APPL_ENV_SNAPSHOT), *refused = getenv(APPL_ENV_SNAPSHOT_REFUSED);
  timing = getenv(APPL_ENV_TIMING) != NULL;
  on_port = sock == NULL;
  port = on_port ? open_port() : connect_socket(sock);
  int st[2];
  if (pipe2(st, O_CLOEXEC | O_NONBLOCK) == 0) {
    stage_r = st[0];
    stage_w = st[1];
    /* Room for a frame made of small buffers (a pipe buffer per write of a command's). */
    fcntl(stage_w, F_SETPIPE_SZ, STAGE_SIZE);
  } else {
    splice_port = 0;
  }

  /* The server pays off in restored VMs (their fork and exec paths are cold): without a
   * snapshot it would only delay this boot's hello, and commands fork. */
  if (point) start_server();
  /* Exec'd by the init at its snapshot point: run it (the port and the server are in the snapshot). */
  if (point || refused) pass_snapshot_point(refused);
  uint64_t boot_ms = clock_ms(CLOCK_BOOTTIME);
  appl_put32(hello, APPL_VERSION);
  appl_put32(hello + 4, (uint32_t)boot_ms);
  appl_put32(hello + 8, init_ms ? (uint32_t)strtoul(init_ms, NULL, 10) : 0);
  appl_put32(hello + 12, getpid() == 1 ? APPL_HELLO_PID1 : 0);
  appl_put32(hello + 16, (uint32_t)resume_ms);
  queue_hello();
  if (timing) say("%5llu.%03llu s  agent ready", (unsigned long long)boot_ms / 1000,
                  (unsigned long long)boot_ms % 1000);
  serve();
}
