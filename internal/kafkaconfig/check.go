package kafkaconfig

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/cdcrelay/cdcrelay/config"
	"github.com/cdcrelay/cdcrelay/internal/kafkaclient"
	"github.com/cdcrelay/cdcrelay/sources"
)

// Target is what the relay will use in Kafka, for Check.
type Target struct {
	// TransactionalID is the relay's transactional.id, cdcrelay-<id>.
	TransactionalID string
	// OffsetsTopic is kafka.offsets_topic.
	OffsetsTopic string
	// TopicPrefix is kafka.topic_prefix: every table topic starts with it
	// and a dot.
	TopicPrefix string
	// Topics are the table topics the relay will create or write, as far
	// as the config names them.
	Topics []string
	// Partitions, Replication and CleanupPolicy are the settings of the
	// topics the relay creates.
	Partitions    int32
	Replication   int16
	CleanupPolicy string
	// TransactionTimeout is kafka.transaction_timeout.
	TransactionTimeout time.Duration
}

// The operations the relay needs on each kind of resource.
var (
	// The offsets topic: create it, read its config (offsets.EnsureTopic),
	// read it at start and write it in every transaction.
	offsetsTopicOps = []kmsg.ACLOperation{kmsg.ACLOperationCreate, kmsg.ACLOperationDescribe,
		kmsg.ACLOperationDescribeConfigs, kmsg.ACLOperationRead, kmsg.ACLOperationWrite}
	// A table topic: create it and write it.
	tableTopicOps = []kmsg.ACLOperation{kmsg.ACLOperationCreate, kmsg.ACLOperationDescribe, kmsg.ACLOperationWrite}
)

// Check is the Kafka half of `cdcrelay check`: it tests, without changing
// anything, that the brokers answer and support transactions, that the
// relay's principal may use its transactional id and create, read and
// write its topics, that an existing offsets topic is compacted with one
// partition, that the brokers allow kafka.transaction_timeout, and that
// the replication factor fits the cluster. It returns one finding per
// check.
//
// It never sends InitProducerId, which would fence a running relay. WRITE
// on the transactional id is proven with an AddPartitionsToTxn request for
// producer id -1, which Kafka authorizes (transactional id, then each
// topic) before it looks the producer up, and then refuses because no
// producer has that id; nothing is added to any transaction. CREATE is
// tested with a validate-only CreateTopics, READ on a missing topic with a
// fetch. The one side effect is the broker's own: a cluster that never
// served a transaction creates its __transaction_state topic on the first
// coordinator lookup, as for any transactional client. log may be nil.
func Check(ctx context.Context, cfg *config.Kafka, t Target, log *slog.Logger) sources.Report {
	c := &checker{cfg: cfg, t: t}
	opts, err := Opts(cfg, log)
	if err != nil {
		return sources.Report{{Level: sources.Block, Subject: "kafka brokers", Detail: err.Error()}}
	}
	c.opts = opts
	cl, err := kgo.NewClient(c.opts...)
	if err != nil {
		return sources.Report{{Level: sources.Block, Subject: "kafka brokers", Detail: err.Error()}}
	}
	defer cl.Close()
	c.cl, c.adm = cl, kadm.NewClient(cl)
	if !c.brokers(ctx) {
		return c.rep
	}
	c.transactions(ctx)
	c.topicsMetadata(ctx)
	c.probeTxn(ctx)
	c.validateCreate(ctx)
	c.probeRead(ctx)
	c.transactionalID()
	c.topicAccess()
	c.offsetsLayout(ctx)
	c.brokerConfig(ctx)
	c.txnTimeout()
	c.replication()
	return c.rep
}

type checker struct {
	cfg  *config.Kafka
	t    Target
	opts []kgo.Opt
	cl   *kgo.Client
	adm  *kadm.Client
	rep  sources.Report

	brokerIDs []int32
	// topics holds what is known of each topic, the offsets topic first.
	topics []*topicState
	// txnErr is the answer about the transactional id itself: nil when
	// WRITE on it is proven, errProbeUnclear when only DESCRIBE is.
	txnErr error
	// txnDescribe is set when WRITE is denied but DESCRIBE allowed.
	txnDescribe bool
	// brokerCfg is one broker's configuration, nil when it could not be
	// read (brokerCfgErr says why).
	brokerCfg    map[string]string
	brokerCfgErr error
}

