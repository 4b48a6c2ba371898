// Package batch reads and writes Kafka RecordBatch v2 (magic 2), byte for
// byte as Kafka puts it on the wire and in its log segments. It is the unit
// the log stores: a 61-byte header (see format.go for the layout) followed
// by records, optionally compressed as one blob with gzip, snappy, lz4 or
// zstd.
//
// The pieces:
//
//   - Builder encodes records into a batch (Reset, Add, Build). Builders are
//     reusable and do not allocate per record in steady state.
//   - ReadHeader parses the fixed header; Check validates a whole batch
//     (size limit, truncation, CRC-32C, codec, record count) without decoding
//     records.
//   - Scan walks consecutive batches in a buffer and reports the longest
//     valid prefix: the recovery primitive for a log segment whose tail may
//     be torn.
//   - Iter decodes the records of one batch, decompressing into a buffer it
//     owns and reuses. Record keys and values alias either the batch or that
//     buffer; nothing is copied per record.
//   - SetBaseOffset and SetPartitionLeaderEpoch patch the two fields the CRC
//     does not cover, in place, when the log assigns offsets.
//
// All input is treated as untrusted: no function panics on malformed bytes,
// lengths read from the input are checked against the data and the caller's
// limits before anything is allocated for them, and decompressed output is
// capped by a caller-supplied limit while it is being produced. Errors wrap
// the package's sentinel values (ErrTruncated, ErrTooLarge, ErrBadMagic,
// ErrBadCRC, ErrBadLength, ErrCorrupt, ErrUnknownCodec, ErrOffsetOrder,
// ErrEmpty); test them with errors.Is.
//
// Snappy is written in the xerial framing used by the Java client and read
// both framed and raw (as librdkafka sends it). LZ4 is the LZ4 frame format
// with 64 KiB blocks; zstd and gzip are single standard frames/members.
package batch
