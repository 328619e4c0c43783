package cli

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"slices"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/dustin/go-humanize"
	"github.com/spf13/cobra"

	"github.com/fairlease/fairlease/broker"
	"github.com/fairlease/fairlease/broker/api"
	"github.com/fairlease/fairlease/client"
	"github.com/fairlease/fairlease/lease"
	"github.com/fairlease/fairlease/policies"
)

// The clock and zone of the client commands; tests fix them.
var (
	timeNow   = time.Now
	localZone = time.Local
)

// Polling of lease create --wait: from pollMin, growing by half each
// time, to at most pollMax.
var (
	pollMin = 250 * time.Millisecond
	pollMax = 5 * time.Second
)

func newLeaseCmd(e *env) *cobra.Command {
	cmd := groupCmd("lease", "Ask for, list, show and end timed virtual clusters")
	cmd.AddCommand(newLeaseCreateCmd(e), newLeaseListCmd(e), newLeaseShowCmd(e), newLeaseTerminateCmd(e), newLeaseWhatIfCmd(e))
	return cmd
}

// groupCmd is a command that only holds subcommands.
func groupCmd(use, short string) *cobra.Command {
	return &cobra.Command{
		Use:   use,
		Short: short,
		Args:  unknownCommand,
		RunE:  func(cmd *cobra.Command, _ []string) error { return cmd.Help() },
	}
}

// leaseFlags are the flags of lease create and lease whatif.
type leaseFlags struct {
	id, group, image  string
	count, cores      int
	memory, duration  string
	startBy, earliest string
	wait              string
	waitTimeout       time.Duration
	sshKeys           []string
}

func (f *leaseFlags) add(cmd *cobra.Command, create bool) {
	fl := cmd.Flags()
	fl.IntVar(&f.count, "count", 1, "number of VMs `N`; they start together or not at all")
	fl.IntVar(&f.cores, "cores", 1, "cores per VM")
	fl.StringVar(&f.memory, "memory", "2GiB", "memory per VM, a `SIZE` like 4GiB or 512MiB")
	fl.StringVar(&f.image, "image", "", "`IMAGE` the VMs boot")
	fl.StringVar(&f.duration, "duration", "", "lease length, a `DURATION` like 3h, 90m or 2d (required)")
	fl.StringVar(&f.group, "group", "", "`GROUP` to charge (default: yours)")
	fl.StringVar(&f.startBy, "start-by", "", "start no later than `WHEN`: 14:00, +2h, or RFC 3339")
	fl.StringVar(&f.earliest, "earliest-start", "", "start no earlier than `WHEN`: 14:00, +2h, or RFC 3339")
	fl.StringVar(&f.id, "id", "", "the lease's `ID` (default: the broker makes one)")
	if create {
		fl.StringArrayVar(&f.sshKeys, "ssh-key", nil, "public key `FILE` (or key line) installed in every VM; repeatable")
		fl.StringVar(&f.wait, "wait", "", "wait until the lease is `running` (every VM runs) or fails")
		fl.DurationVar(&f.waitTimeout, "wait-timeout", 0, "give up waiting after this `DURATION` (default: no limit)")
	}
}

// request checks the flags and builds the API request.
func (f *leaseFlags) request(now time.Time) (api.LeaseRequest, error) {
	if f.duration == "" {
		return api.LeaseRequest{}, usagef("--duration is required (like --duration 3h)")
	}
	d, err := policies.ParseDuration(f.duration)
	if err != nil || d <= 0 {
		return api.LeaseRequest{}, usagef("--duration: %q is not a positive duration (like 3h, 90m or 2d)", f.duration)
	}
	if f.count < 1 || f.cores < 1 {
		return api.LeaseRequest{}, usagef("--count and --cores must be at least 1")
	}
	mem, err := parseSize("--memory", f.memory)
	if err != nil {
		return api.LeaseRequest{}, err
	}
	r := api.LeaseRequest{ID: f.id, Group: f.group, Count: f.count, Cores: f.cores, MemoryMiB: mem, Image: f.image, Duration: api.Duration(d.String())}
	if r.StartBy, err = parseWhen("--start-by", f.startBy, now); err != nil {
		return api.LeaseRequest{}, err
	}
	if r.EarliestStart, err = parseWhen("--earliest-start", f.earliest, now); err != nil {
		return api.LeaseRequest{}, err
	}
	for _, k := range f.sshKeys {
		line, err := readKey(k)
		if err != nil {
			return api.LeaseRequest{}, err
		}
		r.SSHKeys = append(r.SSHKeys, line)
	}
	return r, nil
}

