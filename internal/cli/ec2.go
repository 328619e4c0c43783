package cli

import (
	"context"
	"errors"
	"log/slog"
	"net"
	"net/http"
	"time"

	"github.com/fairlease/fairlease/broker"
	"github.com/fairlease/fairlease/ec2api"
)

// serveEC2 serves the EC2 Query API on ln until ctx ends. The endpoint is
// plain HTTP on the given listener; put a TLS proxy in front of it to
// serve it beyond the machine.
func serveEC2(ctx context.Context, ln net.Listener, b broker.Backend, region string, log *slog.Logger) error {
	h := ec2api.NewBroker(ec2api.BrokerConfig{Backend: b, Region: region, Endpoint: ln.Addr().String(), Logger: log})
	srv := &http.Server{Handler: h, ReadHeaderTimeout: 10 * time.Second, ErrorLog: slog.NewLogLogger(log.Handler(), slog.LevelWarn)}
	go func() {
		<-ctx.Done()
		sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		srv.Shutdown(sctx)
	}()
	if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	return nil
}
