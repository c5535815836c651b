/* cloud.h (being built) */
#ifndef EHR_CLOUD_H
#define EHR_CLOUD_H
#include "common/common.h"
#endif
