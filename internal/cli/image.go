package cli

import (
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/dustin/go-humanize"
	"github.com/schollz/progressbar/v3"
	"github.com/spf13/cobra"

	"github.com/fairlease/fairlease/broker"
	"github.com/fairlease/fairlease/broker/api"
)

func newImageCmd(e *env) *cobra.Command {
	cmd := groupCmd("image", "Push, list and remove VM images")
	cmd.AddCommand(newImagePushCmd(e), newImageListCmd(e), newImageRemoveCmd(e), newImageShareCmd(e))
	return cmd
}

func newImagePushCmd(e *env) *cobra.Command {
	var name, format string
	var public bool
	cmd := &cobra.Command{
		Use:   "push FILE [--name NAME]",
		Short: "Upload an image; it is your group's alone unless an admin makes it public",
		Args:  oneArg("the image file"),
		RunE: func(_ *cobra.Command, args []string) error {
			f, err := os.Open(args[0])
			if err != nil {
				return usagef("image file: %v", err)
			}
			defer f.Close()
			st, err := f.Stat()
			if err != nil || !st.Mode().IsRegular() {
				return usagef("image file %s: not a regular file", args[0])
			}
			if name == "" {
				name = strings.TrimSuffix(filepath.Base(args[0]), filepath.Ext(args[0]))
			}
			if format == "" {
				format = sniffFormat(f)
			}
			c, err := newClient(e)
			if err != nil {
				return err
			}
			var r io.Reader = f
			var bar *progressbar.ProgressBar
			if isTerminal(e.stderr) && e.g.output != OutputJSON {
				bar = progressbar.DefaultBytes(st.Size(), "pushing "+name)
				progressbar.OptionSetWriter(e.stderr)(bar)
				r = io.TeeReader(f, bar)
			}
			start := time.Now()
			im, err := c.PushImage(e.ctx, name, format, public, r, st.Size())
			if bar != nil {
				bar.Finish()
			}
			if err != nil {
				return apiFailure(err)
			}
			if e.g.output == OutputJSON {
				return printJSON(e, im)
			}
			vis := visibility(*im)
			if vis == "private" {
				vis = "private to " + string(im.Group)
			}
			_, err = fmt.Fprintf(e.stdout, "image %s: %s %s, sha256 %s, %s (in %s)\n", im.Name, humanize.IBytes(uint64(im.Size)),
				im.Format, im.Digest[:12], vis, time.Since(start).Round(time.Millisecond))
			return err
		},
	}
	cmd.Flags().StringVar(&name, "name", "", "image `NAME` (default: the file name without its extension)")
	cmd.Flags().StringVar(&format, "format", "", "qcow2 or raw (default: read from the file)")
	cmd.Flags().BoolVar(&public, "public", false, "leasable by every group (admin)")
	return cmd
}

// sniffFormat tells qcow2 from raw by the qcow2 magic, and rewinds f.
func sniffFormat(f *os.File) string {
	var magic [4]byte
	n, _ := io.ReadFull(f, magic[:])
	f.Seek(0, io.SeekStart)
	if n == 4 && string(magic[:]) == "QFI\xfb" {
		return "qcow2"
	}
	return "raw"
}

func newImageListCmd(e *env) *cobra.Command {
	return &cobra.Command{
		Use:   "list",
		Short: "List the images you may lease",
		Args:  noArgs,
		RunE: func(*cobra.Command, []string) error {
			c, err := newClient(e)
			if err != nil {
				return err
			}
			ims, err := c.Images(e.ctx)
			if err != nil {
				return apiFailure(err)
			}
			if e.g.output == OutputJSON {
				return printJSON(e, ims)
			}
			now := timeNow()
			return table(e.stdout, []string{"NAME", "FORMAT", "SIZE", "OWNER", "VISIBILITY", "SHA256", "PUSHED"}, len(ims), func(i int) []string {
				im := ims[i]
				vis := visibility(im)
				return []string{im.Name, im.Format, humanize.IBytes(uint64(im.Size)), string(im.Group), vis, im.Digest[:12], relative(im.Created, now)}
			})
		},
	}
}

func newImageRemoveCmd(e *env) *cobra.Command {
	return &cobra.Command{
		Use:     "rm NAME",
		Aliases: []string{"remove"},
		Short:   "Remove an image no live lease uses",
		Args:    oneArg("the image name"),
		RunE: func(_ *cobra.Command, args []string) error {
			c, err := newClient(e)
			if err != nil {
				return err
			}
			if err := c.DeleteImage(e.ctx, args[0]); err != nil {
				return apiFailure(err)
			}
			if e.g.output == OutputJSON {
				return printJSON(e, map[string]string{"removed": args[0]})
			}
			_, err = fmt.Fprintf(e.stdout, "image %s removed\n", args[0])
			return err
		},
	}
}

func visibility(im broker.Image) string {
	switch {
	case im.Public:
		return "public"
	case len(im.SharedWith) > 0:
		gs := make([]string, len(im.SharedWith))
		for i, g := range im.SharedWith {
			gs[i] = string(g)
		}
		return "shared with " + strings.Join(gs, ",")
	}
	return "private"
}

func newImageShareCmd(e *env) *cobra.Command {
	var groups []string
	var public, private bool
	cmd := &cobra.Command{
		Use:   "share NAME --group G [--group G…] | --public | --private",
		Short: "Set who besides its group may lease an image (the list replaces the old one)",
		Args:  oneArg("the image name"),
		RunE: func(_ *cobra.Command, args []string) error {
			if public && private {
				return usagef("--public and --private contradict each other")
			}
			c, err := newClient(e)
			if err != nil {
				return err
			}
			req := api.ShareRequest{Groups: groups, Public: public}
			if req.Groups == nil {
				req.Groups = []string{}
			}
			if !public && !private {
				// Keep whether it is public: only --public/--private change it.
				cur, err := c.Image(e.ctx, args[0])
				if err != nil {
					return apiFailure(err)
				}
				req.Public = cur.Public
			}
			im, err := c.ShareImage(e.ctx, args[0], req)
			if err != nil {
				return apiFailure(err)
			}
			if e.g.output == OutputJSON {
				return printJSON(e, im)
			}
			_, err = fmt.Fprintf(e.stdout, "image %s: %s\n", im.Name, visibility(*im))
			return err
		},
	}
	cmd.Flags().StringArrayVar(&groups, "group", nil, "a `GROUP` that may lease the image; repeatable (none: its own group only)")
	cmd.Flags().BoolVar(&public, "public", false, "leasable by every group (admin)")
	cmd.Flags().BoolVar(&private, "private", false, "no longer public (admin)")
	return cmd
}
