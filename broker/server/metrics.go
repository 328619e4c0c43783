package server

import (
	"fmt"

	"github.com/hashicorp/raft"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
)

// metrics are a node's Prometheus collectors.
type metrics struct {
	commit    prometheus.Histogram
	apply     prometheus.Histogram
	proposals *prometheus.CounterVec
	forwarded *prometheus.CounterVec
	batch     prometheus.Histogram
}

func newMetrics(reg *prometheus.Registry, r func() *raft.Raft, applied func() uint64, ownRegistry bool) (*metrics, error) {
	m := &metrics{
		commit: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "fairlease_raft_commit_seconds",
			Help:    "Time from handing an entry to Raft on the leader until it is committed and applied.",
			Buckets: prometheus.ExponentialBuckets(0.0005, 2, 14), // 0.5 ms to ~4 s
		}),
		apply: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "fairlease_fsm_apply_seconds",
			Help:    "Time to apply one log entry to the state.",
			Buckets: prometheus.ExponentialBuckets(0.00005, 2, 14),
		}),
		proposals: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "fairlease_proposals_total",
			Help: "Proposals made through this node, by command type and result code (ok or an error code).",
		}, []string{"command", "code"}),
		forwarded: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "fairlease_forwarded_total",
			Help: "Requests this follower forwarded to the leader, by kind.",
		}, []string{"kind"}),
		batch: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "fairlease_submit_batch_requests",
			Help:    "Lease requests merged into one submit log entry.",
			Buckets: []float64{1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024},
		}),
	}
	gauge := func(name, help string, f func(*raft.Raft) float64) prometheus.Collector {
		return prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: name, Help: help}, func() float64 {
			if rf := r(); rf != nil {
				return f(rf)
			}
			return 0
		})
	}
	cs := []prometheus.Collector{
		m.commit, m.apply, m.proposals, m.forwarded, m.batch,
		gauge("fairlease_raft_is_leader", "1 if this node is the Raft leader.", func(rf *raft.Raft) float64 {
			if rf.State() == raft.Leader {
				return 1
			}
			return 0
		}),
		gauge("fairlease_raft_term", "Current Raft term.", func(rf *raft.Raft) float64 { return float64(rf.CurrentTerm()) }),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "fairlease_raft_applied_index", Help: "Last log index applied to this node's state."},
			func() float64 { return float64(applied()) }),
		gauge("fairlease_raft_commit_index", "Last log index known committed on this node.", func(rf *raft.Raft) float64 { return float64(rf.CommitIndex()) }),
	}
	if ownRegistry {
		cs = append(cs, collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	}
	for _, c := range cs {
		if err := reg.Register(c); err != nil {
			return nil, fmt.Errorf("server: register metrics: %w", err)
		}
	}
	return m, nil
}
