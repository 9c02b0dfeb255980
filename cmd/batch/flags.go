package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"strings"
)

// errHelpShown: the command printed its usage because --help asked for
// it; run turns it into success (exit 0).
var errHelpShown = errors.New("help shown")

// cmdFlags is a command's flag set and usage text. Every command answers
// -h/--help on stdout with exit 0, and refuses an unknown flag or an
// unexpected argument with exit 2 (README "Operating").
type cmdFlags struct {
	*flag.FlagSet
	e     env
	usage string // "batch NAME [flags] ARGS"
	about string // what the command does, a few lines
}

// newFlags returns the flag set of command name; usage is its synopsis
// after "batch " and about its description.
func newFlags(e env, name, usage, about string) *cmdFlags {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(io.Discard) // errors and usage are printed by parse
	fs.Usage = func() {}
	return &cmdFlags{FlagSet: fs, e: e, usage: "batch " + usage, about: about}
}

// printUsage writes the synopsis, the description and the flags to w.
func (f *cmdFlags) printUsage(w io.Writer) {
	fmt.Fprintf(w, "usage: %s\n", f.usage)
	if f.about != "" {
		fmt.Fprintf(w, "\n%s\n", strings.TrimRight(f.about, "\n"))
	}
	n := 0
	f.VisitAll(func(*flag.Flag) { n++ })
	if n > 0 {
		fmt.Fprintln(w, "\nflags:")
		f.SetOutput(w)
		f.PrintDefaults()
		f.SetOutput(io.Discard)
	}
}

// parse parses args, flags anywhere among the arguments (`batch show REF
// --json`); "--" ends the flags. It returns the arguments that are not
// flags. --help prints the usage on stdout and returns errHelpShown; a bad
// flag prints it on stderr and returns a configError.
func (f *cmdFlags) parse(args []string) ([]string, error) {
	var pos []string
	for {
		err := f.Parse(args)
		if errors.Is(err, flag.ErrHelp) {
			f.printUsage(f.e.stdout)
			return nil, errHelpShown
		}
		if err != nil {
			f.printUsage(f.e.stderr)
			return nil, badConfig("%s: %w", f.Name(), err)
		}
		rest := f.Args()
		if consumed := len(args) - len(rest); consumed > 0 && args[consumed-1] == "--" {
			return append(pos, rest...), nil
		}
		if len(rest) == 0 {
			return pos, nil
		}
		pos, args = append(pos, rest[0]), rest[1:]
	}
}

// parseNone is parse for a command that takes no arguments: any argument
// left is refused (exit 2).
func (f *cmdFlags) parseNone(args []string) error {
	pos, err := f.parse(args)
	if err != nil {
		return err
	}
	if len(pos) > 0 {
		f.printUsage(f.e.stderr)
		return badConfig("%s: unexpected argument %q (it takes none)", f.Name(), pos[0])
	}
	return nil
}
