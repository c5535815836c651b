/* client.c (being built) */
#include "client/client.h"
