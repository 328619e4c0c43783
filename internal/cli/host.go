package cli

import (
	"fmt"

	"github.com/spf13/cobra"

	"github.com/fairlease/fairlease/broker/api"
)

func newHostCmd(e *env) *cobra.Command {
	cmd := groupCmd("host", "Add, list and remove the local site's hosts")
	cmd.AddCommand(newHostAddCmd(e), newHostListCmd(e), newHostRemoveCmd(e), newHostJoinTokenCmd(e))
	return cmd
}

func newHostAddCmd(e *env) *cobra.Command {
	var cores int64
	var memory string
	cmd := &cobra.Command{
		Use:   "add NAME --cores N --memory SIZE",
		Short: "Add a host to the site (admin)",
		Args:  oneArg("the host name"),
		RunE: func(_ *cobra.Command, args []string) error {
			if cores < 1 {
				return usagef("--cores must be at least 1")
			}
			mem, err := parseSize("--memory", memory)
			if err != nil {
				return err
			}
			c, err := newClient(e)
			if err != nil {
				return err
			}
			h, err := c.AddHost(e.ctx, api.HostRequest{Name: args[0], Cores: cores, MemoryMiB: mem})
			if err != nil {
				return apiFailure(err)
			}
			if e.g.output == OutputJSON {
				return printJSON(e, h)
			}
			_, err = fmt.Fprintf(e.stdout, "host %s: %s, %s\n", h.Name, resources(h.Capacity), h.State)
			return err
		},
	}
	cmd.Flags().Int64Var(&cores, "cores", 0, "cores `N` the host offers to VMs")
	cmd.Flags().StringVar(&memory, "memory", "", "memory the host offers to VMs, a `SIZE` like 64GiB")
	return cmd
}

func newHostListCmd(e *env) *cobra.Command {
	return &cobra.Command{
		Use:   "list",
		Short: "List the site's hosts",
		Args:  noArgs,
		RunE: func(*cobra.Command, []string) error {
			c, err := newClient(e)
			if err != nil {
				return err
			}
			hs, err := c.Hosts(e.ctx)
			if err != nil {
				return apiFailure(err)
			}
			if e.g.output == OutputJSON {
				return printJSON(e, hs)
			}
			now := timeNow()
			return table(e.stdout, []string{"NAME", "STATE", "CORES", "MEMORY", "DRIVER", "IMAGES", "LAST SEEN"}, len(hs), func(i int) []string {
				h := hs[i]
				driver := h.Driver
				if driver == "" {
					driver = "-"
				}
				return []string{h.Name, string(h.State), fmt.Sprint(h.Capacity.Cores), mib(h.Capacity.MemoryMiB), driver,
					fmt.Sprint(len(h.Images)), relative(h.LastSeen, now)}
			})
		},
	}
}

func newHostRemoveCmd(e *env) *cobra.Command {
	return &cobra.Command{
		Use:   "remove NAME",
		Short: "Take an idle host out of the site (admin)",
		Args:  oneArg("the host name"),
		RunE: func(_ *cobra.Command, args []string) error {
			c, err := newClient(e)
			if err != nil {
				return err
			}
			if err := c.RemoveHost(e.ctx, args[0]); err != nil {
				return apiFailure(err)
			}
			if e.g.output == OutputJSON {
				return printJSON(e, map[string]string{"removed": args[0]})
			}
			_, err = fmt.Fprintf(e.stdout, "host %s removed\n", args[0])
			return err
		},
	}
}

func newHostJoinTokenCmd(e *env) *cobra.Command {
	return &cobra.Command{
		Use:   "join-token",
		Short: "Make a token host agents enrol with (admin); shown once",
		Args:  noArgs,
		RunE: func(*cobra.Command, []string) error {
			c, err := newClient(e)
			if err != nil {
				return err
			}
			t, err := c.JoinToken(e.ctx)
			if err != nil {
				return apiFailure(err)
			}
			if e.g.output == OutputJSON {
				return printJSON(e, map[string]string{"join_token": t.Token})
			}
			_, err = fmt.Fprintf(e.stdout, "%s\n\nPut it in the agent's config as join_token; each agent exchanges it for its host's own credential.\n", t.Token)
			return err
		},
	}
}
