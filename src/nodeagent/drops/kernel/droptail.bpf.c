// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
// DropTail's kernel source: every packet the kernel frees as dropped, with its drop reason.
//
// Attached to the BTF-typed tracepoint skb:kfree_skb (tp_btf: no tracefs, no perf event, typed
// arguments; Linux 5.17+ passes `enum skb_drop_reason`). Compiled once with clang against a
// vmlinux.h generated from some kernel's BTF; CO-RE relocations adapt the field offsets of
// struct sk_buff to the running kernel when libbpf loads it.
//
// Cost: the reason is checked against the selected set (an array lookup) before anything else,
// so normal frees never read a header, and the ring buffer is fixed in size: when user space
// falls behind, a sample is counted as lost, not queued.
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_tracing.h>
#include <bpf/bpf_core_read.h>
#include <bpf/bpf_endian.h>

#define ETH_P_IP 0x0800
#define ETH_P_IPV6 0x86DD
#define MAX_CORE_REASONS 1024
#define IPPROTO_ICMPV6 58
#define NEXTHDR_HOP 0
#define NEXTHDR_ROUTING 43
#define NEXTHDR_FRAGMENT 44
#define NEXTHDR_DEST 60

// The record user space decodes (src/nodeagent/drops/kernel/record.ts); keep the two in step.
struct drop_event {
	__u64 time_ns;     // CLOCK_MONOTONIC
	__u32 reason;      // enum skb_drop_reason (subsystem reasons keep their high bits)
	__u32 ifindex;     // skb->dev
	__u32 iif;         // skb->skb_iif: the receiving interface, 0 for locally sent packets
	__u32 netns;       // inode of skb->dev's network namespace
	__u32 mark;
	__u16 length;      // IP total length
	__u16 sport;
	__u16 dport;
	__u8 family;       // 4 or 6
	__u8 protocol;     // IP protocol (after IPv6 extension headers)
	__u8 icmp_type;
	__u8 icmp_code;
	__u8 tcp_flags;
	__u8 flags;        // bit 0: has ports, bit 1: has ICMP type/code, bit 2: non-first fragment
	__u8 saddr[16];
	__u8 daddr[16];
};

// Selected reasons below MAX_CORE_REASONS: value 1 = report.
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, MAX_CORE_REASONS);
	__type(key, __u32);
	__type(value, __u8);
} selected_reasons SEC(".maps");

// [0]: report subsystem reasons (those with bits above 16: mac80211, openvswitch, ...).
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, __u8);
} settings SEC(".maps");

// [0]: samples lost because the ring buffer was full; [1]: samples submitted.
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 2);
	__type(key, __u32);
	__type(value, __u64);
} counters SEC(".maps");

// Sized by the loader (RING_BUFFER_BYTES in sources/kernel.ts); 256 KiB until then.
struct {
	__uint(type, BPF_MAP_TYPE_RINGBUF);
	__uint(max_entries, 256 * 1024);
} drops SEC(".maps");

static __always_inline void bump(__u32 index)
{
	__u64 *value = bpf_map_lookup_elem(&counters, &index);
	if (value)
		*value += 1;
}

static __always_inline int is_selected(__u32 reason)
{
	__u32 zero = 0;
	if (reason >= 0x10000) {
		__u8 *subsystems = bpf_map_lookup_elem(&settings, &zero);
		return subsystems && *subsystems;
	}
	if (reason >= MAX_CORE_REASONS)
		return 0;
	__u8 *on = bpf_map_lookup_elem(&selected_reasons, &reason);
	return on && *on;
}

// Reads ports, TCP flags or ICMP type/code at l4.
static __always_inline void read_l4(struct drop_event *e, unsigned char *l4)
{
	if (e->protocol == IPPROTO_TCP || e->protocol == IPPROTO_UDP || e->protocol == IPPROTO_UDPLITE || e->protocol == IPPROTO_SCTP) {
		__u16 ports[2];
		if (bpf_probe_read_kernel(ports, sizeof(ports), l4) == 0) {
			e->sport = bpf_ntohs(ports[0]);
			e->dport = bpf_ntohs(ports[1]);
			e->flags |= 1;
		}
		if (e->protocol == IPPROTO_TCP)
			bpf_probe_read_kernel(&e->tcp_flags, 1, l4 + 13);
	} else if (e->protocol == IPPROTO_ICMP || e->protocol == IPPROTO_ICMPV6) {
		__u8 tc[2];
		if (bpf_probe_read_kernel(tc, sizeof(tc), l4) == 0) {
			e->icmp_type = tc[0];
			e->icmp_code = tc[1];
			e->flags |= 2;
		}
	}
}

