package cli

import (
	"fmt"
	"os"
	"strconv"
	"strings"

	"github.com/spf13/cobra"

	"github.com/fairlease/fairlease/broker/api"
)

// EC2 access keys (fairlease user keys) and overflow sites (fairlease site).

func newUserKeysCmd(e *env) *cobra.Command {
	cmd := groupCmd("keys", "Make, list and revoke EC2 access keys (for the aws CLI and partner sites)")
	cmd.AddCommand(newKeysCreateCmd(e), newKeysListCmd(e), newKeysRevokeCmd(e))
	return cmd
}

func newKeysCreateCmd(e *env) *cobra.Command {
	var user string
	cmd := &cobra.Command{
		Use:   "create [--user U]",
		Short: "Make an EC2 access key (for yourself; admins: for anyone)",
		Long: `create makes an access key for the EC2 API and prints lines a shell can
source:
  eval "$(fairlease user keys create)"
sets AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY. The secret is shown this
once. --output json prints {access_key_id, secret_access_key, user, created}.`,
		Args: noArgs,
		RunE: func(*cobra.Command, []string) error {
			c, err := newClient(e)
			if err != nil {
				return err
			}
			k, err := c.CreateAccessKey(e.ctx, user)
			if err != nil {
				return apiFailure(err)
			}
			if e.g.output == OutputJSON {
				return printJSON(e, k)
			}
			fmt.Fprintf(e.stderr, "access key %s for %s; store the secret now, it is not shown again\n", k.AccessKeyID, k.User)
			_, err = fmt.Fprintf(e.stdout, "export AWS_ACCESS_KEY_ID=%s\nexport AWS_SECRET_ACCESS_KEY=%s\n", k.AccessKeyID, k.SecretAccessKey)
			return err
		},
	}
	cmd.Flags().StringVar(&user, "user", "", "whose key (default: yours; admins may name anyone)")
	return cmd
}

func newKeysListCmd(e *env) *cobra.Command {
	var user string
	cmd := &cobra.Command{
		Use:   "list [--user U]",
		Short: "List EC2 access keys (yours; admins: everyone's)",
		Args:  noArgs,
		RunE: func(*cobra.Command, []string) error {
			c, err := newClient(e)
			if err != nil {
				return err
			}
			ks, err := c.AccessKeys(e.ctx, user)
			if err != nil {
				return apiFailure(err)
			}
			if e.g.output == OutputJSON {
				return printJSON(e, ks)
			}
			now := timeNow()
			return table(e.stdout, []string{"ACCESS KEY", "USER", "CREATED"}, len(ks), func(i int) []string {
				return []string{ks[i].AccessKeyID, ks[i].User, clock(ks[i].Created, now)}
			})
		},
	}
	cmd.Flags().StringVar(&user, "user", "", "only `USER`'s keys (admins)")
	return cmd
}

func newKeysRevokeCmd(e *env) *cobra.Command {
	return &cobra.Command{
		Use:   "revoke ACCESS_KEY_ID",
		Short: "Revoke an EC2 access key; requests signed with it fail from now on",
		Args:  oneArg("the access key id (from user keys list)"),
		RunE: func(_ *cobra.Command, args []string) error {
			c, err := newClient(e)
			if err != nil {
				return err
			}
			if err := c.RevokeAccessKey(e.ctx, args[0]); err != nil {
				return apiFailure(err)
			}
			if e.g.output == OutputJSON {
				return printJSON(e, map[string]string{"revoked": args[0]})
			}
			_, err = fmt.Fprintf(e.stdout, "access key %s revoked\n", args[0])
			return err
		},
	}
}

func newSiteCmd(e *env) *cobra.Command {
	cmd := groupCmd("site", "Add, list and remove the clouds leases may overflow to")
	cmd.AddCommand(newSiteListCmd(e), newSiteAddCmd(e), newSiteRemoveCmd(e))
	return cmd
}

