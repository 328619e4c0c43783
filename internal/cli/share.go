package cli

import (
	"fmt"
	"slices"
	"strings"

	"github.com/spf13/cobra"

	"github.com/fairlease/fairlease/broker/api"
	"github.com/fairlease/fairlease/lease"
	"github.com/fairlease/fairlease/policies"
)

func newShareCmd(e *env) *cobra.Command {
	cmd := groupCmd("share", "Show and set groups' shares and quotas")
	cmd.AddCommand(newShareListCmd(e), newShareSetCmd(e))
	return cmd
}

func newShareListCmd(e *env) *cobra.Command {
	return &cobra.Command{
		Use:   "list",
		Short: "Every group's share and usage, like sshare",
		Long: `list shows, per group of the share tree (children indented under parents):

  WEIGHT      the configured weight among siblings
  NORM SHARE  the group's fraction of the site among active groups
  RAW USAGE   decayed usage, in site-seconds (dominant resource)
  EFF USAGE   usage normalized among all groups
  FAIRSHARE   2^(-eff usage / norm share): 1 unused, 0.5 at share, toward 0 above
  HELD, RESERVED, QUEUED  cores running, with a firm later start, waiting`,
		Args: noArgs,
		RunE: func(*cobra.Command, []string) error {
			c, err := newClient(e)
			if err != nil {
				return err
			}
			rows, err := c.Shares(e.ctx)
			if err != nil {
				return apiFailure(err)
			}
			if e.g.output == OutputJSON {
				return printJSON(e, rows)
			}
			rows, depth := shareTree(rows)
			return table(e.stdout, []string{"GROUP", "WEIGHT", "NORM SHARE", "RAW USAGE", "EFF USAGE", "FAIRSHARE", "HELD", "RESERVED", "QUEUED"}, len(rows), func(i int) []string {
				r := rows[i]
				return []string{strings.Repeat(" ", depth[i]) + r.Group, fmt.Sprintf("%g", r.Weight),
					fmt.Sprintf("%.4f", r.Share), fmt.Sprintf("%.0f", r.Usage), fmt.Sprintf("%.4f", r.EffectiveUsage),
					fmt.Sprintf("%.4f", r.FairShare), fmt.Sprint(r.Held.Cores), fmt.Sprint(r.Reserved.Cores), fmt.Sprint(r.Queued.Cores)}
			})
		},
	}
}

// shareTree orders rows parents first, children under them, and returns
// each row's depth; a row whose parent is not listed is a root.
func shareTree(rows []api.ShareRow) ([]api.ShareRow, []int) {
	byName := map[string]bool{}
	for _, r := range rows {
		byName[r.Group] = true
	}
	kids := map[string][]api.ShareRow{}
	for _, r := range rows {
		p := r.Parent
		if !byName[p] || p == r.Group {
			p = ""
		}
		kids[p] = append(kids[p], r)
	}
	var out []api.ShareRow
	var depth []int
	seen := map[string]bool{}
	var walk func(parent string, d int)
	walk = func(parent string, d int) {
		ks := kids[parent]
		slices.SortFunc(ks, func(a, b api.ShareRow) int { return strings.Compare(a.Group, b.Group) })
		for _, k := range ks {
			if seen[k.Group] {
				continue
			}
			seen[k.Group] = true
			out, depth = append(out, k), append(depth, d)
			walk(k.Group, d+1)
		}
	}
	walk("", 0)
	// A cycle (the broker refuses them) would leave rows out: list them flat.
	for _, r := range rows {
		if !seen[r.Group] {
			out, depth = append(out, r), append(depth, 0)
		}
	}
	return out, depth
}

func newShareSetCmd(e *env) *cobra.Command {
	var (
		weight          float64
		parent          string
		maxCores        int64
		maxVMs          int
		maxMem, maxLong string
	)
	cmd := &cobra.Command{
		Use:   "set GROUP [--weight W] [--parent P] [--max-cores N] [--max-memory SIZE] [--max-lease D] [--max-vms N]",
		Short: "Add or change a group: weight, parent, quota (admin)",
		Long: `set adds GROUP to the share tree or changes it. Only the flags given change;
a quota of 0 removes that limit.`,
		Example: `  fairlease share set physics --weight 2 --parent science
  fairlease share set physics --max-cores 64 --max-memory 256GiB --max-lease 36h`,
		Args: oneArg("the group"),
		RunE: func(cmd *cobra.Command, args []string) error {
			fl := cmd.Flags()
			var u api.ShareUpdate
			if fl.Changed("weight") {
				if weight <= 0 {
					return usagef("--weight must be > 0, got %g", weight)
				}
				u.Weight = weight
			}
			if fl.Changed("parent") {
				p := parent
				if p == "" {
					p = "-"
				}
				u.Parent = &p
			}
			q := &api.QuotaUpdate{}
			if fl.Changed("max-cores") {
				q.MaxCores = &maxCores
			}
			if fl.Changed("max-vms") {
				q.MaxVMs = &maxVMs
			}
			if fl.Changed("max-memory") {
				n := int64(0)
				if maxMem != "0" {
					var err error
					if n, err = parseSize("--max-memory", maxMem); err != nil {
						return err
					}
				}
				q.MaxMemoryMiB = &n
			}
			if fl.Changed("max-lease") {
				d, err := policies.ParseDuration(maxLong)
				if err != nil || d < 0 {
					return usagef("--max-lease: %q is not a duration (like 36h or 7d; 0 for no limit)", maxLong)
				}
				s := api.Duration(d.String())
				q.MaxLease = &s
			}
			if *q != (api.QuotaUpdate{}) {
				u.Quota = q
			}
			c, err := newClient(e)
			if err != nil {
				return err
			}
			r, err := c.SetShare(e.ctx, lease.GroupID(args[0]), u)
			if err != nil {
				return apiFailure(err)
			}
			if e.g.output == OutputJSON {
				return printJSON(e, r)
			}
			line := fmt.Sprintf("group %s: weight %g", r.Group, r.Weight)
			if r.Parent != "" {
				line += ", under " + r.Parent
			}
			if qt := quotaText(r.Quota); qt != "" {
				line += "; may " + qt
			}
			_, err = fmt.Fprintln(e.stdout, line)
			return err
		},
	}
	fl := cmd.Flags()
	fl.Float64Var(&weight, "weight", 0, "weight `W` among siblings (> 0)")
	fl.StringVar(&parent, "parent", "", "parent `GROUP` (\"-\" or empty: a root)")
	fl.Int64Var(&maxCores, "max-cores", 0, "most cores held and reserved at once (0: no limit)")
	fl.StringVar(&maxMem, "max-memory", "", "most memory held and reserved at once, a `SIZE` (0: no limit)")
	fl.StringVar(&maxLong, "max-lease", "", "longest lease, a `DURATION` (0: no limit)")
	fl.IntVar(&maxVMs, "max-vms", 0, "most VMs in one request (0: no limit)")
	return cmd
}
