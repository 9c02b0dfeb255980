package main

import (
	"context"
	"errors"
)

// cmdSchedule is not built yet.
func cmdSchedule(ctx context.Context, args []string, e env) error {
	return errors.New("batch schedule: not implemented yet")
}
