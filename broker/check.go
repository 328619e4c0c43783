package broker

// CheckCalendar verifies the admission engine's calendar: no host is
// committed beyond its capacity at any instant from now on. Replicas and
// benchmarks call it on a final state; it changes nothing.
func (s *State) CheckCalendar() error { return s.engine.Check() }
