package cli

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"path/filepath"

	"github.com/spf13/cobra"

	"github.com/fairlease/fairlease/hostagent"
	"github.com/fairlease/fairlease/hostagent/httpbroker"
	"github.com/fairlease/fairlease/hostagent/virt"
)

func newAgentCmd(e *env) *cobra.Command {
	var config string
	cmd := &cobra.Command{
		Use:   "agent --config FILE",
		Short: "Run the host agent: start and stop this host's VMs as the broker says",
		Long: `agent registers this host with the broker (exchanging the config's join
token for the host's own credential, kept in state_dir), reports its
capacity and cached images, and runs the VMs of the leases placed here as
libvirt domains. See hostagent/testdata/agent.toml for every key.`,
		Args: noArgs,
		RunE: func(*cobra.Command, []string) error {
			if config == "" {
				return usagef("--config is required (see hostagent/testdata/agent.toml)")
			}
			cfg, err := hostagent.LoadConfig(config)
			if err != nil {
				return usagef("%v", err)
			}
			log := slog.New(slog.NewJSONHandler(e.stderr, nil))
			return runAgent(e.ctx, cfg, log, nil)
		},
	}
	cmd.Flags().StringVar(&config, "config", "", "the agent's TOML configuration `FILE`")
	return cmd
}

// runAgent runs one agent until ctx ends; ready, when set, gets the agent
// once it has registered.
func runAgent(ctx context.Context, cfg hostagent.Config, log *slog.Logger, ready func(*hostagent.Agent)) error {
	dial, err := httpbroker.Dialer(cfg.Brokers)
	if err != nil {
		return usagef("brokers: %v", err)
	}
	vmDir := filepath.Join(cfg.StateDir, "vms")
	hv, err := virt.Open(ctx, virt.Options{URI: libvirtURI(cfg), Host: cfg.Host, Dir: vmDir, Bridge: cfg.Bridge, Logger: log})
	if err != nil {
		return failure(err, "is libvirt installed (make deps) and, for --driver qemu, libvirtd running (scripts/libvirt/start.sh)?")
	}
	defer hv.Close()
	a, err := hostagent.New(cfg, dial, hv, log)
	if err != nil {
		return usagef("%v", err)
	}
	if ready != nil {
		go func() {
			select {
			case <-a.Ready():
				ready(a)
			case <-ctx.Done():
			}
		}()
	}
	if err := a.Run(ctx); err != nil && !errors.Is(err, context.Canceled) {
		return failure(fmt.Errorf("agent %s: %w", cfg.Host, err), "")
	}
	return nil
}

func libvirtURI(cfg hostagent.Config) string {
	if cfg.LibvirtURI != "" {
		return cfg.LibvirtURI
	}
	if cfg.Driver == "qemu" {
		return "qemu:///system"
	}
	return "test:///default"
}
