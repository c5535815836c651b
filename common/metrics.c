/*
 * metrics.c - the metrics registry (common/metrics.h).
 *
 * The list is guarded by one mutex, taken to register, unregister and
 * render: rare events. Updates touch only the metric's own atomics.
 */
#include "common/metrics.h"

#include <pthread.h>
#include <string.h>

static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static struct ehr_metric *head, **tail = &head;

static bool name_ok(const char *s)
{
	if (s == NULL || *s == '\0' || (*s >= '0' && *s <= '9'))
		return false;
	for (; *s; s++)
		if (!((*s >= 'a' && *s <= 'z') || (*s >= 'A' && *s <= 'Z') || (*s >= '0' && *s <= '9') ||
		      *s == '_' || *s == ':'))
			return false;
	return true;
}

/* Text we write between quotes or after HELP without escaping it. */
static bool text_ok(const char *s, const char *refuse)
{
	return s != NULL && strpbrk(s, refuse) == NULL;
}

/* The number of series of m's definition, or a negative ehr_err. */
static int count_series(const struct ehr_metric *m)
{
	size_t n = 0;

	if (m->label == NULL)
		return m->values == NULL
		               ? 1
		               : ehr_error_set(EHR_ERR_INVAL, "metric %s: values without label", m->name);
	ENSURE(name_ok(m->label) && strchr(m->label, ':') == NULL && m->values != NULL, EHR_ERR_INVAL);
	for (; m->values[n] != NULL; n++) {
		ENSURE(n < EHR_METRIC_MAX_SERIES, EHR_ERR_INVAL);
		ENSURE(text_ok(m->values[n], "\"\\\n"), EHR_ERR_INVAL);
	}
	ENSURE(n > 0, EHR_ERR_INVAL);
	return (int)n;
}

int ehr_metric_register(struct ehr_metric *m)
{
	int n, err = 0;

	ENSURE(m != NULL && name_ok(m->name), EHR_ERR_INVAL);
	ENSURE(text_ok(m->help, "\\\n"), EHR_ERR_INVAL);
	ENSURE(m->type == EHR_METRIC_COUNTER || m->type == EHR_METRIC_GAUGE, EHR_ERR_INVAL);
	GUARD(n = count_series(m));
	pthread_mutex_lock(&lock);
	for (const struct ehr_metric *p = head; p != NULL; p = p->next)
		if (p == m || strcmp(p->name, m->name) == 0) {
			err = ehr_error_set(EHR_ERR_EXISTS, "metric %s is registered already", m->name);
			goto out;
		}
	m->nseries = (size_t)n;
	m->next = NULL;
	m->registered = true;
	*tail = m;
	tail = &m->next;
out:
	pthread_mutex_unlock(&lock);
	return err;
}

void ehr_metric_register_all(struct ehr_metric *const *ms, size_t n)
{
	struct ehr_error_saved saved;

	ehr_error_save(&saved);
	for (size_t i = 0; i < n; i++)
		(void)ehr_metric_register(ms[i]); /* EHR_ERR_EXISTS: already there */
	ehr_error_restore(&saved);
}

void ehr_metric_unregister(struct ehr_metric *m)
{
	pthread_mutex_lock(&lock);
	for (struct ehr_metric **pp = &head; *pp != NULL; pp = &(*pp)->next)
		if (*pp == m) {
			*pp = m->next;
			if (tail == &m->next)
				tail = pp;
			m->next = NULL;
			m->registered = false;
			break;
		}
	pthread_mutex_unlock(&lock);
}

void ehr_metric_add(struct ehr_metric *m, size_t series, int64_t n)
{
	if (series >= EHR_METRIC_MAX_SERIES || (m->type == EHR_METRIC_COUNTER && n < 0))
		return;
	atomic_fetch_add_explicit(&m->v[series], n, memory_order_relaxed);
}

void ehr_metric_inc(struct ehr_metric *m, size_t series)
{
	ehr_metric_add(m, series, 1);
}

void ehr_metric_set(struct ehr_metric *m, size_t series, int64_t value)
{
	if (m->type != EHR_METRIC_GAUGE || series >= EHR_METRIC_MAX_SERIES)
		return;
	atomic_store_explicit(&m->v[series], value, memory_order_relaxed);
}

int64_t ehr_metric_get(const struct ehr_metric *m, size_t series)
{
	if (series >= EHR_METRIC_MAX_SERIES)
		return 0;
	return atomic_load_explicit(&m->v[series], memory_order_relaxed);
}

static int render_one(struct ehr_buf *out, const struct ehr_metric *m)
{
	GUARD(ehr_buf_printf(out, "# HELP %s %s\n# TYPE %s %s\n", m->name, m->help, m->name,
	                     m->type == EHR_METRIC_COUNTER ? "counter" : "gauge"));
	for (size_t i = 0; i < m->nseries; i++) {
		long long v = (long long)ehr_metric_get(m, i);
		if (m->label == NULL)
			GUARD(ehr_buf_printf(out, "%s %lld\n", m->name, v));
		else
			GUARD(ehr_buf_printf(out, "%s{%s=\"%s\"} %lld\n", m->name, m->label, m->values[i],
			                     v));
	}
	return 0;
}

int ehr_metrics_render(struct ehr_buf *out)
{
	int err = 0;

	pthread_mutex_lock(&lock);
	for (const struct ehr_metric *m = head; m != NULL && err == 0; m = m->next)
		err = render_one(out, m);
	pthread_mutex_unlock(&lock);
	return err;
}
