/* auth.h (being built) */
#ifndef EHR_AUTH_H
#define EHR_AUTH_H
#include "common/common.h"
#endif
