package server

import (
	"bytes"
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"sync"

	"github.com/hashicorp/raft"

	"github.com/fairlease/fairlease/broker"
	"github.com/fairlease/fairlease/lease"
)

// Forwarding. A follower sends writes to the leader's API address (from
// the replicated CmdPutNode records) as POST /internal/v1/propose with the
// cluster secret. The body is one command as broker.Encode writes it, and
// the answer one wireReply; or, as the follower's forwarder sends them,
// several commands in a batch entry's framing (entry.go), and the answer
// {"results": [wireReply, ...]}. The leader proposes each command as if it
// were its own (stamping the time, batching submits) and answers with the
// result as JSON, which the follower decodes into the concrete type the
// command type implies. A node that is not the leader answers 421, and a
// command it could not propose any more is marked retry: the follower
// sends those again to the new leader, since they were not proposed.

// Internal paths, served by InternalHandler.
const (
	pathPropose = "/internal/v1/propose"
	pathJoin    = "/internal/v1/join"
	pathRemove  = "/internal/v1/remove"
)

// SecretHeader carries the cluster secret on internal requests.
const SecretHeader = "X-Fairlease-Cluster-Secret"

// maxInternalBody bounds an internal request body.
const maxInternalBody = 32 << 20

// memberRequest is the body of join and remove.
type memberRequest struct {
	ID       string `json:"id"`
	RaftAddr string `json:"raft_addr,omitempty"`
	APIAddr  string `json:"api_addr,omitempty"`
}

// wireReply is the body of every internal answer.
type wireReply struct {
	Result json.RawMessage `json:"result,omitempty"`
	Error  *lease.Error    `json:"error,omitempty"`
	// Unknown: the leader lost leadership with the command in flight.
	Unknown bool `json:"unknown_outcome,omitempty"`
	// Retry: the command was not proposed (the node stopped leading);
	// send it to the new leader.
	Retry bool `json:"retry,omitempty"`
	// LeaderID and LeaderAPI name the leader on a 421.
	LeaderID  string `json:"leader_id,omitempty"`
	LeaderAPI string `json:"leader_api,omitempty"`
}

// errUnreachable marks a request that never reached the leader (it could
// not be dialled), which is safe to send again.
var errUnreachable = errors.New("leader unreachable")

// retryable reports whether a forwarded request certainly did not run.
func retryable(err error) bool {
	return errors.Is(err, ErrNotLeader) || errors.Is(err, errUnreachable)
}

// InternalHandler serves /internal/v1/{propose,join,remove} for the other
// nodes of the cluster. The API mounts it; requests without the cluster
// secret get 401.
func (s *Server) InternalHandler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("POST "+pathPropose, s.handlePropose)
	// A node that joins knows no leader yet, so any member takes its
	// request and passes it on.
	mux.HandleFunc("POST "+pathJoin, func(w http.ResponseWriter, r *http.Request) {
		if m, ok := readMember(w, r); ok {
			s.writeResult(w, nil, s.Join(r.Context(), m.ID, m.RaftAddr, m.APIAddr))
		}
	})
	mux.HandleFunc("POST "+pathRemove, func(w http.ResponseWriter, r *http.Request) {
		if m, ok := readMember(w, r); ok {
			s.writeResult(w, nil, s.Remove(r.Context(), m.ID))
		}
	})
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !s.authorized(r) {
			writeReply(w, http.StatusUnauthorized, wireReply{Error: lease.Errorf(lease.EUNAUTHORIZED, "", "missing or wrong cluster secret")})
			return
		}
		r.Body = http.MaxBytesReader(w, r.Body, maxInternalBody)
		mux.ServeHTTP(w, r)
	})
}

func (s *Server) authorized(r *http.Request) bool {
	if s.cfg.ClusterSecret == "" {
		return false
	}
	// Compare digests: constant time whatever the lengths.
	a := sha256.Sum256([]byte(r.Header.Get(SecretHeader)))
	b := sha256.Sum256([]byte(s.cfg.ClusterSecret))
	return subtle.ConstantTimeCompare(a[:], b[:]) == 1
}

func readMember(w http.ResponseWriter, r *http.Request) (memberRequest, bool) {
	var m memberRequest
	if err := json.NewDecoder(r.Body).Decode(&m); err != nil || m.ID == "" {
		writeReply(w, http.StatusBadRequest, wireReply{Error: lease.Errorf(lease.EINVALID, "id", "a member request needs an id")})
		return m, false
	}
	return m, true
}

func (s *Server) handlePropose(w http.ResponseWriter, r *http.Request) {
	b, err := io.ReadAll(r.Body)
	if err != nil {
		writeReply(w, http.StatusBadRequest, wireReply{Error: lease.Errorf(lease.EINVALID, "body", "read command: %v", err)})
		return
	}
	cs, err := DecodeEntry(b)
	if err != nil {
		writeReply(w, http.StatusBadRequest, wireReply{Error: lease.Errorf(lease.EINVALID, "body", "%v", err)})
		return
	}
	if s.raft.State() != raft.Leader {
		s.writeNotLeader(w)
		return
	}
	// Each command is proposed as if a local caller had: concurrent
	// submits join the leader's batch.
	reps := make([]wireReply, len(cs))
	var wg sync.WaitGroup
	for i, c := range cs {
		body, err := checkCommand(c)
		if err != nil {
			reps[i] = replyOf(nil, err)
			continue
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			res, err := s.proposeLocal(r.Context(), c, body)
			if errors.Is(err, ErrNotLeader) {
				reps[i] = wireReply{Retry: true}
				return
			}
			reps[i] = replyOf(res, err)
		}()
	}
	wg.Wait()
	if b[0] != entryBatch {
		if reps[0].Retry {
			s.writeNotLeader(w)
			return
		}
		writeReply(w, http.StatusOK, reps[0])
		return
	}
	w.Header().Set("Content-Type", "application/json")
	json.NewEncoder(w).Encode(batchReplyBody{Results: reps})
}

