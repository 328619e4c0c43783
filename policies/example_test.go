package policies_test

import (
	"fmt"
	"strings"

	"github.com/fairlease/fairlease/policies"
)

func ExampleParse() {
	const site = `
name = "small-site"
reserve = 0.1
half_life = "7d"

[defaults]
max_lease = "72h"

[groups.science]
weight = 2

[groups.physics]
parent = "science"
max_cores = 64
max_memory = "256GiB"

[groups.physics.overflow]
sites = ["ec2"]
budget_core_hours = 500
period = "30d"
`
	p, err := policies.Parse("site.toml", strings.NewReader(site))
	if err != nil {
		fmt.Println(err)
		return
	}
	physics := p.Groups["physics"]
	fmt.Println(p.Path("physics"), physics.Quota.MaxCores, physics.Quota.MaxMemoryMiB, physics.Quota.MaxLease)
	fmt.Println(physics.Overflow.Sites, physics.Overflow.BudgetCoreHours, policies.FormatDuration(physics.Overflow.Period))
	// Output:
	// [science physics] 64 262144 72h0m0s
	// [ec2] 500 30d
}

func ExampleParse_error() {
	const site = `
[groups.physics]
parent = "science"
wieght = 2
`
	_, err := policies.Parse("site.toml", strings.NewReader(site))
	fmt.Println(err)
	// Output:
	// site.toml:4: groups.physics.wieght: unknown key (did you mean weight? known keys: parent, weight, max_cores, max_memory, max_lease, max_vms, max_images, overflow)
}

func ExampleSet() {
	for _, v := range []string{"0", "0.1", "0.2"} {
		p := policies.Default()
		if err := policies.Set(p, "reserve", v); err != nil {
			fmt.Println(err)
			return
		}
		fmt.Println(p.Reserve)
	}
	p := policies.Default()
	fmt.Println(policies.Set(p, "loan_limit", "2h"), p.LoanLimit)
	fmt.Println(policies.Set(p, "reserve", "1.5"))
	// Output:
	// 0
	// 0.1
	// 0.2
	// <nil> 2h0m0s
	// reserve: must be in [0,1], got 1.5
}
