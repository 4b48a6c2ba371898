package cluster

// assignReplicas places partitions [first, first+count) of a topic on
// brokers the way Kafka's rack-unaware assignment does
// (AdminUtils.assignReplicasToBrokersRackUnaware):
//
//   - the first replica (the preferred leader) of partition p is
//     brokers[(p + start) % n], so leaders go round-robin from start;
//   - the other replicas follow on the next brokers, at a distance of
//     1 + (shift + j) % (n - 1) from the first one; shift grows by one
//     every n partitions, so that a broker's followers are not always the
//     same brokers.
//
// Each partition's replicas are distinct; each broker leads count/n
// partitions, give or take one, and holds count*rf/n replicas, give or
// take one per round. brokers is sorted and holds at least rf ids; start
// and shift are in [0, n). Kafka draws start and shift at random; the
// caller passes values that vary per topic so that placement is
// deterministic.
func assignReplicas(brokers []int32, first, count, rf, start, shift int) [][]int32 {
	n := len(brokers)
	out := make([][]int32, 0, count)
	for p := first; p < first+count; p++ {
		if p > 0 && p%n == 0 {
			shift++
		}
		leader := (p + start) % n
		replicas := make([]int32, 0, rf)
		replicas = append(replicas, brokers[leader])
		for j := range rf - 1 {
			step := 1 + (shift+j)%(n-1)
			replicas = append(replicas, brokers[(leader+step)%n])
		}
		out = append(out, replicas)
	}
	return out
}
