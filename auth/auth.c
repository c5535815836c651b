/* auth.c (being built) */
#include "auth/auth.h"
