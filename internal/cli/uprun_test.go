package cli

import (
	"context"
	"os"
	"path/filepath"
	"testing"
	"time"
)

// startUp runs fairlease up in this process with args (on free ports, in a
// fresh data directory) until the test ends, and returns up.env's values
// once it is ready.
func startUp(t *testing.T, args ...string) map[string]string {
	t.Helper()
	data := t.TempDir()
	ctx, cancel := context.WithCancel(context.Background())
	var upOut, upErr syncBuffer
	upDone := make(chan int, 1)
	go func() {
		upDone <- Run(ctx, append([]string{"up", "--data", data, "--listen", "127.0.0.1:0", "--raft", "127.0.0.1:0", "--ec2-listen", "127.0.0.1:0"}, args...), &upOut, &upErr)
	}()
	t.Cleanup(func() {
		cancel()
		select {
		case code := <-upDone:
			if code != 0 {
				t.Errorf("up exited %d: %s", code, lastLines(upErr.String(), 10))
			}
		case <-time.After(30 * time.Second):
			t.Error("up did not stop within 30 s")
		}
	})
	envFile := filepath.Join(data, "up.env")
	waitUntil(t, 30*time.Second, "up.env", func() error {
		select {
		case code := <-upDone:
			upDone <- code
			t.Fatalf("up exited %d before it was ready: %s", code, lastLines(upErr.String(), 10))
		default:
		}
		_, err := os.Stat(envFile)
		return err
	})
	return readEnv(envFile)
}
