/*
 * cmd_ledger.c - `ehrgate ledger ...`: verify the ledger from the database,
 * print checkpoints, proofs and the verifier key (docs/LEDGER.md §8).
 *
 *   ehrgate ledger verify [--from N] [--checkpoint FILE] [--db CONNINFO] [--pubkey FILE]
 *                         [--all-signatures] [--jobs N]
 *   ehrgate ledger checkpoint [--size N]
 *   ehrgate ledger prove --index I [--size N] | --from M [--size N]
 *   ehrgate ledger vkey
 *
 * -c FILE / --set section.key=value as for every command. The database is
 * [database] url unless --db is given; the public key comes from --pubkey
 * (PEM, public or private, or a vkey line) or <state_dir>/ledger.key.
 */
#include "gateway/cmd/commands.h"
#include "gateway/gateway.h"

#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <libpq-fe.h>

#include "ledger/ledger.h"

static void usage(FILE *f)
{
	fprintf(f, "usage: ehrgate ledger <command> [-c FILE] [--set section.key=value] ...\n"
	           "  verify [--from N] [--checkpoint FILE] [--db CONNINFO] [--pubkey FILE]\n"
	           "         [--all-signatures] [--jobs N]\n"
	           "        recompute every leaf, subtree hash, block hash and hash-chain link from\n"
	           "        entry N (default 0) and check the last block's block and checkpoint\n"
	           "        signatures (the chain binds every earlier block to them);\n"
	           "        --all-signatures checks both signatures of every block too. --jobs N:\n"
	           "        N ranges at once, each on its own connection (default: one per CPU, at\n"
	           "        most 4, for a long ledger). With --checkpoint, also require the\n"
	           "        database to extend that trusted checkpoint. Exit 0 only if everything\n"
	           "        matches; otherwise name the first bad entry or block.\n"
	           "  checkpoint [--size N]\n"
	           "        print the signed checkpoint note at tree size N (default: latest).\n"
	           "  prove --index I [--size N]   inclusion proof of entry I in tree size N (JSON)\n"
	           "  prove --from M [--size N]    consistency proof from size M to N (JSON)\n"
	           "  vkey  print the checkpoint verifier key (C2SP vkey).\n");
}

struct opts {
	uint64_t from, size, index, jobs;
	bool have_from, have_index, all_signatures;
	const char *db, *pubkey, *checkpoint;
};

static int parse_opts(struct opts *o, int argc, char **argv)
{
	static const struct option lo[] = {
		{ "from", required_argument, NULL, 'f' },     { "size", required_argument, NULL, 's' },
		{ "index", required_argument, NULL, 'i' },    { "db", required_argument, NULL, 'd' },
		{ "pubkey", required_argument, NULL, 'p' },   { "checkpoint", required_argument, NULL, 'k' },
		{ "all-signatures", no_argument, NULL, 'a' }, { "jobs", required_argument, NULL, 'j' },
		{ "help", no_argument, NULL, 'h' },           { NULL, 0, NULL, 0 },
	};
	int c;

	memset(o, 0, sizeof(*o));
	optind = 1;
	while ((c = getopt_long(argc, argv, "h", lo, NULL)) != -1) {
		switch (c) {
		case 'f':
			if (ehr_parse_u64(&o->from, optarg, INT64_MAX) < 0)
				goto bad;
			o->have_from = true;
			break;
		case 's':
			if (ehr_parse_u64(&o->size, optarg, INT64_MAX) < 0)
				goto bad;
			break;
		case 'i':
			if (ehr_parse_u64(&o->index, optarg, INT64_MAX) < 0)
				goto bad;
			o->have_index = true;
			break;
		case 'j':
			if (ehr_parse_u64(&o->jobs, optarg, 16) < 0 || o->jobs == 0)
				goto bad;
			break;
		case 'a': o->all_signatures = true; break;
		case 'd': o->db = optarg; break;
		case 'p': o->pubkey = optarg; break;
		case 'k': o->checkpoint = optarg; break;
		case 'h': usage(stdout); return 3;
		default: goto bad;
		}
	}
	if (optind != argc)
		goto bad;
	return 0;
bad:
	usage(stderr);
	return 2;
}

