package cli

import (
	"fmt"
	"io"
	"strconv"
	"strings"

	"github.com/spf13/cobra"

	"github.com/fairlease/fairlease/lease"
)

func newVMCmd(e *env) *cobra.Command {
	cmd := groupCmd("vm", "Look at the VMs of a lease")
	cmd.AddCommand(newVMLogCmd(e))
	return cmd
}

func newVMLogCmd(e *env) *cobra.Command {
	var tail int64
	cmd := &cobra.Command{
		Use:   "log LEASE/INDEX",
		Short: "Show a VM's serial console log, read from its host",
		Args:  oneArg("the VM, as LEASE/INDEX (l-abc123/0)"),
		RunE: func(_ *cobra.Command, args []string) error {
			id, idx, ok := strings.Cut(args[0], "/")
			index, err := strconv.Atoi(idx)
			if !ok || id == "" || err != nil || index < 0 {
				return usagef("want LEASE/INDEX, like l-abc123/0, got %q", args[0])
			}
			c, err := newClient(e)
			if err != nil {
				return err
			}
			rc, err := c.VMLog(e.ctx, lease.ID(id), index, tail)
			if err != nil {
				return apiFailure(err)
			}
			defer rc.Close()
			n, err := io.Copy(e.stdout, rc)
			if err == nil && n == 0 {
				fmt.Fprintln(e.stderr, "(no console output yet; VMs of libvirt's test driver never have any)")
			}
			return err
		},
	}
	cmd.Flags().Int64Var(&tail, "tail", 0, "show only the last `BYTES` bytes")
	return cmd
}
