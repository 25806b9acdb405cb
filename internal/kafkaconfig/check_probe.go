package kafkaconfig

// The probes of Check: each asks the cluster one read-only question and
// notes what the answer shows about the relay's permissions.

import (
	"context"
	"errors"
	"fmt"
	"math"
	"slices"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
	"github.com/twmb/franz-go/pkg/kversion"
)

// topicsMetadata asks for the relay's topics, without creating any, with
// the operations the principal may perform on each.
func (c *checker) topicsMetadata(ctx context.Context) {
	names := append([]string{c.t.OffsetsTopic}, c.t.Topics...)
	req := kmsg.NewPtrMetadataRequest()
	req.AllowAutoTopicCreation = false
	req.IncludeTopicAuthorizedOperations = true
	for i, n := range names {
		if i > 0 && n == c.t.OffsetsTopic || slices.Contains(names[:i], n) {
			continue
		}
		ts := &topicState{name: n, offsets: i == 0, need: tableTopicOps,
			missing: map[kmsg.ACLOperation]bool{}, proven: map[kmsg.ACLOperation]bool{}}
		if ts.offsets {
			ts.need = offsetsTopicOps
		}
		c.topics = append(c.topics, ts)
		rt := kmsg.NewMetadataRequestTopic()
		rt.Topic = kmsg.StringPtr(n)
		req.Topics = append(req.Topics, rt)
	}
	rctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	resp, err := req.RequestWith(rctx, c.cl)
	if err != nil {
		for _, ts := range c.topics {
			ts.unknown = true
			ts.problems = append(ts.problems, "metadata: "+err.Error())
		}
		return
	}
	for _, rt := range resp.Topics {
		if rt.Topic == nil {
			continue
		}
		ts := c.topic(*rt.Topic)
		if ts == nil {
			continue
		}
		switch err := kerr.ErrorForCode(rt.ErrorCode); {
		case err == nil:
			ts.exists = true
			ts.partitions = len(rt.Partitions)
			if len(rt.Partitions) > 0 {
				ts.replicas = len(rt.Partitions[0].Replicas)
			}
			if rt.AuthorizedOperations == math.MinInt32 {
				// The broker does not report them (KIP-430); the
				// probes below show what they can.
				ts.opsOmitted = true
				ts.allow(kmsg.ACLOperationDescribe)
				continue
			}
			ts.authorized = kadm.DecodeACLOperations(rt.AuthorizedOperations)
			for _, op := range ts.need {
				if op == kmsg.ACLOperationCreate {
					continue // tested by the validate-only create
				}
				if slices.Contains(ts.authorized, op) {
					ts.allow(op)
				} else {
					ts.deny(op)
				}
			}
		case errors.Is(err, kerr.UnknownTopicOrPartition):
			ts.allow(kmsg.ACLOperationDescribe)
		case errors.Is(err, kerr.TopicAuthorizationFailed):
			ts.unknown = true
			ts.deny(kmsg.ACLOperationDescribe)
		default:
			ts.unknown = true
			ts.problems = append(ts.problems, "metadata: "+err.Error())
		}
	}
}

func (c *checker) topic(name string) *topicState {
	for _, ts := range c.topics {
		if ts.name == name {
			return ts
		}
	}
	return nil
}

