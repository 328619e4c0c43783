package hostagent

import "syscall"

// diskSpace returns the size of dir's filesystem and the bytes available
// to unprivileged users.
func diskSpace(dir string) (total, avail int64, err error) {
	var st syscall.Statfs_t
	if err := syscall.Statfs(dir, &st); err != nil {
		return 0, 0, err
	}
	return int64(st.Blocks) * st.Bsize, int64(st.Bavail) * st.Bsize, nil
}
