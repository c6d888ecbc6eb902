package cluster

import (
	"fmt"
	"math/rand/v2"
	"slices"
	"testing"

	"github.com/stretchr/testify/require"
)

func memberNames(n int) []string {
	ms := make([]string, n)
	for i := range ms {
		ms[i] = fmt.Sprintf("aggregator-%d", i)
	}
	return ms
}

func TestAssignProperties(t *testing.T) {
	memberCounts := []int{1, 2, 3, 4, 5, 7, 10, 16, 33}
	tests := []struct {
		name       string
		partitions int
		rf         int
	}{
		{"one partition", 1, 1},
		{"one partition rf2", 1, 2},
		{"few partitions", 3, 1},
		{"default", 16, 1},
		{"default ha", 16, 2},
		{"rf3", 16, 3},
		{"many partitions", 64, 2},
		{"uneven", 100, 3},
	}
	rng := rand.New(rand.NewPCG(1, 2))
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			for _, n := range memberCounts {
				ms := memberNames(n)
				a := Assign(tc.partitions, tc.rf, ms)

				// Every partition-replica has exactly one owner, a member.
				require.Len(t, a, tc.partitions*tc.rf, "n=%d", n)
				load := make(map[string]int, n)
				for _, m := range ms {
					load[m] = 0
				}
				for p := range tc.partitions {
					for r := range tc.rf {
						owner, ok := a[PartitionReplica{p, r}]
						require.True(t, ok, "n=%d: p%dr%d has no owner", n, p, r)
						require.Contains(t, load, owner, "n=%d", n)
						load[owner]++
					}
				}

				// Balanced to ±1 across all members, idle ones included.
				lo, hi := tc.partitions*tc.rf, 0
				for _, l := range load {
					lo, hi = min(lo, l), max(hi, l)
				}
				require.LessOrEqual(t, hi-lo, 1, "n=%d: loads %v", n, load)

				// Replicas of a partition on distinct members when possible;
				// otherwise each member holds it rf/n or rf/n+1 times.
				for p := range tc.partitions {
					owners := Owners(p, a)
					require.Len(t, owners, tc.rf)
					per := map[string]int{}
					for _, o := range owners {
						per[o]++
					}
					if n >= tc.rf {
						require.Len(t, per, tc.rf, "n=%d: partition %d owners %v", n, p, owners)
					} else {
						for _, m := range ms {
							require.GreaterOrEqual(t, per[m], tc.rf/n, "n=%d p=%d", n, p)
							require.LessOrEqual(t, per[m], tc.rf/n+1, "n=%d p=%d", n, p)
						}
					}
				}

				// Owned splits the assignment between members without overlap.
				var union []PartitionReplica
				for _, m := range ms {
					owned := Owned(m, a)
					require.True(t, slices.IsSortedFunc(owned, func(x, y PartitionReplica) int {
						return x.Partition*1000 + x.Replica - (y.Partition*1000 + y.Replica)
					}))
					require.Len(t, owned, load[m])
					union = append(union, owned...)
				}
				require.Len(t, union, len(a))

				// Deterministic, whatever the order or repetition of members.
				shuffled := append(slices.Clone(ms), ms[rng.IntN(n)], "")
				rng.Shuffle(len(shuffled), func(i, j int) { shuffled[i], shuffled[j] = shuffled[j], shuffled[i] })
				require.Equal(t, a, Assign(tc.partitions, tc.rf, shuffled), "n=%d: order changed the result", n)
			}
		})
	}
}

func TestAssignEmpty(t *testing.T) {
	tests := []struct {
		name           string
		partitions, rf int
		members        []string
	}{
		{"no members", 16, 1, nil},
		{"only empty names", 16, 1, []string{"", ""}},
		{"no partitions", 0, 1, []string{"a"}},
		{"no replicas", 16, 0, []string{"a"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			a := Assign(tc.partitions, tc.rf, tc.members)
			require.NotNil(t, a)
			require.Empty(t, a)
			require.Empty(t, Owned("a", a))
		})
	}
}

// TestAssignMovesLittle checks stability: when one member joins or leaves,
// the partition-replicas that change owner are few compared with the
// minimum (what the newcomer must take, or what the leaver held).
func TestAssignMovesLittle(t *testing.T) {
	tests := []struct {
		name       string
		partitions int
		rf         int
	}{
		{"default", 16, 1},
		{"default ha", 16, 2},
		{"64", 64, 1},
		{"64 ha", 64, 2},
		{"100 rf3", 100, 3},
		{"256 ha", 256, 2},
	}
	moved := func(a, b map[PartitionReplica]string) int {
		n := 0
		for pr, owner := range a {
			if b[pr] != owner {
				n++
			}
		}
		return n
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var totalMoved, totalMin, worstExcess int
			check := func(what string, n, movedN, minimum int) {
				t.Helper()
				totalMoved += movedN
				totalMin += minimum
				worstExcess = max(worstExcess, movedN-minimum)
				require.GreaterOrEqual(t, movedN, minimum, "%s n=%d", what, n)
				// Per step, keeping loads within ±1 may shift a few extra
				// slots along chains, but never more than three members'
				// shares (measured worst: 2.5); a modulo-N mapping would
				// move nearly everything.
				share := (tc.partitions*tc.rf + n - 1) / n
				require.LessOrEqual(t, movedN-minimum, 3*share, "%s n=%d: moved %d, minimum %d", what, n, movedN, minimum)
			}
			for n := tc.rf; n <= 24; n++ {
				ms := memberNames(n)
				before := Assign(tc.partitions, tc.rf, ms)

				joined := Assign(tc.partitions, tc.rf, append(slices.Clone(ms), "newcomer"))
				check("join", n, moved(before, joined), len(Owned("newcomer", joined)))

				if n > tc.rf {
					leaver := ms[n/2]
					rest := slices.DeleteFunc(slices.Clone(ms), func(m string) bool { return m == leaver })
					check("leave", n, moved(before, Assign(tc.partitions, tc.rf, rest)), len(Owned(leaver, before)))
				}
			}
			ratio := float64(totalMoved) / float64(totalMin)
			t.Logf("P=%d RF=%d: moved %d partition-replicas where %d had to move (%.2fx), worst excess %d in one step",
				tc.partitions, tc.rf, totalMoved, totalMin, ratio, worstExcess)
			require.Less(t, ratio, 1.7, "on average, movement must stay near the minimum (measured 1.3-1.55x)")
		})
	}
}

func TestPartitionReplicaString(t *testing.T) {
	require.Equal(t, "p3r1", PartitionReplica{Partition: 3, Replica: 1}.String())
}

func BenchmarkAssign(b *testing.B) {
	ms := memberNames(20)
	b.ReportAllocs()
	for b.Loop() {
		Assign(256, 2, ms)
	}
}
