package cluster

import (
	"cmp"
	"fmt"
	"hash/fnv"
	"slices"
)

// PartitionReplica names one replica of one partition: the unit of
// ownership. Replica r of partition p is read through its own durable
// consumer (bus.DurableName(signal, p, r)) into the storage of the member
// that owns it.
type PartitionReplica struct {
	Partition int
	Replica   int
}

// String returns the compact form used in logs, for example "p3r1".
func (pr PartitionReplica) String() string {
	return fmt.Sprintf("p%dr%d", pr.Partition, pr.Replica)
}

// Assign gives each of the partitions×rf partition-replicas to exactly one
// of members. It is a pure function of its arguments, so every process that
// sees the same healthy members computes the same owners without talking to
// the others. The order of members and any duplicates in it do not matter.
//
// The result is balanced: every member owns ⌊partitions·rf/N⌋ or ⌈…⌉
// partition-replicas. The replicas of one partition go to distinct members
// whenever there are at least rf members; with fewer, each member holds
// every partition rf/N times over, and the rest are spread as above.
// It is stable: when one member joins or leaves, about the minimum share of
// partition-replicas (1/N of them) changes owner, so few consumers move.
//
// How: every (partition-replica, member) pair gets a rendezvous (HRW) score;
// pairs are granted in descending score order while the member has room
// and holds no other replica of that partition; slots the greedy pass
// leaves empty are filled along augmenting paths (as in max-flow), which
// always succeeds because the capacities add up exactly. Cost is
// O(P·RF·N·log(P·RF·N)) time and O(P·RF·N) memory: fine for the tens to
// hundreds of partitions and members it is meant for.
//
// It returns an empty map when there are no members, partitions or
// replicas.
func Assign(partitions, rf int, members []string) map[PartitionReplica]string {
	ms := normalizeMembers(members)
	out := make(map[PartitionReplica]string, max(partitions*rf, 0))
	if partitions <= 0 || rf <= 0 || len(ms) == 0 {
		return out
	}
	n := len(ms)
	// With fewer members than replicas, every member holds each partition
	// `rounds` times; only the remaining replicas need balancing.
	rounds, distinct := 0, rf
	if n < rf {
		rounds, distinct = rf/n, rf%n
	}
	if distinct > 0 {
		for s, m := range assignDistinct(partitions, distinct, ms) {
			out[PartitionReplica{Partition: s / distinct, Replica: s % distinct}] = ms[m]
		}
	}
	if rounds > 0 {
		ranked := make([]int, n)
		for p := range partitions {
			rankMembers(ranked, ms, p)
			for k := range rounds * n {
				out[PartitionReplica{Partition: p, Replica: distinct + k}] = ms[ranked[k%n]]
			}
		}
	}
	return out
}

// Owned returns the partition-replicas that assignment gives to self,
// sorted by partition then replica.
func Owned(self string, assignment map[PartitionReplica]string) []PartitionReplica {
	var owned []PartitionReplica
	for pr, m := range assignment {
		if m == self {
			owned = append(owned, pr)
		}
	}
	sortPartitionReplicas(owned)
	return owned
}

// Owners returns the members that hold a replica of partition, in replica
// order. Queriers use it to know whose storage holds a partition.
func Owners(partition int, assignment map[PartitionReplica]string) []string {
	var prs []PartitionReplica
	for pr := range assignment {
		if pr.Partition == partition {
			prs = append(prs, pr)
		}
	}
	sortPartitionReplicas(prs)
	owners := make([]string, len(prs))
	for i, pr := range prs {
		owners[i] = assignment[pr]
	}
	return owners
}

func sortPartitionReplicas(prs []PartitionReplica) {
	slices.SortFunc(prs, func(a, b PartitionReplica) int {
		if c := cmp.Compare(a.Partition, b.Partition); c != 0 {
			return c
		}
		return cmp.Compare(a.Replica, b.Replica)
	})
}

// normalizeMembers returns members sorted, without duplicates or empty
// names, so that the result of Assign does not depend on how the caller
// listed them.
func normalizeMembers(members []string) []string {
	ms := make([]string, 0, len(members))
	for _, m := range members {
		if m != "" {
			ms = append(ms, m)
		}
	}
	slices.Sort(ms)
	return slices.Compact(ms)
}

// assignDistinct places `replicas` (≤ len(ms)) replicas of every partition
// on distinct members with balanced loads. It returns, for each slot
// s = p·replicas + r, the index of its member in ms.
func assignDistinct(partitions, replicas int, ms []string) []int {
	n := len(ms)
	total := partitions * replicas
	// Everyone gets base; `extra` members get one more. Which ones is
	// decided by the greedy pass (the first to want it), so no separate
	// ranking moves load around when N changes.
	base, extra := total/n, total%n

	seeds := make([]uint64, n)
	for i, m := range ms {
		seeds[i] = memberSeed(m)
	}
	type pair struct {
		score uint64
		slot  int32
		m     int32
	}
	pairs := make([]pair, 0, total*n)
	for s := range total {
		key := slotKey(s/replicas, s%replicas)
		for m := range n {
			pairs = append(pairs, pair{score: mix(seeds[m] ^ key), slot: int32(s), m: int32(m)})
		}
	}
	slices.SortFunc(pairs, func(a, b pair) int {
		if c := cmp.Compare(b.score, a.score); c != 0 {
			return c
		}
		if c := cmp.Compare(a.m, b.m); c != 0 {
			return c
		}
		return cmp.Compare(a.slot, b.slot)
	})

	a := &distinctAssigner{
		replicas: replicas, n: n, base: base, extraLeft: extra,
		slotOwner: make([]int, total),
		load:      make([]int, n),
		holds:     make([]bool, partitions*n),
		slotsOf:   make([][]int, n),
	}
	for s := range a.slotOwner {
		a.slotOwner[s] = -1
	}
	for _, pr := range pairs {
		s, m := int(pr.slot), int(pr.m)
		if a.slotOwner[s] >= 0 || !a.hasRoom(m) || a.holds[a.partition(s)*n+m] {
			continue
		}
		a.give(s, m)
	}
	for s := range total {
		if a.slotOwner[s] < 0 {
			a.augment(s)
		}
	}
	return a.slotOwner
}

