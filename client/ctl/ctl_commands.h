/*
 * ctl_commands.h - the `ehrctl` subcommands implemented outside ehrctl.c,
 * and small helpers they share (ctl_util.c). Each command gets the
 * arguments after `ehrctl` with argv[0] = its own name ("record", ...),
 * handles --help itself and returns the exit status (0 ok, 1 failure,
 * 2 usage). The profile directory is ehr_client_default_dir(): ehrctl's
 * global --dir DIR sets EHRCTL_DIR before dispatching.
 */
#ifndef EHR_CTL_COMMANDS_H
#define EHR_CTL_COMMANDS_H

#include "client/client.h"

int ctl_cmd_record(int argc, char **argv);   /* storage: client/ctl/cmd_record.c */
int ctl_cmd_audit(int argc, char **argv);    /* contracts: client/ctl/cmd_audit.c */
int ctl_cmd_contract(int argc, char **argv); /* contracts: client/ctl/cmd_contract.c */

/* Open the client of the current profile (patients log in when needed).
 * Prints the reason and returns 1 on failure, else 0. */
int ctl_open(struct ehr_client **out);
/* Pretty-print JSON on stdout. */
void ctl_print_json(const json_t *j);
/* For a finished request: print the body (2xx) or the error (otherwise) and
 * return the exit status (0 for 2xx, 1 else). */
int ctl_finish(struct ehr_client *c, long status, const json_t *resp);

#endif
