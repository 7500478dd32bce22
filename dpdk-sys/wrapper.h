/* Everything vrouter-dp uses from DPDK: EAL, lcores, mempool, mbuf, ethdev,
 * device hot-plug, vhost, net headers, cycles/prefetch, bonding mode 4, and the
 * FIB libraries (measured against the forwarding tables' own LPM). */
#include <rte_config.h>
#include <rte_common.h>
#include <rte_errno.h>
#include <rte_version.h>
#include <rte_eal.h>
#include <rte_lcore.h>
#include <rte_launch.h>
#include <rte_per_lcore.h>
#include <rte_cycles.h>
#include <rte_prefetch.h>
#include <rte_memory.h>
#include <rte_malloc.h>
#include <rte_mempool.h>
#include <rte_mbuf.h>
#include <rte_ring.h>
#include <rte_ethdev.h>
#include <rte_dev.h>
#include <rte_bus.h>
#include <rte_vhost.h>
#include <rte_ether.h>
#include <rte_ip.h>
#include <rte_udp.h>
#include <rte_net.h>
#include <rte_eth_bond_8023ad.h>
#include <rte_fib.h>
#include <rte_fib6.h>

/* Shims for what bindgen cannot wrap: rte_errno is a thread-local macro. */
int vr_rte_errno(void);
