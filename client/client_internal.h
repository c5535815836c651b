/* client_internal.h - libehrclient internals. */
#ifndef EHR_CLIENT_INTERNAL_H
#define EHR_CLIENT_INTERNAL_H

#include "client/client.h"

struct ehr_client {
	void *curl; /* CURL *, reused so connections stay alive */
	char *url, *ca_file, *cert_file, *key_file;
	char *token; /* DPoP-bound access token */
	EVP_PKEY *dpop_key;
	long timeout_ms;
	char role[16];
	char id[128];
	char *dir; /* profile directory, when opened from one */
	struct ehr_buf last_error;
	struct ehr_buf resp_headers; /* the last response's header block */
	long last_connects;
	ehr_client_progress_fn progress; /* ehr_client_set_progress (storage: ehrctl record) */
	void *progress_ud;
};

#endif
