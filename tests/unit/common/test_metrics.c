/* test_metrics.c - the metrics registry (common/metrics.h): registration
 * rules, updates, and the exact Prometheus text it renders. */
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "common/metrics.h"
#include "tests/harness/harness.h"

static struct ehr_metric m_plain = EHR_METRIC(EHR_METRIC_COUNTER, "t_plain_total", "Plain things.");
static struct ehr_metric m_by = EHR_METRIC_LABELLED(EHR_METRIC_COUNTER, "t_by_total", "Things by outcome.",
                                                    "outcome", "ok", "failed");
static struct ehr_metric m_gauge = EHR_METRIC(EHR_METRIC_GAUGE, "t_level", "A level.");

static char *render(void)
{
	struct ehr_buf b = EHR_BUF_INIT(1 << 16);

	char *text;

	EHR_ASSERT_OK(ehr_metrics_render(&b));
	text = strdup(ehr_buf_cstr(&b));
	ehr_buf_free(&b);
	CU_ASSERT_PTR_NOT_NULL_FATAL(text);
	return text;
}

static void test_render_text(void)
{
	char *text;

	EHR_ASSERT_OK(ehr_metric_register(&m_plain));
	EHR_ASSERT_OK(ehr_metric_register(&m_by));
	EHR_ASSERT_OK(ehr_metric_register(&m_gauge));
	/* zeros are written: a scraper sees every series from the start */
	text = render();
	CU_ASSERT_STRING_EQUAL(text, "# HELP t_plain_total Plain things.\n"
	                             "# TYPE t_plain_total counter\n"
	                             "t_plain_total 0\n"
	                             "# HELP t_by_total Things by outcome.\n"
	                             "# TYPE t_by_total counter\n"
	                             "t_by_total{outcome=\"ok\"} 0\n"
	                             "t_by_total{outcome=\"failed\"} 0\n"
	                             "# HELP t_level A level.\n"
	                             "# TYPE t_level gauge\n"
	                             "t_level 0\n");
	free(text);

	ehr_metric_inc(&m_plain, 0);
	ehr_metric_add(&m_plain, 0, 41);
	ehr_metric_inc(&m_by, 1);
	ehr_metric_set(&m_gauge, 0, 7);
	ehr_metric_add(&m_gauge, 0, -9);
	text = render();
	CU_ASSERT_PTR_NOT_NULL(strstr(text, "\nt_plain_total 42\n"));
	CU_ASSERT_PTR_NOT_NULL(strstr(text, "\nt_by_total{outcome=\"ok\"} 0\n"));
	CU_ASSERT_PTR_NOT_NULL(strstr(text, "\nt_by_total{outcome=\"failed\"} 1\n"));
	CU_ASSERT_PTR_NOT_NULL(strstr(text, "\nt_level -2\n"));
	free(text);

	ehr_metric_unregister(&m_by);
	text = render();
	CU_ASSERT_PTR_NULL(strstr(text, "t_by_total"));
	CU_ASSERT_PTR_NOT_NULL(strstr(text, "t_level -2\n"));
	free(text);
	ehr_metric_unregister(&m_by); /* twice: no-op */
	/* registered again, it renders last */
	EHR_ASSERT_OK(ehr_metric_register(&m_by));
	text = render();
	CU_ASSERT_PTR_NOT_NULL(strstr(text, "t_level -2\n# HELP t_by_total"));
	free(text);
	ehr_metric_unregister(&m_plain);
	ehr_metric_unregister(&m_by);
	ehr_metric_unregister(&m_gauge);
	text = render();
	CU_ASSERT_STRING_EQUAL(text, "");
	free(text);
}

static void test_counter_rules(void)
{
	struct ehr_metric c = EHR_METRIC(EHR_METRIC_COUNTER, "t_rules_total", "Rules.");

	ehr_metric_add(&c, 0, 5);
	ehr_metric_add(&c, 0, -3); /* a counter never goes down */
	ehr_metric_set(&c, 0, 1);  /* nor is set */
	CU_ASSERT_EQUAL(ehr_metric_get(&c, 0), 5);
	ehr_metric_inc(&c, EHR_METRIC_MAX_SERIES); /* out of range: ignored */
	CU_ASSERT_EQUAL(ehr_metric_get(&c, EHR_METRIC_MAX_SERIES), 0);
}

/* A module opened twice registers its metrics twice: the second time is a
 * no-op that keeps the values and the caller's error message. */
