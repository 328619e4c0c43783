package cli

import (
	"context"
	"log/slog"
	"sync"
	"time"

	"github.com/fairlease/fairlease/broker"
	"github.com/fairlease/fairlease/broker/server"
	"github.com/fairlease/fairlease/federation"
	"github.com/fairlease/fairlease/sites"
	"github.com/fairlease/fairlease/sites/ec2"
)

// overflowEvery is how often the leader launches, ends and reconciles
// overflowed leases.
const overflowEvery = 2 * time.Second

// overflowJob is the leader's overflow loop over EC2-speaking sites.
func overflowJob(log *slog.Logger, every time.Duration) server.LeaderJob {
	var (
		once sync.Once
		f    *federation.Federation
	)
	return server.LeaderJob{Name: "overflow", Every: every, Run: func(ctx context.Context, b broker.Backend) {
		once.Do(func() {
			f = federation.New(federation.Config{Backend: b, Connect: connectSite, Log: log})
		})
		if err := f.Step(ctx); err != nil && ctx.Err() == nil {
			log.Warn("overflow", "err", err)
		}
	}}
}

// connectSite makes the EC2 client of a registered site.
func connectSite(s broker.Site) (sites.Site, error) {
	return ec2.New(ec2.Config{Name: s.Name, Endpoint: s.Endpoint, Region: s.Region, AccessKeyID: s.AccessKeyID,
		SecretAccessKey: s.Secret, Zones: s.Zones, CostPerCoreHour: s.CostPerCoreHour})
}
