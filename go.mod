module github.com/fairlease/fairlease

go 1.26

require (
	github.com/BurntSushi/toml v1.6.0
	github.com/dustin/go-humanize v1.0.1
	github.com/google/go-cmp v0.7.0
	pgregory.net/rapid v1.2.0
)
