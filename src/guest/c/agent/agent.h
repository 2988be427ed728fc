/*
 * appliance agent: PID 1 in the root after the init's switch. Serves the host over the
 * virtio-serial port APPL_PORT_NAME with the framed protocol of protocol.h: runs
 * commands (several at once), streams their output, moves files in and out, powers off.
 *
 * One poll loop, no threads (main.c). Small replies go through a bounded outgoing queue
 * (port.c). Bulk data (command output, files) stays in pipes and is moved to the port with
 * splice(), one frame at a time and only while the port is idle: the port takes the
 * pipe's pages as they are, without a copy (under TCG every byte the guest copies costs,
 * and this is what bounded the throughput). While the host is slow to read, the agent
 * stops taking command output, so commands block on their full pipes (backpressure end
 * to end) and nothing is lost. Each output stream has its own room, which the host gives
 * back as its reader takes the bytes (CREDIT): a reader that is behind stops only its own
 * command, never the port.
 *
 * `agent --connect SOCKET` talks over a unix socket instead, as an ordinary process,
 * so the host tests can run it without a VM.
 *
 * One file a concern, as libguestfs's daemon has one a group of calls: the port's
 * outgoing side (port.c), requests (requests.c), commands (exec.c), their data (io.c),
 * the inspect helper's server (server.c), files (files.c), the loop and the start (main.c).
 */
#ifndef APPLIANCE_AGENT_H
#define APPLIANCE_AGENT_H

#define _GNU_SOURCE
#include "../protocol.h"
#define LOG_PREFIX APPL_AGENT_LOG_PREFIX
#include "../util.h"

#include <sys/types.h>

/* Above this many queued bytes the agent stops reading command output and files. */
#define OUTQ_HIGH (1024 * 1024)
/* Size asked for commands' stdout pipes (the default is 64 KiB): fewer wake-ups of the
 * command and the agent, full frames; it still bounds what a command writes ahead. */
#define PIPE_SIZE (1024 * 1024)

/* The channel to the host: the port (or the --connect socket), and what is known of the host. */
struct channel {
  int fd;
  int on_port;      /* the virtio-serial port (not --connect) */
  int host_spoke;   /* bytes came from the host: a hangup now means it has gone */
  int waiting_host; /* the port says hangup because no host is connected yet */
  int sigfd;        /* SIGCHLD */
  char *base_env[4]; /* every command's environment before its own: PATH, HOME, TERM */
};
extern struct channel chan;

/* ---- port.c: what goes to the host ---- */
struct port_out {
  size_t queued; /* bytes in the outgoing queue */
  int full;      /* the port said EAGAIN: nothing more until it polls writable */
  int splice;    /* 0 once splicing failed (or there is no stage): frames are copied from then on */
};
extern struct port_out po;
int port_out_init(void);
void send2(uint8_t type, uint8_t flags, uint32_t id, const void *a, size_t alen, const void *b, size_t blen);
void send_frame(uint8_t type, uint32_t id, const void *p, size_t n);
void send_u32(uint8_t type, uint32_t id, uint32_t v);
__attribute__((format(printf, 3, 4))) void send_error(uint32_t id, int err, const char *fmt, ...);
int port_idle(void);
int pipe_bytes(int fd);
ssize_t stage_from(int fd, size_t max);
int splice_frame(uint8_t type, uint32_t id, size_t len);
int out_pending(void);
int flush_out(void);
void drop_queue(void);

/* ---- requests.c ---- */
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
  /* Output bytes the host has room for (its CREDIT frames): stdout (or a file's data), stderr. */
  uint32_t out_room, err_room;
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
extern struct req *reqs;
void *xmalloc(size_t n);
void close_fd(int *fd);
void set_nonblock(int fd);
struct req *find_req(uint32_t id);
struct req *new_req(uint32_t id, int kind);
void free_req(struct req *r);
void maybe_finish(struct req *r);

/* ---- exec.c: commands ---- */
/* What a child that could not start writes on its status pipe, in one write (under
 * PIPE_BUF, so it comes whole): the errno and the line for the command's stderr. */
struct child_error {
  int err;
  char msg[600];
};
const char *next_str(const unsigned char **cur, const unsigned char *end);
__attribute__((noreturn)) void run_child(int errpipe, int in, int out, int err, const char *slave, const char *cwd, char **argv, char **envp);
void handle_exec(uint32_t id, uint8_t flags, const unsigned char *p, uint32_t len);
void read_status(struct req *r);
void reap(void);

/* ---- io.c: commands' stdin and output, files' data ---- */
void handle_stdin(struct req *r, const unsigned char *p, uint32_t len);
void handle_credit(struct req *r, const unsigned char *p);
void pump_stdin(struct req *r);
void pump_copy(struct req *r, int *fd, uint8_t type);
void pump_pipe(struct req *r, int *fd, uint8_t type);
void pump_file(struct req *r);

/* ---- server.c: the inspect helper's server (contract.ts INSPECT_COMMAND.serve) ---- */
struct server {
  pid_t pid;
  int fd;   /* our end of its socket; -1 once it has gone */
  int busy; /* serving `req` */
  uint32_t req;
};
extern struct server server;
void start_server(void);
void server_gone(void);
int serve_exec(struct req *r, char **argv, uint32_t argc);
void server_said(void);

/* ---- files.c ---- */
void handle_write_file(uint32_t id, const unsigned char *p, uint32_t len);
void handle_write_data(struct req *r, uint8_t flags, const unsigned char *p, uint32_t len);
void handle_read_file(uint32_t id, const unsigned char *p, uint32_t len);

#endif
