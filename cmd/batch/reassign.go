package main

import (
	"context"
	"fmt"
	"maps"
	"slices"
	"strings"

	"github.com/esimbatch/esimbatch/repo"
)

// cmdReassign is `batch reassign --from OLD --to NEW [--dry-run]`: hands a
// withdrawn credential's rows that hold nothing at Octane to another one.
func cmdReassign(ctx context.Context, args []string, e env) error {
	fs := newFlags(e, "reassign", "reassign --from OLD --to NEW [--dry-run] [--note TEXT] [--by NAME]",
		"Hands the activations credential OLD owns and that hold nothing at Octane (pending, failed,\n"+
			"cancelled, and no run working on them) to credential NEW, for good: NEW's passes order them\n"+
			"(and `batch retry` of a failed one runs under NEW). Rows that hold a number or an order of OLD's\n"+
			"(selected, ordering, submitted, completed) stay with OLD, the only user Octane lets act on\n"+
			"them, and are counted; so do the numbers OLD holds. Each moved row records who and why.")
	from := fs.String("from", "", "the credential (Octane user name) giving up its rows")
	to := fs.String("to", "", "the credential taking them")
	dry := fs.Bool("dry-run", false, "count what would move; change nothing")
	note := fs.String("note", "", "why, recorded with each moved row")
	by := fs.String("by", "", "who, recorded with each moved row (default $USER)")
	if err := fs.parseNone(args); err != nil {
		return err
	}
	*from, *to = strings.TrimSpace(*from), strings.TrimSpace(*to)
	switch {
	case *from == "" || *to == "":
		fs.printUsage(e.stderr)
		return badConfig("reassign: give both --from and --to")
	case *from == *to:
		return badConfig("reassign: --from and --to are both %q", *from)
	}
	actor, store, now, err := operatorStore(ctx, e, *by)
	if err != nil {
		return err
	}
	defer store.Close()
	res, err := store.Reassign(ctx, *from, *to, actor, *note, *dry, now)
	if err != nil {
		return fmt.Errorf("reassign: %w", err)
	}
	verb := "moved"
	if *dry {
		verb = "dry run: would move"
	}
	fmt.Fprintf(e.stdout, "%s %d activations from %s to %s%s\n", verb, total(res.Moved), text(*from), text(*to), byState(res.Moved))
	if n := total(res.Kept); n > 0 {
		fmt.Fprintf(e.stdout, "left with %s: %d%s; they hold a number, an order or a run's claim of %s's: they finish under it, or wait for it\n",
			text(*from), n, byState(res.Kept), text(*from))
	}
	return nil
}

func total(m map[repo.State]int) int {
	n := 0
	for _, v := range m {
		n += v
	}
	return n
}

// byState renders counts as " (pending 3, failed 1)", in lifecycle order.
func byState(m map[repo.State]int) string {
	if len(m) == 0 {
		return ""
	}
	var b strings.Builder
	for _, st := range repo.States() {
		if n := m[st]; n > 0 {
			sep := ", "
			if b.Len() == 0 {
				sep = " ("
			}
			fmt.Fprintf(&b, "%s%s %d", sep, st, n)
		}
	}
	for _, st := range slices.Sorted(maps.Keys(m)) { // any state States does not list
		if !slices.Contains(repo.States(), st) && m[st] > 0 {
			fmt.Fprintf(&b, ", %s %d", text(string(st)), m[st])
		}
	}
	return b.String() + ")"
}
