// Package commitlog is an embeddable implementation of Apache Kafka's design
// in Go: a broker with topics, producers and consumers, over partitioned,
// append-only commit logs stored as memory-mapped segment files in Kafka's
// own on-disk format, inside your process.
//
// Done: the storage engine (the [Log] of one partition), the in-process
// broker on top of it ([Broker], [Producer], [Consumer], retention,
// compaction, idempotent producer state), consumer groups for in-process
// consumers (rebalancing, committed offsets that survive restarts) and test
// helpers ([github.com/streamkit/commitlog/commitlogtest]), and the Kafka
// wire protocol ([github.com/streamkit/commitlog/kafka], with the standalone
// binary cmd/commitlog), so that unmodified Kafka clients produce, consume
// and join the same groups, and ISR replication between brokers
// ([Options.Cluster], packages [github.com/streamkit/commitlog/replication]
// and [github.com/streamkit/commitlog/cluster]). Until a first tagged
// release any of the API may change.
//
// # The broker
//
// [Open] opens a [Broker] on a data directory, creating it if needed and
// recovering every partition in it; one broker at a time may have a
// directory open ([ErrLocked]). The zero [Options] are Kafka's defaults, with
// [SyncGroupCommit] durability. [Broker.Close] closes it; [Broker.Shutdown]
// first flushes every producer.
//
// [Broker.CreateTopic] creates a [Topic] of [TopicConfig.Partitions]
// partitions; every [TopicConfig] field names the Kafka setting it stands
// for (retention.ms, cleanup.policy, max.message.bytes, ...) and takes
// Kafka's default when zero. Topic names follow Kafka's rule
// ([ValidateTopicName]). Topics and their configuration survive restarts:
// [Broker.CreateTopic], [Broker.DeleteTopic] and [Broker.AddPartitions] are
// durable when they return. [Broker.Topic], [Broker.Topics] and
// [Broker.DescribeTopic] look them up. Writing to a topic that does not exist
// fails with [ErrUnknownTopic], unless [Options.AutoCreateTopics] (off by
// default, unlike Kafka) creates it.
//
// Each [Partition] of a topic is a [Log]. Producers and consumers are the
// usual way in and out; a Partition can also be appended to and read
// directly ([Partition.Append], [Partition.AppendBatch], [Partition.Read],
// [Partition.Wait]).
//
// # Producing
//
// [Broker.NewProducer] makes a [Producer], configured by [ProducerConfig].
// [Producer.Send] sends a record and waits until it is written, returning it
// with its partition, offset and timestamp; [Producer.SendAsync] buffers it
// and calls a callback once it is written or has failed. Records gather in
// one batch per partition, which is cut when full
// ([ProducerConfig.BatchBytes]), when [ProducerConfig.Linger] expires, or at
// once for a Send, and is compressed as a whole
// ([ProducerConfig.Compression]). Records sent to one partition are
// appended in the order of the calls, and their callbacks run in that order.
// [Producer.Flush] waits for what is buffered; [Producer.Close] flushes and
// stops. A full buffer ([ProducerConfig.MaxBufferedBytes]) makes sends wait,
// or fail with [ErrBufferFull] under [ProducerConfig.FailWhenFull].
//
// [ProducerConfig.Acks] says when a record counts as written: [AcksLeader]
// once its partition appended it, which under [SyncGroupCommit] means once
// it is on disk; [AcksAll] (the default) the same on a single broker, and on
// a broker of a cluster once every in-sync replica has it. [AcksNone]
// acknowledges nothing: Send returns once the record is buffered.
//
// A [Partitioner] chooses each record's partition. [DefaultPartitioner],
// the default, is Kafka's: a record with a key goes to
// toPositive(murmur2(key)) % partitions, as Kafka's Java client and franz-go
// place it ([KeyPartition]), and records without a key stick to one
// partition until its batch is cut (KIP-480). [RoundRobinPartitioner] and
// [ManualPartitioner] (the record's own Partition field) are the others.
//
// # Consuming
//
// [Broker.NewConsumer] makes a [Consumer] of the partitions that
// [ConsumerConfig] names: an explicit assignment
// ([ConsumerConfig.Partitions], Kafka's assign) or every partition of some
// topics, including partitions added later ([ConsumerConfig.Topics]). It
// keeps one position per partition, in memory: where the next record comes
// from. [ConsumerConfig.Reset] (auto.offset.reset) says where a partition
// starts and where a position that fell out of the log goes:
// [ResetEarliest] (the default), [ResetLatest], or [ResetNone], which makes
// Poll fail instead. [Consumer.Seek], [Consumer.SeekToStart],
// [Consumer.SeekToEnd] and [Consumer.SeekToTime] move a position.
//
// [Consumer.Poll] returns the next records, waiting until there are some
// (an append wakes it; it does not poll). [Consumer.Records] iterates over
// successive Polls. Records come in offset order within a partition, and
// partitions take turns. A consumer sees a record as soon as it is appended.
//
// # Consumer groups
//
// A [Consumer] with [ConsumerConfig.Group] and Topics is a member of a
// consumer group, as in Kafka's classic group protocol: the group shares
// the topics' partitions among its members, moves them as members come and
// go (a rebalance), and keeps committed offsets, where a partition's next
// owner starts reading. The broker's [GroupCoordinator] ([Broker.Groups])
// runs the groups and stores committed offsets in the compacted topic
// __consumer_offsets, so they survive restarts. The member the coordinator
// elects leader computes the assignment with an [Assignor] every member
// offers ([ConsumerConfig.Assignors]): by default [RangeAssignor], then
// [CooperativeStickyAssignor], Kafka's default list, under which every
// member gives up all its partitions at each rebalance (eager); with only
// cooperative assignors, members give up only the partitions that move
// (KIP-429). [ConsumerConfig.OnAssigned], [ConsumerConfig.OnRevoked] and
// [ConsumerConfig.OnLost] tell the application, which can commit or flush
// before partitions go; a static member ([ConsumerConfig.InstanceID]) gets
// its partitions back when it restarts within its session. Members
// heartbeat from a goroutine of their own; Close leaves the group.
//
// [Consumer.Commit] commits the position of every assigned partition, the
// offset after the last record Poll returned; [Consumer.CommitAsync] does
// it without waiting, [Consumer.CommitOffsets] commits offsets given, with
// metadata, and [Consumer.Committed] reads them. [ConsumerConfig.AutoCommit]
// (off by default) commits in the background what the Polls before the
// latest one returned, as calling Poll says the previous records are
// processed. Delivery is at least once when the application commits after
// processing: the records of a partition that moves are delivered again to
// its new owner from the last commit, and no record is ever skipped. A
// rebalance waits, for a partition whose records the application holds,
// until it calls Poll again (within [ConsumerConfig.RebalanceTimeout], the
// max.poll.interval.ms of Kafka), so that what it processed can be
// committed first. With Partitions instead of Topics, a consumer reads and
// commits its group's offsets without joining. consumer_group.go documents
// the protocol and the guarantees in full.
//
// # Replication
//
// [Options.Cluster] makes a broker one of several that keep copies of
// each partition (Kafka's ISR replication). A controller
// ([github.com/streamkit/commitlog/cluster].Local runs in-process) decides
// the replicas, the leader and the in-sync replicas (ISR) of each
// partition; the broker follows its decisions. Followers fetch from the
// leader over a [github.com/streamkit/commitlog/replication.Transport]: in memory
// ([github.com/streamkit/commitlog/replication.MemNetwork], with fault injection, for tests) or over the
// Kafka protocol ([github.com/streamkit/commitlog/kafka].Transport), so one
// listener serves clients and peers. The high watermark is the smallest
// log end over the ISR and never moves while the ISR is smaller than the
// topic's MinInsyncReplicas; consumers read below it ([Partition.EndOffset]
// is the high watermark), acks=all writes wait for it. Every batch carries
// its leader epoch; a follower truncates to the end of its last epoch as
// the leader knows it (KIP-101, KIP-279) before fetching. A leader lost is
// replaced from the ISR only; a broker restarted after a crash cannot lead
// or be in sync again until it caught up. Unclean leader election is off
// unless the controller's configuration turns it on, and then loses
// records. The controller keeps topic configurations too, the same on
// every broker. Not replicated yet: __consumer_offsets (groups are
// coordinated by one broker of the cluster and their offsets are kept
// there). commitlogtest.NewCluster runs several brokers in one process.
//
// # Testing
//
// Package [github.com/streamkit/commitlog/commitlogtest] gives a test a
// throwaway broker (in t.TempDir, closed by t.Cleanup), topics, records
// produced and records collected, each in one line.
//
// # The Log
//
// A [Log] is one partition's log, usable on its own: a directory of
// segments, each a .log file of record batches with a sparse .index (offset
// to file position) and a .timeindex (timestamp to offset). Batches are
// Kafka's RecordBatch v2, stored byte for byte as they travel on the Kafka
// wire. [OpenLog] opens or creates one; the zero [LogConfig] gives Kafka's
// defaults. A broker's partitions are Logs configured from their topic.
//
// Records are appended in batches. [Log.AppendRecords] encodes [Record] values
// into a batch and appends it; [AppendBatch] only encodes, for callers that
// keep or forward the bytes, and [Log.Append] appends a batch that is already
// encoded (for example one received from a Kafka producer). The log assigns
// each batch the next offsets by rewriting the batch's base offset, a field
// its checksum does not cover. Batches can be compressed ([Compression]) as
// a whole; the log stores them compressed.
//
// [Log.Read] returns a [Slice] of whole batches, starting with the batch that
// holds the offset asked for, exactly as stored: this is what a Kafka Fetch
// sends, and [Slice.WriteTo] sends it to a socket with sendfile(2) where it
// can. [Records] decodes a Slice into Record values, decompressing as it
// goes. [Log.WaitData] blocks until records past an offset arrive,
// [Log.NotifyData] signals a channel on every append, and
// [Log.OffsetForTime] finds the first record at or after a timestamp.
//
// Segments roll when they reach [LogConfig.SegmentBytes] or
// [LogConfig.SegmentAge], or when their index is full. [Log.DeleteBefore],
// [Log.RetainBytes] and [Log.RetainAge] delete whole segments from the start;
// [Log.Truncate] removes records from the end, as a replica does to agree with
// its leader; [Log.Compact] compacts.
//
// # Offsets
//
// Every record has an offset, its position in its partition's log, starting
// at 0 and increasing by one per record (compaction leaves gaps). Three
// offsets describe a log (and a Partition, which has the same methods):
//
//   - [Log.StartOffset]: the first offset still held; retention raises it.
//   - [Log.DurableOffset]: every record below it is on stable storage
//     (fsynced) and survives a machine crash.
//   - [Log.EndOffset]: the offset the next record will get (Kafka's log end
//     offset). Records live in [StartOffset, EndOffset).
//
// StartOffset <= DurableOffset <= EndOffset holds whenever no append is in
// progress, and under [SyncGroupCommit] an append returns only once the
// durable offset has passed it. Consumers read up to the end offset, so they
// may see a record a moment before it is durable.
//
// # Durability
//
// The broker's [Options.SyncPolicy], or a bare log's [LogConfig.SyncPolicy],
// says when appended bytes are fsynced. There are three, named and chosen,
// never implied:
//
//   - [SyncGroupCommit], the default: an append returns once the batch is on
//     stable storage. Appends that arrive while an fdatasync runs share the
//     next one, so many concurrent appenders pay for one sync, not one each;
//     a Producer writes its batches to all their partitions before it waits
//     for any.
//   - [SyncPeriodic]: a sync every [Options.SyncInterval] (flush.ms). An
//     append returns once the batch is in the page cache; a machine crash
//     can lose up to an interval of acknowledged records, a process crash
//     loses none.
//   - [SyncNone]: the operating system writes back when it likes (and the log
//     syncs on roll, [Log.Sync] and Close), as Kafka does by default, for when
//     replication rather than the disk provides durability.
//
// [Log.Sync] makes everything appended so far durable under any policy, and
// [Log.WaitDurable] waits for a given offset. Directories are fsynced when
// files in them are created, renamed or deleted.
//
// # Crash recovery
//
// Closing a log syncs everything and leaves a clean-shutdown marker, so the
// next open trusts the indexes and reads only the tail of each segment.
// After an unclean stop (a crash, a kill, a power cut) [OpenLog] validates
// every batch of the last segment, the only one that can hold unsynced
// bytes, by length, magic, CRC-32C and offset order; it truncates the file at
// the first invalid batch and rebuilds that segment's indexes. What was
// durable is never lost; what was not may be, but never half of a batch. It
// also finishes or discards a compaction swap that a crash interrupted, and
// removes segment files that were being deleted.
//
// [Open] does this for every partition. It checks the directory's format
// version (the meta file), reads the topics from topics.json, and removes
// partition directories that topics.json does not list (those of a topic
// whose deletion a crash interrupted): keep nothing else in a broker's
// directory.
//
// # Retention and compaction
//
// A topic's [TopicConfig.CleanupPolicy] (cleanup.policy) chooses between
// them. With [CleanupDelete], the default, the broker deletes whole segments
// past [TopicConfig.RetentionTime] (by their newest record) or
// [TopicConfig.RetentionBytes], looking every
// [Options.RetentionCheckInterval]; [Broker.EnforceRetention] does it now.
//
// With [CleanupCompact], compaction keeps, for every key, only the latest
// record, so that a log of updates stays as large as its set of keys; a
// record with a nil Value is a tombstone, which deletes its key and is itself
// removed once older than [TopicConfig.DeleteRetention].
// [CleanupCompactDelete] does both. The broker's cleaner looks every
// [Options.CleanerBackoff] and compacts the partitions whose dirty ratio
// ([Log.DirtyRatio]) reaches [TopicConfig.MinCleanableDirtyRatio];
// [Broker.CompactTopics] does it now, and [Log.Compact] compacts a bare log.
// Compaction rewrites closed segments only (the active one keeps every
// record), keeps offsets (a compacted log has gaps), keeps records without
// a key, and runs beside appends and reads. Each rewritten segment is
// written beside the original (.cleaned), then swapped in by renames
// (.swap) that a crash leaves either undone or finished on the next open.
// Readers of the old segment keep reading it until they release it.
//
// # Idempotent producers
//
// Every log keeps Kafka's idempotent producer state (KIP-98, without
// transactions) for batches that carry a producer id: per id, the epoch and
// the last five batches' sequence numbers. A batch with the sequence numbers
// of one of them is a retry: the append returns that batch's offset and
// writes nothing. A batch
// whose sequence does not follow fails with [ErrOutOfOrderSequence], one
// from an older epoch with [ErrInvalidProducerEpoch]; nothing is written
// then. The state is saved in a producer-snapshot file when a segment rolls
// and on a clean close, and rebuilt on open from the snapshot and the batch
// headers after it. [Broker.InitProducerID] hands out producer ids that stay
// unique for the life of the data directory.
//
// The in-process [Producer] does not retry and its batches carry no producer
// id; the state serves batches from Kafka's idempotent clients, which the
// Kafka protocol server (coming) will append.
//
// # Concurrency and lifetimes
//
// [Broker], [Topic], [Partition], [Producer] and [Log] are safe for
// concurrent use. A [Consumer]'s methods are too, and Seek or Close may be
// called while Poll waits; Poll itself is meant for one goroutine at a time,
// since each call invalidates the records of the last one. A group
// consumer's callbacks run on a goroutine of its own, one at a time. A Log has one
// writer at a time (appends, truncation, retention and Close serialise on a
// mutex) and any number of readers, which never wait for the writer: they
// work from an immutable snapshot of the segment list.
//
// Reading copies nothing, which makes lifetimes matter:
//
//   - The records [Consumer.Poll] returns, and everything they point to,
//     are valid until the next Poll or Close. Keys and values alias the
//     partition's read-only memory mapping (writing to them crashes the
//     program) or a decompression buffer the consumer reuses. A record
//     yielded by [Consumer.Records] is valid until the loop moves on.
//     [Record.Clone] makes a deep copy to keep or to modify.
//   - The bytes of a [Slice] alias the segment's memory mapping and stay
//     valid until [Slice.Release], even if retention or compaction replaces
//     the segment meanwhile: its files are unmapped and removed only after
//     the last Slice that reads from them is released (a range that
//     [Log.Truncate] removed reads as zeros). Release every Slice; do not
//     write to its bytes.
//   - The records that [Records] yields alias the Slice or a decompression
//     buffer and are valid only until the loop moves on.
//   - [Producer.SendAsync] encodes a record before it returns: the caller
//     may reuse its Key, Value and Headers then.
//
// # Errors
//
// Errors wrap the package's sentinel values with context: test them with
// errors.Is. [ErrClosed] is returned by calls on a closed log, broker,
// producer or consumer. [ErrUnknownTopic], [ErrUnknownPartition],
// [ErrTopicExists] and [ErrInvalidTopic] concern topics; [ErrInvalidConfig]
// an Options, TopicConfig, ProducerConfig or ConsumerConfig field out of
// range (the message names it). [ErrRecordTooLarge] is returned for a
// record or batch over the topic's [TopicConfig.MaxMessageBytes] (a log's
// [LogConfig.MaxBatchBytes], a producer's [ProducerConfig.MaxBufferedBytes]); [ErrBufferFull] by a producer that may not
// wait for room; [ErrCorruptBatch] for bytes that are not a valid record
// batch; [ErrCorruptLog] for damage on disk that recovery cannot repair
// without losing records it must keep; [ErrNoRecords] for an append of no
// records; [ErrLocked] when another broker has the directory open;
// [ErrOutOfOrderSequence] and [ErrInvalidProducerEpoch] for idempotent
// producers; [ErrNotAssigned] for a commit of a partition the consumer does
// not own, and the group errors, each named after its Kafka error code
// ([ErrIllegalGeneration], [ErrUnknownMemberID], [ErrRebalanceInProgress],
// [ErrFencedInstanceID], ...), for a member whose generation is over or
// whose membership failed. A read outside [StartOffset, EndOffset] returns an
// *[OffsetOutOfRangeError], which carries the valid range (use errors.As)
// and matches [ErrOffsetOutOfRange].
//
// A failed write or fsync is sticky: after one, every append to that log
// returns the same error until it is reopened, because after a failed fsync
// the page cache can no longer be trusted to match the disk.
package commitlog
