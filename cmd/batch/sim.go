package main

import (
	"context"
	"errors"
)

// cmdSim is not built yet.
func cmdSim(ctx context.Context, args []string, e env) error {
	return errors.New("batch sim: not implemented yet")
}