// probeTxn proves WRITE on the transactional id and on each topic with an
// AddPartitionsToTxn for producer id -1 (see Check): Kafka answers
// TRANSACTIONAL_ID_AUTHORIZATION_FAILED without WRITE on the id,
// TOPIC_AUTHORIZATION_FAILED for a topic without WRITE, and otherwise
// UNKNOWN_TOPIC_OR_PARTITION, OPERATION_NOT_ATTEMPTED or
// INVALID_PRODUCER_ID_MAPPING, none of which changes anything.
func (c *checker) probeTxn(ctx context.Context) {
	req := kmsg.NewPtrAddPartitionsToTxnRequest()
	req.TransactionalID = c.t.TransactionalID
	req.ProducerID = -1
	req.ProducerEpoch = -1
	for _, ts := range c.topics {
		rt := kmsg.NewAddPartitionsToTxnRequestTopic()
		rt.Topic = ts.name
		rt.Partitions = []int32{0}
		req.Topics = append(req.Topics, rt)
	}
	resp, err := c.addPartitions(ctx, req)
	if err != nil {
		c.txnErr = err
		if errors.Is(err, kerr.TransactionalIDAuthorizationFailed) {
			return
		}
		c.describeTxnFallback(ctx)
		return
	}
	unclear := false
	for _, rt := range resp.Topics {
		ts := c.topic(rt.Topic)
		for _, p := range rt.Partitions {
			switch err := kerr.ErrorForCode(p.ErrorCode); {
			case errors.Is(err, kerr.TransactionalIDAuthorizationFailed):
				c.txnErr = err
			case errors.Is(err, kerr.TopicAuthorizationFailed):
				if ts != nil {
					ts.deny(kmsg.ACLOperationWrite)
				}
			case errors.Is(err, kerr.UnknownTopicOrPartition), errors.Is(err, kerr.OperationNotAttempted),
				errors.Is(err, kerr.InvalidProducerIDMapping), errors.Is(err, kerr.InvalidProducerEpoch),
				errors.Is(err, kerr.ProducerFenced):
				if ts != nil {
					ts.allow(kmsg.ACLOperationWrite)
				}
			default:
				unclear = true
				c.txnErr = err
			}
		}
	}
	if unclear && c.txnErr != nil && !errors.Is(c.txnErr, kerr.TransactionalIDAuthorizationFailed) {
		c.describeTxnFallback(ctx)
	}
	if errors.Is(c.txnErr, kerr.TransactionalIDAuthorizationFailed) {
		// Finding the coordinator needs only DESCRIBE.
		rctx, cancel := context.WithTimeout(ctx, 30*time.Second)
		defer cancel()
		c.txnDescribe = c.adm.FindTxnCoordinators(rctx, c.t.TransactionalID).Ok()
	}
}

// addPartitions sends the probe, again while the coordinator is not ready:
// a cluster that never served a transaction creates its transaction log on
// the first FindCoordinator, as it does for any transactional client.
func (c *checker) addPartitions(ctx context.Context, req *kmsg.AddPartitionsToTxnRequest) (*kmsg.AddPartitionsToTxnResponse, error) {
	rctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	for {
		resp, err := req.RequestWith(rctx, c.cl)
		retry := coordinatorNotReady(err)
		if err == nil {
			for _, rt := range resp.Topics {
				for _, p := range rt.Partitions {
					retry = retry || coordinatorNotReady(kerr.ErrorForCode(p.ErrorCode))
				}
			}
		}
		if !retry {
			return resp, err
		}
		select {
		case <-rctx.Done():
			return resp, err
		case <-time.After(500 * time.Millisecond):
		}
	}
}

func coordinatorNotReady(err error) bool {
	return errors.Is(err, kerr.CoordinatorNotAvailable) || errors.Is(err, kerr.NotCoordinator) || errors.Is(err, kerr.CoordinatorLoadInProgress)
}

// describeTxnFallback asks the coordinator to describe the transactional
// id, which needs DESCRIBE on it only; it is used when the write probe gave
// no clear answer (a broker that does not answer like Kafka).
func (c *checker) describeTxnFallback(ctx context.Context) {
	rctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	d, err := c.adm.DescribeTransactions(rctx, c.t.TransactionalID)
	if err == nil {
		if dt, ok := d[c.t.TransactionalID]; ok {
			err = dt.Err
		}
	}
	switch {
	case err == nil, errors.Is(err, kerr.TransactionalIDNotFound):
		c.txnErr = errProbeUnclear
	default:
		c.txnErr = err
	}
}

