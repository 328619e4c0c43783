// Package policies holds a site's policy as data: the group tree with its
// weights, quotas and overflow rules, and the knobs of admission (reserve α,
// loan limit L, usage half-life, active window, patience). fairshare,
// federation and sim read a *Policy; nothing here decides anything, reads a
// clock or keeps state.
//
// # File format
//
// A policy is a TOML file. Every key is optional: Parse starts from
// [Default] and the file overrides what it sets. Unknown keys are errors, so a
// misspelt key never silently leaves a default in force.
//
//	name = "small-site"       # free text, shown in reports
//	reserve = 0.1             # α in [0,1]: share of below-share groups' unused share kept from borrowers
//	loan_limit = "0s"         # L: borrowed capacity comes back within L; "0s" = no limit
//	half_life = "7d"          # half-life of decayed usage; > 0
//	active_window = "0s"      # a group stays active this long after its last lease; "0s" = only while holding or waiting
//	patience = "24h"          # start_by = submit + patience for requests without one
//	unknown_groups = "allow"  # "allow": unknown groups get [defaults] under the root; "reject"
//
//	[defaults]                # for every group that does not set a key
//	weight = 1
//	max_lease = "72h"
//
//	[groups.science]
//	weight = 2
//
//	[groups.physics]
//	parent = "science"
//	max_cores = 64            # cores held + reserved at once; 0 = no limit
//	max_memory = "256GiB"     # same for memory
//	max_vms = 32              # most VMs in one request; 0 = no limit
//	max_lease = "36h"         # longest lease; 0 = no limit
//	max_images = "200GiB"     # bytes of the images the group owns; 0 = no limit
//
//	[groups.physics.overflow]
//	sites = ["ec2"]           # where the group may overflow, in order of preference
//	budget_core_hours = 500   # per period; -1 = unlimited, 0 = none
//	period = "30d"            # > 0
//
//	[flavors]                 # the instance types of the EC2 API: name = { cores, memory }
//	"t3.small"  = { cores = 1, memory = "2GiB" }
//	"hpc.16x64" = { cores = 16, memory = "64GiB" }
//
// Any TOML spelling of the same keys works: dotted keys
// (physics.weight = 1 under [groups]) and inline tables
// (overflow = { sites = ["ec2"], budget_core_hours = 500 }).
//
// Durations are strings holding a Go duration ("90m", "36h") that may also
// use a day unit ("7d", "1d12h"), see [ParseDuration]; the integer 0 is
// accepted too. Sizes (max_memory) are strings with an IEC or SI unit
// ("512GiB", "4096MiB", "1TB"), see [ParseSize], or an integer number of MiB.
//
// # Flavors
//
// [flavors] is the site's flavor table: the VM shape (cores in 1..4096,
// memory up to 64TiB, both required) each instance type of the EC2 API
// names. Names are letters, digits, '.', '-' and '_' ("t3.small",
// "hpc.16x64"). A policy without the table offers [DefaultFlavors], EC2's
// t3, m5 and c5 names, so that scripts written for EC2 run unchanged; a
// table replaces them as a whole, and an empty one is an error. The EC2
// API reads the table of the policy in force on every call, so setting a
// new policy changes the instance types on every broker node. A call that
// names no instance type gets t3.small, or the smallest flavor (fewest
// cores, then least memory) when the table has no t3.small.
//
// # Inheritance
//
// A group's quota and overflow keys that it does not set come from its parent
// group (which may itself have inherited them), and for a root group from
// [defaults]. weight comes from [defaults] only: a parent's weight ranks it
// among its siblings and says nothing about its children. Inherited values
// are copies: a child that inherits budget_core_hours = 500 has a budget of
// its own. Parse resolves inheritance, so the Groups of a loaded Policy hold
// effective values; a Policy built in code holds what the code put there.
//
// # Errors
//
// Parse, Load and Set return a *[LoadError] naming the file, the line and the
// key at fault, for example
//
//	site.toml:14: groups.physics.wieght: unknown key (did you mean weight? known keys: parent, weight, …)
//	site.toml:9: groups.physics.weight: must be > 0, got -1
//
// # Adding a knob
//
// The format is read from the toml tags of [Policy], [Group], [Quota],
// [Overflow] and [Flavor]: a new knob is one struct field with a tag (and a rule in
// Validate if it has one). Decoding, unknown-key messages, inheritance and
// [Set] follow from the tag.
package policies