// distinctAssigner holds the state of one assignDistinct run.
type distinctAssigner struct {
	replicas, n     int
	base, extraLeft int
	slotOwner       []int   // slot → member, -1 while free
	load            []int   // member → slots held
	holds           []bool  // partition·n + member → member holds a replica of partition
	slotsOf         [][]int // member → slots held, in the order granted
}

func (a *distinctAssigner) partition(slot int) int { return slot / a.replicas }

// hasRoom reports whether member m may take one more slot: everyone may
// reach base, and the first `extra` members to ask may reach base+1.
func (a *distinctAssigner) hasRoom(m int) bool {
	return a.load[m] < a.base || (a.load[m] == a.base && a.extraLeft > 0)
}

// place records slot s as held by m; loads are the caller's business.
func (a *distinctAssigner) place(s, m int) {
	a.slotOwner[s] = m
	a.holds[a.partition(s)*a.n+m] = true
	a.slotsOf[m] = append(a.slotsOf[m], s)
}

func (a *distinctAssigner) give(s, m int) {
	a.addLoad(m)
	a.place(s, m)
}

func (a *distinctAssigner) addLoad(m int) {
	if a.load[m] == a.base {
		a.extraLeft--
	}
	a.load[m]++
}

// move hands slot s from member from to member to, loads unchanged.
func (a *distinctAssigner) move(s, from, to int) {
	a.holds[a.partition(s)*a.n+from] = false
	a.slotsOf[from] = slices.DeleteFunc(a.slotsOf[from], func(x int) bool { return x == s })
	a.place(s, to)
}

// chainHop is one step of an augmenting chain: the member reached took
// slot from member from (-1: the free slot itself, no one gives it up).
type chainHop struct {
	from int
	slot int
}

// augment fills the free slot s when every member with room already holds
// a replica of its partition: it finds, breadth first, a chain m0 takes s,
// m0 hands one of its slots to m1, m1 hands one to m2, … ending at a member
// with room, and applies it. Such a chain exists because the capacities
// add up to exactly the number of slots and none exceeds the number of
// partitions (max-flow: the residual graph has an augmenting path).
func (a *distinctAssigner) augment(s int) {
	p := a.partition(s)
	via := make([]chainHop, a.n)
	seen := make([]bool, a.n)
	queue := make([]int, 0, a.n)
	for m := range a.n {
		if !a.holds[p*a.n+m] {
			seen[m] = true
			via[m] = chainHop{from: -1, slot: s}
			queue = append(queue, m)
		}
	}
	for len(queue) > 0 {
		m := queue[0]
		queue = queue[1:]
		if a.hasRoom(m) {
			a.applyChain(m, via)
			return
		}
		for _, s2 := range a.slotsOf[m] {
			q := a.partition(s2)
			for m2 := range a.n {
				if seen[m2] || a.holds[q*a.n+m2] {
					continue
				}
				seen[m2] = true
				via[m2] = chainHop{from: m, slot: s2}
				queue = append(queue, m2)
			}
		}
	}
	// Unreachable while capacities are consistent (see above).
	panic(fmt.Sprintf("cluster: no owner for slot %d among %d members", s, a.n))
}

// applyChain walks the chain back from its last member end, which has
// room: each member takes its slot from the one before it, and the first
// takes the free slot. Only end holds one slot more afterwards.
func (a *distinctAssigner) applyChain(end int, via []chainHop) {
	a.addLoad(end)
	m := end
	for {
		h := via[m]
		if h.from < 0 {
			a.place(h.slot, m)
			return
		}
		a.move(h.slot, h.from, m)
		m = h.from
	}
}

// rankMembers fills ranked with the indices of ms in descending HRW order
// for partition p: the order in which members take extra rounds of it.
func rankMembers(ranked []int, ms []string, p int) {
	key := slotKey(p, -1)
	scores := make([]uint64, len(ms))
	for i, m := range ms {
		ranked[i] = i
		scores[i] = mix(memberSeed(m) ^ key)
	}
	slices.SortFunc(ranked, func(a, b int) int {
		if c := cmp.Compare(scores[b], scores[a]); c != 0 {
			return c
		}
		return cmp.Compare(a, b)
	})
}

func memberSeed(m string) uint64 {
	h := fnv.New64a()
	_, _ = h.Write([]byte(m))
	return mix(h.Sum64())
}

func slotKey(p, r int) uint64 {
	return mix(uint64(p)<<32 ^ uint64(uint32(r)) ^ 0x9e3779b97f4a7c15)
}

// mix is the splitmix64 finaliser: it spreads FNV's weak low bits so that
// scores of similar names and numbers are independent.
func mix(x uint64) uint64 {
	x ^= x >> 30
	x *= 0xbf58476d1ce4e5b9
	x ^= x >> 27
	x *= 0x94d049bb133111eb
	x ^= x >> 31
	return x
}