// readKey takes a public key line, or the file that holds one.
func readKey(k string) (string, error) {
	if strings.HasPrefix(k, "ssh-") || strings.HasPrefix(k, "ecdsa-") {
		return strings.TrimSpace(k), nil
	}
	b, err := os.ReadFile(k)
	if err != nil {
		return "", usagef("--ssh-key: %v (give a .pub file or a key line)", err)
	}
	return strings.TrimSpace(string(b)), nil
}

// parseSize reads a memory size into MiB; a bare number is refused, since
// nobody can tell whether it means bytes, MiB or GiB.
func parseSize(flag, s string) (int64, error) {
	if strings.Trim(s, "0123456789") == "" {
		return 0, usagef("%s: %q needs a unit, like %sMiB or 4GiB", flag, s, s)
	}
	n, err := policies.ParseSize(s)
	if err != nil {
		return 0, usagef("%s: %q is not a size (like 4GiB or 512MiB)", flag, s)
	}
	return n, nil
}

// parseWhen reads a time: "+2h" from now, "14:00" today (tomorrow if that
// has passed), or a date and time.
func parseWhen(flag, s string, now time.Time) (time.Time, error) {
	if s == "" {
		return time.Time{}, nil
	}
	if rest, ok := strings.CutPrefix(s, "+"); ok {
		d, err := policies.ParseDuration(rest)
		if err != nil || d < 0 {
			return time.Time{}, usagef("%s: %q: want +DURATION like +2h", flag, s)
		}
		return now.Add(d).Truncate(time.Second), nil
	}
	if t, err := time.ParseInLocation("15:04", s, localZone); err == nil {
		n := now.In(localZone)
		at := time.Date(n.Year(), n.Month(), n.Day(), t.Hour(), t.Minute(), 0, 0, localZone)
		if at.Before(n) {
			at = at.AddDate(0, 0, 1)
		}
		return at, nil
	}
	if t, err := time.Parse(time.RFC3339, s); err == nil {
		return t, nil
	}
	for _, layout := range []string{"2006-01-02T15:04", "2006-01-02 15:04", "2006-01-02"} {
		if t, err := time.ParseInLocation(layout, s, localZone); err == nil {
			return t, nil
		}
	}
	return time.Time{}, usagef("%s: %q: want 14:00, +2h, 2026-11-02 14:00 or RFC 3339", flag, s)
}