type topicState struct {
	name    string
	offsets bool
	need    []kmsg.ACLOperation

	exists     bool // metadata showed it
	unknown    bool // DESCRIBE denied: existence unknown
	partitions int
	replicas   int
	authorized []kmsg.ACLOperation // from metadata, when it exists
	opsOmitted bool                // the broker did not report them

	// missing and proven collect operations shown denied and allowed.
	missing, proven map[kmsg.ACLOperation]bool
	// problems are other reasons it cannot be created or written.
	problems []string
	// notes name operations a probe could not test, and why.
	notes []string
	skip  map[kmsg.ACLOperation]bool
}

// untested notes that a probe for op got no answer.
func (ts *topicState) untested(op kmsg.ACLOperation, err error) {
	if ts.skip == nil {
		ts.skip = map[kmsg.ACLOperation]bool{}
	}
	ts.skip[op] = true
	ts.notes = append(ts.notes, fmt.Sprintf("%s not tested (%v)", opName(op), err))
}

func (ts *topicState) deny(op kmsg.ACLOperation)  { ts.missing[op] = true }
func (ts *topicState) allow(op kmsg.ACLOperation) { ts.proven[op] = true }

var errProbeUnclear = errors.New("unclear")

func (c *checker) add(level sources.Level, subject, detail string, args ...any) {
	c.rep = append(c.rep, sources.Finding{Level: level, Subject: subject, Detail: fmt.Sprintf(detail, args...)})
}

func (c *checker) brokers(ctx context.Context) bool {
	rctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	m, err := c.adm.BrokerMetadata(rctx)
	if err != nil {
		if fatal := kafkaclient.ConnectFatal(err); fatal != nil {
			err = fatal
		}
		c.add(sources.Block, "kafka brokers", "cannot reach %s: %v; check kafka.brokers, kafka.tls and kafka.sasl",
			strings.Join(c.cfg.Brokers, ","), err)
		return false
	}
	for _, b := range m.Brokers {
		c.brokerIDs = append(c.brokerIDs, b.NodeID)
	}
	c.add(sources.OK, "kafka brokers", "%d broker(s) answer at %s (cluster %s)", len(m.Brokers), strings.Join(c.cfg.Brokers, ","), m.Cluster)
	return true
}

// transactions checks that every broker serves the transactional producer's
// requests.
func (c *checker) transactions(ctx context.Context) {
	rctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	vs, err := c.adm.ApiVersions(rctx)
	if err != nil {
		c.add(sources.Block, "kafka transactions", "cannot ask the brokers for their API versions: %v", err)
		return
	}
	need := []kmsg.Request{new(kmsg.InitProducerIDRequest), new(kmsg.AddPartitionsToTxnRequest), new(kmsg.EndTxnRequest)}
	var bad []string
	for _, v := range vs.Sorted() {
		if v.Err != nil {
			bad = append(bad, fmt.Sprintf("broker %d did not answer (%v)", v.NodeID, v.Err))
			continue
		}
		for _, r := range need {
			if _, ok := v.KeyMaxVersion(r.Key()); !ok {
				bad = append(bad, fmt.Sprintf("broker %d lacks %s", v.NodeID, kmsg.NameForKey(r.Key())))
			}
		}
	}
	if len(bad) > 0 {
		c.add(sources.Block, "kafka transactions", "%s; the relay needs a broker with transactions (Kafka 0.11 or later, or a service that supports them)", strings.Join(bad, "; "))
		return
	}
	c.add(sources.OK, "kafka transactions", "every broker serves InitProducerId, AddPartitionsToTxn and EndTxn")
}

// principal is the principal an ACL for the relay names.
func (c *checker) principal() string {
	if c.cfg.SASL.Mechanism != "" && c.cfg.SASL.Username != "" {
		return "User:" + c.cfg.SASL.Username
	}
	return "User:<the relay's principal>"
}