static int load_pubkey(uint8_t pub[32], const struct opts *o, const struct gw_config *cfg)
{
	struct ehr_buf path = EHR_BUF_INIT(4096);
	int err;

	if (o->pubkey)
		return ledger_key_load_public(pub, o->pubkey);
	GUARD(gw_config_state_path(cfg, "ledger.key", &path));
	err = ledger_key_load_public(pub, ehr_buf_cstr(&path));
	ehr_buf_free(&path);
	return err;
}

static int cmd_verify(const struct opts *o, const struct gw_config *cfg)
{
	struct ledger_verify_report rep;
	struct ehr_buf note = EHR_BUF_INIT(16384), b64 = EHR_BUF_INIT(64);
	const char *ci = o->db ? o->db : gw_config_get(cfg, "database", "url");
	uint8_t pub[32];
	PGconn *c = NULL;
	int64_t t0;
	int err, rc = 1;

	if (load_pubkey(pub, o, cfg) < 0) {
		fprintf(stderr, "ehrgate ledger verify: public key: %s\n", ehr_error_detail());
		return 1;
	}
	if (o->checkpoint && ehr_file_read(&note, o->checkpoint, 16384) < 0) {
		fprintf(stderr, "ehrgate ledger verify: %s\n", ehr_error_detail());
		return 1;
	}
	c = PQconnectdb(ci ? ci : "");
	if (PQstatus(c) != CONNECTION_OK) {
		fprintf(stderr, "ehrgate ledger verify: cannot connect to the database: %s",
		        PQerrorMessage(c));
		goto out;
	}
	t0 = ehr_monotonic_ms();
	{
		struct ledger_verify_opts vo = {
			.from = o->from,
			.trusted_note = o->checkpoint ? (const char *)note.data : NULL,
			.trusted_len = note.len,
			.all_signatures = o->all_signatures,
			.jobs = (unsigned)o->jobs,
		};

		err = ledger_verify_db_opts(c, pub, &vo, &rep);
	}
	if (err == 0) {
		int64_t ms = ehr_monotonic_ms() - t0;

		ehr_b64_encode(&b64, rep.root, LEDGER_HASH_LEN);
		printf("ledger verify: OK: %llu entries, %llu blocks checked from seq %llu; tree size %llu, "
		       "root %s "
		       "(%lld ms, %.0f entries/s; signatures: %s)\n",
		       (unsigned long long)rep.entries, (unsigned long long)rep.blocks,
		       (unsigned long long)o->from, (unsigned long long)rep.tree_size, ehr_buf_cstr(&b64),
		       (long long)ms, ms > 0 ? (double)rep.entries * 1000.0 / (double)ms : 0.0,
		       o->all_signatures ? "every block's" : "the last block's");
		rc = 0;
	} else if (err == EHR_ERR_TAMPER && rep.bad != LEDGER_BAD_NONE) {
		printf("ledger verify: FAILED at %s %llu: %s\n",
		       rep.bad == LEDGER_BAD_ENTRY        ? "entry seq"
		       : rep.bad == LEDGER_BAD_CHECKPOINT ? "checkpoint of block"
		                                          : "block height",
		       (unsigned long long)(rep.bad == LEDGER_BAD_ENTRY ? rep.bad_seq : rep.bad_height),
		       rep.reason);
		printf("ledger verify: %llu entries and %llu blocks matched before it\n",
		       (unsigned long long)rep.entries, (unsigned long long)rep.blocks);
	} else {
		fprintf(stderr, "ehrgate ledger verify: %s\n", ehr_error_detail());
	}
out:
	PQfinish(c);
	ehr_buf_free(&note);
	ehr_buf_free(&b64);
	return rc;
}

static int with_ledger(const struct gw_config *cfg, struct gw_app **app)
{
	if (gw_app_open(app, cfg, GW_APP_DB | GW_APP_LEDGER) < 0) {
		fprintf(stderr, "ehrgate ledger: %s\n", ehr_error_detail());
		return 1;
	}
	return 0;
}