func newLeaseCreateCmd(e *env) *cobra.Command {
	var f leaseFlags
	cmd := &cobra.Command{
		Use:   "create --duration D [flags]",
		Short: "Ask for a timed virtual cluster",
		Long: `create asks the broker for COUNT VMs of CORES and MEMORY each, from IMAGE,
for DURATION. The broker answers at once:

  granted     the VMs start now
  deferred    they start at a firm later time (no later than that)
  queued      they wait in fair order without a firm time yet
  overflowed  they run on another site
  rejected    with the reason and what would help

A rejection exits 1. --wait running returns once every VM runs, or fails if
the lease does.`,
		Example: `  fairlease lease create --count 16 --cores 2 --memory 4GiB --image ubuntu-22.04-mpi --duration 3h
  fairlease lease create --count 3 --duration 1h --image debian-12 --start-by 14:00 --wait running
  fairlease lease create --duration 90m --image debian-12 --output json`,
		Args: noArgs,
		RunE: func(*cobra.Command, []string) error {
			if f.wait != "" && f.wait != "running" {
				return usagef("--wait: %q: the only state to wait for is running", f.wait)
			}
			r, err := f.request(timeNow())
			if err != nil {
				return err
			}
			c, err := newClient(e)
			if err != nil {
				return err
			}
			l, err := c.CreateLease(e.ctx, r)
			if err != nil {
				return apiFailure(err)
			}
			if e.g.output == OutputTable {
				fmt.Fprintln(e.stdout, describe(l, timeNow(), helpFor(e.ctx, c, l)))
				fmt.Fprintf(e.stdout, "lease: %s\n", l.ID)
			}
			if l.State == lease.StateRejected {
				if e.g.output == OutputJSON {
					printLease(e, l)
				}
				return failure(fmt.Errorf("lease %s was rejected (%s)", l.ID, l.Decision.Reason), "")
			}
			if f.wait != "" {
				l, err = waitRunning(e, c, l, f.waitTimeout)
				if e.g.output == OutputTable && err == nil && l.State == lease.StateRunning {
					fmt.Fprintln(e.stdout, running(l, timeNow()))
				}
			}
			if e.g.output == OutputJSON {
				printLease(e, l)
			}
			return err
		},
	}
	f.add(cmd, true)
	return cmd
}

func newLeaseWhatIfCmd(e *env) *cobra.Command {
	var f leaseFlags
	cmd := &cobra.Command{
		Use:   "whatif --duration D [flags]",
		Short: "Say what a request would get now, changing nothing",
		Args:  noArgs,
		RunE: func(*cobra.Command, []string) error {
			r, err := f.request(timeNow())
			if err != nil {
				return err
			}
			c, err := newClient(e)
			if err != nil {
				return err
			}
			w, err := c.WhatIf(e.ctx, r)
			if err != nil {
				return apiFailure(err)
			}
			if e.g.output == OutputJSON {
				return printJSON(e, w)
			}
			l := whatIfLease(w)
			fmt.Fprintln(e.stdout, "would be "+describe(l, timeNow(), helpFor(e.ctx, c, l)))
			return nil
		},
	}
	f.add(cmd, false)
	return cmd
}

// whatIfLease is the lease a what-if answer describes, for describe.
func whatIfLease(w *api.WhatIf) *broker.Lease {
	d := w.Decision
	l := &broker.Lease{ID: w.Request.ID, Group: w.Request.Group, User: string(w.Request.User), Request: w.Request, Decision: d, Site: d.Site, Start: d.Start, End: d.End}
	switch d.Kind {
	case lease.Granted:
		l.State = lease.StateGranted
	case lease.Deferred:
		l.State = lease.StateDeferred
	case lease.Overflowed:
		l.State = lease.StateOverflowed
		l.Start, l.End = timeNow(), timeNow().Add(w.Request.Duration)
	case lease.Rejected:
		l.State = lease.StateRejected
	}
	for _, p := range d.Placement {
		l.VMs = append(l.VMs, broker.VM{Index: p.Index, Host: p.Host})
	}
	return l
}

func newLeaseListCmd(e *env) *cobra.Command {
	var state, group, user string
	cmd := &cobra.Command{
		Use:   "list [--state S] [--group G] [--user U]",
		Short: "List leases (yours and your group's; admins: all)",
		Args:  noArgs,
		RunE: func(*cobra.Command, []string) error {
			c, err := newClient(e)
			if err != nil {
				return err
			}
			ls, err := c.Leases(e.ctx, client.LeaseFilter{State: lease.State(state), Group: lease.GroupID(group), User: user})
			if err != nil {
				return apiFailure(err)
			}
			if e.g.output == OutputJSON {
				out := make([]map[string]any, len(ls))
				for i := range ls {
					out[i] = leaseObject(&ls[i])
				}
				return printJSON(e, out)
			}
			now := timeNow()
			return table(e.stdout, []string{"ID", "STATE", "GROUP", "USER", "VMS", "SHAPE", "START", "END", "SITE"}, len(ls), func(i int) []string {
				l := &ls[i]
				site := l.Site
				if site == "" {
					site = "-"
				}
				return []string{string(l.ID), string(l.State), string(l.Group), l.User, fmt.Sprint(l.Request.Count),
					shape(l.Request.Shape), clock(l.Start, now), clock(l.End, now), site}
			})
		},
	}
	cmd.Flags().StringVar(&state, "state", "", "only leases in `STATE` (granted, deferred, starting, running, ended, overflowed, rejected, failed)")
	cmd.Flags().StringVar(&group, "group", "", "only `GROUP`'s leases")
	cmd.Flags().StringVar(&user, "user", "", "only leases `USER` asked for")
	return cmd
}

