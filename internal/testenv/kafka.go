package testenv

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"
)

// kafkaModule is the Maven project under deploy/jvm that names Apache
// Kafka's jars.
const kafkaModule = "kafka"

// kafkaHeap is the broker's heap: Kafka's own scripts give 1 GiB; a test
// broker holds little, and three of them share the machine with the rest.
const kafkaHeap = "-Xmx512m"

// KafkaCluster is a KRaft cluster of Apache Kafka nodes, each one broker and
// controller in one process.
type KafkaCluster struct {
	Brokers []*Broker
	id      string // the cluster id every node is formatted with
}

// KafkaConf appends lines to every node's server.properties, after the
// harness's own settings, which they therefore override.
func KafkaConf(lines ...string) BrokerOption {
	return func(o *brokerOptions) { o.conf = append(o.conf, lines...) }
}

// KafkaHeap sets each node's maximum heap (a -Xmx value such as "1g")
// instead of the tests' 512m; Kafka's own start scripts give 1g.
func KafkaHeap(size string) BrokerOption {
	return func(o *brokerOptions) { o.heap = "-Xmx" + size }
}

// KafkaTxnMaxTimeout sets transaction.max.timeout.ms, the longest
// transaction timeout a producer may ask for; the coordinator aborts a
// transaction open longer than the producer's timeout.
func KafkaTxnMaxTimeout(d time.Duration) BrokerOption {
	return func(o *brokerOptions) { o.txnMaxTimeout = d }
}

// KafkaACLs turns on Kafka's StandardAuthorizer: a client may do only what
// an ACL allows it. The users named are super users, and so is the
// harness's own plaintext inter-broker listener (User:ANONYMOUS), which
// the readiness check and the controllers use. Combine it with BrokerSASL,
// so that clients have a principal ACLs can name.
func KafkaACLs(superUsers ...string) BrokerOption {
	return func(o *brokerOptions) {
		supers := []string{"User:ANONYMOUS"}
		for _, u := range superUsers {
			supers = append(supers, "User:"+u)
		}
		o.conf = append(o.conf,
			"authorizer.class.name=org.apache.kafka.metadata.authorizer.StandardAuthorizer",
			"super.users="+strings.Join(supers, ";"))
	}
}

// AllowACLs lets principal (User:<name>) do ops on the resources acl
// names, through adm, a super user's client of a KafkaACLs broker.
func AllowACLs(t testing.TB, adm *kadm.Client, principal string, acl *kadm.ACLBuilder, ops ...kadm.ACLOperation) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	res, err := adm.CreateACLs(ctx, acl.Allow(principal).AllowHosts().Operations(ops...))
	for _, r := range res {
		if err == nil {
			err = r.Err
		}
	}
	if err != nil {
		t.Fatalf("create ACLs for %s: %v", principal, err)
	}
}

// StartKafka starts a single Apache Kafka node in KRaft mode, broker and
// controller in one JVM, on a free port in its own directory, and waits
// until it serves metadata. It is killed and its directory removed when the
// test ends. A missing JVM or Maven fails the test under CI and skips it
// otherwise.
func StartKafka(t testing.TB, opts ...BrokerOption) *Broker {
	t.Helper()
	return must(NewKafka(t, opts...))(t)
}

// NewKafka is StartKafka for any Env: it returns what went wrong (a
// *MissingError when the JVM or Maven is not installed).
func NewKafka(e Env, opts ...BrokerOption) (*Broker, error) {
	c, err := NewKafkaCluster(e, 1, opts...)
	if err != nil {
		return nil, err
	}
	return c.Brokers[0], nil
}

// StartKafkaCluster starts n Apache Kafka nodes that form one KRaft
// cluster. With three or more nodes, internal topics and the topics the
// brokers create themselves get replication factor 3 and
// min.insync.replicas=2; with one, 1 and 1.
func StartKafkaCluster(t testing.TB, n int, opts ...BrokerOption) *KafkaCluster {
	t.Helper()
	return must(NewKafkaCluster(t, n, opts...))(t)
}

