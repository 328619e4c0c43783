package cli

import (
	"context"
	"path/filepath"

	"github.com/fairlease/fairlease/broker/api"
	"github.com/fairlease/fairlease/broker/server"
)

// The broker's parts meet here: the Raft node (broker/server) serves the
// REST API (broker/api) through the server.Backend it implements.
func init() { startAPI = serveAPI }

func serveAPI(ctx context.Context, p server.APIParams) error {
	a, err := api.New(apiConfig(p))
	if err != nil {
		return err
	}
	defer a.Close()
	go a.SeedAll(ctx)
	return a.Serve(ctx, p.Addr, p.TLSCert, p.TLSKey)
}

func apiConfig(p server.APIParams) api.Config {
	images := ""
	if p.DataDir != "" {
		images = filepath.Join(p.DataDir, "images")
	}
	return api.Config{
		ImageDir: images, PublicURL: p.PublicURL, SwarmListen: p.SwarmListen,
		Backend: p.Backend, Internal: p.Internal,
		Registerer: p.Registry, Gatherer: p.Registry, Version: Version,
		Unavailable: server.Unavailable, LeaderAPI: server.LeaderAPI,
	}
}