func newLeaseShowCmd(e *env) *cobra.Command {
	return &cobra.Command{
		Use:   "show ID",
		Short: "Show a lease and its VMs",
		Args:  oneArg("the lease id"),
		RunE: func(_ *cobra.Command, args []string) error {
			c, err := newClient(e)
			if err != nil {
				return err
			}
			l, err := c.Lease(e.ctx, lease.ID(args[0]))
			if err != nil {
				return apiFailure(err)
			}
			if e.g.output == OutputJSON {
				return printLease(e, l)
			}
			return showLease(e.stdout, l, timeNow(), helpFor(e.ctx, c, l))
		},
	}
}

func newLeaseTerminateCmd(e *env) *cobra.Command {
	return &cobra.Command{
		Use:   "terminate ID",
		Short: "End a running lease, or cancel a waiting one",
		Args:  oneArg("the lease id"),
		RunE: func(_ *cobra.Command, args []string) error {
			c, err := newClient(e)
			if err != nil {
				return err
			}
			l, err := c.TerminateLease(e.ctx, lease.ID(args[0]))
			if err != nil {
				return apiFailure(err)
			}
			if e.g.output == OutputJSON {
				return printLease(e, l)
			}
			_, err = fmt.Fprintf(e.stdout, "ended: lease %s (%s)\n", l.ID, l.EndReason)
			return err
		},
	}
}

