/*
 * metrics.h - the process's metrics registry (Prometheus text format 0.0.4).
 *
 * A module defines its counters and gauges as static struct ehr_metric
 * values, registers them once, and updates them with relaxed atomics (no
 * lock, never a torn value). One renderer writes every registered metric; it
 * reads values and calls no module, so /metrics cannot block on a module or
 * reach into one. A gauge is therefore set by its module when it changes,
 * never computed at scrape time.
 *
 *   static struct ehr_metric m_hits = EHR_METRIC(EHR_METRIC_COUNTER,
 *           "ehrgate_x_hits_total", "Hits of x.");
 *   static struct ehr_metric m_by = EHR_METRIC_LABELLED(EHR_METRIC_COUNTER,
 *           "ehrgate_x_total", "X by outcome.", "outcome", "ok", "failed");
 *   ehr_metric_register(&m_hits);          once, e.g. at the module's init
 *   ehr_metric_inc(&m_by, 1);              outcome="failed"
 *
 * The HTTP engine's per-route histograms and per-server gauges are not here:
 * they belong to one server instance and are sharded per worker
 * (gateway/http/metrics.c); /metrics writes them, then this registry.
 */
#ifndef EHR_METRICS_H
#define EHR_METRICS_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common/common.h"

enum ehr_metric_type {
	EHR_METRIC_COUNTER, /* only goes up: add, inc */
	EHR_METRIC_GAUGE,   /* goes up and down: add, set */
};

#define EHR_METRIC_MAX_SERIES 16

/* One metric family: a name, its HELP and TYPE, and either one series
 * (label NULL) or one series per value of a fixed label set. Define it with
 * EHR_METRIC / EHR_METRIC_LABELLED; the other fields are the registry's. */
struct ehr_metric {
	const char *name; /* [a-zA-Z_:][a-zA-Z0-9_:]* */
	const char *help; /* one line, no backslash */
	enum ehr_metric_type type;
	const char *label;         /* label name, or NULL */
	const char *const *values; /* label values, NULL-terminated; no '"', '\\' or newline */
	size_t nseries;            /* set by ehr_metric_register */
	_Atomic int64_t v[EHR_METRIC_MAX_SERIES];
	struct ehr_metric *next; /* the registry's list */
	bool registered;
};

#define EHR_METRIC(type_, name_, help_)                           \
	{                                                         \
		.name = (name_), .help = (help_), .type = (type_) \
	}
#define EHR_METRIC_LABELLED(type_, name_, help_, label_, ...)                         \
	{                                                                             \
		.name = (name_), .help = (help_), .type = (type_), .label = (label_), \
		.values = (const char *const[])                                       \
		{                                                                     \
			__VA_ARGS__, NULL                                             \
		}                                                                     \
	}

/* Adds m to the registry; it renders after those registered before it.
 * EHR_ERR_INVAL if the name, help, label or values are malformed or there are
 * more than EHR_METRIC_MAX_SERIES values; EHR_ERR_EXISTS if m or another
 * metric of the same name is registered. m must outlive its registration. */
int ehr_metric_register(struct ehr_metric *m);
/* Registers each of ms[0..n) that is not registered yet: for a module that
 * may be opened more than once in a process (its metrics stay, and keep
 * counting). The caller's error slot is left as it was. */
void ehr_metric_register_all(struct ehr_metric *const *ms, size_t n);
/* Removes m (for tests and for modules that end); no-op if not registered. */
void ehr_metric_unregister(struct ehr_metric *m);

/* Updates series `series` (the index of its label value; 0 when unlabelled).
 * A series past EHR_METRIC_MAX_SERIES is ignored (one past the label values
 * is kept but never rendered), as is a negative add to a counter and a
 * set on a counter: a metric update never fails its caller. */
void ehr_metric_add(struct ehr_metric *m, size_t series, int64_t n);
void ehr_metric_inc(struct ehr_metric *m, size_t series);
void ehr_metric_set(struct ehr_metric *m, size_t series, int64_t value);
int64_t ehr_metric_get(const struct ehr_metric *m, size_t series);

/* Appends the HELP, TYPE and sample lines of every registered metric, in
 * registration order, to out. Every series is written, zeros included. */
int ehr_metrics_render(struct ehr_buf *out);

#endif
