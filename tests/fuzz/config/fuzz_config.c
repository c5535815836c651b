/* fuzz_config.c - the INI config parser (gateway/config.c) on arbitrary text:
 * it must return 0 or EHR_ERR_CONFIG, never crash, leak or read out of bounds. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "gateway/gateway.h"
#include "records/records.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct gw_config *cfg = NULL;
	char *text = malloc(size + 1);
	int rc;

	if (text == NULL || gw_config_new(&cfg) < 0) {
		free(text);
		return 0;
	}
	memcpy(text, data, size);
	text[size] = '\0';
	rc = gw_config_load_string(cfg, text, "fuzz.ini");
	if (rc == 0)
		rc = gw_config_finish(cfg);
	if (rc != 0 && rc != EHR_ERR_CONFIG && rc != EHR_ERR_NOMEM)
		abort();
	if (rc == 0) {
		struct ehr_buf dump = EHR_BUF_INIT(1u << 20);
		gw_config_dump(cfg, &dump);
		ehr_buf_free(&dump);
		struct records_retention ret;
		(void)gw_config_get_uint(cfg, "server", "workers");
		/* [retention]'s own syntax (gateway/retention.c). */
		rc = gw_retention_from_config(cfg, &ret);
		if (rc != 0 && rc != EHR_ERR_CONFIG)
			abort();
	}
	gw_config_free(cfg);
	free(text);
	return 0;
}