// showLease prints a lease for a person.
func showLease(w io.Writer, l *broker.Lease, now time.Time, help string) error {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	row := func(k, v string) { fmt.Fprintf(tw, "%s\t%s\n", k, v) }
	row("lease", string(l.ID))
	state := string(l.State)
	if l.EndReason != "" {
		state += " (" + l.EndReason + ")"
	}
	row("state", state)
	row("group", fmt.Sprintf("%s (asked by %s)", l.Group, l.User))
	row("shape", fmt.Sprintf("%d × %s", l.Request.Count, shape(l.Request.Shape)))
	row("duration", policies.FormatDuration(l.Request.Duration))
	if l.Site != "" {
		row("site", l.Site)
	}
	if !l.Start.IsZero() {
		row("start", clock(l.Start, now)+" ("+relative(l.Start, now)+")")
	}
	if !l.End.IsZero() {
		row("end", clock(l.End, now)+" ("+relative(l.End, now)+")")
	}
	row("decision", describe(l, now, help))
	if r := l.Remote; r != nil {
		row("remote", remoteLine(l, now))
		if len(r.Attempts) > 1 || (len(r.Attempts) == 1 && r.Attempts[0].Error != "") {
			for i, a := range r.Attempts {
				why := a.Error
				if why == "" {
					why = "ok"
				}
				row(fmt.Sprintf("attempt %d", i+1), fmt.Sprintf("%s at %s: %s", a.Site, clock(a.At, now), why))
			}
		}
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	if len(l.VMs) == 0 {
		return nil
	}
	fmt.Fprintln(w)
	if l.Remote != nil {
		return table(w, []string{"INDEX", "NAME", "INSTANCE", "ADDRESS", "SITE"}, len(l.VMs), func(i int) []string {
			v := l.VMs[i]
			return []string{fmt.Sprint(v.Index), v.Name, v.Instance, v.Address, v.Host}
		})
	}
	return table(w, []string{"INDEX", "NAME", "ADDRESS", "HOST", "VM STATE"}, len(l.VMs), func(i int) []string {
		v := l.VMs[i]
		st := v.State
		if st == "" {
			st = "-"
		}
		if v.Phase != "" {
			st += " (" + v.Phase + ")"
		}
		return []string{fmt.Sprint(v.Index), v.Name, v.Address, v.Host, st}
	})
}

// remoteLine says where an overflowed lease runs and what it has cost.
func remoteLine(l *broker.Lease, now time.Time) string {
	r := l.Remote
	if r.Launched.IsZero() {
		if !r.Ended.IsZero() {
			return "nothing launched on " + r.Site
		}
		return "launching on " + r.Site
	}
	s := fmt.Sprintf("%s on %s since %s", plural(len(r.Instances), "instance"), r.Site, clock(r.Launched, now))
	if !r.Ended.IsZero() {
		s += ", ended " + clock(r.Ended, now)
	}
	if r.CostPerCoreHour > 0 {
		s += fmt.Sprintf("; cost so far %.2f (%g per core-hour)", remoteCost(l, now), r.CostPerCoreHour)
	}
	return s
}

func remoteCost(l *broker.Lease, now time.Time) float64 {
	return l.Remote.Cost(l.Request.Count*l.Request.Shape.Cores, l.End, now)
}

// describe says what the broker decided, the way a person wants it.
func describe(l *broker.Lease, now time.Time, help string) string {
	d := l.Decision
	vms := plural(l.Request.Count, "VM")
	switch d.Kind {
	case lease.Granted:
		s := "granted: " + vms
		if hosts := hostsOf(l); len(hosts) > 0 {
			s += " on " + strings.Join(hosts, ", ")
		}
		end := l.End
		if end.IsZero() {
			end = d.End
		}
		return s + ", running until " + clock(end, now) + " (" + relative(end, now) + ")"
	case lease.Deferred:
		if d.Start.IsZero() {
			return "queued: " + d.Message
		}
		return fmt.Sprintf("deferred: starts at %s (%s), %s for %s", clock(d.Start, now), relative(d.Start, now), vms, policies.FormatDuration(l.Request.Duration))
	case lease.Overflowed:
		s := "overflowed: runs on " + d.Site
		if !l.End.IsZero() {
			s += " until " + clock(l.End, now) + " (" + relative(l.End, now) + ")"
		}
		return s
	case lease.Rejected:
		s := "rejected: " + reasonText(d.Reason)
		if d.Message != "" {
			s += " (" + d.Message + ")"
		}
		if help != "" {
			s += " — " + help
		}
		return s
	}
	return string(l.State)
}

func reasonText(r lease.Reason) string {
	switch r {
	case lease.ReasonTooLarge:
		return "too large for this site"
	case lease.ReasonQuota:
		return "over the group's quota"
	case lease.ReasonTooLong:
		return "longer than the group may lease"
	case lease.ReasonStartBy:
		return "cannot start by the time asked"
	case lease.ReasonNoBudget:
		return "no local start in time, and no overflow budget left"
	case lease.ReasonUnknownGroup:
		return "unknown group"
	case lease.ReasonLoanLimit:
		return "it would borrow beyond the loan limit"
	case lease.ReasonInvalid:
		return "invalid request"
	case "":
		return "no reason given"
	}
	return strings.ReplaceAll(string(r), "_", " ")
}

// helpFor says what would help a rejected request: what the site holds,
// the group's quota, or when the earliest local start is. It asks the
// broker for what it needs and says nothing when it cannot.
func helpFor(ctx context.Context, c *client.Client, l *broker.Lease) string {
	if l.Decision.Kind != lease.Rejected {
		return ""
	}
	now := timeNow()
	d := l.Decision
	switch d.Reason {
	case lease.ReasonTooLarge:
		hs, err := c.Hosts(ctx)
		if err != nil || len(hs) == 0 {
			return ""
		}
		var total, largest lease.Resources
		for _, h := range hs {
			total = total.Add(h.Capacity)
			if h.Capacity.Cores > largest.Cores {
				largest = h.Capacity
			}
		}
		return fmt.Sprintf("the site has %s in all on %s, the largest %s; ask for fewer or smaller VMs",
			resources(total), plural(len(hs), "host"), resources(largest))
	case lease.ReasonQuota, lease.ReasonTooLong:
		rows, err := c.Shares(ctx)
		if err != nil {
			return ""
		}
		for _, r := range rows {
			if r.Group == string(l.Group) {
				if q := quotaText(r.Quota); q != "" {
					return "group " + r.Group + " may " + q
				}
			}
		}
	case lease.ReasonStartBy, lease.ReasonNoBudget:
		if !d.EarliestLocal.IsZero() {
			return fmt.Sprintf("the earliest local start is %s (%s): ask with --start-by %s or later",
				clock(d.EarliestLocal, now), relative(d.EarliestLocal, now), d.EarliestLocal.In(localZone).Format("15:04"))
		}
		return "ask with a later --start-by, or none"
	case lease.ReasonUnknownGroup:
		return fmt.Sprintf("ask an admin to add it (fairlease share set %s --weight 1)", l.Group)
	case lease.ReasonLoanLimit:
		return "ask for fewer cores or a shorter lease"
	}
	return ""
}

// quotaText says a quota as "hold at most 64 cores / 256 GiB, lease at
// most 1d12h, ask for at most 32 VMs at once".
func quotaText(q api.Quota) string {
	var parts []string
	switch {
	case q.MaxCores > 0 && q.MaxMemoryMiB > 0:
		parts = append(parts, fmt.Sprintf("hold at most %d cores / %s", q.MaxCores, mib(q.MaxMemoryMiB)))
	case q.MaxCores > 0:
		parts = append(parts, fmt.Sprintf("hold at most %d cores", q.MaxCores))
	case q.MaxMemoryMiB > 0:
		parts = append(parts, "hold at most "+mib(q.MaxMemoryMiB))
	}
	if q.MaxLease != "" && q.MaxLease != "0s" {
		parts = append(parts, "lease at most "+q.MaxLease)
	}
	if q.MaxVMs > 0 {
		parts = append(parts, fmt.Sprintf("ask for at most %d VMs at once", q.MaxVMs))
	}
	return strings.Join(parts, ", ")
}

// waitRunning polls lease l until every VM runs, or it ends without
// running. On a terminal a spinner line shows what it waits for.
func waitRunning(e *env, c *client.Client, l *broker.Lease, timeout time.Duration) (*broker.Lease, error) {
	ctx := e.ctx
	if timeout > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, timeout)
		defer cancel()
	}
	tty := isTerminal(e.stderr)
	spin := []string{"⠋", "⠙", "⠹", "⠸", "⠼", "⠴", "⠦", "⠧", "⠇", "⠏"}
	start := timeNow()
	last := ""
	defer func() {
		if tty && last != "" {
			fmt.Fprint(e.stderr, "\r\033[K")
		}
	}()
	interval := pollMin
	for i := 0; ; i++ {
		switch l.State {
		case lease.StateRunning:
			return l, nil
		case lease.StateOverflowed:
			if l.Remote == nil || len(l.Remote.Instances) > 0 {
				return l, nil
			}
		case lease.StateEnded, lease.StateFailed, lease.StateRejected:
			why := l.EndReason
			if why == "" {
				why = "no reason given"
			}
			return l, failure(fmt.Errorf("lease %s is %s without having run: %s", l.ID, l.State, why), "see: fairlease lease show "+string(l.ID))
		}
		line := waitingFor(l, timeNow())
		if tty {
			fmt.Fprintf(e.stderr, "\r\033[K%s %s (%s)", spin[i%len(spin)], line, time.Since(start).Round(time.Second))
			last = line
		} else if line != last {
			fmt.Fprintln(e.stderr, line)
			last = line
		}
		t := time.NewTimer(interval)
		select {
		case <-ctx.Done():
			t.Stop()
			if errors.Is(ctx.Err(), context.DeadlineExceeded) && e.ctx.Err() == nil {
				return l, failure(fmt.Errorf("lease %s is still %s after %s", l.ID, l.State, timeout), "it keeps going; see: fairlease lease show "+string(l.ID))
			}
			return l, failure(ctx.Err(), "")
		case <-t.C:
		}
		interval = min(interval*3/2, pollMax)
		next, err := c.Lease(ctx, l.ID)
		switch {
		case err == nil:
			l = next
		case lease.ErrorCode(err) == api.EUNAVAILABLE:
			// An election: keep waiting.
		case ctx.Err() != nil:
			continue // reported at the top of the loop's wait
		default:
			return l, apiFailure(err)
		}
	}
}