// NewKafkaCluster is StartKafkaCluster for any Env: it returns what went
// wrong.
func NewKafkaCluster(e Env, n int, opts ...BrokerOption) (*KafkaCluster, error) {
	var o brokerOptions
	for _, opt := range opts {
		opt(&o)
	}
	if len(o.args) > 0 || len(o.env) > 0 {
		return nil, fmt.Errorf("kafka: BrokerArgs and BrokerEnv are for the dev broker")
	}
	if o.heap == "" {
		o.heap = kafkaHeap
	}
	java, err := java()
	if err != nil {
		return nil, err
	}
	cp, err := jars(kafkaModule)
	if err != nil {
		return nil, err
	}
	version := kafkaVersion(cp)

	c := &KafkaCluster{id: newClusterID()}
	ctrl := make([]int, n)  // controller ports
	inter := make([]int, n) // inter-broker ports
	for i := range n {
		dir, err := serverDir(e, "kafka", false)
		if err != nil {
			return nil, err
		}
		b := &Broker{Kind: KindApache, Version: version, DataDir: filepath.Join(dir, "data"), cluster: c, node: i + 1}
		b.server = server{kind: fmt.Sprintf("kafka node %d", i+1), dir: dir, logFile: filepath.Join(dir, "kafka.log"), stopSig: syscall.SIGTERM}
		props := filepath.Join(dir, "server.properties")
		b.spec = func() procSpec {
			return procSpec{
				name: b.kind,
				argv: []string{java, o.heap, "-Xms64m", "-XX:+UseSerialGC", "-Djava.awt.headless=true",
					"-Dlog4j2.configurationFile=" + filepath.Join(dir, "log4j2.properties"),
					"-cp", cp, "kafka.Kafka", props},
				dir: dir,
				log: b.logFile,
			}
		}
		b.ready = func(*proc) error { return b.serving() }
		e.Cleanup(b.cleanup)
		c.Brokers = append(c.Brokers, b)
	}
	// Every node must know every controller's port before any starts, so
	// the ports are handed out together and the whole cluster retries on a
	// port clash.
	for attempt := 1; ; attempt++ {
		for i, b := range c.Brokers {
			var ports [3]int
			for j := range ports {
				if ports[j], err = freePort(); err != nil {
					return nil, err
				}
			}
			b.Port, ctrl[i], inter[i] = ports[0], ports[1], ports[2]
			b.Addr = "127.0.0.1:" + strconv.Itoa(b.Port)
			b.internal = "127.0.0.1:" + strconv.Itoa(inter[i])
		}
		err := c.format(java, cp, ctrl, inter, o)
		if err == nil {
			err = c.startAll()
		}
		if err == nil {
			break
		}
		clash := false
		for _, b := range c.Brokers {
			clash = clash || portTaken(tail(b.logFile))
		}
		if attempt < 3 && clash {
			continue
		}
		return nil, fmt.Errorf("start a %d-node Apache Kafka %s cluster: %w", n, version, err)
	}
	return c, nil
}

// startAll starts every node at once: a KRaft controller waits for a
// quorum, so the nodes of a cluster cannot start one after another.
func (c *KafkaCluster) startAll() error {
	errs := make(chan error, len(c.Brokers))
	for _, b := range c.Brokers {
		go func() { errs <- b.start() }()
	}
	var first error
	for range c.Brokers {
		if err := <-errs; err != nil && first == nil {
			first = err
		}
	}
	if first != nil {
		for _, b := range c.Brokers {
			b.cleanup()
		}
		var logs strings.Builder
		for _, b := range c.Brokers {
			logs.WriteString(tail(b.logFile))
		}
		return fmt.Errorf("%w\n%s", first, logs.String())
	}
	return nil
}

