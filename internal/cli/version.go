package cli

import (
	"encoding/json"
	"fmt"
	"runtime"
	"runtime/debug"

	"github.com/spf13/cobra"
)

// Version is the release, set at build time with
// -ldflags "-X github.com/fairlease/fairlease/internal/cli.Version=v1.2.3";
// brokers and agents gate upgrades on it, so every part reports the same.
var Version = ""

// versionInfo is what `fairlease version` reports.
type versionInfo struct {
	Version  string `json:"version"`
	Go       string `json:"go"`
	Revision string `json:"revision,omitempty"`
	Modified bool   `json:"modified,omitempty"`
}

func currentVersion() versionInfo {
	v := versionInfo{Version: Version, Go: runtime.Version()}
	bi, ok := debug.ReadBuildInfo()
	if v.Version == "" {
		v.Version = "(devel)"
		if ok && bi.Main.Version != "" {
			v.Version = bi.Main.Version
		}
	}
	if ok {
		for _, s := range bi.Settings {
			switch s.Key {
			case "vcs.revision":
				v.Revision = s.Value
			case "vcs.modified":
				v.Modified = s.Value == "true"
			}
		}
	}
	return v
}

func newVersionCmd(e *env) *cobra.Command {
	return &cobra.Command{
		Use:   "version",
		Short: "Print the version of this binary",
		Args:  noArgs,
		RunE: func(*cobra.Command, []string) error {
			v := currentVersion()
			if e.g.output == OutputJSON {
				b, err := json.MarshalIndent(v, "", "  ")
				if err != nil {
					return failure(err, "")
				}
				_, err = fmt.Fprintf(e.stdout, "%s\n", b)
				return err
			}
			line := fmt.Sprintf("fairlease %s (%s", v.Version, v.Go)
			if v.Revision != "" {
				line += ", " + v.Revision
				if v.Modified {
					line += "+dirty"
				}
			}
			_, err := fmt.Fprintln(e.stdout, line+")")
			return err
		},
	}
}
