/* The agent's start, its loop over the port, commands' pipes and files, and its end. */
#include "agent.h"
#include "../snapshot-point.h"

#include <dirent.h>
#include <poll.h>
#include <signal.h>
#include <sys/ioctl.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>

#define PORT_WAIT_MS 10000

struct channel chan = {.fd = -1, .sigfd = -1};

static __attribute__((noreturn)) void shut_down(void) {
  /* Let queued replies (OK to POWEROFF) out, for a second at most. */
  uint64_t deadline = clock_ms(CLOCK_MONOTONIC) + 1000;
  while (out_pending() && flush_out() == 0 && out_pending()) {
    uint64_t now = clock_ms(CLOCK_MONOTONIC);
    if (now >= deadline) break;
    struct pollfd pf = {chan.fd, POLLOUT, 0};
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
  drop_queue();
  send_frame(APPL_T_HELLO, 0, hello, sizeof hello);
}

static void hangup(void) {
  if (chan.on_port && !chan.host_spoke) {
    /* No host yet (or one that left before asking anything): look again soon. Until a
     * host has spoken, the queue holds only the HELLO. */
    chan.waiting_host = 1;
    queue_hello();
    return;
  }
  shut_down();
}

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
    if (r && r->kind == R_EXEC && len >= APPL_PAYLOAD_SIGNAL && !(r->served && r->reaped)) {
      int sig = (int)appl_get32(p);
      /* The group outlives the command while its children hold the pipes. */
      if (kill(-r->pid, sig) < 0 && !r->reaped) kill(r->pid, sig);
    }
    break;
  case APPL_T_CREDIT:
    if (r && len >= APPL_PAYLOAD_CREDIT) handle_credit(r, p);
    break;
  case APPL_T_RESIZE:
    if (r && r->kind == R_EXEC && r->pty && len >= APPL_PAYLOAD_RESIZE) {
      struct winsize ws = {appl_get16(p + APPL_AT_RESIZE_ROWS), appl_get16(p + APPL_AT_RESIZE_COLS), 0, 0};
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
    /* OK once the guest's writes are on the disks: the host may then end qemu at once
     * (which flushes its own caches as it exits) instead of waiting out the kernel's
     * power-off path, ~20 ms under TCG. */
    if (getpid() == 1) {
      kill(-1, SIGKILL);
      sync();
    }
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
  ssize_t n = read(chan.fd, buf + have, sizeof buf - have);
  if (n < 0 && (errno == EAGAIN || errno == EINTR)) return;
  if (n <= 0) {
    hangup();
    return;
  }
  chan.host_spoke = 1;
  have += (size_t)n;
  size_t off = 0;
  while (have - off >= APPL_HEADER_SIZE) {
    uint32_t len = appl_get32(buf + off + APPL_AT_HEADER_LENGTH);
    if (len > APPL_MAX_PAYLOAD) {
      say("protocol error: a frame of %u bytes (at most %u): closing", len, APPL_MAX_PAYLOAD);
      shut_down();
    }
    if (have - off < APPL_HEADER_SIZE + len) break;
    const unsigned char *h = buf + off;
    dispatch(h[APPL_AT_HEADER_TYPE], h[APPL_AT_HEADER_FLAGS], appl_get32(h + APPL_AT_HEADER_ID), h + APPL_HEADER_SIZE, len);
    off += APPL_HEADER_SIZE + len;
  }
  memmove(buf, buf + off, have - off);
  have -= off;
}

enum { W_PORT, W_SIG, W_OUT, W_ERR, W_IN, W_STATUS, W_FILE, W_SERVER };

/* What the loop polls: each descriptor with what it is and the request it belongs to. */
static struct {
  struct pollfd *fds;
  struct watch {
    int what;
    uint32_t id;
  } *of;
  size_t n, cap;
} w;

static void watch(int fd, short events, int what, uint32_t id) {
  w.fds[w.n] = (struct pollfd){fd, events, 0};
  w.of[w.n++] = (struct watch){what, id};
}

/* The descriptors worth polling now: the port, SIGCHLD, the server, and each request's. */
static void watch_all(void) {
  size_t need = 3; /* the port, the signalfd, the server, and at most 4 fds per request */
  for (struct req *r = reqs; r; r = r->next) need += 4;
  if (need > w.cap) {
    w.cap = need * 2;
    w.fds = realloc(w.fds, w.cap * sizeof *w.fds);
    w.of = realloc(w.of, w.cap * sizeof *w.of);
    if (!w.fds || !w.of) fatal("out of memory");
  }
  w.n = 0;
  if (!chan.waiting_host) watch(chan.fd, POLLIN | (out_pending() || po.full ? POLLOUT : 0), W_PORT, 0);
  watch(chan.sigfd, POLLIN, W_SIG, 0);
  if (server.busy && server.fd >= 0) watch(server.fd, POLLIN, W_SERVER, 0);
  /* Copied output may queue up to OUTQ_HIGH; spliced output waits for an idle port; each
   * stream also waits for room at the host's end (its reader has taken what came). */
  int room = po.queued < OUTQ_HIGH, idle = port_idle();
  for (struct req *r = reqs; r; r = r->next) {
    int spliced = po.splice && !r->pty && !r->copy, go = spliced ? idle : room;
    if (r->out_fd >= 0 && go && r->out_room) watch(r->out_fd, POLLIN, W_OUT, r->id);
    if (r->err_fd >= 0 && go && r->err_room) watch(r->err_fd, POLLIN, W_ERR, r->id);
    if (r->in_fd >= 0 && r->in_off < r->in_len) watch(r->in_fd, POLLOUT, W_IN, r->id);
    if (r->status_fd >= 0) watch(r->status_fd, POLLIN, W_STATUS, r->id);
    if (r->kind == R_READ && go && r->out_room) watch(r->fd, POLLIN, W_FILE, r->id);
  }
}

/* One polled descriptor is ready: what it is decides what happens. */
static void ready(const struct pollfd *fd, const struct watch *of) {
  if (of->what == W_PORT) {
    if (fd->revents & POLLOUT) po.full = 0;
    if (fd->revents & (POLLIN | POLLHUP | POLLERR)) read_port();
    return;
  }
  if (of->what == W_SIG || of->what == W_SERVER) {
    of->what == W_SIG ? reap() : server_said();
    return;
  }
  /* Requests may have ended while handling earlier events: look them up again. */
  struct req *r = find_req(of->id);
  if (!r) return;
  if (of->what == W_OUT && r->out_fd == fd->fd)
    r->pty ? pump_copy(r, &r->out_fd, APPL_T_STDOUT) : pump_pipe(r, &r->out_fd, APPL_T_STDOUT);
  else if (of->what == W_ERR && r->err_fd == fd->fd)
    pump_pipe(r, &r->err_fd, APPL_T_STDERR);
  else if (of->what == W_FILE && r->fd == fd->fd)
    pump_file(r);
  else if (of->what == W_IN && r->in_fd == fd->fd)
    pump_stdin(r);
  else if (of->what == W_STATUS && r->status_fd == fd->fd)
    read_status(r);
}

static void serve(void) {
  for (;;) {
    if (flush_out() < 0) hangup();
    watch_all();
    int timeout = chan.waiting_host ? 10 : -1;
    chan.waiting_host = 0;
    if (poll(w.fds, w.n, timeout) < 0) {
      if (errno == EINTR) continue;
      fatal("poll: %s", strerror(errno));
    }
    for (size_t i = 0; i < w.n; i++)
      if (w.fds[i].revents) ready(&w.fds[i], &w.of[i]);
  }
}

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
  if ((chan.sigfd = signalfd(-1, &chld, SFD_NONBLOCK | SFD_CLOEXEC)) < 0)
    fatal("signalfd: %s", strerror(errno));

  static char term[64];
  const char *t = getenv("TERM");
  snprintf(term, sizeof term, "TERM=%s", t && *t ? t : "linux");
  chan.base_env[0] = "PATH=/usr/sbin:/usr/bin:/sbin:/bin";
  chan.base_env[1] = "HOME=/root";
  chan.base_env[2] = term;

  const char *init_ms = getenv(APPL_ENV_INIT_MS);
  const char *point = getenv(APPL_ENV_SNAPSHOT), *refused = getenv(APPL_ENV_SNAPSHOT_REFUSED);
  timing = getenv(APPL_ENV_TIMING) != NULL;
  chan.on_port = sock == NULL;
  chan.fd = chan.on_port ? open_port() : connect_socket(sock);
  port_out_init();

  /* The server pays off in restored VMs (their fork and exec paths are cold): without a
   * snapshot it would only delay this boot's hello, and commands fork. */
  if (point) start_server();
  /* Exec'd by the init at its snapshot point: run it (the port and the server are in the snapshot). */
  if (point || refused) pass_snapshot_point(refused);
  uint64_t boot_ms = clock_ms(CLOCK_BOOTTIME);
  appl_put32(hello + APPL_AT_HELLO_VERSION, APPL_VERSION);
  appl_put32(hello + APPL_AT_HELLO_BOOT_MS, (uint32_t)boot_ms);
  appl_put32(hello + APPL_AT_HELLO_INIT_MS, init_ms ? (uint32_t)strtoul(init_ms, NULL, 10) : 0);
  appl_put32(hello + APPL_AT_HELLO_FLAGS, getpid() == 1 ? APPL_HELLO_PID1 : 0);
  appl_put32(hello + APPL_AT_HELLO_RESUME_MS, (uint32_t)resume_ms);
  queue_hello();
  if (timing) say("%5llu.%03llu s  agent ready", (unsigned long long)boot_ms / 1000,
                  (unsigned long long)boot_ms % 1000);
  serve();
}