// validateCreate asks the brokers to validate, not perform, the creation of
// every topic with the settings the relay creates it with; existing topics
// too, since the relay asks to create each topic it writes, and Kafka
// refuses that without CREATE even when the topic exists.
func (c *checker) validateCreate(ctx context.Context) {
	for _, ts := range c.topics {
		partitions, configs := c.t.Partitions, map[string]*string{"cleanup.policy": kadm.StringPtr(c.t.CleanupPolicy)}
		if ts.offsets {
			partitions, configs = 1, map[string]*string{"cleanup.policy": kadm.StringPtr("compact")}
		}
		rctx, cancel := context.WithTimeout(ctx, 30*time.Second)
		resp, err := c.adm.ValidateCreateTopics(rctx, partitions, c.t.Replication, configs, ts.name)
		cancel()
		if err == nil {
			err = resp[ts.name].Err
			if err != nil && resp[ts.name].ErrMessage != "" {
				err = fmt.Errorf("%w (%s)", err, resp[ts.name].ErrMessage)
			}
		}
		switch {
		case err == nil, errors.Is(err, kerr.TopicAlreadyExists):
			ts.allow(kmsg.ACLOperationCreate)
		case errors.Is(err, kerr.TopicAuthorizationFailed), errors.Is(err, kerr.ClusterAuthorizationFailed):
			ts.deny(kmsg.ACLOperationCreate)
		case errors.Is(err, kerr.InvalidReplicationFactor):
			ts.allow(kmsg.ACLOperationCreate) // authorization comes first
		default:
			ts.problems = append(ts.problems, "create: "+err.Error())
		}
	}
}

// probeRead tests READ on an offsets topic that does not exist yet, or
// whose authorized operations the broker does not report, with a fetch by
// name (Fetch v12, the last to name topics), which Kafka
// authorizes before it looks the topic up.
func (c *checker) probeRead(ctx context.Context) {
	ts := c.topics[0]
	if ts.exists && !ts.opsOmitted || len(c.brokerIDs) == 0 {
		return
	}
	cl, err := kgo.NewClient(append(append([]kgo.Opt{}, c.opts...), kgo.MaxVersions(kversion.V3_0_0()))...)
	if err != nil {
		ts.untested(kmsg.ACLOperationRead, err)
		return
	}
	defer cl.Close()
	req := kmsg.NewPtrFetchRequest()
	req.ReplicaID = -1
	req.MaxBytes = 1
	req.IsolationLevel = 1
	req.SessionEpoch = -1
	rt := kmsg.NewFetchRequestTopic()
	rt.Topic = ts.name
	rp := kmsg.NewFetchRequestTopicPartition()
	rp.Partition = 0
	rp.PartitionMaxBytes = 1
	rp.CurrentLeaderEpoch = -1
	rp.LogStartOffset = -1
	rt.Partitions = []kmsg.FetchRequestTopicPartition{rp}
	req.Topics = []kmsg.FetchRequestTopic{rt}
	rctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	resp, err := req.RequestWith(rctx, cl.Broker(int(c.brokerIDs[0])))
	if err != nil {
		ts.untested(kmsg.ACLOperationRead, err)
		return
	}
	for _, t := range resp.Topics {
		for _, p := range t.Partitions {
			switch err := kerr.ErrorForCode(p.ErrorCode); {
			case errors.Is(err, kerr.TopicAuthorizationFailed):
				ts.deny(kmsg.ACLOperationRead)
			default:
				// Kafka authorizes before anything else, so any other
				// answer (none, an unknown topic, an offset out of
				// range) means READ is allowed.
				ts.allow(kmsg.ACLOperationRead)
			}
		}
	}
}

// brokerConfig reads one broker's configuration, which needs
// DescribeConfigs on the cluster; the relay itself never does.
func (c *checker) brokerConfig(ctx context.Context) {
	rctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	rcs, err := c.adm.DescribeBrokerConfigs(rctx, c.brokerIDs[0])
	if err == nil && len(rcs) > 0 {
		err = rcs[0].Err
	}
	if err != nil {
		c.brokerCfgErr = err
		return
	}
	c.brokerCfg = map[string]string{}
	for _, rc := range rcs {
		for _, cf := range rc.Configs {
			c.brokerCfg[cf.Key] = cf.MaybeValue()
		}
	}
}