// aclFix is the kafka-acls.sh command that grants ops on a resource.
func (c *checker) aclFix(resource string, ops []kmsg.ACLOperation) string {
	var b strings.Builder
	b.WriteString("kafka-acls.sh --bootstrap-server ")
	b.WriteString(c.cfg.Brokers[0])
	b.WriteString(" --command-config admin.properties --add --allow-principal ")
	b.WriteString(c.principal())
	for _, op := range ops {
		b.WriteString(" --operation ")
		b.WriteString(opName(op))
	}
	b.WriteString(" ")
	b.WriteString(resource)
	return b.String()
}

func opName(op kmsg.ACLOperation) string {
	switch op {
	case kmsg.ACLOperationDescribeConfigs:
		return "DescribeConfigs"
	case kmsg.ACLOperationIdempotentWrite:
		return "IdempotentWrite"
	}
	s := strings.ToLower(op.String())
	return strings.ToUpper(s[:1]) + s[1:]
}

func opNames(ops []kmsg.ACLOperation) string {
	names := make([]string, len(ops))
	for i, op := range ops {
		names[i] = opName(op)
	}
	return strings.Join(names, ", ")
}

func (c *checker) transactionalID() {
	subject := "kafka acl transactional-id " + c.t.TransactionalID
	fix := c.aclFix("--transactional-id "+c.t.TransactionalID, []kmsg.ACLOperation{kmsg.ACLOperationWrite, kmsg.ACLOperationDescribe})
	switch {
	case c.txnErr == nil:
		c.add(sources.OK, subject, "Write allowed (shown without InitProducerId, so no running relay was fenced)")
	case errors.Is(c.txnErr, kerr.TransactionalIDAuthorizationFailed) && c.txnDescribe:
		c.add(sources.Block, subject, "Write denied (Describe allowed); grant: %s", fix)
	case errors.Is(c.txnErr, kerr.TransactionalIDAuthorizationFailed):
		c.add(sources.Block, subject, "Write and Describe denied; grant them: %s", fix)
	case errors.Is(c.txnErr, errProbeUnclear):
		c.add(sources.Warn, subject, "Describe allowed; Write could not be shown without fencing a running relay, so run will tell; it needs: %s", fix)
	default:
		c.add(sources.Block, subject, "cannot reach its transaction coordinator: %v", c.txnErr)
	}
}

// topicAccess reports the offsets topic on its own line and the table
// topics together on one.
func (c *checker) topicAccess() {
	off := c.topics[0]
	subject := "kafka acl topic " + off.name
	if missing := c.missingOps(off); len(missing) > 0 || len(off.problems) > 0 {
		c.add(sources.Block, subject, "%s", c.accessProblem(off, missing, "--topic "+off.name))
	} else if len(off.notes) > 0 {
		c.add(sources.Warn, subject, "%s; the relay needs %s: %s", strings.Join(off.notes, "; "), opNames(off.need),
			c.aclFix("--topic "+off.name, off.need))
	} else {
		c.add(sources.OK, subject, "%s allowed%s", opNames(off.need), existsNote(off))
	}

	tables := c.topics[1:]
	subject = "kafka acl topics " + c.t.TopicPrefix + ".*"
	if len(tables) == 0 {
		c.add(sources.Warn, subject, "no table topic to test (source.tables lists only schema.* entries, and the database did not name their tables); the relay needs: %s",
			c.aclFix("--resource-pattern-type prefixed --topic "+c.t.TopicPrefix+".", tableTopicOps))
		return
	}
	var bad []string
	var union []kmsg.ACLOperation
	for _, ts := range tables {
		missing := c.missingOps(ts)
		for _, op := range missing {
			if !slices.Contains(union, op) {
				union = append(union, op)
			}
		}
		if len(missing) > 0 || len(ts.problems) > 0 {
			bad = append(bad, ts.name)
		}
	}
	if len(bad) == 0 {
		c.add(sources.OK, subject, "%s allowed on %d topic(s) (%s)", opNames(tableTopicOps), len(tables), names(tables))
		return
	}
	var problems []string
	for _, ts := range tables {
		problems = append(problems, ts.problems...)
	}
	detail := fmt.Sprintf("%d of %d topic(s) (%s)", len(bad), len(tables), strings.Join(bad, ", "))
	if len(union) > 0 {
		slices.Sort(union)
		detail += " lack " + opNames(union) + "; grant them on the prefix: " +
			c.aclFix("--resource-pattern-type prefixed --topic "+c.t.TopicPrefix+".", tableTopicOps)
	}
	if len(problems) > 0 {
		detail += "; " + strings.Join(problems, "; ")
	}
	c.add(sources.Block, subject, "%s", detail)
}