// running says that a lease runs, and until when.
func running(l *broker.Lease, now time.Time) string {
	s := "running: " + plural(len(l.VMs), "VM")
	if hosts := hostsOf(l); len(hosts) > 0 {
		s += " on " + strings.Join(hosts, ", ")
	}
	return s + " until " + clock(l.End, now) + " (" + relative(l.End, now) + ")"
}

// waitingFor says what a lease that does not run yet waits for.
func waitingFor(l *broker.Lease, now time.Time) string {
	switch l.State {
	case lease.StateDeferred:
		if l.Start.IsZero() {
			return "queued: waiting for capacity, in fair order"
		}
		return fmt.Sprintf("deferred: starts at %s (%s)", clock(l.Start, now), relative(l.Start, now))
	case lease.StateStarting, lease.StateGranted:
		s := "starting " + plural(l.Request.Count, "VM")
		if hosts := hostsOf(l); len(hosts) > 0 {
			s += " on " + strings.Join(hosts, ", ")
		}
		return s
	case lease.StateOverflowed:
		return "overflowed: launching " + plural(l.Request.Count, "VM") + " on " + l.Site
	}
	return string(l.State)
}

// Helpers shared by the client commands (lease, share, user, token, host).

// newClient builds the API client from --addr and --token.
func newClient(e *env) (*client.Client, error) {
	if e.g.addr == "" {
		return nil, &exitError{code: ExitUsage, err: fmt.Errorf("no broker address: set --addr or $%s", EnvAddr),
			hint: "'fairlease up' writes it to DIR/up.env; source that file"}
	}
	c, err := client.New(e.g.addr, e.g.token)
	if err != nil {
		return nil, usagef("--addr: %v", err)
	}
	return c, nil
}

