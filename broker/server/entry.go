package server

import (
	"encoding/binary"
	"errors"
	"fmt"

	"github.com/fairlease/fairlease/broker"
)

// Log entries. An entry is either one command as broker.Encode writes it
// (its first byte is the command type, never 0), or a batch: the byte
// entryBatch, then commands, each as a uvarint length and broker.Encode's
// bytes. A batch carries the submits of several actors that the leader
// merged: the state records each command's actor as its leases' user, so
// requests of different actors cannot share one command, but they can
// share one entry, and so one append, one fsync and one replication round.
//
// This framing is stored in the log: only add to it. A version that does
// not know batches reads byte 0 as an unknown command type and stops, as
// it must.

// entryBatch marks a batch entry.
const entryBatch byte = 0

// encodeBatch frames cs as one batch entry.
func encodeBatch(cs []broker.Command) ([]byte, error) {
	out := []byte{entryBatch}
	for _, c := range cs {
		b, err := broker.Encode(c)
		if err != nil {
			return nil, err
		}
		out = binary.AppendUvarint(out, uint64(len(b)))
		out = append(out, b...)
	}
	return out, nil
}

// DecodeEntry reads the commands of one log entry written by a node: one
// command, or the several of a batch. Tools that replay a node's log use
// it; applying the commands in order with State.Apply (the entry's index
// for the first, 0 for the rest) gives the node's state.
func DecodeEntry(data []byte) ([]broker.Command, error) {
	if len(data) == 0 {
		return nil, errors.New("server: empty log entry")
	}
	if data[0] != entryBatch {
		c, err := broker.Decode(data)
		if err != nil {
			return nil, err
		}
		return []broker.Command{c}, nil
	}
	var out []broker.Command
	for rest := data[1:]; len(rest) > 0; {
		n, k := binary.Uvarint(rest)
		if k <= 0 || n > uint64(len(rest)-k) {
			return nil, fmt.Errorf("server: batch entry: command %d has a bad length", len(out)+1)
		}
		c, err := broker.Decode(rest[k : k+int(n)])
		if err != nil {
			return nil, fmt.Errorf("server: batch entry: command %d: %w", len(out)+1, err)
		}
		out = append(out, c)
		rest = rest[k+int(n):]
	}
	if len(out) == 0 {
		return nil, errors.New("server: batch entry without commands")
	}
	return out, nil
}
