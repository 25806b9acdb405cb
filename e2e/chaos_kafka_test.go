package e2e

import (
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"

	"github.com/cdcrelay/cdcrelay/change"
	"github.com/cdcrelay/cdcrelay/format"
	"github.com/cdcrelay/cdcrelay/internal/testenv"
)

// The nemeses of this file break Kafka rather than the relay or the
// database: a broker killed while a commit is due, brokers that are not
// there at start, and, in a three-node cluster, partition leaders killed
// or moved while transactions are open.

// kafkaScenarios are the scenarios that break Kafka; see scenarios.
func kafkaScenarios() []scenario {
	cluster := chaosOptions{cluster: true}
	return []scenario{
		{name: "broker-kill-at-commit", run: nemesisBrokerKillAtCommit},
		{name: "broker-down-at-start", run: nemesisBrokerDownAtStart},
		{name: "leader-kill", run: nemesisLeaderKill, opts: cluster},
		{name: "leader-kill-at-commit", run: nemesisLeaderKillAtCommit, opts: cluster},
		{name: "offsets-leader-move", run: nemesisOffsetsLeaderMove, opts: cluster},
	}
}

// stoppedAtCommit restarts the relay with the stop point after its n-th
// flush and waits until it has stopped itself there: its transaction is
// flushed and its commit not yet sent.
func (e *chaosEnv) stoppedAtCommit(n int) *relayProc {
	e.t.Helper()
	e.relay.kill()
	p := e.startRelay("CDCRELAY_TEST_CRASH=stop-after-produce:" + strconv.Itoa(n))
	eventually(e.t, 2*time.Minute, "the relay to stop at its commit", func() bool {
		return processState(p.cmd.Process.Pid) == 'T'
	})
	return p
}

// processState reads the state letter of /proc/pid/stat (T: stopped).
func processState(pid int) byte {
	raw, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return 0
	}
	i := strings.LastIndexByte(string(raw), ')')
	if i < 0 || i+2 >= len(raw) {
		return 0
	}
	return raw[i+2]
}

// nemesisBrokerKillAtCommit kills the single broker while the relay holds
// a flushed transaction whose commit is due, lets the relay send its
// EndTxn into the dead broker, and starts the broker again. The commit's
// outcome is unknown to the relay: it must restart from the offsets topic
// and neither lose nor repeat anything.
func nemesisBrokerKillAtCommit(e *chaosEnv) string {
	n := e.rounds(2, 5)
	for i := range n {
		p := e.stoppedAtCommit(3 + rand.IntN(20))
		e.b.Kill(e.t)
		_ = p.cmd.Process.Signal(syscall.SIGCONT)
		pause(100, 1500)
		e.b.Start(e.t)
		pause(1000, 3000)
		e.invariant(e.running(), "round %d: the relay survives a broker kill at its commit", i+1)
	}
	return fmt.Sprintf("%d× kill -9 of the broker while a flushed transaction's commit was due", n)
}

// nemesisBrokerDownAtStart stops the broker, starts a relay that cannot
// reach it, and starts the broker a while later: the relay waits, then
// goes on from the stored position.
func nemesisBrokerDownAtStart(e *chaosEnv) string {
	e.relay.kill()
	e.b.Kill(e.t)
	e.startRelay()
	down := time.Duration(5000+rand.IntN(10000)) * time.Millisecond
	time.Sleep(down)
	e.invariant(e.running(), "the relay waits for an unreachable broker instead of exiting")
	e.b.Start(e.t)
	pause(3000, 5000)
	e.invariant(e.running(), "the relay goes on once the broker is back")
	return fmt.Sprintf("relay started with the broker down for %v", down.Round(time.Second))
}

// leaderOf returns the node leading partition 0 of a captured table's topic
// or of the offsets topic.
func (e *chaosEnv) leaderOf(topic string) *testenv.Broker {
	return e.kc.Leader(e.t, topic, 0)
}

