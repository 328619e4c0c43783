package cli

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/fairlease/fairlease/broker"
)

// clusterTimeout bounds one request to the broker.
const clusterTimeout = 30 * time.Second

func newClusterCmd(e *env) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "cluster",
		Short: "Show and change the broker cluster's membership",
		Long: `cluster talks to a broker node's API (--addr, $FAIRLEASE_ADDR) with an admin
token (--token, $FAIRLEASE_TOKEN). Any node answers; changes go to the leader.`,
		Args: noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error { return cmd.Help() },
	}
	status := &cobra.Command{
		Use:   "status",
		Short: "List the members, the leader and this node's Raft state",
		Args:  noArgs,
		RunE: func(*cobra.Command, []string) error {
			var st broker.ClusterStatus
			if err := apiCall(e, http.MethodGet, "/v1/cluster", nil, &st); err != nil {
				return err
			}
			if e.g.output == OutputJSON {
				return printReport(e, st)
			}
			leader := st.Leader
			if leader == "" {
				leader = "(none: an election is under way)"
			}
			fmt.Fprintf(e.stdout, "leader %s, term %d; answered by %s (%s, applied %d)\n\n", leader, st.Term, st.Self, st.State, st.AppliedIndex)
			tw := tabwriter.NewWriter(e.stdout, 0, 0, 2, ' ', 0)
			fmt.Fprintln(tw, "ID\tRAFT ADDRESS\tAPI ADDRESS\tVOTER\tLEADER")
			for _, m := range st.Members {
				fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", m.ID, m.RaftAddr, dash(m.APIAddr), yes(m.Voter), yes(m.Leader))
			}
			return tw.Flush()
		},
	}
	join := &cobra.Command{
		Use:   "join ID RAFT_ADDR [API_ADDR]",
		Short: "Add a node to the cluster as a voter",
		Long: `join adds node ID, reachable for Raft at RAFT_ADDR, as a voter. API_ADDR is
the node's API as other nodes reach it (followers forward writes there once
it leads). A node started with join = [...] in its config asks by itself.`,
		Example: `  fairlease cluster join n4 10.0.0.4:7000 https://10.0.0.4:7070`,
		Args: func(cmd *cobra.Command, args []string) error {
			if len(args) < 2 || len(args) > 3 {
				return usagef("want ID RAFT_ADDR [API_ADDR], got %d arguments", len(args))
			}
			return nil
		},
		RunE: func(_ *cobra.Command, args []string) error {
			body := map[string]string{"id": args[0], "raft_addr": args[1]}
			if len(args) == 3 {
				body["api_addr"] = args[2]
			}
			if err := apiCall(e, http.MethodPost, "/v1/cluster/members", body, nil); err != nil {
				return err
			}
			fmt.Fprintf(e.stdout, "%s joined the cluster\n", args[0])
			return nil
		},
	}
	remove := &cobra.Command{
		Use:     "remove ID",
		Short:   "Take a node out of the cluster",
		Example: `  fairlease cluster remove n4`,
		Args: func(cmd *cobra.Command, args []string) error {
			if len(args) != 1 {
				return usagef("want one node ID, got %d arguments", len(args))
			}
			return nil
		},
		RunE: func(_ *cobra.Command, args []string) error {
			if err := apiCall(e, http.MethodDelete, "/v1/cluster/members/"+url.PathEscape(args[0]), nil, nil); err != nil {
				return err
			}
			fmt.Fprintf(e.stdout, "%s removed from the cluster\n", args[0])
			return nil
		},
	}
	cmd.AddCommand(status, join, remove)
	return cmd
}

func yes(b bool) string {
	if b {
		return "yes"
	}
	return "no"
}

func dash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

// apiCall sends a JSON request to the broker at --addr and decodes a JSON
// answer into out (if not nil). Error answers become one-line errors with
// the API's code and message.
func apiCall(e *env, method, path string, body, out any) error {
	if e.g.addr == "" {
		return usagef("no broker address: set --addr or $%s", EnvAddr)
	}
	base := e.g.addr
	if !strings.Contains(base, "://") {
		base = "http://" + base
	}
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			return failure(err, "")
		}
		rd = bytes.NewReader(b)
	}
	ctx, cancel := context.WithTimeout(e.ctx, clusterTimeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, method, strings.TrimRight(base, "/")+path, rd)
	if err != nil {
		return usagef("--addr %q: %v", e.g.addr, err)
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	req.Header.Set("Accept", "application/json")
	if e.g.token != "" {
		req.Header.Set("Authorization", "Bearer "+e.g.token)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return failure(fmt.Errorf("%s %s: %w", method, path, err), "is the broker running at "+e.g.addr+"?")
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(io.LimitReader(resp.Body, 16<<20))
	if err != nil {
		return failure(fmt.Errorf("%s %s: %w", method, path, err), "")
	}
	if resp.StatusCode/100 != 2 {
		hint := ""
		if resp.StatusCode == http.StatusUnauthorized || resp.StatusCode == http.StatusForbidden {
			hint = "cluster changes need an admin token (--token or $" + EnvToken + ")"
		}
		return failure(fmt.Errorf("%s %s: %s", method, path, apiError(resp.Status, data)), hint)
	}
	if out == nil || len(bytes.TrimSpace(data)) == 0 {
		return nil
	}
	if err := json.Unmarshal(data, out); err != nil {
		return failure(fmt.Errorf("%s %s: the answer is not what this client expects: %w", method, path, err), "")
	}
	return nil
}

// apiError reads an error body: {"code","message"}, {"error":{...}} or
// {"error":"..."}, else the text itself.
func apiError(status string, data []byte) string {
	var flat struct {
		Code    string          `json:"code"`
		Message string          `json:"message"`
		Error   json.RawMessage `json:"error"`
	}
	if json.Unmarshal(data, &flat) == nil {
		if flat.Message == "" && len(flat.Error) > 0 {
			var nested struct{ Code, Message string }
			var s string
			if json.Unmarshal(flat.Error, &nested) == nil && nested.Message != "" {
				flat.Code, flat.Message = nested.Code, nested.Message
			} else if json.Unmarshal(flat.Error, &s) == nil {
				flat.Message = s
			}
		}
		if flat.Message != "" {
			if flat.Code != "" {
				return fmt.Sprintf("%s (%s): %s", status, flat.Code, flat.Message)
			}
			return status + ": " + flat.Message
		}
	}
	if t := strings.TrimSpace(string(data)); t != "" {
		return status + ": " + oneLine(t)
	}
	return status
}
