package fairshare

import "container/heap"

// hostIndex finds hosts with room now without looking at every host: a
// max-tree over host order holds each host's free cores and memory at the
// current time, and a heap of each host's next profile change keeps those
// values current as time passes. A site of 10,000 hosts then answers
// "first hosts that fit" in a few tree steps instead of a scan.
type hostIndex struct {
	size  int
	cores []int64 // tree of max free cores; leaves at size+i
	mem   []int64
	next  changeHeap
}

// changeHeap orders hosts by their next profile change; one entry per
// host, moved in place when its profile changes.
type changeHeap struct {
	at    []int64 // per host
	pos   []int   // per host: index in order
	hosts []int32
}

func (h *changeHeap) Len() int           { return len(h.hosts) }
func (h *changeHeap) Less(i, j int) bool { return h.at[h.hosts[i]] < h.at[h.hosts[j]] }
func (h *changeHeap) Swap(i, j int) {
	h.hosts[i], h.hosts[j] = h.hosts[j], h.hosts[i]
	h.pos[h.hosts[i]], h.pos[h.hosts[j]] = i, j
}
func (h *changeHeap) Push(v any) {
	i := v.(int32)
	h.pos[i] = len(h.hosts)
	h.hosts = append(h.hosts, i)
}
func (h *changeHeap) Pop() any {
	v := h.hosts[len(h.hosts)-1]
	h.hosts = h.hosts[:len(h.hosts)-1]
	return v
}

func newHostIndex(n int) *hostIndex {
	size := 1
	for size < n {
		size *= 2
	}
	ix := &hostIndex{size: size, cores: make([]int64, 2*size), mem: make([]int64, 2*size)}
	ix.next.at = make([]int64, n)
	ix.next.pos = make([]int, n)
	for i := range n {
		ix.next.at[i] = never
		heap.Push(&ix.next, int32(i))
	}
	for i := range ix.cores {
		ix.cores[i], ix.mem[i] = -1, -1
	}
	return ix
}

// set records host i's free capacity now.
func (ix *hostIndex) set(i int, c, m int64) {
	p := ix.size + i
	ix.cores[p], ix.mem[p] = c, m
	for p >>= 1; p > 0; p >>= 1 {
		ix.cores[p] = max(ix.cores[2*p], ix.cores[2*p+1])
		ix.mem[p] = max(ix.mem[2*p], ix.mem[2*p+1])
	}
}

// first returns the first host at or after from whose free capacity may
// hold (c, m), or -1. The tree keeps maxima per dimension, so a subtree is
// skipped only when no host in it can fit; leaves are exact.
func (ix *hostIndex) first(from int, c, m int64) int {
	if from >= ix.size {
		return -1
	}
	p := ix.size + from
	if ix.cores[p] >= c && ix.mem[p] >= m {
		return from
	}
	// Climb until a right sibling subtree may fit, then descend into it.
	for {
		for p&1 == 1 {
			p >>= 1
			if p == 0 {
				return -1
			}
		}
		p++ // the right sibling
		if ix.cores[p] >= c && ix.mem[p] >= m {
			break
		}
	}
	for p < ix.size {
		if l := 2 * p; ix.cores[l] >= c && ix.mem[l] >= m {
			p = l
		} else {
			p = l + 1
		}
	}
	return p - ix.size
}

// refresh brings host i's entry up to date at now.
func (e *Engine) refresh(i int) {
	h := e.hosts[i]
	c, m := h.prof.at(e.now)
	e.ix.set(i, h.cap.Cores-c, h.cap.MemoryMiB-m)
	e.ix.next.at[i] = h.prof.next(e.now)
	heap.Fix(&e.ix.next, e.ix.next.pos[i])
}

// indexFrom is the site size from which the index pays for its upkeep;
// smaller sites scan their hosts.
const indexFrom = 256

// touchHost notes that host i's profile changed; the index catches up
// before its next use, once however many changes came in between.
func (e *Engine) touchHost(i int) {
	if e.ix == nil {
		return
	}
	if h := e.hosts[i]; !h.dirty {
		h.dirty = true
		e.dirtyHosts = append(e.dirtyHosts, int32(i))
	}
}

// advanceIndex applies the profile changes made since its last use and
// those that time has reached.
func (e *Engine) advanceIndex() {
	for _, i := range e.dirtyHosts {
		e.hosts[i].dirty = false
		e.refresh(int(i))
	}
	e.dirtyHosts = e.dirtyHosts[:0]
	for e.ix.next.at[e.ix.next.hosts[0]] <= e.now {
		e.refresh(int(e.ix.next.hosts[0]))
	}
}