static int cmd_checkpoint(const struct opts *o, const struct gw_config *cfg)
{
	struct gw_app *app = NULL;
	struct ehr_buf note = EHR_BUF_INIT(16384);
	int rc = 1;

	if (with_ledger(cfg, &app) != 0)
		return 1;
	if (ledger_checkpoint(gw_app_ledger(app), o->size, &note) < 0)
		fprintf(stderr, "ehrgate ledger checkpoint: %s\n", ehr_error_detail());
	else if (fwrite(note.data, 1, note.len, stdout) == note.len)
		rc = 0;
	ehr_buf_free(&note);
	gw_app_close(app);
	return rc;
}

static int cmd_prove(const struct opts *o, const struct gw_config *cfg)
{
	struct gw_app *app = NULL;
	struct ledger *l;
	struct ledger_block head;
	uint8_t proof[LEDGER_MAX_PROOF][LEDGER_HASH_LEN];
	struct ehr_buf out = EHR_BUF_INIT(1 << 16);
	uint64_t size = o->size;
	size_t n = 0;
	json_t *j = NULL;
	int err, rc = 1;

	if (o->have_index == o->have_from) {
		usage(stderr);
		return 2;
	}
	if (with_ledger(cfg, &app) != 0)
		return 1;
	l = gw_app_ledger(app);
	if (size == 0) {
		if (ledger_head(l, &head) < 0) {
			fprintf(stderr, "ehrgate ledger prove: %s\n", ehr_error_detail());
			goto out;
		}
		size = head.tree_size;
	}
	if (o->have_index)
		err = ledger_prove_inclusion(l, o->index, size, proof, &n);
	else
		err = ledger_prove_consistency(l, o->from, size, proof, &n);
	if (err < 0) {
		fprintf(stderr, "ehrgate ledger prove: %s\n", ehr_error_detail());
		goto out;
	}
	j = ledger_proof_json(size, o->have_index ? o->index : o->from, !o->have_index,
	                      (const uint8_t(*)[LEDGER_HASH_LEN])proof, n);
	if (j != NULL && ehr_json_dump(&out, j) == 0) {
		printf("%s\n", ehr_buf_cstr(&out));
		rc = 0;
	}
out:
	json_decref(j);
	ehr_buf_free(&out);
	gw_app_close(app);
	return rc;
}

static int cmd_vkey(const struct opts *o, const struct gw_config *cfg)
{
	struct ehr_buf vk = EHR_BUF_INIT(512);
	uint8_t pub[32];
	int rc = 1;

	if (load_pubkey(pub, o, cfg) < 0 ||
	    ledger_vkey_format(&vk, gw_config_get(cfg, "ledger", "origin"), pub) < 0)
		fprintf(stderr, "ehrgate ledger vkey: %s\n", ehr_error_detail());
	else {
		printf("%s\n", ehr_buf_cstr(&vk));
		rc = 0;
	}
	ehr_buf_free(&vk);
	return rc;
}

int gw_cmd_ledger(int argc, char **argv)
{
	struct gw_config *cfg = NULL;
	struct opts o;
	const char *sub;
	int rc;

	if (argc < 2 || strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0) {
		usage(argc < 2 ? stderr : stdout);
		return argc < 2 ? 2 : 0;
	}
	sub = argv[1];
	argv++;
	argc--;
	if ((rc = gw_config_from_args(&cfg, &argc, argv)) != 0)
		return rc;
	rc = parse_opts(&o, argc, argv);
	if (rc == 3) {
		rc = 0;
		goto out;
	}
	if (rc != 0)
		goto out;
	if (strcmp(sub, "verify") == 0)
		rc = cmd_verify(&o, cfg);
	else if (strcmp(sub, "checkpoint") == 0)
		rc = cmd_checkpoint(&o, cfg);
	else if (strcmp(sub, "prove") == 0)
		rc = cmd_prove(&o, cfg);
	else if (strcmp(sub, "vkey") == 0)
		rc = cmd_vkey(&o, cfg);
	else {
		usage(stderr);
		rc = 2;
	}
out:
	gw_config_free(cfg);
	return rc;
}
