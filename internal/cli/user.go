package cli

import (
	"fmt"

	"github.com/spf13/cobra"

	"github.com/fairlease/fairlease/broker/api"
)

func newUserCmd(e *env) *cobra.Command {
	cmd := groupCmd("user", "Add, list and delete users")
	cmd.AddCommand(newUserCreateCmd(e), newUserListCmd(e), newUserDeleteCmd(e), newUserKeysCmd(e))
	return cmd
}

func newUserCreateCmd(e *env) *cobra.Command {
	var group, role string
	cmd := &cobra.Command{
		Use:   "create NAME [--group G] [--role user|manager|admin]",
		Short: "Add a user, or change one's group or role (admins; managers: users of their group)",
		Args:  oneArg("the user name"),
		RunE: func(_ *cobra.Command, args []string) error {
			switch role {
			case "user", "manager", "admin":
			default:
				return usagef("--role: %q: want user, manager or admin", role)
			}
			c, err := newClient(e)
			if err != nil {
				return err
			}
			u, err := c.PutUser(e.ctx, api.UserRequest{Name: args[0], Group: group, Role: role})
			if err != nil {
				return apiFailure(err)
			}
			if e.g.output == OutputJSON {
				return printJSON(e, u)
			}
			g := string(u.Group)
			if g == "" {
				g = "no group"
			}
			_, err = fmt.Fprintf(e.stdout, "user %s: %s of %s\n", u.Name, u.Role, g)
			return err
		},
	}
	cmd.Flags().StringVar(&group, "group", "", "the user's `GROUP` (default: yours)")
	cmd.Flags().StringVar(&role, "role", "user", "`ROLE`: user, manager or admin")
	return cmd
}

func newUserListCmd(e *env) *cobra.Command {
	return &cobra.Command{
		Use:   "list",
		Short: "List users (admins: all; managers: their group; users: themselves)",
		Args:  noArgs,
		RunE: func(*cobra.Command, []string) error {
			c, err := newClient(e)
			if err != nil {
				return err
			}
			us, err := c.Users(e.ctx)
			if err != nil {
				return apiFailure(err)
			}
			if e.g.output == OutputJSON {
				return printJSON(e, us)
			}
			now := timeNow()
			return table(e.stdout, []string{"NAME", "GROUP", "ROLE", "CREATED"}, len(us), func(i int) []string {
				u := us[i]
				g := string(u.Group)
				if g == "" {
					g = "-"
				}
				return []string{u.Name, g, string(u.Role), clock(u.Created, now)}
			})
		},
	}
}

func newUserDeleteCmd(e *env) *cobra.Command {
	return &cobra.Command{
		Use:   "delete NAME",
		Short: "Remove a user and their tokens",
		Args:  oneArg("the user name"),
		RunE: func(_ *cobra.Command, args []string) error {
			c, err := newClient(e)
			if err != nil {
				return err
			}
			if err := c.DeleteUser(e.ctx, args[0]); err != nil {
				return apiFailure(err)
			}
			if e.g.output == OutputJSON {
				return printJSON(e, map[string]string{"deleted": args[0]})
			}
			_, err = fmt.Fprintf(e.stdout, "user %s deleted, with their tokens\n", args[0])
			return err
		},
	}
}
