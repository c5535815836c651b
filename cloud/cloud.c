/* cloud.c (being built) */
#include "cloud/cloud.h"