static __always_inline int read_ipv4(struct drop_event *e, unsigned char *nh)
{
	struct iphdr ip;
	if (bpf_probe_read_kernel(&ip, sizeof(ip), nh))
		return -1;
	if (ip.ihl < 5)
		return -1;
	e->family = 4;
	e->protocol = ip.protocol;
	e->length = bpf_ntohs(ip.tot_len);
	__builtin_memcpy(e->saddr, &ip.saddr, 4);
	__builtin_memcpy(e->daddr, &ip.daddr, 4);
	if (bpf_ntohs(ip.frag_off) & 0x1fff) {
		e->flags |= 4;
		return 0;
	}
	read_l4(e, nh + ip.ihl * 4);
	return 0;
}

static __always_inline int read_ipv6(struct drop_event *e, unsigned char *nh)
{
	struct ipv6hdr ip6;
	if (bpf_probe_read_kernel(&ip6, sizeof(ip6), nh))
		return -1;
	e->family = 6;
	e->length = bpf_ntohs(ip6.payload_len) + 40;
	__builtin_memcpy(e->saddr, &ip6.saddr, 16);
	__builtin_memcpy(e->daddr, &ip6.daddr, 16);
	__u8 next = ip6.nexthdr;
	unsigned char *at = nh + sizeof(ip6);
	// A few extension headers, as the kernel's own ipv6_skip_exthdr does.
	for (int i = 0; i < 4; i++) {
		if (next != NEXTHDR_HOP && next != NEXTHDR_ROUTING && next != NEXTHDR_DEST && next != NEXTHDR_FRAGMENT)
			break;
		__u8 ext[4];
		if (bpf_probe_read_kernel(ext, sizeof(ext), at))
			return 0;
		if (next == NEXTHDR_FRAGMENT) {
			__u16 offset = ((__u16)ext[2] << 8 | ext[3]) & 0xfff8;
			next = ext[0];
			at += 8;
			if (offset) {
				e->protocol = next;
				e->flags |= 4;
				return 0;
			}
			continue;
		}
		next = ext[0];
		at += ((__u32)ext[1] + 1) * 8;
	}
	e->protocol = next;
	read_l4(e, at);
	return 0;
}

SEC("tp_btf/kfree_skb")
int BPF_PROG(droptail_kfree_skb, struct sk_buff *skb, void *location, enum skb_drop_reason reason)
{
	__u32 why = (__u32)reason;
	if (!is_selected(why))
		return 0;

	__u16 proto = bpf_ntohs(BPF_CORE_READ(skb, protocol));
	if (proto != ETH_P_IP && proto != ETH_P_IPV6)
		return 0;
	__u16 network = BPF_CORE_READ(skb, network_header);
	if (network == (__u16)~0U)
		return 0;
	unsigned char *nh = BPF_CORE_READ(skb, head) + network;

	struct drop_event *e = bpf_ringbuf_reserve(&drops, sizeof(*e), 0);
	if (!e) {
		bump(0);
		return 0;
	}
	__builtin_memset(e, 0, sizeof(*e));
	e->time_ns = bpf_ktime_get_ns();
	e->reason = why;
	e->iif = BPF_CORE_READ(skb, skb_iif);
	e->mark = BPF_CORE_READ(skb, mark);
	struct net_device *dev = BPF_CORE_READ(skb, dev);
	if (dev) {
		e->ifindex = BPF_CORE_READ(dev, ifindex);
		e->netns = BPF_CORE_READ(dev, nd_net.net, ns.inum);
	}
	int bad = proto == ETH_P_IP ? read_ipv4(e, nh) : read_ipv6(e, nh);
	if (bad) {
		bpf_ringbuf_discard(e, 0);
		return 0;
	}
	bpf_ringbuf_submit(e, 0);
	bump(1);
	return 0;
}

char LICENSE[] SEC("license") = "Dual BSD/GPL";
