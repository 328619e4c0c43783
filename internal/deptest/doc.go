// Package deptest holds the test that keeps the layout's import rules
// (DESIGN.md §2): the pure core (lease, policies, fairshare, sim) never
// imports Raft, libvirt, the AWS SDK or anacrolix, and lease imports
// nothing of ours. It follows tailscale's deptest; it has no code of its
// own.
package deptest