func (c *checker) accessProblem(ts *topicState, missing []kmsg.ACLOperation, resource string) string {
	var parts []string
	if len(missing) > 0 {
		parts = append(parts, opNames(missing)+" denied; grant: "+c.aclFix(resource, ts.need))
	}
	parts = append(parts, ts.problems...)
	return strings.Join(parts, "; ")
}

func existsNote(ts *topicState) string {
	if ts.exists {
		return ""
	}
	return " (the topic does not exist yet; run creates it)"
}

func names(ts []*topicState) string {
	out := make([]string, len(ts))
	for i, t := range ts {
		out[i] = t.name
	}
	return strings.Join(out, ", ")
}

// missingOps is what ts needs and was shown denied, or could not be shown
// allowed.
func (c *checker) missingOps(ts *topicState) []kmsg.ACLOperation {
	var out []kmsg.ACLOperation
	for _, op := range ts.need {
		if ts.missing[op] || !ts.proven[op] && !ts.skip[op] && !c.implied(ts, op) {
			out = append(out, op)
		}
	}
	return out
}

// implied reports an operation that Kafka grants with another one the
// topic was shown to allow (WRITE and READ imply DESCRIBE), or that cannot
// be tested before the topic exists.
func (c *checker) implied(ts *topicState, op kmsg.ACLOperation) bool {
	switch op {
	case kmsg.ACLOperationDescribe:
		return ts.proven[kmsg.ACLOperationWrite] || ts.proven[kmsg.ACLOperationRead]
	case kmsg.ACLOperationDescribeConfigs:
		// Used only on a topic that exists, so a missing topic cannot
		// show it; without authorized operations, the cleanup.policy
		// line shows it.
		return !ts.exists || ts.opsOmitted
	}
	return false
}

// offsetsLayout checks an existing offsets topic: exactly one partition and
// cleanup.policy=compact, which the last-value-wins rule needs.
func (c *checker) offsetsLayout(ctx context.Context) {
	ts := c.topics[0]
	subject := "kafka offsets topic " + ts.name
	if !ts.exists {
		if ts.unknown {
			c.add(sources.Warn, subject, "cannot tell whether it exists (Describe denied); its layout is checked once the ACL is granted")
			return
		}
		c.add(sources.OK, subject, "does not exist yet; run creates it with 1 partition and cleanup.policy=compact")
		return
	}
	if ts.partitions != 1 {
		c.add(sources.Block, subject+" partitions", "%d partitions; it needs exactly 1 (the last value per key must be in one log): point kafka.offsets_topic at a new topic", ts.partitions)
	} else {
		c.add(sources.OK, subject+" partitions", "1 partition")
	}
	rctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	rcs, err := c.adm.DescribeTopicConfigs(rctx, ts.name)
	var policy *string
	if err == nil {
		var rc kadm.ResourceConfig
		rc, err = rcs.On(ts.name, nil)
		if err == nil {
			err = rc.Err
		}
		for _, cf := range rc.Configs {
			if cf.Key == "cleanup.policy" {
				policy = cf.Value
			}
		}
	}
	subject += " cleanup.policy"
	switch {
	case err != nil:
		c.add(sources.Block, subject, "cannot read its config: %v; grant: %s", err,
			c.aclFix("--topic "+ts.name, []kmsg.ACLOperation{kmsg.ACLOperationDescribeConfigs}))
	case policy == nil:
		c.add(sources.Warn, subject, "the broker did not say")
	case *policy != "compact":
		c.add(sources.Block, subject, "is %s, needs exactly compact (with delete, retention drops the stored position of a relay idle or stopped longer than retention.ms); fix: kafka-configs.sh --bootstrap-server %s --command-config admin.properties --alter --entity-type topics --entity-name %s --add-config cleanup.policy=compact",
			*policy, c.cfg.Brokers[0], ts.name)
	default:
		c.add(sources.OK, subject, "compact")
	}
}

