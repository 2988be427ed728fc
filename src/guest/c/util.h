/*
 * Helpers shared by the init and the agent: console lines, boot clock, small files, and
 * the one way PID 1 may give up (power off; PID 1 must never exit, or the kernel panics).
 * Each program defines LOG_PREFIX before including this file.
 */
#ifndef APPLIANCE_UTIL_H
#define APPLIANCE_UTIL_H

#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/reboot.h>
#include <sys/syscall.h>
#include <termios.h>
#include <time.h>
#include <unistd.h>

#include "contract.h"

#ifndef LOG_PREFIX
#error "define LOG_PREFIX before including util.h"
#endif

static inline uint64_t clock_ms(clockid_t clock) {
  struct timespec ts;
  clock_gettime(clock, &ts);
  return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

static inline void vsay_as(const char *prefix, const char *tag, const char *fmt, va_list ap) {
  char line[1024];
  int n = snprintf(line, sizeof line - 1, "%s: %s", prefix, tag);
  int m = vsnprintf(line + n, sizeof line - 1 - (size_t)n, fmt, ap);
  if (n < 0 || m < 0) return;
  size_t len = (size_t)n + (size_t)m;
  if (len > sizeof line - 2) len = sizeof line - 2; /* truncated: keep the newline */
  line[len++] = '\n';
  /* One write per line so lines of concurrent writers do not interleave. */
  while (write(2, line, len) < 0 && errno == EINTR) {}
}

static inline void vsay(const char *tag, const char *fmt, va_list ap) {
  vsay_as(LOG_PREFIX, tag, fmt, ap);
}

static inline __attribute__((format(printf, 1, 2))) void say(const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  vsay("", fmt, ap);
  va_end(ap);
}

/* Reads a small file into buf (NUL-terminated, trailing whitespace removed). */
static inline int read_text(const char *path, char *buf, size_t size) {
  int fd = open(path, O_RDONLY | O_CLOEXEC);
  if (fd < 0) return -1;
  size_t have = 0;
  for (;;) {
    ssize_t n = read(fd, buf + have, size - 1 - have);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) break;
    have += (size_t)n;
    if (have == size - 1) break;
  }
  close(fd);
  while (have > 0 && (buf[have - 1] == '\n' || buf[have - 1] == ' ' || buf[have - 1] == '\0'))
    have--;
  buf[have] = '\0';
  return 0;
}

/* Writes a short text to a file (sysfs): 0 when all of it went. */
static inline int write_text(const char *path, const char *text) {
  int fd = open(path, O_WRONLY | O_CLOEXEC);
  if (fd < 0) return -1;
  ssize_t n = write(fd, text, strlen(text));
  close(fd);
  return n == (ssize_t)strlen(text) ? 0 : -1;
}

/* Closes every descriptor but stdio and `keep` (> 2). */
static inline void close_others(int keep) {
  if ((keep == 3 || syscall(SYS_close_range, 3, keep - 1, 0) == 0) && syscall(SYS_close_range, keep + 1, ~0U, 0) == 0)
    return;
  for (int fd = 3; fd < 1024; fd++) /* a kernel before 5.9 */
    if (fd != keep) close(fd);
}

/* Never returns. As PID 1: power off, else reboot (qemu runs with -no-reboot, so
 * that ends the VM too), else wait forever rather than exit. Elsewhere: exit. */
static inline __attribute__((noreturn)) void halt_vm(int status) {
  if (getpid() != 1) exit(status);
  sync();
  reboot(RB_POWER_OFF);
  reboot(RB_AUTOBOOT);
  for (;;) pause();
}

static inline __attribute__((noreturn, format(printf, 1, 2))) void fatal(const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  vsay(APPL_LINE_FATAL, fmt, ap);
  va_end(ap);
  /* The serial console sends asynchronously: let the line out before the VM is gone. */
  tcdrain(2);
  halt_vm(1);
}

#endif
