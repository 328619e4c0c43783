//go:build !linux

package hostagent

import "errors"

var errNoStatfs = errors.New("hostagent: no filesystem sizes on this system")

// diskSpace is only known on Linux, where the agent runs; elsewhere set
// cache_limit.
func diskSpace(string) (total, avail int64, err error) { return 0, 0, errNoStatfs }
