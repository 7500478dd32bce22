/* Hand-written shims for DPDK macros that bindgen's static-function wrappers cannot
 * reach. Keep this file tiny: everything static-inline goes through the generated
 * wrappers instead. */
#include "wrapper.h"

int vr_rte_errno(void)
{
	return rte_errno;
}
