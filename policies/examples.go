package policies

import (
	"embed"
	"io/fs"
)

//go:embed examples/*.toml
var examples embed.FS

// Examples holds the example policies (default.toml, small-site.toml) so
// that the binary ships them: LoadFS(Examples, "default.toml").
var Examples fs.FS = mustSub(examples, "examples")

func mustSub(fsys fs.FS, dir string) fs.FS {
	sub, err := fs.Sub(fsys, dir)
	if err != nil {
		panic("policies: " + err.Error()) // dir is a constant that exists
	}
	return sub
}