// batchReplyBody answers a batch of forwarded commands, one reply each.
type batchReplyBody struct {
	Results []wireReply `json:"results"`
}

func (s *Server) writeNotLeader(w http.ResponseWriter) {
	_, id := s.raft.LeaderWithID()
	writeReply(w, http.StatusMisdirectedRequest, wireReply{LeaderID: string(id), LeaderAPI: s.fsm.api(string(id)),
		Error: lease.Errorf("not_leader", "", "not the leader")})
}

func (s *Server) writeResult(w http.ResponseWriter, res any, err error) {
	writeReply(w, http.StatusOK, replyOf(res, err))
}

// replyOf puts a result and an error on the wire: business errors keep
// their code, anything else is internal.
func replyOf(res any, err error) wireReply {
	var rep wireReply
	if res != nil {
		b, merr := json.Marshal(res)
		if merr != nil {
			err = errors.Join(err, merr)
		}
		rep.Result = b
	}
	if err != nil {
		var le *lease.Error
		if !errors.As(err, &le) {
			le = &lease.Error{Code: lease.EINTERNAL, Message: err.Error()}
		}
		rep.Error = le
		rep.Unknown = errors.Is(err, ErrUnknownOutcome) || errors.Is(err, ErrClosed)
	}
	return rep
}

func writeReply(w http.ResponseWriter, status int, rep wireReply) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	json.NewEncoder(w).Encode(rep)
}

// decodeReply turns a forwarded command's reply into what the leader's
// Propose returned.
func decodeReply(t broker.CommandType, rep wireReply) (any, error) {
	res, err := decodeResult(t, rep.Result)
	if err != nil {
		return nil, err
	}
	if rep.Error != nil {
		return res, rep.Error
	}
	return res, nil
}

// call posts a membership request to base+path with the cluster secret
// and returns the reply, its error as the error.
func (s *Server) call(ctx context.Context, base, path string, body []byte) (wireReply, error) {
	var rep wireReply
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, base+path, bytes.NewReader(body))
	if err != nil {
		return rep, fmt.Errorf("server: forward to %s: %w", base, err)
	}
	req.Header.Set(SecretHeader, s.cfg.ClusterSecret)
	resp, err := s.client.Do(req)
	if err != nil {
		var op *net.OpError
		if errors.As(err, &op) && op.Op == "dial" {
			return rep, fmt.Errorf("server: forward to %s: %w: %w", base, errUnreachable, err)
		}
		if ctx.Err() != nil {
			return rep, fmt.Errorf("server: forward to %s (%v): %w", base, ctx.Err(), ErrUnknownOutcome)
		}
		return rep, fmt.Errorf("server: forward to %s (%v): %w", base, err, ErrUnknownOutcome)
	}
	defer resp.Body.Close()
	if err := json.NewDecoder(io.LimitReader(resp.Body, maxInternalBody)).Decode(&rep); err != nil {
		return rep, fmt.Errorf("server: forward to %s: %s, and the body is not a reply: %w", base, resp.Status, err)
	}
	switch {
	case resp.StatusCode == http.StatusMisdirectedRequest:
		return rep, &NotLeaderError{LeaderID: rep.LeaderID, LeaderAPI: rep.LeaderAPI}
	case rep.Unknown:
		return rep, fmt.Errorf("server: forward to %s (%v): %w", base, rep.Error, ErrUnknownOutcome)
	case resp.StatusCode != http.StatusOK && rep.Error == nil:
		return rep, fmt.Errorf("server: forward to %s: %s", base, resp.Status)
	case rep.Error != nil:
		return rep, rep.Error
	}
	return rep, nil
}

// decodeResult reads a forwarded result into the type State.Apply returns
// for t, so that callers see the same values on any node.
func decodeResult(t broker.CommandType, raw json.RawMessage) (any, error) {
	switch t {
	case broker.CmdSubmit:
		return decodeAs[[]broker.SubmitResult](raw)
	case broker.CmdRelease, broker.CmdLeaseState, broker.CmdVMState,
		broker.CmdRemoteAttempt, broker.CmdRemoteLaunched, broker.CmdRemoteFailed, broker.CmdRemoteEnded:
		return decodeAs[*broker.Lease](raw)
	case broker.CmdAdvance:
		return decodeAs[broker.AdvanceResult](raw)
	case broker.CmdHostLost:
		return decodeAs[broker.HostLostResult](raw)
	}
	return nil, nil
}

func decodeAs[T any](raw json.RawMessage) (any, error) {
	var v T
	if err := unmarshalIf(raw, &v); err != nil {
		return nil, err
	}
	return v, nil
}

func unmarshalIf(raw json.RawMessage, v any) error {
	if len(raw) == 0 {
		return nil
	}
	if err := json.Unmarshal(raw, v); err != nil {
		return fmt.Errorf("server: decode the leader's result: %w", err)
	}
	return nil
}

func jsonBody(v any) []byte {
	b, _ := json.Marshal(v)
	return b
}

// baseURL turns an API address into a URL base: "host:port" means http.
func baseURL(addr string) string {
	if addr == "" {
		return ""
	}
	if !strings.Contains(addr, "://") {
		addr = "http://" + addr
	}
	return strings.TrimRight(addr, "/")
}
