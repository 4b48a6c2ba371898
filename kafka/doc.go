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
// Requests and responses are encoded with franz-go's kmsg. Each connection
// is served by one goroutine that reads a request, answers it and only then
// reads the next, as Kafka does: requests that a client pipelines are
// processed and answered in the order they were sent.
//
// # API versions
//
// ApiVersions advertises only what is implemented in full, since clients
// switch behaviour on it:
//
//	key  API               versions
//	0    Produce           0-9 advertised, 3-9 served (see below)
//	1    Fetch             4-12 (13+ names topics by id)
//	2    ListOffsets       1-6 (7 adds the max-timestamp query)
//	3    Metadata          0-12
//	18   ApiVersions       0-3
//	19   CreateTopics      0-7
//	20   DeleteTopics      0-6
//	32   DescribeConfigs   0-4
//	37   CreatePartitions  0-3
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
// Not yet served: consumer groups (FindCoordinator, JoinGroup, SyncGroup,
// Heartbeat, LeaveGroup, OffsetCommit, OffsetFetch, ...), InitProducerId
// (idempotent and transactional producers), OffsetForLeaderEpoch, SASL and
// TLS. Clients must disable idempotent writes (franz-go enables them by
// default) until InitProducerId is served.
package kafka
