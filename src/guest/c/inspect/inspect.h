/*
 * appliance inspect: the guest side of disk inspection (src/inspect on the host). It only
 * reads and mounts; what the bytes mean is decided on the host. Static, so each call costs
 * no dynamic loading under TCG. Every path inside an inspected filesystem is resolved with
 * openat2(RESOLVE_IN_ROOT), so its symlinks (absolute ones too) stay inside it, and `..`
 * cannot leave it: a hostile image cannot make us read the appliance's own files.
 *
 * Its commands, their arguments and what they print are the contract's (contract.ts
 * INSPECT_COMMAND and below; contract.h here):
 *
 *   devices                          block devices, a line each (APPL_FIELD_* fields)
 *   read DEV OFF LEN [DEV OFF LEN]…  for each range: u32 length read, the bytes
 *   mount DEV DIR TYPE OPTS […]…     read-only mounts, a status line each (with its statfs)
 *   umount DIR…                      a status line each
 *   statfs DIR…                      a line each
 *   walk ROOT PATH FLAGS DEPTH       records of PATH and below
 *   cat ROOT PATH                    a regular file's content
 *   read-files [LIMIT ROOT N PATH…]… for each path: i32 errno, u64 length, the bytes (at most LIMIT;
 *                                    LIMIT APPL_READ_TYPES: its type letter, a symlink's target)
 *   btrfs-forget                     forget the btrfs devices that are not mounted
 *   serve                            the agent's: commands in this process (main.c)
 *
 * The commands are plain processes over folders and files, so all but devices, mount,
 * umount and btrfs-forget run on any Linux host too (test/inspect-helper.test.ts does).
 * One file a group of commands, as libguestfs's daemon has one a group of calls.
 */
#ifndef APPLIANCE_INSPECT_H
#define APPLIANCE_INSPECT_H

#define _GNU_SOURCE
#include "../protocol.h"
#define LOG_PREFIX APPL_INSPECT_LOG_PREFIX
#include "../util.h"

#include <sys/stat.h>
#include <sys/types.h>

/* out.c: the command's stdout, buffered; text lines of fields; spliced file data. */
void out_reset(void);
void flush_out(void);
void put(const void *p, size_t n);
void put8(unsigned v);
void put32(uint32_t v);
void put64(uint64_t v);
void put_bytes(const void *p, size_t n);
void put_zeros(size_t n);
size_t send_range(int fd, off_t at, size_t n);
void field(const char *key, const char *value);
void field_u64(const char *key, uint64_t v);
void end_line(void);

/* root.c: paths inside an inspected filesystem. */
int open_in_root(int rootfd, const char *path, int flags);
int open_root(const char *root);
int open_regular(int rootfd, const char *path, int *err);
char file_type(mode_t m);

/* The commands: argc and argv are the command's own arguments. Each returns its exit status. */
int cmd_devices(int argc, char **argv);
int cmd_read(int argc, char **argv);
int cmd_mount(int argc, char **argv);
int cmd_umount(int argc, char **argv);
int cmd_statfs(int argc, char **argv);
int cmd_walk(int argc, char **argv);
int cmd_cat(int argc, char **argv);
int cmd_read_files(int argc, char **argv);
int cmd_btrfs_forget(int argc, char **argv);

/* mount.c, for fuse.c: a mounted filesystem's statfs as fields of the current line. */
int statfs_fields(const char *dir);
/* fuse.c: FUSE drivers (ntfs-3g) mounted and unmounted. */
#define SAID_MAX 2048
int fuse_mount(const char *program, const char *dev, const char *dir, const char *opts, char *said);
int umount_dir(const char *dir);

#endif
