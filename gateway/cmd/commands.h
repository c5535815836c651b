/*
 * commands.h - the `ehrgate` subcommands. Each takes the arguments after its
 * name (argv[0] is the subcommand), handles --help itself, and returns the
 * process exit status (0 ok, 1 failure, 2 usage error).
 */
#ifndef EHR_GATEWAY_COMMANDS_H
#define EHR_GATEWAY_COMMANDS_H

int gw_cmd_init(int argc, char **argv);    /* gateway core: state dir, dev PKI, keys */
int gw_cmd_migrate(int argc, char **argv); /* gateway core: schemas/sql/ in order */
int gw_cmd_serve(int argc, char **argv);   /* gateway core */
int gw_cmd_ledger(int argc, char **argv);  /* ledger: verify, ... (cmd_ledger.c) */
int gw_cmd_admin(int argc, char **argv); /* auth: issue-token, revoke; dispatches rotate-kek (cmd_admin.c) */
int gw_cmd_admin_rotate_kek(int argc, char **argv);         /* storage (cmd_kek.c) */
int gw_cmd_admin_erase(int argc, char **argv);              /* erasure (cmd_erase.c) */
int gw_cmd_admin_hold(int argc, char **argv);               /* legal holds (cmd_erase.c) */
int gw_cmd_admin_erase_patient(int argc, char **argv);      /* patient erasure (cmd_erase.c) */
int gw_cmd_admin_migrate_pseudonyms(int argc, char **argv); /* pseudonym links (cmd_pseudonyms.c) */
int gw_cmd_fsck(int argc, char **argv);                     /* storage (cmd_fsck.c) */
int gw_cmd_contracts(int argc, char **argv);                /* contracts: rebuild (cmd_contracts.c) */
int gw_cmd_routes(int argc, char **argv);                   /* the router's tables (cmd_routes.c) */

/*
 * Create link.key at `path` when it is absent, and only while the database
 * holds no external-id links (links made under another instance's key
 * would never be found again). 0: created; 1: it exists, nothing done;
 * < 0: refused (EHR_ERR_CONFIG) or failed. `ehrgate init` on an existing
 * state directory and `ehrgate admin migrate-pseudonyms` (cmd_pseudonyms.c).
 */
struct ehr_db_pool;
int gw_cmd_link_key_create(struct ehr_db_pool *db, const char *path);

#endif
