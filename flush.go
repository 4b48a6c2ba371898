package commitlog

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/streamkit/commitlog/internal/layout"
)

// syncer makes a log's appends durable according to its SyncPolicy. Under
// SyncGroupCommit a flusher goroutine runs one fdatasync at a time: every
// append kicks it, and all appends written before a sync starts are
// acknowledged when it returns, so N concurrent appenders share one sync.
// Under SyncPeriodic the same goroutine syncs on a ticker; under SyncNone
// there is no goroutine and syncs happen on roll, Sync and Close.
type syncer struct {
	l    *Log
	kick chan struct{} // buffered: a pending request to sync
	done chan struct{} // closed by stop
	wg   sync.WaitGroup

	// mu orders durable-offset updates against truncation: a sync that
	// started before a truncation must not raise the durable offset after it.
	mu    sync.Mutex
	gen   int64
	err   atomic.Pointer[error] // the first sync failure; sticky
	wakes notifier              // signalled when durable moves or a sync fails
}

func (s *syncer) start(l *Log) {
	s.l = l
	s.kick = make(chan struct{}, 1)
	s.done = make(chan struct{})
	if l.cfg.SyncPolicy == SyncNone {
		return
	}
	s.wg.Add(1)
	go s.loop()
}

func (s *syncer) loop() {
	defer s.wg.Done()
	var tick <-chan time.Time
	if s.l.cfg.SyncPolicy == SyncPeriodic {
		t := time.NewTicker(s.l.cfg.SyncInterval)
		defer t.Stop()
		tick = t.C
	}
	for {
		select {
		case <-s.kick:
		case <-tick:
		case <-s.done:
			return
		}
		s.syncOnce()
	}
}

// stop ends the flusher goroutine and waits for it.
func (s *syncer) stop() {
	close(s.done)
	s.wg.Wait()
}

// written tells the syncer that the writer appended bytes.
func (s *syncer) written() {
	if s.l.cfg.SyncPolicy == SyncGroupCommit {
		select {
		case s.kick <- struct{}{}:
		default:
		}
	}
}

// syncOnce fsyncs the active segment, covering everything appended so far.
func (s *syncer) syncOnce() {
	l := s.l
	l.mu.Lock()
	seg, target := l.active, l.end.Load()
	if l.closed || l.err != nil || target <= l.durable.Load() || !seg.acquire() {
		l.mu.Unlock()
		return
	}
	s.mu.Lock()
	gen := s.gen
	s.mu.Unlock()
	l.mu.Unlock()

	err := seg.log.Sync()
	seg.release()
	if err != nil {
		err = fmt.Errorf("commitlog: fsync %s: %w", seg.path(layout.KindLog), err)
		l.mu.Lock()
		if l.err == nil {
			l.err = err
		}
		l.mu.Unlock()
		s.err.CompareAndSwap(nil, &err)
		s.wakes.broadcast()
		return
	}
	s.mu.Lock()
	if s.gen == gen {
		s.advanceLocked(target)
	}
	s.mu.Unlock()
}

// advance raises the durable offset to off (never lowers it).
func (s *syncer) advance(off int64) {
	s.mu.Lock()
	s.advanceLocked(off)
	s.mu.Unlock()
}

func (s *syncer) advanceLocked(off int64) {
	if off > s.l.durable.Load() {
		s.l.durable.Store(off)
		s.wakes.broadcast()
	}
}

// truncated lowers the durable offset to a truncated log's new end and
// voids syncs in flight.
func (s *syncer) truncated(end int64) {
	s.mu.Lock()
	s.gen++
	if s.l.durable.Load() > end {
		s.l.durable.Store(end)
	}
	s.mu.Unlock()
}

// WaitDurable blocks until every record below offset is durable, syncing if
// the policy would not do it by itself, or until ctx is done. A failed sync
// is returned to every waiter.
func (l *Log) WaitDurable(ctx context.Context, offset int64) error {
	s := &l.sync
	if l.durable.Load() < offset && l.cfg.SyncPolicy != SyncGroupCommit {
		s.syncOnce()
	}
	for {
		ch := s.wakes.wait()
		if l.durable.Load() >= offset {
			return nil
		}
		if p := s.err.Load(); p != nil {
			return *p
		}
		if l.segs.Load() == nil {
			return ErrClosed
		}
		s.written()
		select {
		case <-ch:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

// notifier wakes every goroutine waiting on it. wait returns a channel that
// the next broadcast closes; listeners registered with listen get a
// non-blocking send instead, so one channel can listen to many notifiers.
// broadcast costs a lock and nothing more when no one waits.
type notifier struct {
	mu        sync.Mutex
	ch        chan struct{}
	listeners map[chan<- struct{}]struct{}
}

func (n *notifier) wait() <-chan struct{} {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.ch == nil {
		n.ch = make(chan struct{})
	}
	return n.ch
}

func (n *notifier) broadcast() {
	n.mu.Lock()
	if n.ch != nil {
		close(n.ch)
		n.ch = nil
	}
	for ch := range n.listeners {
		select {
		case ch <- struct{}{}:
		default:
		}
	}
	n.mu.Unlock()
}

// listen makes every broadcast try a non-blocking send on ch (give it a
// buffer of one) until stop is called.
func (n *notifier) listen(ch chan<- struct{}) (stop func()) {
	n.mu.Lock()
	if n.listeners == nil {
		n.listeners = map[chan<- struct{}]struct{}{}
	}
	n.listeners[ch] = struct{}{}
	n.mu.Unlock()
	return func() {
		n.mu.Lock()
		delete(n.listeners, ch)
		n.mu.Unlock()
	}
}