func (c *checker) brokerCfgWarn(subject, what string) {
	fix := c.aclFix("--cluster", []kmsg.ACLOperation{kmsg.ACLOperationDescribeConfigs})
	c.add(sources.Warn, subject, "cannot read the broker config (%v); check %s by hand, or let check read it: %s", c.brokerCfgErr, what, fix)
}

func (c *checker) txnTimeout() {
	subject := "kafka transaction.max.timeout.ms"
	if c.brokerCfg == nil {
		c.brokerCfgWarn(subject, "that it is at least kafka.transaction_timeout ("+c.t.TransactionTimeout.String()+")")
		return
	}
	v, err := strconv.ParseInt(c.brokerCfg["transaction.max.timeout.ms"], 10, 64)
	if err != nil {
		c.add(sources.Warn, subject, "the broker did not say")
		return
	}
	max := time.Duration(v) * time.Millisecond
	if max < c.t.TransactionTimeout {
		c.add(sources.Block, subject, "%d (%v) is below kafka.transaction_timeout (%v), so InitProducerId would fail; lower kafka.transaction_timeout to at most %v, or set transaction.max.timeout.ms=%d in every broker's server.properties and restart them",
			v, max, c.t.TransactionTimeout, max, c.t.TransactionTimeout.Milliseconds())
		return
	}
	c.add(sources.OK, subject, "%d (%v), at least kafka.transaction_timeout (%v)", v, max, c.t.TransactionTimeout)
}

// replication checks kafka.topic_replication_factor against the number of
// brokers and min.insync.replicas: the relay writes with acks=all, which
// fails while fewer than min.insync.replicas replicas are in sync.
func (c *checker) replication() {
	subject := "kafka replication factor"
	rf, n := int(c.t.Replication), len(c.brokerIDs)
	if rf > n {
		c.add(sources.Block, subject, "kafka.topic_replication_factor %d exceeds the %d broker(s) of the cluster, so creating a topic fails; set it to at most %d", rf, n, n)
		return
	}
	if c.brokerCfg == nil {
		c.brokerCfgWarn(subject, fmt.Sprintf("that min.insync.replicas is at most kafka.topic_replication_factor (%d)", rf))
		return
	}
	isr, err := strconv.Atoi(c.brokerCfg["min.insync.replicas"])
	if err != nil {
		c.add(sources.Warn, subject, "the broker did not say its min.insync.replicas")
		return
	}
	for _, ts := range c.topics {
		if ts.exists && ts.replicas > 0 && ts.replicas < isr {
			c.add(sources.Block, subject, "topic %s has %d replica(s), below min.insync.replicas %d, so every write to it fails; add replicas (kafka-reassign-partitions.sh) or lower the topic's min.insync.replicas", ts.name, ts.replicas, isr)
			return
		}
	}
	switch {
	case rf < isr:
		c.add(sources.Block, subject, "kafka.topic_replication_factor %d is below the brokers' min.insync.replicas %d, so every write fails; set it to at least %d (the cluster has %d broker(s))", rf, isr, isr, n)
	case rf == isr && rf > 1:
		c.add(sources.Warn, subject, "kafka.topic_replication_factor %d equals min.insync.replicas: one broker down stops the relay; %d or more tolerates one", rf, isr+1)
	case rf == 1 && n > 1:
		c.add(sources.Warn, subject, "kafka.topic_replication_factor 1 on %d brokers: losing one broker loses data; 3 with min.insync.replicas=2 is the usual choice", n)
	default:
		c.add(sources.OK, subject, "%d, with min.insync.replicas %d on %d broker(s)", rf, isr, n)
	}
}
