// Command commitlog runs a standalone broker that serves the Apache Kafka
// protocol:
//
//	go run ./cmd/commitlog                      # ./data, localhost:9092
//	go run ./cmd/commitlog -dir /var/lib/commitlog -addr :9092 -advertised-host kafka.internal
//
// It stops cleanly on SIGINT or SIGTERM: the listener closes, requests in
// progress are answered, then the broker closes its logs.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/streamkit/commitlog"
	"github.com/streamkit/commitlog/kafka"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, os.Args[1:], os.Stderr, nil); err != nil {
		if !errors.Is(err, flag.ErrHelp) {
			fmt.Fprintln(os.Stderr, "commitlog:", err)
		}
		os.Exit(2)
	}
}

// run parses args, opens the broker and serves it until ctx is done, then
// shuts down. Logs go to logOut. When ready is not nil, the address
// listened on is sent to it once the server accepts connections.
func run(ctx context.Context, args []string, logOut io.Writer, ready chan<- net.Addr) error {
	fs := flag.NewFlagSet("commitlog", flag.ContinueOnError)
	fs.SetOutput(logOut)
	var (
		dir             = fs.String("dir", "data", "data directory")
		addr            = fs.String("addr", kafka.DefaultAddr, "address to listen on for Kafka clients (listeners)")
		advertisedHost  = fs.String("advertised-host", "", "host name clients are told to connect to (default: the listener's)")
		advertisedPort  = fs.Int("advertised-port", 0, "port clients are told to connect to (default: the listener's)")
		nodeID          = fs.Int("node-id", kafka.DefaultNodeID, "broker id (node.id)")
		autoCreate      = fs.Bool("auto-create-topics", true, "create unknown topics that clients ask for (auto.create.topics.enable)")
		syncPolicy      = fs.String("sync", commitlog.SyncGroupCommit.String(), "when appends are fsynced: group-commit, periodic or none")
		syncInterval    = fs.Duration("sync-interval", commitlog.DefaultSyncInterval, "fsync period of -sync periodic (flush.ms)")
		partitions      = fs.Int("partitions", 1, "partitions of topics created without a count (num.partitions)")
		retention       = fs.Duration("retention", commitlog.DefaultRetentionTime, "how long topics keep records by default, -1 forever (log.retention.hours)")
		retentionBytes  = fs.Int64("retention-bytes", -1, "default size cap per partition in bytes, -1 none (log.retention.bytes)")
		maxMessageBytes = fs.Int("message-max-bytes", commitlog.DefaultMaxBatchBytes, "largest record batch accepted (message.max.bytes)")
		maxRequestBytes = fs.Int("max-request-bytes", kafka.DefaultMaxRequestBytes, "largest request accepted (socket.request.max.bytes)")
		noZeroCopy      = fs.Bool("disable-zero-copy", false, "copy fetched records through user space instead of sending them with sendfile(2) (for debugging)")
		shutdownTimeout = fs.Duration("shutdown-timeout", 30*time.Second, "how long a shutdown waits for requests in progress")
		logLevel        = fs.String("log-level", "info", "debug, info, warn or error")
	)
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("unexpected arguments %q", fs.Args())
	}
	var level slog.Level
	if err := level.UnmarshalText([]byte(*logLevel)); err != nil {
		return fmt.Errorf("-log-level: %w", err)
	}
	log := slog.New(slog.NewTextHandler(logOut, &slog.HandlerOptions{Level: level}))
	policy, err := parseSyncPolicy(*syncPolicy)
	if err != nil {
		return err
	}
	if *nodeID < 1 || *nodeID > 1<<31-1 {
		return fmt.Errorf("-node-id %d: must be positive", *nodeID)
	}
	if *partitions < 1 || *partitions > 1<<31-1 {
		return fmt.Errorf("-partitions %d: must be positive", *partitions)
	}

	b, err := commitlog.Open(*dir, commitlog.Options{
		SyncPolicy:        policy,
		SyncInterval:      *syncInterval,
		DefaultPartitions: int32(*partitions),
		AutoCreateTopics:  *autoCreate,
		RetentionTime:     *retention,
		RetentionBytes:    *retentionBytes,
		MaxMessageBytes:   *maxMessageBytes,
	})
	if err != nil {
		return err
	}
	srv, err := kafka.NewServer(b, kafka.Config{
		Addr:            *addr,
		NodeID:          int32(*nodeID),
		AdvertisedHost:  *advertisedHost,
		AdvertisedPort:  *advertisedPort,
		DisableZeroCopy: *noZeroCopy,
		MaxRequestBytes: *maxRequestBytes,
		Logger:          log,
	})
	if err != nil {
		return errors.Join(err, b.Close())
	}
	ln, err := net.Listen("tcp", *addr)
	if err != nil {
		return errors.Join(err, b.Close())
	}
	log.Info("commitlog: broker open", "dir", b.Dir(), "cluster_id", b.ClusterID(), "topics", len(b.Topics()), "sync", policy.String())

	served := make(chan error, 1)
	go func() { served <- srv.Serve(ln) }()
	if ready != nil {
		ready <- ln.Addr()
	}

	var serveErr error
	select {
	case <-ctx.Done():
		log.Info("commitlog: shutting down")
	case serveErr = <-served:
		log.Error("commitlog: serving failed", "err", serveErr)
	}
	sctx, cancel := context.WithTimeout(context.Background(), *shutdownTimeout)
	defer cancel()
	shutdownErr := srv.Shutdown(sctx)
	if serveErr == nil {
		if err := <-served; !errors.Is(err, kafka.ErrServerClosed) {
			serveErr = err
		}
	}
	closeErr := b.Close()
	if err := errors.Join(serveErr, shutdownErr, closeErr); err != nil {
		return err
	}
	log.Info("commitlog: stopped")
	return nil
}

func parseSyncPolicy(s string) (commitlog.SyncPolicy, error) {
	for _, p := range []commitlog.SyncPolicy{commitlog.SyncGroupCommit, commitlog.SyncPeriodic, commitlog.SyncNone} {
		if s == p.String() {
			return p, nil
		}
	}
	return 0, fmt.Errorf("-sync %q: want group-commit, periodic or none", s)
}
