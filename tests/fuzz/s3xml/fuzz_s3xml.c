/*
 * fuzz_s3xml.c - libFuzzer target for the S3 response scanner (cloud/s3_xml.c),
 * which reads untrusted XML from the S3 service: ListObjectsV2 pages,
 * InitiateMultipartUploadResult, Error bodies.
 *
 * It walks the input exactly as cloud/s3.c does (every <Contents>, its <Key>
 * and <Size>, then <IsTruncated>, <NextContinuationToken>, <UploadId>,
 * <Code>). Properties (abort on violation): decoded text is never longer
 * than its raw span; an element found by s3_xml_find is also found by the
 * iterator; the iterator never moves backwards or past the end.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "cloud/cloud_internal.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	const char *doc = (const char *)data;
	struct ehr_buf text = EHR_BUF_INIT(1 << 20), key = EHR_BUF_INIT(1 << 20);
	struct s3_xml_iter it;
	const char *p;
	size_t n, last = 0;
	int r;
	static const char *names[] = { "IsTruncated", "NextContinuationToken", "UploadId", "Code", "Key" };

	s3_xml_iter_init(&it, doc, size);
	while ((r = s3_xml_next_raw(&it, "Contents", &p, &n)) == 1) {
		if (it.off < last || it.off > size || p < doc || p + n > doc + size)
			abort();
		last = it.off;
		if (s3_xml_find(p, n, "Key", &key) == 1 && key.len > n)
			abort();
		s3_xml_find(p, n, "Size", &text);
	}
	for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
		struct s3_xml_iter it2;
		int found = s3_xml_find(doc, size, names[i], &text);
		if (found == 1 && text.len > size)
			abort();
		s3_xml_iter_init(&it2, doc, size);
		if (found == 1 && s3_xml_next(&it2, names[i], &key) != 1)
			abort();
	}
	ehr_buf_free(&text);
	ehr_buf_free(&key);
	ehr_error_clear();
	return 0;
}