// apiFailure turns an API error into a failure with a hint at what to do.
func apiFailure(err error) error {
	hint := ""
	switch lease.ErrorCode(err) {
	case lease.EUNAUTHORIZED:
		hint = "check --token or $" + EnvToken
	case api.EUNAVAILABLE:
		hint = "the broker cluster is electing a leader or shutting down; try again"
	case lease.EINTERNAL:
		var le *lease.Error
		if !errors.As(err, &le) {
			hint = "is the broker running at --addr?"
		}
	}
	return failure(err, hint)
}

// oneArg accepts exactly one positional argument, what.
func oneArg(what string) cobra.PositionalArgs {
	return func(_ *cobra.Command, args []string) error {
		switch {
		case len(args) == 0:
			return usagef("missing argument: %s", what)
		case len(args) > 1:
			return usagef("unexpected argument %q (this command takes one: %s)", args[1], what)
		}
		return nil
	}
}

// printJSON writes v indented, for --output json.
func printJSON(e *env, v any) error {
	b, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		return failure(err, "")
	}
	_, err = fmt.Fprintf(e.stdout, "%s\n", b)
	return err
}

// printLease writes the lease object of DESIGN.md §5.
func printLease(e *env, l *broker.Lease) error { return printJSON(e, leaseObject(l)) }