// format writes each node's server.properties and log configuration and
// formats its storage with Kafka's storage tool.
func (c *KafkaCluster) format(java, cp string, ctrl, inter []int, o brokerOptions) error {
	n := len(c.Brokers)
	voters := make([]string, n)
	for i := range n {
		voters[i] = fmt.Sprintf("%d@127.0.0.1:%d", i+1, ctrl[i])
	}
	rf, isr := 1, 1
	if n >= 3 {
		rf, isr = 3, 2
	}
	proto := "PLAINTEXT"
	switch {
	case o.tlsCert != "" && len(o.sasl) > 0:
		proto = "SASL_SSL"
	case o.tlsCert != "":
		proto = "SSL"
	case len(o.sasl) > 0:
		proto = "SASL_PLAINTEXT"
	}
	for i, b := range c.Brokers {
		if err := os.RemoveAll(b.DataDir); err != nil {
			return err
		}
		conf := []string{
			"process.roles=broker,controller",
			"node.id=" + strconv.Itoa(i+1),
			"controller.quorum.voters=" + strings.Join(voters, ","),
			fmt.Sprintf("listeners=CLIENT://127.0.0.1:%d,INTERNAL://127.0.0.1:%d,CONTROLLER://127.0.0.1:%d", b.Port, inter[i], ctrl[i]),
			fmt.Sprintf("advertised.listeners=CLIENT://127.0.0.1:%d,INTERNAL://127.0.0.1:%d", b.Port, inter[i]),
			"listener.security.protocol.map=CLIENT:" + proto + ",INTERNAL:PLAINTEXT,CONTROLLER:PLAINTEXT",
			"inter.broker.listener.name=INTERNAL",
			"controller.listener.names=CONTROLLER",
			"log.dirs=" + b.DataDir,
			"num.partitions=1",
			"default.replication.factor=" + strconv.Itoa(rf),
			"min.insync.replicas=" + strconv.Itoa(isr),
			"offsets.topic.replication.factor=" + strconv.Itoa(rf),
			"offsets.topic.num.partitions=3",
			"transaction.state.log.replication.factor=" + strconv.Itoa(rf),
			"transaction.state.log.min.isr=" + strconv.Itoa(isr),
			"transaction.state.log.num.partitions=3",
			"share.coordinator.state.topic.replication.factor=" + strconv.Itoa(rf),
			"share.coordinator.state.topic.min.isr=" + strconv.Itoa(isr),
			"group.initial.rebalance.delay.ms=0",
			// A node killed and started again must wait until its old
			// registration's session expires (9 s by default); tests kill
			// nodes often.
			"broker.session.timeout.ms=3000",
			"broker.heartbeat.interval.ms=750",
			// The broker holds little; small segments keep its start and
			// recovery after a kill short.
			"log.segment.bytes=67108864",
		}
		if o.txnMaxTimeout > 0 {
			conf = append(conf, "transaction.max.timeout.ms="+strconv.FormatInt(o.txnMaxTimeout.Milliseconds(), 10))
		}
		conf = append(conf, tlsConf(o)...)
		conf = append(conf, saslConf(o)...)
		conf = append(conf, o.conf...)
		props := filepath.Join(b.dir, "server.properties")
		if err := os.WriteFile(props, []byte(strings.Join(conf, "\n")+"\n"), 0o644); err != nil {
			return err
		}
		if err := os.WriteFile(filepath.Join(b.dir, "log4j2.properties"), []byte(kafkaLog4j), 0o644); err != nil {
			return err
		}
		argv := []string{java, "-Xmx256m", "-XX:+UseSerialGC", "-XX:TieredStopAtLevel=1",
			"-Dlog4j2.configurationFile=" + filepath.Join(b.dir, "log4j2.properties"),
			"-cp", cp, "kafka.tools.StorageTool", "format", "--cluster-id=" + c.id, "--config=" + props}
		for _, u := range o.sasl {
			if strings.HasPrefix(u.mech, "SCRAM-") {
				argv = append(argv, "--add-scram", fmt.Sprintf("%s=[name=%s,password=%s]", u.mech, u.user, u.password))
			}
		}
		if out, err := runAs(b.dir, false, 2*time.Minute, argv...); err != nil {
			return fmt.Errorf("format node %d: %v\n%s", i+1, err, lastLines(out, 20))
		}
	}
	return nil
}

// tlsConf makes the client listener speak TLS with a PEM certificate and
// key, given inline.
func tlsConf(o brokerOptions) []string {
	if o.tlsCert == "" {
		return nil
	}
	cert, err1 := os.ReadFile(o.tlsCert)
	key, err2 := os.ReadFile(o.tlsKey)
	if err1 != nil || err2 != nil {
		return []string{"# tls: cannot read the certificate or key"}
	}
	esc := func(pem []byte) string {
		return strings.ReplaceAll(strings.TrimSpace(string(pem)), "\n", `\n`)
	}
	return []string{
		"listener.name.client.ssl.keystore.type=PEM",
		"listener.name.client.ssl.keystore.certificate.chain=" + esc(cert),
		"listener.name.client.ssl.keystore.key=" + esc(key),
	}
}

