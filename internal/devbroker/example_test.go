package devbroker_test

import (
	"context"
	"fmt"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/cdcrelay/cdcrelay/internal/devbroker"
)

// A broker in memory, on a free port, with one transactional write and a
// read_committed read.
func ExampleStart() {
	b, err := devbroker.Start(devbroker.Config{Listen: "127.0.0.1:0", AutoCreateTopics: true}, nil)
	if err != nil {
		panic(err)
	}
	defer b.Close()

	ctx := context.Background()
	p, _ := kgo.NewClient(kgo.SeedBrokers(b.Addr()), kgo.TransactionalID("example"),
		kgo.DefaultProduceTopic("greetings"), kgo.AllowAutoTopicCreation())
	defer p.Close()
	_ = p.BeginTransaction()
	_ = p.ProduceSync(ctx, kgo.StringRecord("hello")).FirstErr()
	if err := p.EndTransaction(ctx, kgo.TryCommit); err != nil {
		panic(err)
	}

	c, _ := kgo.NewClient(kgo.SeedBrokers(b.Addr()), kgo.ConsumeTopics("greetings"),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()), kgo.FetchIsolationLevel(kgo.ReadCommitted()))
	defer c.Close()
	c.PollFetches(ctx).EachRecord(func(r *kgo.Record) { fmt.Println(string(r.Value)) })
	// Output: hello
}
