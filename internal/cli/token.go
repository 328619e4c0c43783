package cli

import (
	"fmt"

	"github.com/spf13/cobra"

	"github.com/fairlease/fairlease/broker/api"
)

func newTokenCmd(e *env) *cobra.Command {
	cmd := groupCmd("token", "Make, list and revoke API tokens")
	cmd.AddCommand(newTokenCreateCmd(e), newTokenListCmd(e), newTokenRevokeCmd(e))
	return cmd
}

func newTokenCreateCmd(e *env) *cobra.Command {
	var user, name string
	cmd := &cobra.Command{
		Use:   "create [--user U] [--name LABEL]",
		Short: "Make an API token (for yourself; admins: for anyone)",
		Long: `create makes a token and prints it on stdout, alone, so that
  export FAIRLEASE_TOKEN=$(fairlease token create --name laptop)
works. The broker keeps only a hash: the token is shown this once.
--output json prints {id, user, name, created, token}.`,
		Args: noArgs,
		RunE: func(*cobra.Command, []string) error {
			c, err := newClient(e)
			if err != nil {
				return err
			}
			t, err := c.CreateToken(e.ctx, api.TokenRequest{User: user, Name: name})
			if err != nil {
				return apiFailure(err)
			}
			if e.g.output == OutputJSON {
				return printJSON(e, t)
			}
			fmt.Fprintf(e.stderr, "token %s for %s; store it now, it is not shown again\n", t.ID, t.User)
			_, err = fmt.Fprintln(e.stdout, t.Token)
			return err
		},
	}
	cmd.Flags().StringVar(&user, "user", "", "whose token (default: yours; admins may name anyone)")
	cmd.Flags().StringVar(&name, "name", "", "a `LABEL` to tell tokens apart")
	return cmd
}

func newTokenListCmd(e *env) *cobra.Command {
	var user string
	cmd := &cobra.Command{
		Use:   "list [--user U]",
		Short: "List tokens (yours; admins: everyone's)",
		Args:  noArgs,
		RunE: func(*cobra.Command, []string) error {
			c, err := newClient(e)
			if err != nil {
				return err
			}
			ts, err := c.Tokens(e.ctx, user)
			if err != nil {
				return apiFailure(err)
			}
			if e.g.output == OutputJSON {
				return printJSON(e, ts)
			}
			now := timeNow()
			return table(e.stdout, []string{"ID", "USER", "NAME", "CREATED"}, len(ts), func(i int) []string {
				t := ts[i]
				n := t.Name
				if n == "" {
					n = "-"
				}
				return []string{t.ID, t.User, n, clock(t.Created, now)}
			})
		},
	}
	cmd.Flags().StringVar(&user, "user", "", "only `USER`'s tokens (admins)")
	return cmd
}

func newTokenRevokeCmd(e *env) *cobra.Command {
	return &cobra.Command{
		Use:   "revoke ID",
		Short: "Revoke a token; requests with it fail from now on",
		Args:  oneArg("the token id (from token list)"),
		RunE: func(_ *cobra.Command, args []string) error {
			id := args[0]
			// Accept the whole token too: people paste what they have.
			if tid, _, ok := api.ParseToken(id); ok {
				id = tid
			}
			c, err := newClient(e)
			if err != nil {
				return err
			}
			if err := c.RevokeToken(e.ctx, id); err != nil {
				return apiFailure(err)
			}
			if e.g.output == OutputJSON {
				return printJSON(e, map[string]string{"revoked": id})
			}
			_, err = fmt.Fprintf(e.stdout, "token %s revoked\n", id)
			return err
		},
	}
}
