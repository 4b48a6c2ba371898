// Package kafka serves a commitlog.Broker over the Apache Kafka wire
// protocol, so that unmodified Kafka clients (franz-go, sarama,
// segmentio/kafka-go, librdkafka) produce to it, consume from it and manage
// its topics.
//
//	b, err := commitlog.Open("data", commitlog.Options{})
//	srv, err := kafka.NewServer(b, kafka.Config{Addr: "localhost:9092"})
//	go srv.ListenAndServe()
//	...
//	srv.Shutdown(ctx) // then b.Close()
//
// Requests and responses are encoded with franz-go's kmsg, except Fetch
// responses: the server frames those itself and sends the record batches
// from the segment files with sendfile(2), without copying them through
// user space (Config.DisableZeroCopy turns that off). Each connection is
// served by one goroutine that reads a request, answers it and only then
// reads the next, as Kafka does: requests that a client pipelines are
// processed and answered in the order they were sent.
//
// TLS: serve a tls.NewListener (Serve takes any net.Listener). Fetch
// responses then go through a buffer, the records copied, as in Kafka.
//
// Server.Stats counts connections, Produce requests and Fetch responses,
// and splits the record bytes fetched by how they left: by sendfile (record
// ranges of 32 KiB and up to clients on other machines, or to all with
// Config.ZeroCopyLoopback), written from the log's mapping in the frame's
// writev (smaller ranges, and loopback clients, where a copy measured
// faster), or copied (TLS, DisableZeroCopy, platforms without sendfile).
//
// # Producers
//
// Produce writes every partition of a request, then waits once per
// partition for the fsync that makes it durable (under the broker's
// SyncGroupCommit), so the partitions and concurrent requests share fsync
// rounds. Idempotent producers, franz-go's default, get their ids from
// InitProducerId; the log checks their sequence numbers, answers a retried
// batch with its original offset, and keeps that state across restarts.
// Transactions are not supported: InitProducerId with a transactional id
// answers TRANSACTIONAL_ID_AUTHORIZATION_FAILED, and the transactions' APIs
// are not advertised.
//
// # Consumer groups
//
// This broker coordinates every group (FindCoordinator), with the broker's
// commitlog.GroupCoordinator: Kafka's classic group protocol, the
// assignment computed by the group's leader on the client side, committed
// offsets kept in __consumer_offsets. A JoinGroup or SyncGroup waits for
// the rest of the group, and the requests sent after it on its connection
// are answered after it, in order, as Kafka does; Shutdown ends the wait
// with NOT_COORDINATOR and the client finds the coordinator again. KIP-848's
// ConsumerGroupHeartbeat is not served, so clients use the classic
// protocol.
//
// # API versions
//
// ApiVersions advertises only what is implemented in full, since clients
// switch behaviour on it:
//
//	key  API               versions
//	0    Produce           0-9 advertised, 3-9 served (see below)
//	1    Fetch             4-12 (13+ names topics by id)
//	2    ListOffsets       1-8 (7: max timestamp; 8: earliest local)
//	3    Metadata          0-12
//	8    OffsetCommit      2-8
//	9    OffsetFetch       1-8 (8+ fetches several groups)
//	10   FindCoordinator   0-4 (4+ looks up several keys)
//	11   JoinGroup         0-9
//	12   Heartbeat         0-4
//	13   LeaveGroup        0-4
//	14   SyncGroup         0-5
//	15   DescribeGroups    0-5
//	16   ListGroups        0-4
//	18   ApiVersions       0-3
//	19   CreateTopics      0-7
//	20   DeleteTopics      0-6
//	22   InitProducerId    0-4 (idempotent producers only)
//	32   DescribeConfigs   0-4
//	33   AlterConfigs      0-2 (topics; broker settings are static)
//	37   CreatePartitions  0-3
//	42   DeleteGroups      0-2
//	44   IncrementalAlterConfigs 0-1
//	47   OffsetDelete      0
//	60   DescribeCluster   0-2
//
// Produce versions 0-2 carry the old message formats, which the log does
// not store. Kafka 4 dropped them too but still advertises version 0,
// because librdkafka before 2.11.1 turns compression off when the Produce
// range does not reach 0 (KAFKA-18659); like Kafka, the server closes the
// connection of a client that sends one.
//
// A request for an API key or version the server does not serve closes the
// connection, as Kafka does, except ApiVersions: a version above 3 is
// answered in the version 0 format with UNSUPPORTED_VERSION and the
// ApiVersions range, so the client retries with a version it knows
// (KIP-511).
//
// # Topic configs
//
// CreateTopics, DescribeConfigs, AlterConfigs and IncrementalAlterConfigs
// speak Kafka's topic config names (cleanup.policy, retention.ms,
// max.message.bytes, ...), mapped onto commitlog.TopicConfig. Changes apply
// live (commitlog.Broker.AlterTopicConfig) and survive restarts; on a
// broker of a cluster they reach every broker. Broker settings are static:
// altering one answers INVALID_REQUEST, as Kafka does for its static
// settings.
//
// # Clusters
//
// A broker of a cluster (commitlog.Options.Cluster) answers Metadata from
// its controller: every live broker, and each partition's leader,
// replicas, in-sync replicas and leader epoch. It refuses requests for
// partitions it does not lead with NOT_LEADER_OR_FOLLOWER, checks the
// clients' leader epochs (FENCED_LEADER_EPOCH, UNKNOWN_LEADER_EPOCH), and
// serves its followers on the same listener: Fetch with a replica id reads
// up to the log end and moves the high watermark; OffsetForLeaderEpoch,
// served in a cluster only, tells where an epoch ended. Transport is the
// other side: replication between brokers over these two requests.
// Produce with acks=all waits for the high watermark. Groups are all
// coordinated by the live broker with the lowest id (FindCoordinator):
// their offsets are not replicated yet.
//
// Not yet served: transactions and SASL.
package kafka
