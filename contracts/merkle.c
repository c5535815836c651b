/* merkle.c - RFC 9162 Merkle tree. (Being built.) */
#include "contracts/contracts.h"
