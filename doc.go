// Package commitlog is an embeddable implementation of Apache Kafka's design
// in Go: partitioned, append-only commit logs stored as memory-mapped
// segment files in Kafka's own on-disk format, inside your process.
//
// The storage engine is complete: the [Log] of one partition, described
// below. The in-process broker is being built on it: a [Broker] ([Open])
// owns a data directory of topics, each split into partitions that are Logs.
// Producers, consumers and consumer groups, the Kafka wire protocol and
// replication come next.
//
// # The Log
//
// A [Log] is one partition's log: a directory of segments, each a .log file of
// record batches with a sparse .index (offset to file position) and a
// .timeindex (timestamp to offset). Batches are Kafka's RecordBatch v2,
// stored byte for byte as they travel on the Kafka wire. [OpenLog] opens or
// creates one; the zero [LogConfig] gives Kafka's defaults.
//
// Records are appended in batches. [Log.AppendRecords] encodes [Record] values
// into a batch and appends it; [AppendBatch] only encodes, for callers that keep or
// forward the bytes, and [Log.Append] appends a batch that is already encoded
// (for example one received from a Kafka producer). The log assigns each
// batch the next offsets by rewriting the batch's base offset, a field its
// checksum does not cover. Batches can be compressed ([Compression]) as a
// whole; the log stores them compressed.
//
// [Log.Read] returns a [Slice] of whole batches, starting with the batch that
// holds the offset asked for, exactly as stored: this is what a Kafka Fetch
// sends. [Records] decodes a [Slice] into [Record] values, decompressing as it
// goes.
// [Log.WaitData] blocks until records past an offset arrive, and
// [Log.OffsetForTime] finds the first record at or after a timestamp.
//
// Segments roll when they reach [LogConfig.SegmentBytes] or
// [LogConfig.SegmentAge], or when their index is full. [Log.DeleteBefore],
// [Log.RetainBytes] and [Log.RetainAge] delete whole segments from the start;
// [Log.Truncate] removes records from the end, as a replica does to agree with
// its leader.
//
// # Offsets
//
// Every record has an offset, its position in the log, starting at 0 and
// increasing by one per record. Three offsets describe a log:
//
//   - [Log.StartOffset]: the first offset still held; retention raises it.
//   - [Log.DurableOffset]: every record below it is on stable storage
//     (fsynced) and survives a machine crash.
//   - [Log.EndOffset]: the offset the next record will get (Kafka's log end
//     offset). Records live in [StartOffset, EndOffset).
//
// StartOffset <= DurableOffset <= EndOffset holds whenever no append is in
// progress, and under [SyncGroupCommit] an append returns only once the
// durable offset has passed it.
//
// # Durability
//
// [LogConfig.SyncPolicy] says when appended bytes are fsynced. There are
// three, named and chosen, never implied:
//
//   - [SyncGroupCommit], the default: Append returns once the batch is on
//     stable storage. Appends that arrive while an fdatasync runs share the
//     next one, so many concurrent appenders pay for one sync, not one each.
//   - [SyncPeriodic]: a sync every [LogConfig.SyncInterval]. Append returns
//     once the batch is in the page cache; a machine crash can lose up to an
//     interval of acknowledged records, a process crash loses none.
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
// Close syncs everything and leaves a clean-shutdown marker, so the next
// [OpenLog] trusts the indexes and reads only the tail of each segment. After
// an unclean stop (a crash, a kill, a power cut) [OpenLog] validates every
// batch of the last segment, the only one that can hold unsynced bytes, by
// length, magic, CRC-32C and offset order; it truncates the file at the
// first invalid batch and rebuilds that segment's indexes. What was durable
// is never lost; what was not may be, but never half of a batch.
//
// # Concurrency
//
// A [Log] has one writer at a time: Append, AppendRecords, Truncate, the
// retention calls and Close serialise on a mutex, so any goroutine may call
// them. Readers (Read, WaitData, OffsetForTime and the offset getters) never
// wait for the writer: they work from an immutable snapshot of the segment
// list.
//
// The bytes of a [Slice] alias the segment's memory mapping, so reading costs no
// copy. They stay valid until [Slice.Release], even if retention deletes the
// segment meanwhile: its files are unmapped and removed only after the last
// [Slice] that reads from them is released. Release every Slice; do not write
// to its bytes. The records that [Records] yields alias the [Slice] or a
// decompression buffer and are valid only until the loop moves on: copy
// what you keep.
//
// # Errors
//
// Errors wrap the package's sentinel values with context: test them with
// errors.Is. [ErrClosed] is returned by every call on a closed log;
// [ErrRecordTooLarge] for a batch over [LogConfig.MaxBatchBytes];
// [ErrCorruptBatch] for bytes that are not a valid record batch;
// [ErrCorruptLog] for damage that recovery cannot repair without losing
// records it must keep; [ErrNoRecords] for an append of no records;
// [ErrLocked] when another process has the broker's directory open. A read
// outside [StartOffset, EndOffset] returns an *[OffsetOutOfRangeError], which carries the valid range (use
// errors.As) and matches [ErrOffsetOutOfRange].
//
// A failed write or fsync is sticky: after one, every append returns the
// same error until the log is reopened, because after a failed fsync the
// page cache can no longer be trusted to match the disk.
package commitlog
