package cluster

import (
	"slices"
	"strconv"
	"sync"
)

// EventKind says what an Event reports.
type EventKind int

// The kinds of Event.
const (
	// TopicCreated: a topic exists; Partitions holds every partition's
	// state, indexed by partition id. The snapshot a watch starts with is
	// made of these.
	TopicCreated EventKind = iota + 1
	// PartitionsAdded: the topic has more partitions; Partitions holds
	// every partition's state, the new ones included.
	PartitionsAdded
	// PartitionChanged: one partition's leader, ISR or ELR changed; State is
	// its new state.
	PartitionChanged
	// TopicDeleted: the topic is gone.
	TopicDeleted
	// BrokersChanged: a broker registered, shut down or was fenced;
	// Brokers holds the live brokers after the change.
	BrokersChanged
	// TopicConfigChanged: the topic's configuration changed; Config holds
	// the new one.
	TopicConfigChanged
)

var eventKindNames = [...]string{
	TopicCreated:       "TopicCreated",
	PartitionsAdded:    "PartitionsAdded",
	PartitionChanged:   "PartitionChanged",
	TopicDeleted:       "TopicDeleted",
	BrokersChanged:     "BrokersChanged",
	TopicConfigChanged: "TopicConfigChanged",
}

// String returns the kind's name.
func (k EventKind) String() string {
	if k > 0 && int(k) < len(eventKindNames) {
		return eventKindNames[k]
	}
	return "EventKind(" + strconv.Itoa(int(k)) + ")"
}

// Event is one change of the cluster metadata, as delivered by Watch.
// Every event carries its own copies of the states: a receiver may keep or
// modify them.
type Event struct {
	Kind      EventKind
	Topic     string         // every kind but BrokersChanged
	Partition int32          // PartitionChanged
	State     PartitionState // PartitionChanged
	// Partitions is every partition's state, indexed by partition id
	// (TopicCreated, PartitionsAdded).
	Partitions []PartitionState
	// Brokers is the live brokers after the change, sorted by id
	// (BrokersChanged).
	Brokers []BrokerInfo
	// Config is the topic's configuration as TopicSpec.Config or
	// SetTopicConfig gave it (TopicCreated, TopicConfigChanged).
	Config []byte
}

// clone returns a deep copy of e.
func (e Event) clone() Event {
	e.State = e.State.Clone()
	if e.Partitions != nil {
		ps := make([]PartitionState, len(e.Partitions))
		for i, p := range e.Partitions {
			ps[i] = p.Clone()
		}
		e.Partitions = ps
	}
	e.Brokers = slices.Clone(e.Brokers)
	e.Config = slices.Clone(e.Config)
	return e
}

// watcher delivers events to one Watch caller, in order and without
// dropping any: the controller appends to an unbounded queue (never
// blocking on a slow receiver) and one goroutine moves the queue to the
// channel. The goroutine is joined by stop.
type watcher struct {
	mu    sync.Mutex
	queue []Event // guarded by mu

	wake   chan struct{} // capacity 1: the queue grew
	done   chan struct{} // closed by stop
	exited chan struct{} // closed when run returns
	out    chan Event    // closed when run returns
	once   sync.Once
}

func newWatcher(snapshot []Event) *watcher {
	w := &watcher{
		queue:  snapshot,
		wake:   make(chan struct{}, 1),
		done:   make(chan struct{}),
		exited: make(chan struct{}),
		out:    make(chan Event),
	}
	go w.run()
	return w
}

// push queues e; it never blocks.
func (w *watcher) push(e Event) {
	w.mu.Lock()
	w.queue = append(w.queue, e)
	w.mu.Unlock()
	select {
	case w.wake <- struct{}{}:
	default:
	}
}

func (w *watcher) run() {
	defer close(w.exited)
	defer close(w.out)
	for {
		w.mu.Lock()
		if len(w.queue) == 0 {
			w.queue = nil // let the backing array go
			w.mu.Unlock()
			select {
			case <-w.wake:
				continue
			case <-w.done:
				return
			}
		}
		e := w.queue[0]
		w.queue[0] = Event{}
		w.queue = w.queue[1:]
		w.mu.Unlock()
		select {
		case w.out <- e:
		case <-w.done:
			return
		}
	}
}

// stop ends the feeding goroutine and waits for it; events still queued
// are dropped, and the channel is closed. It is idempotent.
func (w *watcher) stop() {
	w.once.Do(func() { close(w.done) })
	<-w.exited
}