static void test_register_all_again(void)
{
	static struct ehr_metric a = EHR_METRIC(EHR_METRIC_COUNTER, "t_again_a_total", "A.");
	static struct ehr_metric b = EHR_METRIC(EHR_METRIC_GAUGE, "t_again_b", "B.");
	struct ehr_metric *const set[] = { &a, &b };
	char *text;

	ehr_metric_register_all(set, 2);
	ehr_metric_add(&a, 0, 7);
	ehr_metric_set(&b, 0, 3);
	ehr_error_set(EHR_ERR_INVAL, "the caller's own error");
	ehr_metric_register_all(set, 2);
	CU_ASSERT_STRING_EQUAL(ehr_error_msg(), "the caller's own error");
	CU_ASSERT_EQUAL(ehr_metric_get(&a, 0), 7);
	CU_ASSERT_EQUAL(ehr_metric_get(&b, 0), 3);
	text = render();
	CU_ASSERT_PTR_NOT_NULL(strstr(text, "\nt_again_a_total 7\n"));
	CU_ASSERT_PTR_NOT_NULL(strstr(text, "\nt_again_b 3\n"));
	/* once in the text, not twice */
	CU_ASSERT_PTR_NULL(strstr(strstr(text, "\nt_again_a_total 7\n") + 1, "\nt_again_a_total "));
	free(text);
	ehr_metric_unregister(&a);
	ehr_metric_unregister(&b);
}

static void test_register_refuses(void)
{
	struct ehr_metric bad_name = EHR_METRIC(EHR_METRIC_COUNTER, "9lives", "x");
	struct ehr_metric bad_name2 = EHR_METRIC(EHR_METRIC_COUNTER, "a-b", "x");
	struct ehr_metric bad_help = EHR_METRIC(EHR_METRIC_GAUGE, "t_h", "two\nlines");
	struct ehr_metric no_help = EHR_METRIC(EHR_METRIC_GAUGE, "t_h", NULL);
	struct ehr_metric bad_value =
	        EHR_METRIC_LABELLED(EHR_METRIC_COUNTER, "t_v_total", "x", "k", "ok", "a\"b");
	struct ehr_metric bad_label = EHR_METRIC_LABELLED(EHR_METRIC_COUNTER, "t_v_total", "x", "a:b", "ok");
	struct ehr_metric many =
	        EHR_METRIC_LABELLED(EHR_METRIC_COUNTER, "t_many_total", "x", "k", "1", "2", "3", "4", "5",
	                            "6", "7", "8", "9", "10", "11", "12", "13", "14", "15", "16", "17");
	struct ehr_metric a = EHR_METRIC(EHR_METRIC_GAUGE, "t_dup", "x");
	struct ehr_metric b = EHR_METRIC(EHR_METRIC_GAUGE, "t_dup", "y");

	EHR_ASSERT_ERR(ehr_metric_register(&bad_name), EHR_ERR_INVAL);
	EHR_ASSERT_ERR(ehr_metric_register(&bad_name2), EHR_ERR_INVAL);
	EHR_ASSERT_ERR(ehr_metric_register(&bad_help), EHR_ERR_INVAL);
	EHR_ASSERT_ERR(ehr_metric_register(&no_help), EHR_ERR_INVAL);
	EHR_ASSERT_ERR(ehr_metric_register(&bad_value), EHR_ERR_INVAL);
	EHR_ASSERT_ERR(ehr_metric_register(&bad_label), EHR_ERR_INVAL);
	EHR_ASSERT_ERR(ehr_metric_register(&many), EHR_ERR_INVAL);
	EHR_ASSERT_OK(ehr_metric_register(&a));
	EHR_ASSERT_ERR(ehr_metric_register(&a), EHR_ERR_EXISTS);
	EHR_ASSERT_ERR(ehr_metric_register(&b), EHR_ERR_EXISTS);
	ehr_metric_unregister(&a);
	EHR_ASSERT_OK(ehr_metric_register(&b));
	ehr_metric_unregister(&b);
}

/* Updates from many threads lose nothing (relaxed atomics, no lock). */
static struct ehr_metric m_race = EHR_METRIC(EHR_METRIC_COUNTER, "t_race_total", "Race.");
static void *bump_many(void *arg)
{
	for (int i = 0; i < 100000; i++)
		ehr_metric_inc(&m_race, 0);
	return arg;
}

static void test_concurrent_updates(void)
{
	pthread_t t[4];

	for (int i = 0; i < 4; i++)
		CU_ASSERT_EQUAL_FATAL(pthread_create(&t[i], NULL, bump_many, NULL), 0);
	for (int i = 0; i < 4; i++)
		pthread_join(t[i], NULL);
	CU_ASSERT_EQUAL(ehr_metric_get(&m_race, 0), 400000);
}

static void register_suites(void)
{
	EHR_ADD_SUITE("metrics registry", NULL, NULL, { "render text", test_render_text },
	              { "counter rules", test_counter_rules }, { "register refuses", test_register_refuses },
	              { "concurrent updates", test_concurrent_updates },
	              { "register_all twice", test_register_all_again });
}

EHR_TEST_MAIN(register_suites)