func newSiteListCmd(e *env) *cobra.Command {
	return &cobra.Command{
		Use:   "list",
		Short: "List the sites leases may overflow to",
		Args:  noArgs,
		RunE: func(*cobra.Command, []string) error {
			c, err := newClient(e)
			if err != nil {
				return err
			}
			ss, err := c.Sites(e.ctx)
			if err != nil {
				return apiFailure(err)
			}
			if e.g.output == OutputJSON {
				return printJSON(e, ss)
			}
			return table(e.stdout, []string{"NAME", "ENDPOINT", "REGION", "COST/CORE-H", "RUNNING", "ZONES"}, len(ss), func(i int) []string {
				s := ss[i]
				ep := s.Endpoint
				if ep == "" {
					ep = "Amazon EC2"
				}
				z := strings.Join(s.Zones, ",")
				if z == "" {
					z = "-"
				}
				return []string{s.Name, ep, s.Region, strconv.FormatFloat(s.CostPerCoreHour, 'f', -1, 64), strconv.Itoa(s.Running), z}
			})
		},
	}
}

func newSiteAddCmd(e *env) *cobra.Command {
	var r api.SiteRequest
	cmd := &cobra.Command{
		Use:   "add NAME --region R --access-key-id K --secret-access-key S [--endpoint URL] [--cost C] [--zone Z]...",
		Short: "Add or change a site (admins): Amazon EC2, or any EC2-compatible endpoint such as another fairlease",
		Long: `add registers a cloud that groups may overflow to (a group's overflow.sites in
the site policy names it). Leave out --endpoint for Amazon EC2; for a partner
fairlease give its EC2 endpoint (FAIRLEASE_EC2_ENDPOINT in its up.env) and an
access key its manager made for this site (fairlease user keys create there).
The secret may also come from FAIRLEASE_SITE_SECRET.`,
		Args: oneArg("the site name"),
		RunE: func(_ *cobra.Command, args []string) error {
			r.Name = args[0]
			if r.SecretAccessKey == "" {
				r.SecretAccessKey = os.Getenv("FAIRLEASE_SITE_SECRET")
			}
			switch {
			case r.Region == "":
				return usagef("--region: the site's region is missing (us-east-1, or what the partner says)")
			case r.AccessKeyID == "":
				return usagef("--access-key-id: this broker's access key at the site is missing")
			case r.SecretAccessKey == "":
				return usagef("--secret-access-key (or FAIRLEASE_SITE_SECRET): the key's secret is missing")
			}
			c, err := newClient(e)
			if err != nil {
				return err
			}
			s, err := c.PutSite(e.ctx, r)
			if err != nil {
				return apiFailure(err)
			}
			if e.g.output == OutputJSON {
				return printJSON(e, s)
			}
			ep := s.Endpoint
			if ep == "" {
				ep = "Amazon EC2"
			}
			_, err = fmt.Fprintf(e.stdout, "site %s: %s, region %s\n", s.Name, ep, s.Region)
			return err
		},
	}
	f := cmd.Flags()
	f.StringVar(&r.Endpoint, "endpoint", "", "the site's EC2 API `URL` (empty: Amazon EC2)")
	f.StringVar(&r.Region, "region", "", "`REGION` to sign requests for")
	f.StringVar(&r.AccessKeyID, "access-key-id", "", "this broker's access `KEY` at the site")
	f.StringVar(&r.SecretAccessKey, "secret-access-key", "", "its `SECRET`")
	f.Float64Var(&r.CostPerCoreHour, "cost", 0, "what a core-hour costs there; cheaper sites are tried first")
	f.StringArrayVar(&r.Zones, "zone", nil, "availability `ZONE` to try, in order (repeat)")
	f.StringVar(&r.Image, "image", "", "image `ID` to launch there when the lease's image is not known at the site")
	return cmd
}

func newSiteRemoveCmd(e *env) *cobra.Command {
	return &cobra.Command{
		Use:   "remove NAME",
		Short: "Remove a site no lease runs on (admins)",
		Args:  oneArg("the site name"),
		RunE: func(_ *cobra.Command, args []string) error {
			c, err := newClient(e)
			if err != nil {
				return err
			}
			if err := c.RemoveSite(e.ctx, args[0]); err != nil {
				return apiFailure(err)
			}
			if e.g.output == OutputJSON {
				return printJSON(e, map[string]string{"removed": args[0]})
			}
			_, err = fmt.Fprintf(e.stdout, "site %s removed\n", args[0])
			return err
		},
	}
}
