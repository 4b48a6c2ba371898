// Command eventsourcing is a bank-account service whose state is a topic:
// every deposit and withdrawal is an event, and on start the service
// rebuilds its balances by replaying the topic from the beginning. Run it
// twice: the second run starts from the balances the first one left.
//
//	go run ./examples/eventsourcing
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log"
	"os"
	"slices"

	"github.com/streamkit/commitlog"
)

// event is one change to an account, stored as the record's value; the
// account is the record's key, so an account's events share a partition
// and stay in order.
type event struct {
	Kind   string `json:"kind"` // "deposit" or "withdraw"
	Amount int64  `json:"amount"`
}

type service struct {
	producer *commitlog.Producer
	balances map[string]int64
}

// rebuild replays every event of the topic into balances.
func rebuild(ctx context.Context, b *commitlog.Broker, topic string) (map[string]int64, error) {
	t, err := b.Topic(topic)
	if err != nil {
		return nil, err
	}
	balances := map[string]int64{}
	c, err := b.NewConsumer(commitlog.ConsumerConfig{Topics: []string{topic}})
	if err != nil {
		return nil, err
	}
	defer c.Close()
	// Read up to the end offsets as they are now: that is the state.
	remaining := 0
	for _, p := range t.Partitions() {
		remaining += int(p.EndOffset() - p.StartOffset())
	}
	for remaining > 0 {
		recs, err := c.Poll(ctx)
		if err != nil {
			return nil, err
		}
		for _, r := range recs {
			var e event
			if err := json.Unmarshal(r.Value, &e); err != nil {
				return nil, fmt.Errorf("event at %s-%d@%d: %w", r.Topic, r.Partition, r.Offset, err)
			}
			apply(balances, string(r.Key), e)
			remaining--
		}
	}
	return balances, nil
}

func apply(balances map[string]int64, account string, e event) {
	switch e.Kind {
	case "deposit":
		balances[account] += e.Amount
	case "withdraw":
		balances[account] -= e.Amount
	}
}

// handle validates a command, records its event, and only then applies it.
func (s *service) handle(ctx context.Context, account string, e event) error {
	if e.Kind == "withdraw" && s.balances[account] < e.Amount {
		return fmt.Errorf("%s: insufficient funds for %d", account, e.Amount)
	}
	value, err := json.Marshal(e)
	if err != nil {
		return err
	}
	if _, err := s.producer.Send(ctx, commitlog.Record{Topic: "accounts", Key: []byte(account), Value: value}); err != nil {
		return err
	}
	apply(s.balances, account, e)
	return nil
}

func main() {
	dir := flag.String("dir", "data", "data directory of the broker")
	flag.Parse()
	if err := run(context.Background(), *dir, os.Stdout); err != nil {
		log.Fatal(err)
	}
}

func run(ctx context.Context, dir string, out io.Writer) error {
	b, err := commitlog.Open(dir, commitlog.Options{})
	if err != nil {
		return err
	}
	defer b.Close()
	_, err = b.CreateTopic(ctx, "accounts", commitlog.TopicConfig{Partitions: 4, RetentionTime: -1})
	if err != nil && !errors.Is(err, commitlog.ErrTopicExists) {
		return err
	}
	balances, err := rebuild(ctx, b, "accounts")
	if err != nil {
		return err
	}
	fmt.Fprintln(out, "rebuilt:", format(balances))

	p, err := b.NewProducer(commitlog.ProducerConfig{})
	if err != nil {
		return err
	}
	defer p.Close()
	s := &service{producer: p, balances: balances}
	for _, cmd := range []struct {
		account string
		e       event
	}{
		{"alice", event{"deposit", 100}},
		{"bob", event{"deposit", 50}},
		{"alice", event{"withdraw", 30}},
		{"bob", event{"withdraw", 80}}, // refused: bob has 50 (on a first run)
	} {
		if err := s.handle(ctx, cmd.account, cmd.e); err != nil {
			fmt.Fprintln(out, "refused:", err)
		}
	}
	fmt.Fprintln(out, "now:", format(s.balances))
	return nil
}

func format(balances map[string]int64) string {
	accounts := make([]string, 0, len(balances))
	for a := range balances {
		accounts = append(accounts, a)
	}
	slices.Sort(accounts)
	s := "{"
	for i, a := range accounts {
		if i > 0 {
			s += " "
		}
		s += fmt.Sprintf("%s:%d", a, balances[a])
	}
	return s + "}"
}