// saslConf enables the SASL mechanisms of the client listener, with PLAIN's
// users in its JAAS line; SCRAM users are added when the storage is
// formatted.
func saslConf(o brokerOptions) []string {
	if len(o.sasl) == 0 {
		return nil
	}
	mechs := map[string][]saslUser{}
	var names []string
	for _, u := range o.sasl {
		if mechs[u.mech] == nil {
			names = append(names, u.mech)
		}
		mechs[u.mech] = append(mechs[u.mech], u)
	}
	conf := []string{"listener.name.client.sasl.enabled.mechanisms=" + strings.Join(names, ",")}
	for _, m := range names {
		prefix := "listener.name.client." + strings.ToLower(m) + ".sasl.jaas.config="
		if m == "PLAIN" {
			line := "org.apache.kafka.common.security.plain.PlainLoginModule required"
			for _, u := range mechs[m] {
				line += fmt.Sprintf(" user_%s=%q", u.user, u.password)
			}
			conf = append(conf, prefix+line+";")
			continue
		}
		conf = append(conf, prefix+"org.apache.kafka.common.security.scram.ScramLoginModule required;")
	}
	return conf
}

// kafkaLog4j keeps the broker's log to what helps explain a failed test:
// warnings, and the start, the controller's and the transaction
// coordinator's decisions.
const kafkaLog4j = `status = warn
appender.out.type = Console
appender.out.name = OUT
appender.out.layout.type = PatternLayout
appender.out.layout.pattern = [%d] %p %m (%c)%n
rootLogger.level = warn
rootLogger.appenderRef.out.ref = OUT
logger.server.name = kafka.server.KafkaRaftServer
logger.server.level = info
logger.txn.name = kafka.coordinator.transaction
logger.txn.level = info
`

// serving reports nil once the node answers metadata requests and lists
// itself among the live brokers. It asks on the inter-broker listener,
// which is plaintext whatever the client listener requires.
func (b *Broker) serving() error {
	cl, err := kgo.NewClient(kgo.SeedBrokers(b.internal), kgo.DialTimeout(time.Second), kgo.RequestRetries(0))
	if err != nil {
		return err
	}
	defer cl.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	brokers, err := kadm.NewClient(cl).ListBrokers(ctx)
	if err != nil {
		return err
	}
	for _, d := range brokers {
		if d.NodeID == int32(b.node) {
			return nil
		}
	}
	return fmt.Errorf("node %d is not among the live brokers yet", b.node)
}

// Addrs returns every node's client address, comma-separated, for a seed
// list.
func (c *KafkaCluster) Addrs() string {
	addrs := make([]string, len(c.Brokers))
	for i, b := range c.Brokers {
		addrs[i] = b.Addr
	}
	return strings.Join(addrs, ",")
}

// Seeds returns every node's client address.
func (c *KafkaCluster) Seeds() []string { return strings.Split(c.Addrs(), ",") }

// Client returns a client seeded with every node, closed when the test
// ends.
func (c *KafkaCluster) Client(t testing.TB, opts ...kgo.Opt) *kgo.Client {
	t.Helper()
	cl, err := kgo.NewClient(append([]kgo.Opt{kgo.SeedBrokers(c.Seeds()...)}, opts...)...)
	if err != nil {
		t.Fatalf("testenv: kafka client: %v", err)
	}
	t.Cleanup(cl.Close)
	return cl
}

// Node returns the broker whose node id is id (1-based).
func (c *KafkaCluster) Node(id int32) *Broker { return c.Brokers[id-1] }

// Leader returns the node that leads a partition, asking the live brokers.
func (c *KafkaCluster) Leader(t testing.TB, topic string, partition int32) *Broker {
	t.Helper()
	adm := kadm.NewClient(c.Client(t))
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	for ctx.Err() == nil {
		md, err := adm.Metadata(ctx, topic)
		if err == nil {
			if p, ok := md.Topics[topic].Partitions[partition]; ok && p.Leader >= 1 && int(p.Leader) <= len(c.Brokers) {
				return c.Node(p.Leader)
			}
		}
		time.Sleep(100 * time.Millisecond)
	}
	t.Fatalf("testenv: kafka: no leader for %s/%d within 30s", topic, partition)
	return nil
}

var kafkaJar = regexp.MustCompile(`kafka_2\.13-([0-9][^/:]*)\.jar`)

// kafkaVersion reads Kafka's version from the name of its jar.
func kafkaVersion(cp string) string {
	if m := kafkaJar.FindStringSubmatch(cp); m != nil {
		return m[1]
	}
	return "unknown"
}

// newClusterID returns a KRaft cluster id: 16 random bytes, base64url.
func newClusterID() string {
	var b [16]byte
	_, _ = rand.Read(b[:])
	return base64.RawURLEncoding.EncodeToString(b[:])
}
