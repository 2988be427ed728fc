/*
 * The inspect helper as a server, between the agent and `inspect serve` only (the host
 * sees ordinary commands). The agent starts one before the snapshot point, so a restored
 * VM runs the helper's commands without a fork and an exec each: the first exec of a
 * resumed VM costs 60-100 ms under TCG (cold paths), each later one ~10 ms.
 *
 * The server's stdin is a SOCK_SEQPACKET socket. Request: one message holding the
 * command's arguments after the program name, each NUL-terminated (any the host's EXEC
 * frame can hold fit), with two descriptors (SCM_RIGHTS): its stdout and stderr. Reply, once the command has ended and closed both: its exit status, an int.
 * A command that exits (fatal, or stdout closed on it) or is killed takes the server
 * with it: the agent reaps it as it would the command, and runs later ones by fork and
 * exec. One command at a time; the agent forks the rest.
 */
#ifndef APPLIANCE_SERVE_H
#define APPLIANCE_SERVE_H

#define APPL_SERVE_COMMAND "serve"
/* Needs contract.h (protocol.h) first. Each argument takes two bytes at least. */
#define APPL_SERVE_REQUEST_MAX APPL_MAX_PAYLOAD
#define APPL_SERVE_ARGS_MAX (APPL_MAX_PAYLOAD / 2)

#endif