// leaseObject is the lease's JSON with start and end always present (null
// until known), since scripts read them.
func leaseObject(l *broker.Lease) map[string]any {
	b, _ := json.Marshal(l)
	var m map[string]any
	if err := json.Unmarshal(b, &m); err != nil {
		return map[string]any{"id": l.ID, "state": l.State}
	}
	for _, k := range []string{"start", "end"} {
		if _, ok := m[k]; !ok {
			m[k] = nil
		}
	}
	if l.Remote != nil {
		m["cost"] = remoteCost(l, timeNow())
	}
	return m
}

// table writes n rows under header, aligned.
func table(w io.Writer, header []string, n int, row func(int) []string) error {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, strings.Join(header, "\t"))
	for i := range n {
		fmt.Fprintln(tw, strings.Join(row(i), "\t"))
	}
	return tw.Flush()
}

// clock writes t for a person in the local zone: the time of day when it
// is today, with the weekday within a week, with the date otherwise.
func clock(t, now time.Time) string {
	if t.IsZero() {
		return "-"
	}
	t, now = t.In(localZone), now.In(localZone)
	y1, m1, d1 := t.Date()
	y2, m2, d2 := now.Date()
	switch {
	case y1 == y2 && m1 == m2 && d1 == d2:
		return t.Format("15:04")
	case t.Sub(now).Abs() < 6*24*time.Hour:
		return t.Format("Mon 15:04")
	case y1 == y2:
		return t.Format("2 Jan 15:04")
	}
	return t.Format("2 Jan 2006 15:04")
}

// relative says how far t is from now: "in 18 min", "in 3h", "2h 5m ago".
func relative(t, now time.Time) string {
	d := t.Sub(now)
	if d.Abs() < time.Second {
		return "now"
	}
	s := span(d.Abs())
	if d < 0 {
		return s + " ago"
	}
	return "in " + s
}

// span writes a positive duration the short way a person says it.
func span(d time.Duration) string {
	if d < time.Minute {
		return fmt.Sprintf("%d s", int(d.Round(time.Second).Seconds()))
	}
	d = d.Round(time.Minute)
	switch {
	case d < time.Hour:
		return fmt.Sprintf("%d min", int(d.Minutes()))
	case d < 24*time.Hour:
		h, m := int(d.Hours()), int(d.Minutes())%60
		if m == 0 {
			return fmt.Sprintf("%dh", h)
		}
		return fmt.Sprintf("%dh %dm", h, m)
	}
	days, h := int(d.Hours())/24, int(d.Hours())%24
	if h == 0 {
		return fmt.Sprintf("%dd", days)
	}
	return fmt.Sprintf("%dd %dh", days, h)
}

func plural(n int, what string) string {
	if n == 1 {
		return "1 " + what
	}
	return fmt.Sprintf("%d %ss", n, what)
}

// mib writes a size in MiB the way a person reads it: "4 GiB", "512 MiB".
func mib(n int64) string {
	if n <= 0 {
		return "0 B"
	}
	return strings.Replace(humanize.IBytes(uint64(n)<<20), ".0 ", " ", 1)
}

func shape(s lease.Shape) string {
	out := fmt.Sprintf("%s, %s", plural(s.Cores, "core"), mib(s.MemoryMiB))
	if s.Image != "" {
		out += ", " + s.Image
	}
	return out
}

func resources(r lease.Resources) string {
	return fmt.Sprintf("%d cores / %s", r.Cores, mib(r.MemoryMiB))
}

// hostsOf lists the hosts of a lease's VMs, each once, in VM order.
func hostsOf(l *broker.Lease) []string {
	var hs []string
	for _, v := range l.VMs {
		if v.Host != "" && !slices.Contains(hs, v.Host) {
			hs = append(hs, v.Host)
		}
	}
	return hs
}
