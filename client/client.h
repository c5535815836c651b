/* client.h (being built) */
#ifndef EHR_CLIENT_H
#define EHR_CLIENT_H
#include "common/common.h"
#endif