// dataTopic returns the topic of a table the workload writes, which exists
// once the snapshot is done (chaos_big's stays empty until a scenario fills
// it).
func (e *chaosEnv) dataTopic() string {
	tb := workloadTables[rand.IntN(len(workloadTables))]
	return format.Topic(chaosID, change.TableID{Namespace: e.namespace(), Name: tb})
}

// nemesisLeaderKill kills the leader of a data partition with SIGKILL while
// transactions run, leaves it down a while, and starts it again: it comes
// back a follower, its leaderships moved to the other nodes.
func nemesisLeaderKill(e *chaosEnv) string {
	n := e.rounds(2, 5)
	var lost int
	for i := range n {
		pause(1000, 3000)
		topic := e.dataTopic()
		leader := e.leaderOf(topic)
		leader.Kill(e.t)
		pause(2000, 5000)
		e.invariant(e.running(), "round %d: the relay goes on with the leader of %s down", i+1, topic)
		leader.Start(e.t)
		if e.leaderOf(topic) != leader {
			lost++
		}
	}
	pause(3000, 5000)
	e.invariant(e.running(), "the relay survives %d leader kills", n)
	return fmt.Sprintf("%d× kill -9 of a data partition's leader, started again (%d came back without their leadership)", n, lost)
}

// nemesisLeaderKillAtCommit holds a flushed transaction at its commit,
// kills the node that leads the offsets topic's partition (the record the
// commit must make visible), lets the commit go, and starts the node
// again.
func nemesisLeaderKillAtCommit(e *chaosEnv) string {
	n := e.rounds(2, 4)
	for i := range n {
		p := e.stoppedAtCommit(3 + rand.IntN(20))
		leader := e.leaderOf("cdcrelay_offsets")
		leader.Kill(e.t)
		_ = p.cmd.Process.Signal(syscall.SIGCONT)
		pause(1000, 3000)
		leader.Start(e.t)
		pause(1000, 3000)
		e.invariant(e.running(), "round %d: the relay survives the offsets leader's kill at its commit", i+1)
	}
	return fmt.Sprintf("%d× kill -9 of the offsets topic's leader while a flushed transaction's commit was due", n)
}

// nemesisOffsetsLeaderMove moves the leadership of the offsets topic's
// partition to another node, without killing anything, while transactions
// run: a reassignment that puts another replica first, then a preferred
// leader election.
func nemesisOffsetsLeaderMove(e *chaosEnv) string {
	adm := kadm.NewClient(e.kc.Client(e.t))
	n := e.rounds(3, 8)
	moved := 0
	for i := range n {
		pause(1000, 3000)
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		md, err := adm.Metadata(ctx, "cdcrelay_offsets")
		if err != nil {
			cancel()
			e.t.Fatalf("metadata: %v", err)
		}
		p := md.Topics["cdcrelay_offsets"].Partitions[0]
		replicas := append([]int32(nil), p.Replicas...)
		for len(replicas) > 1 && replicas[0] == p.Leader {
			replicas = append(replicas[1:], replicas[0])
		}
		req := kadm.AlterPartitionAssignmentsReq{}
		req.Assign("cdcrelay_offsets", 0, replicas)
		if _, err := adm.AlterPartitionAssignments(ctx, req); err != nil {
			e.t.Fatalf("reassign the offsets partition: %v", err)
		}
		set := kadm.TopicsSet{}
		set.Add("cdcrelay_offsets", 0)
		if _, err := adm.ElectLeaders(ctx, kadm.ElectPreferredReplica, set); err != nil {
			e.t.Logf("round %d: elect leaders: %v", i+1, err)
		}
		cancel()
		if now := e.leaderOf("cdcrelay_offsets"); now.Addr != e.kc.Node(p.Leader).Addr {
			moved++
		}
	}
	pause(2000, 4000)
	e.invariant(moved > 0, "the offsets topic's leader moved (%d of %d times)", moved, n)
	e.invariant(e.running(), "the relay survives the offsets leader moving")
	return fmt.Sprintf("offsets topic's leader moved %d× by reassignment and election", moved)
}
